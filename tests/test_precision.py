"""FP16/BF16 emulation: float32 arithmetic with tensors rounded at module boundaries, checked
against a native float16 forward of the same trained model."""

import numpy as np
import pytest
import torch

from sysnoise.inference.precision import PRECISIONS, apply_precision
from sysnoise.pipeline.preprocess import tensors


@pytest.fixture(scope="module")
def lite0_and_inputs(demo_list_file):
    from sysnoise.models import load_model

    loaded = load_model("efficientnet_lite0")
    photos = sorted(demo_list_file.parent.glob("*.jpg"))[:6]
    key = loaded.reference.prefix("normalise")
    batch = np.stack([tensors(p.read_bytes(), [loaded.reference])[key] for p in photos])
    return loaded.module, torch.from_numpy(batch)


def test_emulated_fp16_agrees_with_native_fp16(lite0_and_inputs):
    model, x = lite0_and_inputs
    with torch.inference_mode():
        fp32 = model(x)
        emulated = PRECISIONS("fp16")(model)(x)
        native = PRECISIONS("fp16-native")(model)(x)
    # Stated tolerance (docs): emulation and native half differ by accumulation order only, so
    # their gap is a small fraction of the gap between either and float32 ... and top-1 agrees.
    scale = fp32.abs().max()
    assert (emulated - native).abs().max() / scale < 0.02
    assert torch.equal(emulated.argmax(1), native.argmax(1))
    assert not torch.equal(emulated, fp32)  # rounding really happened


def test_emulation_rounds_weights_and_activations_to_the_narrow_type():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(4, 8)
    for name, dtype in [("fp16", torch.float16), ("bf16", torch.bfloat16)]:
        emulated = PRECISIONS(name)(model)
        for p in emulated.parameters():
            assert torch.equal(p, p.to(dtype).float())
        out = emulated(x)
        assert torch.equal(out, out.to(dtype).float())  # outputs are representable in dtype
        # independent expectation: the same computation written out by hand
        r = lambda t: t.to(dtype).float()  # noqa: E731
        w1, b1 = r(model[0].weight), r(model[0].bias)
        w2, b2 = r(model[2].weight), r(model[2].bias)
        h = r(torch.relu(r(r(x) @ w1.T + b1)))
        torch.testing.assert_close(out, r(h @ w2.T + b2), rtol=0, atol=0)


def test_precision_transforms_do_not_touch_the_original_model():
    model = torch.nn.Linear(4, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in PRECISIONS.names():  # INT8 entries calibrate on the batches they are given
        apply_precision(name, model, calibration=[torch.randn(3, 4)])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model._forward_hooks and not model._forward_pre_hooks
