"""torchvision segmentation models by name: classes and auxiliary head read from the state dict,
the eval transform as reference pipeline, and a model stage that ends at the logits."""

from __future__ import annotations

import pytest
import torch
import torchvision

from sysnoise.models import load_model
from sysnoise.tasks.segmentation import logits_module


@pytest.mark.parametrize(
    "arch, aux",
    [
        ("lraspp_mobilenet_v3_large", False),
        ("deeplabv3_mobilenet_v3_large", True),
        ("fcn_resnet50", True),
        ("fcn_resnet50", False),
    ],
)
def test_by_name(arch, aux, tmp_path):
    from safetensors.torch import save_file

    options = {"aux_loss": True} if aux else {}
    model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=6, **options)
    save_file(model.state_dict(), str(tmp_path / "m.safetensors"))
    loaded = load_model(f"torchvision:{arch}", tmp_path / "m.safetensors")
    assert loaded.num_classes == 6
    state = loaded.module.state_dict()  # the saved weights, auxiliary head included, not a fresh init
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[name], value) for name, value in model.state_dict().items())
    assert (loaded.reference.crop, loaded.reference.input_size, loaded.reference.resize) == (
        "shorter-side",
        520,
        "pillow-bilinear",
    )
    stage = logits_module(loaded.module)
    with torch.no_grad():
        out = stage(torch.randn(1, 3, 64, 80))
    assert out.shape == (1, 6, 64, 80)
    assert logits_module(stage) is stage  # a module that returns logits is kept as it is


def test_logits_of_inputs_of_several_sizes_come_back_per_input_in_order():
    import numpy as np

    from sysnoise.tasks.base import forward_by_shape

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(np.float32) for shape in [(3, 4, 4), (3, 4, 6), (3, 4, 4)]]
    double = lambda x: x[:, :2] * 2  # noqa: E731  (logits: twice the first two channels)
    out = forward_by_shape(double, inputs, batch_size=8, device="cpu")
    assert len(out["logits"]) == 3
    for got, given in zip(out["logits"], inputs):
        np.testing.assert_array_equal(got, given[:2] * 2)
    same = forward_by_shape(double, [inputs[0], inputs[2]], batch_size=1, device="cpu")
    assert isinstance(same["logits"], np.ndarray) and same["logits"].shape == (2, 2, 4, 4)
