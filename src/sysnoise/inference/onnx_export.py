"""torch -> ONNX, the export path a deployment takes, with its settings recorded.

`torch.onnx.export(dynamo=False)`: the TorchScript-based exporter, which needs no `onnxscript`
(the default dynamo exporter does). In eval mode it folds batch-norm into convolutions and folds
constants, as deployment exporters do. Batch, height and width are dynamic axes, so one export
serves every batch size and every input size a run feeds it.
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


def export(model, example) -> bytes:
    """The ONNX bytes of `model` (one tensor in, one tensor out), traced on `example`."""
    import torch

    buffer = io.BytesIO()
    dynamic = {0: "batch", 2: "height", 3: "width"} if example.dim() == 4 else {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            model.eval(), (example,), buffer, dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": dynamic, "output": {0: "batch"}},
        )
    return buffer.getvalue()


def describe() -> dict:
    import onnx
    import torch

    return {**SETTINGS, "torch": torch.__version__, "onnx": onnx.__version__}


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
            Logits(model).eval(), lm_example(int(model.config.vocab_size)), str(path), dynamo=False,
            opset_version=OPSET, do_constant_folding=True, input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "logits": dynamic},
        )


def describe_causal_lm() -> dict:
    import onnx
    import torch

    return {**LM_SETTINGS, "torch": torch.__version__, "onnx": onnx.__version__}
