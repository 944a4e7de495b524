"""Emulated half precision rounds what a half-precision forward stores: the output of a non-leaf
convolution (a Conv2d with a child padding module, as EfficientNet-Lite's) and a residual
addition between modules, not only leaf modules' outputs; what the model computes in float32
on purpose (an explicit upcast) stays float32. The emulation computes in float64, which stands
for the narrow type, so the hand computations here do too."""

import pytest
import torch
import torch.nn.functional as F

from sysnoise.inference.precision import PRECISIONS
from sysnoise.inference.scoped import RewriteMode


class PaddedConv(torch.nn.Conv2d):
    """A convolution that is not a leaf: its padding is a child module."""

    def __init__(self, channels: int):
        super().__init__(channels, channels, 3)
        self.pad = torch.nn.ZeroPad2d(1)

    def forward(self, x):
        return super().forward(self.pad(x))


class Residual(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = PaddedConv(channels)

    def forward(self, x):
        return x + self.conv(x)


@pytest.mark.parametrize("name, narrow", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_non_leaf_convolution_and_residual_addition_are_rounded(name, narrow):
    torch.manual_seed(0)
    model = Residual(4).eval()
    x = torch.randn(2, 4, 6, 6) * 3
    r = lambda t: t.to(narrow).double()  # noqa: E731
    xr, w, b = r(x), r(model.conv.weight), r(model.conv.bias)
    with torch.no_grad():
        conv = r(F.conv2d(F.pad(xr, (1, 1, 1, 1)), w, b))  # the convolution's stored output
        expected = (xr.to(narrow) + conv.to(narrow)).float()  # the addition done natively in the narrow type
        leaf_only = (xr + F.conv2d(F.pad(xr, (1, 1, 1, 1)), w, b)).float()  # only the padding (a leaf) rounded
        out = PRECISIONS(name)(model)(x)
    assert out.dtype == torch.float32 and not torch.equal(leaf_only, expected)  # the case tells the two apart
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


class UpcastNorm(torch.nn.Module):
    """An RMS norm that squares in float32, as transformers' LlamaRMSNorm does: squares of values
    above 256 overflow float16."""

    def forward(self, x):
        dtype = x.dtype
        wide = x.to(torch.float32)
        return (wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True))).to(dtype)


def test_explicit_float32_upcasts_stay_float32_and_the_cast_back_is_rounded():
    x = torch.tensor([[300.0, 1000.0, 3.0]])
    with torch.no_grad():
        out = PRECISIONS("fp16")(UpcastNorm())(x)
    wide = x.half().float()  # the input as stored in float16, then the model's own float32 maths
    expected = (wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True))).half().float()
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert torch.isfinite(out).all()  # squaring in float16 would give inf and a zero output


def test_rounding_keeps_views_aliased_and_rounds_in_place_results():
    """x.view(...) stays a view of its base; x.add_(y) leaves x rounded (in place)."""
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    third = torch.tensor([1 / 3, 1 / 3], dtype=torch.float64)
    with RewriteMode(("round-float16",)):
        view = x.view(2, 1)
        x.add_(third)
    assert view._base is x and torch.equal(view.flatten(), x)
    torch.testing.assert_close(x, (torch.tensor([1.0, 2.0]) + third).half().double(), rtol=0, atol=0)
