"""torchvision segmentation models by name: classes and auxiliary head read from the state dict,
the eval transform as reference pipeline, and a model stage that ends at the logits."""

from __future__ import annotations

import pytest
import torch
import torchvision

from sysnoise.models import load_model
from sysnoise.tasks.segmentation import logits_module


@pytest.mark.parametrize("arch, aux", [("lraspp_mobilenet_v3_large", False), ("deeplabv3_mobilenet_v3_large", True)])
def test_by_name(arch, aux, tmp_path):
    from safetensors.torch import save_file

    options = {"aux_loss": True} if aux else {}
    model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=6, **options)
    save_file(model.state_dict(), str(tmp_path / "m.safetensors"))
    loaded = load_model(f"torchvision:{arch}", tmp_path / "m.safetensors")
    assert loaded.num_classes == 6
    assert (loaded.reference.crop, loaded.reference.input_size, loaded.reference.resize) == \
        ("shorter-side", 520, "pillow-bilinear")
    stage = logits_module(loaded.module)
    with torch.no_grad():
        out = stage(torch.randn(1, 3, 64, 80))
    assert out.shape == (1, 6, 64, 80)
    assert logits_module(stage) is stage  # a module that returns logits is kept as it is
