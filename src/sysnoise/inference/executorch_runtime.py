"""ExecuTorch runtimes with the XNNPACK backend (PyTorch's own on-device path), registered into RUNTIMES.

The documented flow: `torch.export.export` on the example's shape -> `to_edge_transform_and_lower`
with `XnnpackPartitioner` (the operators XNNPACK supports become one delegate; the rest stay on
ExecuTorch's portable kernels, listed in `info`) -> `.to_executorch()` -> the program's bytes,
run by `executorch.runtime.Runtime`. A .pte program has static shapes: it takes batches of the
example's size (one image), fed in chunks by the engine module.

- executorch-xnnpack:      float32
- executorch-xnnpack-int8: PT2E post-training quantization before lowering: the exported graph is
                           prepared with XNNPACKQuantizer (get_symmetric_quantization_config,
                           per-channel symmetric INT8 weights, per-tensor asymmetric INT8
                           activations, min-max observers), run on the calibration images, and
                           converted (torchao.quantization.pt2e prepare_pt2e / convert_pt2e);
                           XNNPACK then runs the quantized operators in integer arithmetic.
"""

from __future__ import annotations

import time
import warnings

from sysnoise import extras
from sysnoise.inference import onnx_export
from sysnoise.inference.runtimes import RUNTIMES, calibration_images, engine_module, takes_images

# opt-in: lowering EfficientNet-Lite0 took 60-100 s here, longer than the rest of a demo run
EXECUTORCH = {
    "available": lambda: extras.available("executorch"),
    "install": extras.install_line("executorch"),
    "opt_in": True,
}
PT2E_SETTINGS = {
    "tool": "torchao.quantization.pt2e (prepare_pt2e, convert_pt2e)",
    "quantizer": "XNNPACKQuantizer",
    "config": "get_symmetric_quantization_config(is_per_channel=True)",
    "weights": "INT8 per-channel symmetric",
    "activations": "INT8 per-tensor asymmetric, min-max",
}


def _undelegated(edge) -> list[str]:
    """The operators left outside the XNNPACK delegate (run by ExecuTorch's portable kernels)."""
    graph = edge.exported_program().graph
    names = {getattr(node.target, "__name__", str(node.target)) for node in graph.nodes if node.op == "call_function"}
    return sorted(n for n in names if "call_delegate" not in n and "getitem" not in n)


def _lowered_module(exported, model, example, info: dict, start: float):
    from importlib.metadata import version

    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    portable = _undelegated(edge)  # before to_executorch, which rewrites the graph to out-variants
    program = edge.to_executorch()
    buffer = program.buffer  # a new bytes object per access; the loaded program reads it in place
    loaded = Runtime.get().load_program(buffer)
    method = loaded.load_method("forward")
    names = onnx_export.output_names(model, example)
    info.update(
        {
            "runtime": "executorch",
            "executorch": version("executorch"),
            "backend": "XnnpackPartitioner",
            "input_shape": list(example.shape),
            "program_bytes": len(buffer),
            "not_delegated": portable,
            "outputs": names,
        }
    )

    def run(array, _reads=(buffer, loaded)):  # the method reads both in place: keep them alive with it
        import torch

        return [out.numpy().copy() for out in method.execute([torch.from_numpy(array)])]

    try:  # a program that cannot run fails its build (the column says why), not every sample
        run(example.detach().float().cpu().numpy())
    except RuntimeError as err:
        raise RuntimeError(
            f"ExecuTorch cannot run the lowered program ({err}; the delegate's log on stderr says more)"
        ) from None
    return engine_module(
        "executorch",
        run,
        info,
        batch=int(example.shape[0]),
        outputs=names,
        input_shape=list(example.shape),
        build_seconds=time.perf_counter() - start,
    )


def _export(module, example):
    """torch.export of `module` (an eval-mode model, or a PT2E-converted graph, which has no eval())."""
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.export.export(module, (example,))


@RUNTIMES.register(
    "executorch-xnnpack",
    "exported with torch.export, lowered to ExecuTorch's XNNPACK backend, float32",
    applies=takes_images,
    **EXECUTORCH,
)
def executorch_xnnpack(model, example=None, calibration=None):
    start = time.perf_counter()
    return _lowered_module(_export(model.eval(), example), model, example, {"exporter": "torch.export.export"}, start)


@RUNTIMES.register(
    "executorch-xnnpack-int8",
    "ExecuTorch XNNPACK INT8: PT2E quantization (XNNPACKQuantizer, per-channel symmetric weights, "
    "min-max activations) on the calibration images",
    calibrated=True,
    applies=takes_images,
    **EXECUTORCH,
)
def executorch_xnnpack_int8(model, example=None, calibration=None):
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    images = calibration_images(calibration or [])
    if not images:
        raise ValueError("ExecuTorch INT8 needs calibration batches (none were given)")
    start = time.perf_counter()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(_export(model.eval(), example).module(), quantizer)
    batch = int(example.shape[0])
    with torch.no_grad():
        for image in images:  # the program's static batch: one calibration image per call when it is 1
            prepared(torch.from_numpy(image).expand(batch, *image.shape[1:]))
    quantized = convert_pt2e(prepared)
    info = {"exporter": "torch.export.export", "quantization": {**PT2E_SETTINGS, "calibration_samples": len(images)}}
    return _lowered_module(_export(quantized, example), model, example, info, start)
