"""Numeric precision as a model transform: each returns a new model, the original is untouched.

Emulated reduced precision computes in float64, standing for the narrow type, and rounds the
weights, the input and every tensor an operation returns to the narrow type (every module
output, leaf or not, and the additions, concatenations, matmuls and interpolations between
modules: inference/scoped.py), the way a half-precision forward stores each result; what the
model itself computes in float32 (explicit upcasts) stays float32, as in a native forward. Native
casting (`.half()`) is the exact alternative; docs/inference.md measures how close the two are on real
weights (benchmarks/inference_agreement.py).

INT8 entries (family "int8", `calibrated=True`) are post-training quantization simulated in
float32 (inference/quantize.py); they need calibration batches, given by `apply_precision`.
"""

from __future__ import annotations

import copy

from sysnoise.inference.quantize import SCHEMES, simulate
from sysnoise.inference.scoped import ROUNDING_RULES, STAND_IN, map_tensors, round_through, with_rules
from sysnoise.registry import Registry

PRECISIONS: Registry = Registry("precision")


def emulate_dtype(model, dtype):
    """A copy in the float64 stand-in with parameters, buffers and the input rounded through `dtype`,
    and every stand-in result of an operation rounded while its forward runs (a `round-*` rule of
    inference/scoped.py); float outputs come back float32, as from the original model."""
    import torch

    rule = next(name for name, narrow in ROUNDING_RULES.items() if narrow == dtype)
    emulated = with_rules(model, (rule,)).to(STAND_IN)
    with torch.no_grad():
        for tensor in list(emulated.parameters()) + list(emulated.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(round_through(tensor, dtype))
    narrowed = lambda t: round_through(t, dtype).to(STAND_IN)  # noqa: E731
    emulated.register_forward_pre_hook(
        lambda _m, args, kwargs: (map_tensors(args, narrowed), map_tensors(kwargs, narrowed)), with_kwargs=True
    )
    emulated.register_forward_hook(
        lambda _m, _i, out: map_tensors(out, lambda t: t.float() if t.dtype == STAND_IN else t)
    )
    return emulated


def native_dtype(model, dtype):
    """A copy cast to `dtype`; inputs go in narrow, outputs come back float32 for the task."""
    import torch

    class NativeCast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = copy.deepcopy(model).to(dtype)

        def forward(self, *args, **kwargs):  # keywords: transformers models take input_ids=...
            narrow = lambda t: t.to(dtype)  # noqa: E731
            out = self.inner(*map_tensors(args, narrow), **map_tensors(kwargs, narrow))
            return map_tensors(out, lambda t: t.float())

    return NativeCast()


@PRECISIONS.register("fp32", "float32 everywhere (the usual training precision)")
def fp32(model):
    return model


@PRECISIONS.register("fp16", "float16 emulated: float64 maths, weights and every operation's result rounded to float16")
def fp16_emulated(model):
    import torch

    return emulate_dtype(model, torch.float16)


@PRECISIONS.register(
    "bf16", "bfloat16 emulated: float64 maths, weights and every operation's result rounded to bfloat16"
)
def bf16_emulated(model):
    import torch

    return emulate_dtype(model, torch.bfloat16)


@PRECISIONS.register("fp16-native", "native float16 (model.half()); exact, but slow on CPU", native=True)
def fp16_native(model):
    import torch

    return native_dtype(model, torch.float16)


@PRECISIONS.register("bf16-native", "native bfloat16 (model.bfloat16()); exact, but slow on CPU", native=True)
def bf16_native(model):
    import torch

    return native_dtype(model, torch.bfloat16)


def _int8(scheme: str):
    def simulated(model, calibration=None):
        return simulate(model, calibration, scheme)

    return simulated


def _register_int8() -> None:
    for name, scheme in SCHEMES.items():
        PRECISIONS.register(name, scheme.description, family="int8", calibrated=True)(_int8(name))


_register_int8()


def needs_calibration(name: str) -> bool:
    return bool(PRECISIONS.get(name).meta.get("calibrated"))


def family(name: str) -> str:
    return PRECISIONS.get(name).meta.get("family", "float")


def is_native(name: str) -> bool:
    """A torch cast of the whole model (.half()), not an emulation: exact, slow on a CPU."""
    return bool(PRECISIONS.get(name).meta.get("native"))


def apply_precision(name: str, model, calibration=None):
    entry = PRECISIONS.get(name)
    if entry.meta.get("calibrated"):
        return entry.fn(model, calibration)
    return entry.fn(model)
