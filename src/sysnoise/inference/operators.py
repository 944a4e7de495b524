"""Operator variants: rewrites of a torch model that keep its weights but change an operator's
semantics, as a different runtime or export path would. Each knows whether it applies to a model.

Every rewrite returns a new model and leaves the one it was given untouched. Module-level
rewrites (pooling modes, norm epsilons, batch-norm folding) change attributes of a deep copy.
Rewrites of functional calls (`F.interpolate` inside torchvision's FPN, `F.gelu`) cannot be
reached through modules, so the copy is wrapped in `inference.scoped.FunctionalRewrite`, whose
forward installs a torch-function mode for its own duration only (thread-local, popped on exit
or error): nothing is patched outside a forward of the rewritten model.

An operator function takes the model and, when its registry entry says `needs_example=True`,
an example input batch (batch-norm folding finds conv -> batch-norm pairs by running it once).
"""

from __future__ import annotations

import copy
import functools
import inspect

from sysnoise.inference.scoped import TensorUseCounter, changes_any, excluded_types, interpolations, with_rules
from sysnoise.registry import Registry
from sysnoise.tasks.detection_heads import anchor_strides, has_anchor_generator, pin_anchor_strides

OPERATORS: Registry = Registry("operator variant")

# The two framework defaults a norm epsilon is swapped between (PyTorch 1e-5, TF/Keras 1e-3).
TORCH_EPS, KERAS_EPS = 1e-5, 1e-3


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


# --- pooling -----------------------------------------------------------------------------------


def _strided_maxpools(model):
    import torch

    return [
        m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d) and max(_pair(m.stride)) > 1 and not m.ceil_mode
    ]


def _strided_avgpools(model):
    import torch

    return [
        m for m in model.modules() if isinstance(m, torch.nn.AvgPool2d) and max(_pair(m.stride)) > 1 and not m.ceil_mode
    ]


def _padded_avgpools(model):
    import torch

    return [m for m in model.modules() if isinstance(m, torch.nn.AvgPool2d) and max(_pair(m.padding)) > 0]


def _ceil_maxpools(model):
    rewritten = copy.deepcopy(model)
    for pool in _strided_maxpools(rewritten):
        pool.ceil_mode = True
    return rewritten


def _has_anchors(model) -> bool:
    return has_anchor_generator(model)


@OPERATORS.register(
    "maxpool-ceil",
    "strided max-pool with ceil_mode=True (trained with floor): the feature map grows by one row/column; "
    "a detector's anchors stay at the trained strides",
    applies=lambda model: bool(_strided_maxpools(model)),
    needs_example=True,
    noise="ceil-mode",
)
def maxpool_ceil(model, example=None):
    """The pool change alone. A torchvision detector recomputes its anchor strides from the feature
    maps' sizes, which the pool changes; a deployed engine keeps the strides it was configured
    with, so they are pinned at what the un-rewritten model computes on `example`."""
    rewritten = _ceil_maxpools(model)
    if _has_anchors(model):
        if example is None:
            raise ValueError("maxpool-ceil on a detector needs an example input to find its trained anchor strides")
        rewritten = pin_anchor_strides(rewritten, anchor_strides(model, example))
    return rewritten


@OPERATORS.register(
    "maxpool-ceil-torchvision-strides",
    "maxpool-ceil with torchvision's anchor strides recomputed as image_size // grid_size from the grown maps "
    "(zoo detector: 3, 7, 13, 24, 48 instead of 4, 8, 16, 32, 48): ceil_mode flipped in torchvision eager",
    applies=lambda model: bool(_strided_maxpools(model)) and _has_anchors(model),
    noise="ceil-mode",
)
def maxpool_ceil_torchvision_strides(model):
    return _ceil_maxpools(model)


@OPERATORS.register(
    "avgpool-ceil",
    "strided average pool with ceil_mode=True (trained with floor)",
    applies=lambda model: bool(_strided_avgpools(model)),
    noise="avgpool-ceil",
)
def avgpool_ceil(model):
    rewritten = copy.deepcopy(model)
    for pool in _strided_avgpools(rewritten):
        pool.ceil_mode = True
    return rewritten


@OPERATORS.register(
    "avgpool-count-pad",
    "padded average pool with count_include_pad flipped (PyTorch counts the padding, TF 'SAME' does not)",
    applies=lambda model: bool(_padded_avgpools(model)),
    noise="avgpool-pad",
)
def avgpool_count_pad(model):
    rewritten = copy.deepcopy(model)
    for pool in _padded_avgpools(rewritten):
        pool.count_include_pad = not pool.count_include_pad
    return rewritten


# --- normalisation ----------------------------------------------------------------------------


def other_framework_eps(eps: float) -> float:
    """PyTorch's default 1e-5 <-> TF/Keras' 1e-3 (what a port that forgets the epsilon gets)."""
    return TORCH_EPS if eps >= 1e-4 else KERAS_EPS


def batchnorms(model):
    import torch

    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _layernorms(model):
    import torch

    return [m for m in model.modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm))]


@OPERATORS.register(
    "bn-eps",
    "BatchNorm epsilon swapped between PyTorch's 1e-5 and TF/Keras' 1e-3 (a port that keeps the default)",
    applies=lambda model: bool(batchnorms(model)),
    noise="norm-eps",
)
def bn_eps(model):
    rewritten = copy.deepcopy(model)
    for norm in batchnorms(rewritten):
        norm.eps = other_framework_eps(norm.eps)
    return rewritten


@OPERATORS.register(
    "ln-eps",
    "LayerNorm/GroupNorm epsilon swapped between PyTorch's 1e-5 and TF/Keras' 1e-3",
    applies=lambda model: bool(_layernorms(model)),
    noise="norm-eps",
)
def ln_eps(model):
    rewritten = copy.deepcopy(model)
    for norm in _layernorms(rewritten):
        norm.eps = other_framework_eps(norm.eps)
    return rewritten


@OPERATORS.register(
    "bn-fold",
    "BatchNorm folded into the preceding convolution's weights and bias, as deployment compilers do",
    applies=lambda model: bool(batchnorms(model)) and bool(_convs(model)),
    needs_example=True,
    noise="bn-fold",
)
def bn_fold(model, example=None):
    return fold_batchnorm(model, example)


def _convs(model):
    import torch

    return [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd) and not m.transposed]


def conv_bn_pairs(model, example) -> list[tuple[str, str]]:
    """(conv name, batch-norm name) pairs where the batch-norm's input is the convolution's output
    and nothing but that batch-norm reads that output (no residual taps, no in-place ops between). Found by running `example` through the model once, so it
    holds for any code structure (attributes, Sequential, functional glue)."""
    import torch

    names = {id(m): n for n, m in model.named_modules()}
    produced: dict[int, tuple[str, object]] = {}  # id(output tensor) -> (conv name, tensor)
    calls: dict[str, int] = {}
    candidates: list[tuple[str, str, int]] = []
    handles = []

    def after_conv(module, _inputs, output):
        name = names[id(module)]
        calls[name] = calls.get(name, 0) + 1
        if isinstance(output, torch.Tensor):
            produced[id(output)] = (name, output)  # keep the tensor alive so its id stays unique

    def before_norm(module, inputs):
        name = names[id(module)]
        calls[name] = calls.get(name, 0) + 1
        counter.paused += 1  # the norm reading its own input (dim checks, batch_norm) is the fold's use
        if inputs and isinstance(inputs[0], torch.Tensor) and id(inputs[0]) in produced:
            conv_name, tensor = produced[id(inputs[0])]
            if tensor is inputs[0]:
                candidates.append((conv_name, name, id(tensor)))

    def after_norm(_module, _inputs, _output):
        counter.paused -= 1

    counter = TensorUseCounter(lambda tensor_id: tensor_id in produced)
    for conv in _convs(model):
        handles.append(conv.register_forward_hook(after_conv))
    for norm in batchnorms(model):
        handles.append(norm.register_forward_pre_hook(before_norm))
        handles.append(norm.register_forward_hook(after_norm, always_call=True))
    try:
        with torch.no_grad(), counter:
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    pairs = []
    for conv_name, norm_name, tensor_id in candidates:
        conv = model.get_submodule(conv_name)
        norm = model.get_submodule(norm_name)
        if (
            calls.get(conv_name) == 1
            and calls.get(norm_name) == 1
            and not counter.uses.get(tensor_id)
            and norm.num_features == conv.out_channels
            and norm.track_running_stats
            and norm.running_mean is not None
        ):
            pairs.append((conv_name, norm_name))
    return pairs


def fold_batchnorm(model, example):
    """A copy with each conv -> batch-norm pair merged into the convolution (the norm becomes an
    Identity): w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta."""
    import torch

    if example is None:
        raise ValueError("bn-fold needs an example input to find conv -> batch-norm pairs")
    folded = copy.deepcopy(model).eval()
    for conv_name, norm_name in conv_bn_pairs(folded, example):
        conv, norm = folded.get_submodule(conv_name), folded.get_submodule(norm_name)
        with torch.no_grad():
            scale = (
                norm.weight / torch.sqrt(norm.running_var + norm.eps)
                if norm.affine
                else 1 / torch.sqrt(norm.running_var + norm.eps)
            )
            shift = norm.bias if norm.affine else torch.zeros_like(norm.running_mean)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
            conv.weight.copy_(conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
            new_bias = (bias - norm.running_mean) * scale + shift
            if conv.bias is None:
                conv.bias = torch.nn.Parameter(new_bias.to(conv.weight.dtype))
            else:
                conv.bias.copy_(new_bias)
        parent_name, _, child = norm_name.rpartition(".")
        parent = folded.get_submodule(parent_name) if parent_name else folded
        setattr(parent, child, torch.nn.Identity())
    return folded


# --- functional calls: interpolation and GELU -------------------------------------------------


@functools.lru_cache(maxsize=None)
def _source_mentions(cls: type, needles: tuple[str, ...]) -> bool:
    """Whether the source of `cls` (or a base class outside torch.nn) mentions any needle."""
    for klass in cls.__mro__:
        if klass is object or klass.__module__.startswith("torch.nn"):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if any(needle in source for needle in needles):
            return True
    return False


def _calls_functional(model, module_kind: str, needles: tuple[str, ...]) -> bool:
    import torch

    kind = getattr(torch.nn, module_kind)
    excluded = excluded_types()
    for m in model.modules():
        if isinstance(m, kind):
            return True
        if excluded and isinstance(m, excluded):
            continue
        if not type(m).__module__.startswith("torch.nn") and _source_mentions(type(m), needles):
            return True
    return False


def interpolates(model) -> bool:
    """The model upsamples somewhere: an nn.Upsample module, or a module class whose source calls
    interpolate/upsample (torchvision's FPN, segmentation heads). Interpolation inside
    torchvision's GeneralizedRCNNTransform is input resizing, not the network's: not counted."""
    return _calls_functional(model, "Upsample", ("interpolate(", "upsample("))


def trained_upsampling(model, example, options) -> set[str]:
    """The upsample options that change none of the interpolations `model` makes on `example`:
    the modes it was trained with (on a bilinear segmenter upsample-bilinear, and
    upsample-nearest-exact, which only touches nearest), not variants of it."""
    calls = interpolations(model, example)
    return {option for option in options if not changes_any(option, calls)}


def uses_gelu(model) -> bool:
    return _calls_functional(model, "GELU", ("gelu(",))


def _functional(rule: str):
    def rewrite(model):
        return with_rules(model, (rule,))

    return rewrite


for _name, _noise, _text, _check in [
    (
        "upsample-bilinear",
        "upsample",
        "nearest(-exact) upsampling replaced by (bi/tri)linear, align_corners=False (the paper's upsample noise)",
        interpolates,
    ),
    (
        "upsample-nearest",
        "upsample",
        "(bi/tri)linear and bicubic upsampling replaced by nearest (the paper's upsample noise "
        "on a model trained with bilinear)",
        interpolates,
    ),
    (
        "upsample-align-corners",
        "upsample",
        "linear/bilinear/bicubic upsampling with align_corners flipped",
        interpolates,
    ),
    (
        "upsample-nearest-exact",
        "upsample",
        "nearest <-> nearest-exact upsampling (PyTorch's legacy nearest vs the "
        "half-pixel-centre rule of TF/ONNX/OpenCV)",
        interpolates,
    ),
    ("gelu-tanh", "gelu-tanh", "GELU erf form <-> tanh approximation", uses_gelu),
]:
    OPERATORS.register(_name, _text, applies=_check, noise=_noise)(_functional(_name))


def options_of(noise: str) -> list[str]:
    """The operator rewrites that belong to a catalogue noise (registry meta `noise`)."""
    return [entry.name for entry in OPERATORS if entry.meta.get("noise") == noise]


def applies(name: str, model) -> bool:
    check = OPERATORS.get(name).meta.get("applies")
    return True if check is None else bool(check(model))


def apply_operator(name: str, model, example=None):
    entry = OPERATORS.get(name)
    if entry.meta.get("needs_example"):
        return entry.fn(model, example)
    return entry.fn(model)
