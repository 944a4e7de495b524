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
    for i, want in enumerate(expected):
        got = detect({k: v[i].numpy() for k, v in raw.items()}, post, (SIZE, SIZE), (1.0, 0.0, 1.0, 0.0), (SIZE, SIZE))
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
    frcnn = torchvision.models.get_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None,
                                         num_classes=3)
    p = reference_pipeline(frcnn)
    assert (p.crop, p.input_size, round(p.input_size / p.crop_pct)) == ("keep-ratio-max-size", 320, 640)
    assert p.mean == pytest.approx((123.675, 116.28, 103.53)) and p.resize == "torchvision-bilinear-noaa"
    ssd = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None,
                                       num_classes=3)
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
