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
