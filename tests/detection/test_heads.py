"""The raw-output detector stages plus the reference post-processing reproduce each torchvision
detector's own outputs exactly; the post-processing variants run on the same raw outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from sysnoise.postprocess.detection import detect
from sysnoise.tasks.detection_heads import family, load_torchvision, raw_detector, reference_pipeline

SIZE = 128


def _identity_transform(model, size: int = SIZE):
    """Make the detector's own transform a no-op on SIZE x SIZE inputs, so both paths see one tensor."""
    t = model.transform
    t.min_size, t.max_size, t.image_mean, t.image_std = (size,), size, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    if t.fixed_size:
        t.fixed_size = (size, size)
    return model.eval()


def _compare(model, x):
    with torch.no_grad():
        expected = model(list(x))
        raw = raw_detector(model)(x)
    post = raw_detector(model).post_reference
    h, w = x.shape[-2:]
    for i, want in enumerate(expected):
        got = detect({k: v[i].numpy() for k, v in raw.items()}, post, (h, w), (1.0, 0.0, 1.0, 0.0), (w, h))
        n = len(want["scores"])
        assert n > 0
        assert int((got["labels"] >= 0).sum()) == min(n, 100)
        np.testing.assert_array_equal(got["labels"][:n], want["labels"][:100].numpy())
        np.testing.assert_allclose(got["scores"][:n], want["scores"][:100].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(got["boxes"][:n], want["boxes"][:100].numpy(), rtol=0, atol=1e-4)


def test_zoo_faster_rcnn_bit_for_bit():
    from sysnoise.zoo import detector

    torch.manual_seed(0)
    model = detector.build(11).eval()
    model.roi_heads.score_thresh = 0.0  # random weights: keep every candidate
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected, raw = model(list(x)), raw_detector(model)(x)
    post = raw_detector(model).post_reference
    for i, want in enumerate(expected):
        got = detect({k: v[i].numpy() for k, v in raw.items()}, post, (96, 96), (1.0, 0.0, 1.0, 0.0), (96, 96))
        n = len(want["scores"])
        assert np.array_equal(got["boxes"][:n], want["boxes"].numpy())
        assert np.array_equal(got["scores"][:n], want["scores"].numpy())
        assert np.array_equal(got["labels"][:n], want["labels"].numpy())


@pytest.mark.slow  # ~15 s each: full-size torchvision backbones, random weights
@pytest.mark.parametrize("arch", ["retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large"])
def test_dense_detectors_match_torchvision(arch):
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=5)
    model = _identity_transform(model)
    model.score_thresh = 0.0 if arch != "ssdlite320_mobilenet_v3_large" else 0.19
    _compare(model, torch.rand(2, 3, SIZE, SIZE))


def test_reference_pipeline_reads_the_models_transform():
    frcnn = torchvision.models.get_model(
        "fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None, num_classes=3
    )
    p = reference_pipeline(frcnn)
    assert (p.crop, p.input_size, round(p.input_size / p.crop_pct)) == ("keep-ratio-max-size", 320, 640)
    assert p.mean == pytest.approx((123.675, 116.28, 103.53)) and p.resize == "torchvision-bilinear-noaa"
    ssd = torchvision.models.get_model(
        "ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=3
    )
    assert (reference_pipeline(ssd).crop, reference_pipeline(ssd).input_size) == ("squash", 320)
    assert reference_pipeline(ssd).std == pytest.approx((127.5, 127.5, 127.5))


def test_loading_by_name_infers_the_classes_and_refuses_other_state_dicts(tmp_path):
    from safetensors.torch import save_file

    from sysnoise.errors import UserInputError
    from sysnoise.models import load_model

    model = torchvision.models.get_model("fcos_resnet50_fpn", weights=None, weights_backbone=None, num_classes=7)
    save_file(model.state_dict(), str(tmp_path / "fcos.safetensors"))
    loaded = load_model("torchvision:fcos_resnet50_fpn", tmp_path / "fcos.safetensors")
    assert loaded.num_classes == 7 and family(loaded.module) == "fcos"
    assert loaded.reference.crop == "keep-ratio-max-size"
    with pytest.raises(UserInputError, match="not a state dict"):
        load_torchvision("retinanet_resnet50_fpn", tmp_path / "fcos.safetensors", {"x": torch.zeros(1)})


def test_a_module_that_is_no_detector_is_refused_with_the_contract():
    with pytest.raises(ValueError, match="post_reference"):
        raw_detector(torch.nn.Conv2d(3, 3, 1))


@pytest.mark.parametrize(
    "arch, kind, suffix",
    [
        ("fasterrcnn_mobilenet_v3_large_320_fpn", "two-stage", ".pth"),
        ("maskrcnn_resnet50_fpn", "two-stage", ".safetensors"),  # its boxes; masks: tests/detection/test_masks.py
        ("ssd300_vgg16", "ssd", ".safetensors"),
        ("ssdlite320_mobilenet_v3_large", "ssd", ".safetensors"),  # its predicting conv follows a depthwise block
    ],
)
def test_torchvision_detectors_by_name_reproduce_their_own_outputs(arch, kind, suffix, tmp_path):
    from safetensors.torch import save_file

    from sysnoise.models import load_model

    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=3)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), path)
    else:
        save_file(model.state_dict(), str(path))
    loaded = load_model(f"torchvision:{arch}", path)
    assert loaded.num_classes == 3 and family(loaded.module) == kind
    assert loaded.reference == reference_pipeline(model)
    state = loaded.module.state_dict()
    assert all(torch.equal(state[name], value) for name, value in model.state_dict().items())  # not a fresh init
    size = 300 if arch == "ssd300_vgg16" else SIZE  # SSD300's extra layers need 300 x 300
    detector = _identity_transform(loaded.module, size)
    if kind == "two-stage":  # random weights: keep every candidate; few proposals and masks, for speed
        detector.roi_heads.score_thresh, detector.roi_heads.detections_per_img = 0.0, 10
        detector.rpn._post_nms_top_n["testing"] = 100
    else:
        detector.score_thresh = 0.0
    _compare(detector, torch.rand(1, 3, size, size))
