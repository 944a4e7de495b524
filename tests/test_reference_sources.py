"""The reference pipeline comes from where the model says, and computes what the model's own
library computes: timm's eval transform, torchvision's weights transforms(), a Hugging Face
processor. Each check compares sysnoise's model input with the library's on real pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sysnoise import reference_sources
from sysnoise.errors import UserInputError
from sysnoise.models import load_model, torchvision_cache_path, wrap_module
from sysnoise.pipeline.preprocess import tensors
from sysnoise.pipeline.spec import Pipeline


@pytest.fixture
def photo_bytes(demo_list_file):
    """A real demo photo (JPEG), with odd sizes after every resize."""
    return sorted(demo_list_file.parent.glob("*.jpg"))[0].read_bytes()


def _sysnoise_input(data: bytes, pipeline: Pipeline) -> torch.Tensor:
    (value,) = tensors(data, [pipeline]).values()
    return torch.as_tensor(np.asarray(value))


def _pil(data: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def test_timm_tag_resolves_bicubic_crop_095_and_matches_timm_transform(tmp_path, photo_bytes):
    timm = pytest.importorskip("timm")
    import timm.data  # noqa: F811  (the submodule, after the skip)

    module = timm.create_model("resnet18.a1_in1k", pretrained=False)  # random weights: the config is what matters
    weights = tmp_path / "r18.safetensors"
    from safetensors.torch import save_file

    save_file(module.state_dict(), str(weights))
    loaded = load_model("timm:resnet18.a1_in1k", weights)
    ref = loaded.reference
    assert (ref.resize, ref.crop, ref.input_size, ref.crop_pct) == ("pillow-bicubic", "shorter-centre-crop", 224, 0.95)
    assert ref.mean == pytest.approx((0.485 * 255, 0.456 * 255, 0.406 * 255))
    assert "timm pretrained_cfg resnet18.a1_in1k" in loaded.reference_provenance["resize"]
    assert loaded.reference_provenance["decoder"] == reference_sources.DEFAULT_SOURCE
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(module))
    expected = transform(_pil(photo_bytes))
    assert torch.allclose(_sysnoise_input(photo_bytes, ref), expected, atol=1e-5)


@pytest.mark.parametrize(
    "enum_name",
    [
        "ResNet50_Weights.IMAGENET1K_V2",
        "ResNet50_Weights.IMAGENET1K_V1",
        "ViT_B_16_Weights.IMAGENET1K_V1",
        "FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1",
    ],
)  # segmentation: no crop
def test_torchvision_enum_transforms_resolve_and_match_torchvision(enum_name, photo_bytes):
    import torchvision

    enum = torchvision.models.get_weight(enum_name)
    resolved = reference_sources.from_torchvision(enum.transforms(), enum_name)
    expected = enum.transforms()(_pil(photo_bytes))
    assert torch.allclose(_sysnoise_input(photo_bytes, resolved.pipeline), expected, atol=1e-5)


def test_resnet50_v2_is_232_224_bilinear():
    import torchvision

    enum = torchvision.models.get_weight("ResNet50_Weights.IMAGENET1K_V2")
    p = reference_sources.from_torchvision(enum.transforms(), "r50").pipeline
    import math

    assert (p.resize, p.crop, p.input_size, math.floor(p.input_size / p.crop_pct)) == (
        "pillow-bilinear",
        "shorter-centre-crop",
        224,
        232,
    )


def test_torchvision_enum_loads_from_the_hub_cache_offline(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    enum = torchvision.models.get_weight("ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(UserInputError, match="hub/checkpoints/resnet18-f37072fd.pth"):
        load_model("torchvision:resnet18.IMAGENET1K_V1")
    cached = torchvision_cache_path(enum)
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), cached)
    loaded = load_model("torchvision:resnet18.IMAGENET1K_V1")
    assert loaded.source == str(cached)
    assert loaded.reference.input_size == 224 and loaded.reference.crop_pct == pytest.approx(224 / 256)
    assert loaded.class_names[:2] == ["tench", "goldfish"]
    with pytest.raises(UserInputError, match="has no 'IMAGENET9'"):
        load_model("torchvision:resnet18.IMAGENET9")


def test_timm_weights_from_the_hf_cache_offline(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserInputError, match="models--timm--resnet18.a1_in1k"):
        load_model("timm:resnet18.a1_in1k")
    snapshot = tmp_path / "models--timm--resnet18.a1_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (tmp_path / "models--timm--resnet18.a1_in1k" / "refs").mkdir()
    (tmp_path / "models--timm--resnet18.a1_in1k" / "refs" / "main").write_text("abc123")
    from safetensors.torch import save_file

    module = timm.create_model("resnet18.a1_in1k", pretrained=False)
    save_file(module.state_dict(), str(snapshot / "model.safetensors"))
    loaded = load_model("timm:resnet18.a1_in1k")
    assert loaded.source == str(snapshot / "model.safetensors")
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value)


def test_reference_file_overrides_fields_and_says_so(tmp_path):
    ref_file = tmp_path / "ref.yaml"
    ref_file.write_text("resize: opencv-area\n")
    wrapped = wrap_module(torch.nn.Linear(1, 1), reference=Pipeline(input_size=96, crop_pct=1.0))
    assert wrapped.reference_provenance["input_size"] == "reference pipeline given to the API"
    from sysnoise.models import with_reference

    changed = with_reference(wrapped, ref_file)
    assert changed.reference.resize == "opencv-area" and changed.reference.input_size == 96  # kept from the model
    assert changed.reference_provenance["resize"] == f"--reference {ref_file}"
    assert changed.reference_provenance["input_size"] == "reference pipeline given to the API"


def test_timm_border_mode_is_refused_not_approximated():
    with pytest.raises(UserInputError, match="crop_mode 'border' has no sysnoise equivalent"):
        reference_sources.from_timm(
            {
                "input_size": (3, 224, 224),
                "crop_mode": "border",
                "crop_pct": 1.0,
                "interpolation": "bicubic",
                "mean": (0.5,) * 3,
                "std": (0.5,) * 3,
            },
            "x",
        )


def test_crop_pct_for_floors_to_the_resize_size():
    import math

    for size, resize in [(224, 232), (224, 256), (384, 438), (299, 342), (518, 592)]:
        assert math.floor(size / reference_sources.crop_pct_for(size, resize)) == resize


def _save_tiny_vit(folder, processor_kwargs):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "owl"},
        label2id={"cat": 0, "dog": 1, "owl": 2},
    )
    torch.manual_seed(0)
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    processor = transformers.ViTImageProcessorPil(**processor_kwargs)
    processor.save_pretrained(folder)
    return processor


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": {"height": 32, "width": 32}, "resample": 2},
        {
            "size": {"height": 32, "width": 32},
            "resample": 3,
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
        },
    ],
)
def test_hf_processor_config_matches_the_processor(tmp_path, photo_bytes, kwargs):
    processor = _save_tiny_vit(tmp_path / "vit", kwargs)
    config = json.loads((tmp_path / "vit" / "preprocessor_config.json").read_text())
    pipeline = reference_sources.from_hf_processor(config, "cfg").pipeline
    expected = processor(_pil(photo_bytes), return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(_sysnoise_input(photo_bytes, pipeline), expected, atol=1e-4)


def test_hf_vit_folder_runs_end_to_end_with_its_processor_pipeline(tmp_path, gradient_images):
    from sysnoise import api

    _save_tiny_vit(tmp_path / "vit", {"size": {"height": 32, "width": 32}, "resample": 3})
    results = api.run(
        str(tmp_path / "vit"),
        gradient_images[0].parent,
        noises=["resize=opencv-area"],
        out=tmp_path / "out",
        figures=False,
    )
    ref = results["model"]["reference_pipeline"]
    assert (ref["resize"], ref["crop"], ref["input_size"], ref["mean"]) == (
        "pillow-bicubic",
        "squash",
        32,
        [127.5, 127.5, 127.5],
    )
    assert results["model"]["reference_provenance"]["resize"].endswith("preprocessor_config.json")
    assert results["reference"]["n"] == 3
    # the logits are the transformers model's own on the same input
    import transformers

    model = transformers.ViTForImageClassification.from_pretrained(tmp_path / "vit").eval()
    from sysnoise.engine.outputs import RunOutputs

    outputs = RunOutputs.load(tmp_path / "out" / "outputs.npz")
    data = gradient_images[0].read_bytes()
    with torch.no_grad():
        logits = model(pixel_values=_sysnoise_input(data, Pipeline(**ref))[None]).logits[0]
    row = outputs.sample_ids.index(gradient_images[0].name)
    assert int(outputs.arrays["reference"]["topk"][row][0]) == int(logits.argmax())
