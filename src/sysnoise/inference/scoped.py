"""Scoped rewrites of functional calls, through torch-function modes.

`F.interpolate` inside torchvision's FPN or a segmentation head, and `F.gelu` inside a custom
block, are not modules: no attribute of a module can change them. A `TorchFunctionMode` sees
every torch function called while it is active, including `F.interpolate` however it was
imported (`F.interpolate`, `torch.nn.functional.interpolate`, `from ... import interpolate`).

The same mode emulates a half-precision engine (`round-float16`, `round-bfloat16`) on a model
cast to float64, which stands for the narrow type: every float64 tensor an operation returns
(convolutions, additions, concatenations, matmuls, interpolations, inside a module or between
modules) is rounded through the narrow type, as a native `.half()` forward stores each result.
float32 results are left alone: they come from the model's own explicit upcasts (`.float()`,
`.to(torch.float32)`, `softmax(..., dtype=torch.float32)`, as transformers' RMSNorm and softmax
do), which a native half-precision forward computes in float32 too, while `.to(x.dtype)` returns
to the stand-in as native code returns to half precision. Views keep aliasing their (already
rounded) base; an in-place operation's result is rounded in place.

`FunctionalRewrite` wraps a model; its forward enters the mode and leaves it on return or on an
error. The mode stack is thread-local, so no other thread and no code outside the wrapped
forward ever sees a rewritten call; nothing global is patched. The wrapper holds only rule names
(plain strings), so it deep-copies, pickles and exports (ONNX tracing records the rewritten
calls) like any module.
"""

from __future__ import annotations

import functools
import inspect
import sys

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_LINEAR_BY_DIM = {3: "linear", 4: "bilinear", 5: "trilinear"}
_ALIGNABLE = {"linear", "bilinear", "bicubic", "trilinear"}


@functools.lru_cache(maxsize=1)
def excluded_types() -> tuple[type, ...]:
    """Modules whose own interpolation is input resizing, not part of the network: their calls are
    left alone (torchvision's detection transform resizes images with F.interpolate)."""
    found = []
    try:
        from torchvision.models.detection.transform import GeneralizedRCNNTransform

        found.append(GeneralizedRCNNTransform)
    except Exception:  # torchvision missing or reorganised: nothing to exclude
        pass
    return tuple(found)


_INTERPOLATE_SIGNATURE = inspect.signature(F.interpolate)


def _upsample_bilinear(arguments: dict, dims: int) -> None:
    if arguments["mode"] in ("nearest", "nearest-exact") and dims in _LINEAR_BY_DIM:
        arguments["mode"] = _LINEAR_BY_DIM[dims]
        arguments["align_corners"] = False


def _upsample_nearest(arguments: dict, dims: int) -> None:
    if arguments["mode"] in _ALIGNABLE:
        arguments["mode"] = "nearest"


def _upsample_align_corners(arguments: dict, dims: int) -> None:
    if arguments["mode"] in _ALIGNABLE:
        arguments["align_corners"] = not bool(arguments["align_corners"])


def _upsample_nearest_exact(arguments: dict, dims: int) -> None:
    swap = {"nearest": "nearest-exact", "nearest-exact": "nearest"}
    if arguments["mode"] in swap:
        arguments["mode"] = swap[arguments["mode"]]


INTERPOLATE_RULES = {
    "upsample-bilinear": _upsample_bilinear,
    "upsample-nearest": _upsample_nearest,
    "upsample-align-corners": _upsample_align_corners,
    "upsample-nearest-exact": _upsample_nearest_exact,
}
GELU_RULES = {"gelu-tanh"}
ROUNDING_RULES = {"round-float16": torch.float16, "round-bfloat16": torch.bfloat16}
RULES = set(INTERPOLATE_RULES) | GELU_RULES | set(ROUNDING_RULES)
STAND_IN = torch.float64  # the dtype an emulated model computes in, standing for the narrow type


def _inside_excluded(stop_at: object) -> bool:
    excluded = excluded_types()
    if not excluded:
        return False
    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if owner is stop_at:
            return False
        if isinstance(owner, excluded):
            return True
        frame = frame.f_back
    return False


def round_through(tensor: torch.Tensor, narrow: torch.dtype) -> torch.Tensor:
    return tensor.to(narrow).to(tensor.dtype)


def map_tensors(value, fn):
    """`fn` applied to every floating tensor in a (nested) output; containers keep their type."""
    if isinstance(value, torch.Tensor):
        return fn(value) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        mapped = [map_tensors(v, fn) for v in value]
        return type(value)(*mapped) if hasattr(value, "_fields") else type(value)(mapped)
    if isinstance(value, dict):
        mapped = {k: map_tensors(v, fn) for k, v in value.items()}
        # keep dict subclasses (transformers' ModelOutput: .logits must still work)
        return mapped if type(value) is dict else type(value)(**mapped)
    return value


_IN_PLACE_OPERATORS = {f"__i{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul")}


def _in_place(func, kwargs: dict) -> bool:
    name = getattr(func, "__name__", "")
    return (
        (name.endswith("_") and not name.startswith("__")) or name in _IN_PLACE_OPERATORS or bool(kwargs.get("inplace"))
    )


def _stored(result, narrow: torch.dtype, func, args, kwargs):
    """`result` as a half-precision engine stores it: new stand-in tensors rounded through `narrow`,
    an in-place result rounded in place; views and inputs handed back unchanged are left alone."""
    if _in_place(func, kwargs):
        for tensor in _flatten(result):
            if isinstance(tensor, torch.Tensor) and tensor.dtype == STAND_IN:
                tensor.copy_(round_through(tensor, narrow))
        return result
    inputs = {id(v) for v in _flatten((args, kwargs)) if isinstance(v, torch.Tensor)}

    def store(tensor):
        if tensor.dtype != STAND_IN or tensor._base is not None or id(tensor) in inputs:
            return tensor
        return round_through(tensor, narrow)

    return map_tensors(result, store)


class RewriteMode(TorchFunctionMode):
    """Rewrites the arguments of F.interpolate / F.gelu calls by rule name and, with a rounding
    rule, rounds every result; records how many calls it rewrote and the (mode, align_corners,
    input dims) each network interpolation was called with, before any rewrite."""

    def __init__(self, rules: tuple[str, ...], owner: object = None):
        super().__init__()
        self.rules = rules
        self.owner = owner
        self.rewritten = 0
        self.interpolations: list[tuple[str, bool | None, int]] = []
        self.narrow = next((ROUNDING_RULES[r] for r in rules if r in ROUNDING_RULES), None)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = self._call(func, args, kwargs)
        return result if self.narrow is None else _stored(result, self.narrow, func, args, kwargs)

    def _call(self, func, args, kwargs):
        if func is F.interpolate and not _inside_excluded(self.owner):
            bound = _INTERPOLATE_SIGNATURE.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            before = (arguments["mode"], arguments["align_corners"])
            self.interpolations.append((*before, arguments["input"].dim()))
            if any(r in INTERPOLATE_RULES for r in self.rules):
                for rule in self.rules:
                    if rule in INTERPOLATE_RULES:
                        INTERPOLATE_RULES[rule](arguments, arguments["input"].dim())
                if (arguments["mode"], arguments["align_corners"]) != before:
                    self.rewritten += 1
                    if arguments["mode"] not in _ALIGNABLE:
                        arguments["align_corners"] = None
                return func(**arguments)
        elif func is F.gelu and "gelu-tanh" in self.rules:
            approximate = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
            self.rewritten += 1
            return func(args[0], approximate="tanh" if approximate == "none" else "none")
        return func(*args, **kwargs)


class FunctionalRewrite(torch.nn.Module):
    """`inner` with functional calls rewritten by `rules`, only while its forward runs."""

    def __init__(self, inner: torch.nn.Module, rules: tuple[str, ...]):
        super().__init__()
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise ValueError(f"unknown functional rewrite(s) {unknown}; known: {sorted(RULES)}")
        self.inner = inner
        self.rules = tuple(rules)

    def forward(self, *args, **kwargs):
        with RewriteMode(self.rules, owner=self):
            return self.inner(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"rules={self.rules}"


def interpolations(model: torch.nn.Module, example) -> list[tuple[str, bool | None, int]]:
    """(mode, align_corners, input dims) of every interpolation `model`'s forward makes on
    `example`: the modes it was trained with (the detection transform's input resizing left out)."""
    recorder = RewriteMode((), owner=model)
    with torch.no_grad(), recorder:
        model(example)
    return recorder.interpolations


def changes_any(rule: str, calls) -> bool:
    """Whether the interpolation rule changes the mode or align_corners of any of `calls`."""
    for mode, align_corners, dims in calls:
        arguments = {"mode": mode, "align_corners": align_corners}
        INTERPOLATE_RULES[rule](arguments, dims)
        if (arguments["mode"], arguments["align_corners"]) != (mode, align_corners):
            return True
    return False


def with_rules(model: torch.nn.Module, rules: tuple[str, ...]) -> FunctionalRewrite:
    """A rewritten copy of `model`; rules stack onto an existing wrapper instead of nesting."""
    if isinstance(model, FunctionalRewrite):
        return FunctionalRewrite(
            copy_module(model.inner), model.rules + tuple(r for r in rules if r not in model.rules)
        )
    return FunctionalRewrite(copy_module(model), tuple(rules))


def copy_module(model):
    import copy

    return copy.deepcopy(model)


class TensorUseCounter(TorchFunctionMode):
    """Counts, per tensor id, how many torch calls take a watched tensor as an argument
    (calls made while `paused` > 0 are not counted)."""

    def __init__(self, watched):
        super().__init__()
        self.watched = watched
        self.uses: dict[int, int] = {}
        self.paused = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in () if self.paused else _flatten((args, kwargs)):
            if isinstance(value, torch.Tensor) and self.watched(id(value)):
                self.uses[id(value)] = self.uses.get(id(value), 0) + 1
        return func(*args, **kwargs)


def _flatten(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten(item)
    else:
        yield value
