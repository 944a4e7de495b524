"""Precision options for causal language models, registered into PRECISIONS (family "lm").

Each takes a model and returns a new one; the original is untouched. Every entry says, through
its `applies` meta, that it acts on transformers causal LMs only, so a vision run reports it as
n/a. Weight-only schemes are simulated: weights are quantised and dequantised back to float32
(what a weight-only kernel computes, up to its accumulation order), activations stay float32.
Embeddings and the output head keep their weights, as GPTQ/AWQ-style weight-only deployments do.
"""

from __future__ import annotations

import copy
import warnings

from sysnoise.inference.precision import PRECISIONS
from sysnoise.language_models import is_causal_lm


def _is_causal_lm(model) -> bool:
    return is_causal_lm(model)


def _register(name: str, description: str):
    return PRECISIONS.register(name, description, family="lm", applies=_is_causal_lm)


def fake_quantize(weight, bits: int, group_size: int | None):
    """Quantise-dequantise a (out, in) weight: symmetric per output row when group_size is None,
    else asymmetric (scale and zero point, as GPTQ/AWQ store them) per group of `group_size` inputs."""
    import torch

    if group_size is None:
        qmax = 2 ** (bits - 1) - 1
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / qmax
        return (weight / scale).round().clamp(-qmax, qmax) * scale
    out_features, in_features = weight.shape
    pad = -in_features % group_size  # a last, shorter group: padding repeats its edge values
    padded = torch.nn.functional.pad(weight, (0, pad), mode="replicate") if pad else weight
    groups = padded.reshape(out_features, -1, group_size)
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    qmax = 2**bits - 1
    scale = ((high - low) / qmax).clamp(min=1e-12)
    zero = (-low / scale).round()
    q = ((groups / scale).round() + zero).clamp(0, qmax)
    return ((q - zero) * scale).reshape(out_features, -1)[:, :in_features]


def _kept_layers(model) -> set[int]:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {id(head)} if head is not None else set()


def weight_only(model, bits: int, group_size: int | None):
    import torch

    quantised = copy.deepcopy(model)
    kept = _kept_layers(quantised)
    with torch.no_grad():
        for module in quantised.modules():
            if isinstance(module, torch.nn.Linear) and id(module) not in kept:
                module.weight.copy_(fake_quantize(module.weight, bits, group_size))
    return quantised


@_register(
    "int8-dynamic",
    "INT8 dynamic quantization of every nn.Linear (torch quantize_dynamic: per-tensor "
    "weights, activations quantised per batch at run time)",
)
def int8_dynamic(model):
    import torch

    with warnings.catch_warnings():
        # torch >= 2.10 points users of torch.ao eager quantization to torchao; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def _int8_llm_linear(linear, threshold: float):
    """A Linear computing as LLM.int8() (bitsandbytes): input features holding a value above
    `threshold` anywhere in the batch go through the float weights; the rest is quantised
    vector-wise (each token row and each weight row to int8 with its own absmax scale),
    multiplied in integers (exact in float32 up to 2^24) and rescaled."""
    import torch

    class Int8LLMLinear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            weight = linear.weight.detach()
            scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            self.register_buffer("weight", weight.clone())
            self.register_buffer("weight_q", (weight / scale).round().clamp(-127, 127))
            self.register_buffer("weight_scale", scale.T.contiguous())
            self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach().clone())

        def forward(self, x):
            outliers = (x.abs() > threshold).reshape(-1, x.shape[-1]).any(dim=0)
            regular = x.masked_fill(outliers, 0.0)
            x_scale = regular.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / 127
            y = ((regular / x_scale).round() @ self.weight_q.T) * x_scale * self.weight_scale
            if outliers.any():
                y = y + x[..., outliers] @ self.weight[:, outliers].T
            return y if self.bias is None else y + self.bias

    return Int8LLMLinear()


def int8_llm(model, threshold: float = 6.0):
    import torch

    quantised = copy.deepcopy(model)
    kept = _kept_layers(quantised)  # bitsandbytes leaves lm_head in float by default
    for parent in list(quantised.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and id(child) not in kept:
                setattr(parent, name, _int8_llm_linear(child, threshold))
    return quantised


@_register(
    "int8-llm",
    "LLM.int8() as bitsandbytes computes it, simulated: vector-wise INT8 weights and "
    "activations, input features with |x| > 6 kept in float; the output head in float",
)
def int8_llm_default(model):
    return int8_llm(model)


@_register("w8-weight-only", "INT8 weight-only, per-output-channel symmetric, simulated (activations float32)")
def w8_weight_only(model):
    return weight_only(model, 8, None)


@_register(
    "w4-g128-weight-only",
    "INT4 weight-only, groups of 128 inputs with scale and zero point (GPTQ/AWQ layout), simulated",
)
def w4_g128_weight_only(model):
    return weight_only(model, 4, 128)


def _attention_in(dtype_name: str):
    """An attention function computing scaled-dot-product attention in `dtype`, the rest float32."""
    import torch
    from transformers import AttentionInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    name = f"sdpa-{dtype_name}"
    if name not in ALL_ATTENTION_FUNCTIONS:
        dtype, sdpa = getattr(torch, dtype_name), ALL_ATTENTION_FUNCTIONS["sdpa"]

        def attention(module, query, key, value, attention_mask, **kwargs):
            narrow = lambda t: t.to(dtype) if t is not None and t.is_floating_point() else t  # noqa: E731
            out, weights = sdpa(module, narrow(query), narrow(key), narrow(value), narrow(attention_mask), **kwargs)
            return out.to(query.dtype), weights

        AttentionInterface.register(name, attention)
    return name


def attention_precision(model, dtype_name: str):
    """A copy whose attention (QK^T, softmax, PV) runs natively in a narrow type; models that are
    not transformers models have no attention to change and come back as a plain copy."""
    changed = copy.deepcopy(model)
    if _is_causal_lm(changed):
        changed.set_attn_implementation(_attention_in(dtype_name))
    return changed


@_register("attention-fp16", "attention (QK^T, softmax, PV) in native float16, everything else float32")
def attention_fp16(model):
    return attention_precision(model, "float16")


@_register("attention-bf16", "attention (QK^T, softmax, PV) in native bfloat16, everything else float32")
def attention_bf16(model):
    return attention_precision(model, "bfloat16")
