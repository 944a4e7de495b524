"""Operator rewrites: each changes what it says, only where the model has that operator, and never
touches the model it was given."""

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision

from sysnoise.inference import operators as ops
from sysnoise.inference.scoped import FunctionalRewrite, with_rules
from sysnoise.noises import NOISES

from .conftest import random_bn_stats, same_state, state


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return random_bn_stats(torchvision.models.resnet18(num_classes=10).eval())


def _maxpool_output_shape(model, x):
    shapes = []
    pool = next(m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d))
    handle = pool.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[-2:])))
    with torch.no_grad():
        model(x)
    handle.remove()
    return shapes[0]


def test_ceil_mode_grows_resnet_maxpool_from_56_to_57_at_224(resnet18):
    x = torch.randn(1, 3, 224, 224)
    assert _maxpool_output_shape(resnet18, x) == (56, 56)
    assert _maxpool_output_shape(ops.apply_operator("maxpool-ceil", resnet18), x) == (57, 57)
    assert _maxpool_output_shape(resnet18, x) == (56, 56)  # the original keeps floor mode


class Pools(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.avg = torch.nn.AvgPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return self.avg(x)


def test_avgpool_ceil_and_count_include_pad():
    x = torch.arange(2 * 7 * 7, dtype=torch.float32).reshape(1, 2, 7, 7)
    model = Pools().eval()
    base = model(x)
    ceil = ops.apply_operator("avgpool-ceil", model)(x)
    pad = ops.apply_operator("avgpool-count-pad", model)(x)
    assert base.shape[-1] == 4 and ceil.shape[-1] == 4  # (7 + 2 - 3) / 2 + 1 = 4 either way here
    x8 = torch.rand(1, 2, 8, 8)
    assert model(x8).shape[-1] == 4 and ops.apply_operator("avgpool-ceil", model)(x8).shape[-1] == 5
    # count_include_pad=False divides border windows by the real pixels only: the corner is the
    # mean of its 2x2 real pixels instead of their sum over 9
    corner = x[0, 0, :2, :2]
    assert torch.isclose(base[0, 0, 0, 0], corner.sum() / 9)
    assert torch.isclose(pad[0, 0, 0, 0], corner.mean())
    assert torch.equal(base[0, 0, 1, 1], pad[0, 0, 1, 1])  # interior windows agree
    assert ceil.shape == base.shape
    assert model.avg.count_include_pad and not model.avg.ceil_mode


def test_pool_rewrites_do_not_apply_without_such_pools(resnet18):
    assert ops.applies("maxpool-ceil", resnet18)
    assert not ops.applies("avgpool-ceil", resnet18)  # ResNet pools adaptively at the end
    assert not ops.applies("avgpool-count-pad", resnet18)
    assert ops.applies("avgpool-ceil", Pools()) and not ops.applies("maxpool-ceil", Pools())


class TwoBranches(torch.nn.Module):
    """One branch upsamples (functionally and with a module), the other does not."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        y = self.conv(x)
        small = F.avg_pool2d(y, 2)
        up_functional = F.interpolate(small, scale_factor=2.0)  # default mode: nearest
        up_module = self.up(small)
        up_bilinear = F.interpolate(small, size=y.shape[-2:], mode="bilinear", align_corners=False)
        return {"plain": y * 2, "functional": up_functional, "module": up_module, "bilinear": up_bilinear}


@pytest.mark.parametrize(
    "rule, changed",
    [
        ("upsample-bilinear", {"functional", "module"}),
        ("upsample-nearest-exact", set()),  # 2x integer scale: nearest and nearest-exact pick the same pixels
        ("upsample-align-corners", {"bilinear"}),
    ],
)
def test_upsample_rewrites_change_outputs_only_where_the_model_interpolates(rule, changed):
    torch.manual_seed(0)
    model = TwoBranches().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        before = model(x)
        after = ops.apply_operator(rule, model)(x)
    for name in before:
        assert torch.equal(before[name], after[name]) == (name not in changed), (rule, name)
    assert torch.equal(after["plain"], before["plain"])  # no interpolation: bit-identical


def test_nearest_exact_differs_from_nearest_at_fractional_scales():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return F.interpolate(x, size=(7, 7), mode="nearest")

    x = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    exact = ops.apply_operator("upsample-nearest-exact", Odd())(x)
    assert torch.equal(exact, F.interpolate(x, size=(7, 7), mode="nearest-exact"))
    assert not torch.equal(exact, Odd()(x))


def test_upsample_reaches_functional_calls_inside_torchvision_fpn():
    from torchvision.ops import FeaturePyramidNetwork

    torch.manual_seed(0)
    fpn = FeaturePyramidNetwork([8, 16, 32], 8).eval()
    features = {"a": torch.randn(1, 8, 32, 32), "b": torch.randn(1, 16, 16, 16), "c": torch.randn(1, 32, 8, 8)}
    assert ops.interpolates(fpn) and NOISES("upsample").applies(fpn)
    with torch.no_grad():
        before = fpn(features)
        after = ops.apply_operator("upsample-bilinear", fpn)(features)
    assert torch.equal(before["c"], after["c"])  # the top level is not upsampled into
    assert not torch.equal(before["a"], after["a"]) and not torch.equal(before["b"], after["b"])


def test_functional_rewrite_never_leaks_outside_the_forward():
    class Boom(torch.nn.Module):
        def forward(self, x):
            F.interpolate(x, scale_factor=2.0)
            raise RuntimeError("boom")

    x = torch.rand(1, 1, 3, 3)
    reference = F.interpolate(x, scale_factor=2.0)
    rewritten = ops.apply_operator("upsample-bilinear", TwoBranches())
    rewritten(torch.rand(1, 3, 4, 4))
    failing = ops.apply_operator("upsample-bilinear", Boom())
    with pytest.raises(RuntimeError):
        failing(x)
    assert not torch._C._is_torch_function_mode_enabled()  # no mode left on the stack
    assert torch.equal(F.interpolate(x, scale_factor=2.0), reference)  # global function untouched


def test_rules_stack_and_copies_stay_independent():
    model = TwoBranches().eval()
    both = with_rules(with_rules(model, ("upsample-bilinear",)), ("upsample-align-corners",))
    assert isinstance(both, FunctionalRewrite) and both.rules == ("upsample-bilinear", "upsample-align-corners")
    assert not isinstance(both.inner, FunctionalRewrite)
    clone = copy.deepcopy(both)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        a, b = both(x), clone(x)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # nearest -> bilinear(align_corners=False) -> align_corners flipped to True
    small = F.avg_pool2d(model.conv(x), 2)
    expected = F.interpolate(small, scale_factor=2.0, mode="bilinear", align_corners=True)
    torch.testing.assert_close(a["functional"], expected)


def test_models_without_interpolation_or_gelu_are_not_applicable(resnet18, lite0):
    for model in (resnet18, lite0.module):
        assert not ops.interpolates(model)
        assert not NOISES("upsample").applies(model)
        assert not NOISES("gelu-tanh").applies(model)
        assert not NOISES("avgpool-ceil").applies(model)
    assert not NOISES("ceil-mode").applies(lite0.module)  # EfficientNet-Lite has no max-pool: "n/a"
    assert NOISES("ceil-mode").applies(resnet18)
    assert NOISES("bn-fold").applies(lite0.module) and NOISES("norm-eps").applies(lite0.module)


class Gelus(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.act = torch.nn.GELU()
        self.norm = torch.nn.LayerNorm(6)

    def forward(self, x):
        return self.norm(self.act(x) + F.gelu(x * 0.5))


def test_gelu_tanh_rewrites_modules_and_functional_calls():
    model = Gelus().eval()
    assert ops.uses_gelu(model) and ops.applies("gelu-tanh", model)
    x = torch.linspace(-4, 4, 24).reshape(4, 6)
    rewritten = ops.apply_operator("gelu-tanh", model)
    expected = model.norm(F.gelu(x, approximate="tanh") + F.gelu(x * 0.5, approximate="tanh"))
    with torch.no_grad():
        torch.testing.assert_close(rewritten(x), expected)
        assert not torch.equal(rewritten(x), model(x))
        assert (rewritten(x) - model(x)).abs().max() < 1e-2  # the approximation is close


def test_norm_eps_swaps_framework_defaults(lite0):
    assert ops.other_framework_eps(1e-5) == 1e-3 and ops.other_framework_eps(1e-3) == 1e-5
    assert ops.other_framework_eps(1e-6) == 1e-3 and ops.other_framework_eps(1e-12) == 1e-3
    bn = ops.apply_operator("bn-eps", lite0.module)
    assert {m.eps for m in ops.batchnorms(lite0.module)} == {1e-3}  # EfficientNet-Lite: TF's epsilon
    assert {m.eps for m in ops.batchnorms(bn)} == {1e-5}  # ... ported with PyTorch's default
    ln = ops.apply_operator("ln-eps", Gelus())
    assert ln.norm.eps == 1e-3
    assert ops.applies("ln-eps", Gelus()) and not ops.applies("ln-eps", lite0.module)


def test_bn_fold_keeps_outputs_and_removes_every_batchnorm(resnet18):
    x = torch.randn(2, 3, 64, 64)
    folded = ops.apply_operator("bn-fold", resnet18, x[:1])
    assert not ops.batchnorms(folded) and len(ops.batchnorms(resnet18)) == 20
    with torch.no_grad():
        a, b = resnet18(x), folded(x)
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    assert not torch.equal(a, b)  # folding rounds differently: a (tiny) noise of its own


def test_bn_fold_leaves_a_conv_whose_output_is_also_read_elsewhere():
    class Tapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.conv2 = torch.nn.Conv2d(4, 4, 1)
            self.bn2 = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            z = self.conv2(torch.relu(self.bn(y)))
            return self.bn2(z) + y  # y is read twice: folding bn into conv would change this sum

    model = random_bn_stats(Tapped().eval())
    x = torch.randn(2, 3, 5, 5)
    assert ops.conv_bn_pairs(model, x) == [("conv2", "bn2")]
    folded = ops.apply_operator("bn-fold", model, x)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert isinstance(folded.bn, torch.nn.BatchNorm2d) and isinstance(folded.bn2, torch.nn.Identity)


def test_no_rewrite_mutates_the_original_model(resnet18):
    models = {"resnet": resnet18, "branches": TwoBranches().eval(), "gelus": Gelus().eval(), "pools": Pools().eval()}
    before = {name: (state(m), copy.deepcopy(m)) for name, m in models.items()}
    for name in ops.OPERATORS.names():
        for model_name, model in models.items():
            example = (
                torch.randn(1, 3, 32, 32)
                if model_name in ("resnet", "branches")
                else torch.randn(1, 3, 9, 9)
                if model_name == "pools"
                else torch.randn(2, 6)
            )
            if not ops.applies(name, model):
                continue
            ops.apply_operator(name, model, example)
    for name, model in models.items():
        saved_state, saved_copy = before[name]
        assert same_state(saved_state, state(model)), name
        assert str(saved_copy) == str(model), name  # same modules and settings (ceil_mode, eps, ...)
        assert not model._forward_hooks and not model._forward_pre_hooks
        for module in model.modules():
            assert not module._forward_hooks and not module._forward_pre_hooks
