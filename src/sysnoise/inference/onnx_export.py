"""torch -> ONNX, the export path a deployment takes, with its settings recorded.

`torch.onnx.export(dynamo=False)`: the TorchScript-based exporter, which needs no `onnxscript`
(the default dynamo exporter does). In eval mode it folds batch-norm into convolutions and folds
constants, as deployment exporters do. Batch, height and width are dynamic axes, so one export
serves every batch size and every input size a run feeds it.

A module with several outputs (a raw detector's dict of head tensors, tasks/detection_heads.py)
exports each as a named graph output, so post-processing stays sysnoise's. Its input shape is
fixed to the example's: the raw detectors loop over the images of a batch in Python and read the
image size as Python numbers, which the tracer turns into constants, so the file takes exactly that
many images of that size (the runtime feeds it chunks of that many).
"""

from __future__ import annotations

import io
import warnings

OPSET = 17
SETTINGS = {
    "exporter": "torch.onnx.export",
    "dynamo": False,
    "opset": OPSET,
    "do_constant_folding": True,
    "dynamic_axes": ["batch", "height", "width"],
    "input": "input",
    "output": "output",
}


def output_names(model, example) -> list[str]:
    """The graph's output names: the keys of a module returning a dict of tensors, else "output"."""
    import torch

    with torch.no_grad():
        out = model.eval()(example)
    return [str(k) for k in out] if isinstance(out, dict) else ["output"]


def _as_tuple(model, names: list[str]):
    """`model` returning its dict's tensors in `names` order: the exporter's outputs are positional."""
    import torch

    class Outputs(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            return tuple(out[name] for name in names)

    return Outputs(model).eval()


def export(model, example) -> bytes:
    """The ONNX bytes of `model` (one tensor in; one tensor, or a dict of named tensors, out),
    traced on `example`."""
    import torch

    buffer = io.BytesIO()
    names = output_names(model, example)
    several = len(names) > 1
    spatial = {2: "height", 3: "width"} if example.dim() == 4 else {}
    dynamic = {} if several else {0: "batch", **spatial}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            _as_tuple(model, names) if several else model.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=["input"],
            output_names=names,
            dynamic_axes={"input": dynamic, **({} if several else {"output": {0: "batch"}})},
        )
    return buffer.getvalue()


def describe(model=None, example=None) -> dict:
    """SETTINGS with the versions; given the model, its outputs and (when several) the fixed shape."""
    import onnx
    import torch

    settings = {**SETTINGS, "torch": torch.__version__, "onnx": onnx.__version__}
    names = output_names(model, example) if model is not None else ["output"]
    if len(names) > 1:
        settings.update(output=names, dynamic_axes=[], input_shape=list(example.shape))
    return settings


# Causal language models: no KV cache, token ids and attention mask in, logits out; batch and
# sequence axes dynamic. The dynamo exporter needs `onnxscript` (not installed here) and the
# TorchScript one traces transformers' Llama-family models as they are, so the LM path uses it too.
LM_SETTINGS = {
    "exporter": "torch.onnx.export",
    "dynamo": False,
    "opset": OPSET,
    "do_constant_folding": True,
    "inputs": ["input_ids", "attention_mask"],
    "output": "logits",
    "dynamic_axes": ["batch", "sequence"],
    "kv_cache": False,
    "traced_on": "2 sequences of 8 tokens, the second padded after 5 (so the mask path is traced)",
}


def lm_example(vocab_size: int):
    """Token ids and mask the LM export traces on. The mask holds padding: transformers may skip
    building an attention mask when every position is valid, and a trace keeps only the path taken."""
    import torch

    ids = (torch.arange(16).reshape(2, 8) * 7 + 1) % max(vocab_size, 2)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask


def export_causal_lm(model, path) -> None:
    """Write `model` (a transformers causal LM) as ONNX to the file `path`. The TorchScript exporter
    switches to external data itself (a folder of tensor files beside `path`) past protobuf's 2 GB."""
    import torch

    class Logits(torch.nn.Module):  # keyword inputs, one tensor out: what the exporter traces
        def __init__(self, lm) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids, attention_mask):
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            Logits(model).eval(),
            lm_example(int(model.config.vocab_size)),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "logits": dynamic},
        )


def describe_causal_lm() -> dict:
    import onnx
    import torch

    return {**LM_SETTINGS, "torch": torch.__version__, "onnx": onnx.__version__}
