"""OpenVINO runtimes, registered into RUNTIMES, and a user's own OpenVINO IR as the model under test.

The reference model goes through OpenVINO's documented converter, `openvino.convert_model(torch
module, example_input=...)` (its PyTorch frontend, TorchScript-traced; batch, height and width stay
dynamic), and is compiled for the CPU plugin with an explicit INFERENCE_PRECISION_HINT: on a CPU with
bfloat16 units the plugin's own default is bf16, so even "FP32" must be asked for.

- openvino:           INFERENCE_PRECISION_HINT f32
- openvino-fp16:      INFERENCE_PRECISION_HINT f16. The plugin runs f16 only on CPUs with FP16
                      arithmetic (AVX512-FP16, AMX-FP16, ARM); elsewhere it picks what it can
                      (bf16 on a bf16 CPU, else f32). `info` records the precision it compiled with.
- openvino-bf16:      INFERENCE_PRECISION_HINT bf16 (the default on bf16 CPUs)
- openvino-int8-nncf: nncf.quantize (post-training, OpenVINO backend) on the calibration images,
                      its defaults: preset PERFORMANCE (symmetric weights and activations), per-channel
                      weights, min-max activation ranges, fast bias correction; compiled f32.

`openvino:FILE.xml` (models.py) loads a deployed IR (`read_model`, FILE.bin beside it), compiled f32.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from pathlib import Path

from sysnoise import extras
from sysnoise.errors import UserInputError
from sysnoise.inference import onnx_export
from sysnoise.inference.runtimes import RUNTIMES, calibration_images, engine_module, fixed_size, takes_images
from sysnoise.weights import sha256_file

IR_FILE_PREFIX = "openvino:"
OPENVINO = {"available": lambda: extras.available("openvino"), "install": extras.install_line("openvino")}
NNCF = {"available": lambda: extras.available("nncf"), "install": extras.install_line("nncf")}
NNCF_SETTINGS = {
    "tool": "nncf.quantize",
    "backend": "OpenVINO",
    "preset": "PERFORMANCE (symmetric)",
    "weights": "per-channel",
    "range_estimator": "nncf default (min-max)",
    "fast_bias_correction": True,
}


def convert(model, example):
    """The torch model as an openvino.Model, batch, height and width dynamic; a module with several
    outputs (a raw detector) takes the example's shape only, as in the ONNX export."""
    import openvino as ov
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript tracer's notes
        converted = ov.convert_model(model.eval(), example_input=example)
    if example.dim() == 4:
        several = len(onnx_export.output_names(model, example)) > 1
        shape = list(example.shape) if several else [-1, example.shape[1], -1, -1]
        converted.reshape({converted.inputs[0]: ov.PartialShape(shape)})
    return converted


def compiled_module(ov_model, hint: str, info: dict, start: float, outputs: list[str] | None = None):
    """`ov_model` compiled for the CPU with INFERENCE_PRECISION_HINT `hint`, as a module. `outputs`
    names the graph's outputs in order (a torch model's dict keys); by default, the file's names."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    request = compiled.create_infer_request()
    shape = compiled.inputs[0].get_partial_shape()
    dims = [d.get_length() if d.is_static else None for d in shape]
    names = outputs or [next(iter(sorted(o.get_names())), f"output{i}") for i, o in enumerate(compiled.outputs)]

    def run(array):
        results = request.infer({0: array})
        return [results[o] for o in compiled.outputs]

    info.update(
        {
            "runtime": "openvino",
            "openvino": ov.__version__,
            "device": "CPU",
            "cpu": core.get_property("CPU", "FULL_DEVICE_NAME"),
            "inference_precision_hint": hint,
            "compiled_inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
            "input_shape": [d if d else "?" for d in dims],
            "outputs": names,
        }
    )
    return engine_module(
        "openvino",
        run,
        info,
        batch=fixed_size(dims[0]) if dims else None,
        outputs=names,
        input_shape=dims,
        build_seconds=time.perf_counter() - start,
    )


def _openvino(hint: str):
    def build(model, example=None, calibration=None):
        start = time.perf_counter()
        return compiled_module(
            convert(model, example),
            hint,
            {"converter": "openvino.convert_model"},
            start,
            onnx_export.output_names(model, example),
        )

    return build


for _name, _hint, _what in (
    ("openvino", "f32", "float32"),
    (
        "openvino-fp16",
        "f16",
        "its FP16 inference-precision hint (bf16 or f32 where the CPU has no FP16 arithmetic: results.json says which)",
    ),
    ("openvino-bf16", "bf16", "its bfloat16 inference-precision hint"),
):
    RUNTIMES.register(
        _name,
        f"converted by openvino.convert_model, OpenVINO CPU plugin, {_what}",
        applies=takes_images,
        # the bf16 hint is what the fp16 hint compiles to on CPUs without FP16 arithmetic: on request
        **OPENVINO | ({"opt_in": True} if _hint == "bf16" else {}),
    )(_openvino(_hint))


@RUNTIMES.register(
    "openvino-int8-nncf",
    "OpenVINO INT8: NNCF post-training quantization (symmetric, per-channel weights, min-max, "
    "fast bias correction) on the calibration images",
    calibrated=True,
    applies=takes_images,
    **NNCF,
)
def openvino_int8_nncf(model, example=None, calibration=None):
    import nncf

    images = calibration_images(calibration or [])
    if not images:
        raise ValueError("OpenVINO INT8 (NNCF) needs calibration batches (none were given)")
    start = time.perf_counter()
    # NNCF draws its progress bars on stdout, which belongs to --json: they go to stderr
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(convert(model, example), nncf.Dataset(images), subset_size=len(images))
    info = {
        "converter": "openvino.convert_model",
        "quantization": {**NNCF_SETTINGS, "nncf": nncf.__version__, "calibration_samples": len(images)},
    }
    return compiled_module(quantized, "f32", info, start, onnx_export.output_names(model, example))


def is_ir_file(name: str) -> bool:
    return name.startswith(IR_FILE_PREFIX)


def load_ir_file(path: str | Path):
    """A user's own OpenVINO IR (FILE.xml with FILE.bin beside it) on the CPU plugin, float32."""
    import openvino as ov

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"OpenVINO IR file not found: {path}")
    start = time.perf_counter()
    ov_model = ov.Core().read_model(str(path))
    if len(ov_model.inputs) != 1:
        raise UserInputError(f"{path}: the model takes {len(ov_model.inputs)} inputs; sysnoise feeds one image batch")
    weights = path.with_suffix(".bin")
    info = {
        "ir_file": str(path),
        "sha256": sha256_file(path),
        "weights_sha256": sha256_file(weights) if weights.is_file() else None,
    }
    return compiled_module(ov_model, "f32", info, start)
