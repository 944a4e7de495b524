"""Runtimes: the same trained model executed by a different engine than torch eager.

Each runtime turns a torch model into a module-like object with the same call signature
(a float32 NCHW batch in, logits out, on the input's device), so the engine treats every model
stage alike. Runtimes marked `calibrated=True` quantize to INT8 with the calibration batches.

- torch:                      torch eager, float32 (the reference)
- onnxruntime:                torch.onnx.export -> ONNX Runtime CPU, float32
- onnxruntime-int8-qdq:       ... -> onnxruntime.quantization.quantize_static, QDQ format,
                              S8S8, per-channel symmetric weights, asymmetric min-max activations
- onnxruntime-int8-qoperator: same calibration, QOperator format (QLinearConv...), U8S8
                              (the x86 recommendation for that format)
- torch-ao-int8:              torch.ao FX post-training quantization (prepare_fx/convert_fx),
                              x86 backend defaults; deprecated upstream, guarded here

The deployment engines (openvino_runtime, executorch_runtime, ncnn_runtime) register into RUNTIMES
too; every engine, ONNX Runtime included, runs behind `engine_module`, which also returns a raw
detector's several outputs as a dict and records build and inference time.

Causal language models take other runtimes (onnxruntime-lm, onnxruntime-lm-int8 and
onnxruntime-lm-int8-reduce-range: lm_runtimes.py); each side's `applies` meta reports the other's
as n/a.

A user's own ONNX file is the runtime `onnx:PATH` (see `load_onnx_file`): the deployed model
as it ships, compared against the user's torch model as the reference, or alone the model under
test (`--model onnx:FILE`, models.py). A file exported with a fixed batch size is fed chunks of
exactly that size (run_in_batches); a dynamic batch axis takes each batch whole.
"""

from __future__ import annotations

import copy
import tempfile
import time
import warnings
from pathlib import Path

from sysnoise import extras
from sysnoise.errors import UserInputError
from sysnoise.inference import onnx_export
from sysnoise.language_models import is_causal_lm
from sysnoise.registry import Registry
from sysnoise.weights import sha256_file

RUNTIMES: Registry = Registry("runtime")
ONNX_FILE_PREFIX = "onnx:"


def takes_images(model) -> bool:
    """The runtimes above export one image batch from a torch model: a causal LM (token ids and a
    mask) takes the LM runtimes of lm_runtimes instead, and a model another engine already runs
    (runs_outside_torch) cannot be exported again; both report these as n/a."""
    return not runs_outside_torch(model) and not is_causal_lm(model)


def session_options():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def fixed_size(dimension) -> int | None:
    """An ONNX input dimension's size when the file fixes it, None for a dynamic axis (a name or
    None in ONNX Runtime's shape)."""
    return dimension if isinstance(dimension, int) and dimension > 0 else None


def run_in_batches(run, array, batch: int | None) -> list:
    """`run` (one array in, a list of arrays out) over `array`: whole when the batch axis is dynamic,
    else in chunks of exactly `batch` rows, the last one padded with zeros and its padded rows dropped."""
    import numpy as np

    if batch is None:
        return list(run(array))
    chunks = []
    for start in range(0, len(array), batch):
        chunk = array[start : start + batch]
        rows = len(chunk)
        if rows < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - rows,) + chunk.shape[1:], chunk.dtype)])
        chunks.append([out[:rows] for out in run(chunk)])
    return [np.concatenate(outs) for outs in zip(*chunks)]


def runs_outside_torch(model) -> bool:
    """A model another engine runs (ONNX Runtime, OpenVINO, ExecuTorch, ncnn): torch-level rewrites,
    precision emulation and exports cannot reach inside it."""
    return getattr(model, "sysnoise_engine", None) is not None


def engine_module(
    engine: str,
    run,
    info: dict,
    *,
    batch: int | None = None,
    outputs: list[str] | None = None,
    input_shape: list | None = None,
    build_seconds: float | None = None,
):
    """A torch module over another engine's `run` (one float32 NCHW array in, a list of arrays out):
    the engine treats it as any model stage. It returns one tensor on the input's device, or a dict
    {name: tensor} when the engine's model has several named `outputs` (a raw detector's heads).
    `batch` is the engine model's fixed batch size (None: dynamic). info["timing"] accumulates the
    engine's own seconds and images, beside the build time, for results.json."""
    import torch

    timing = {
        "build_seconds": None if build_seconds is None else round(build_seconds, 3),
        "inference_seconds": 0.0,
        "images": 0,
    }
    info["timing"] = timing

    class EngineModule(torch.nn.Module):
        sysnoise_engine = engine

        def __init__(self) -> None:
            super().__init__()
            self.sysnoise_info = info
            self.input_shape = list(input_shape or [])

        def forward(self, x):
            start = time.perf_counter()
            arrays = run_in_batches(run, x.detach().float().cpu().numpy(), batch)
            timing["inference_seconds"] = round(timing["inference_seconds"] + time.perf_counter() - start, 4)
            timing["images"] += int(x.shape[0])
            tensors = [torch.from_numpy(a).to(x.device) for a in arrays]
            return dict(zip(outputs, tensors)) if outputs and len(outputs) > 1 else tensors[0]

        def __deepcopy__(self, memo):  # an engine session is not copyable; it is stateless for inference
            return self

    return EngineModule()


def _ort_module(model_bytes_or_path, info: dict, build_seconds: float | None = None):
    import onnxruntime as ort

    source = str(model_bytes_or_path) if isinstance(model_bytes_or_path, Path) else model_bytes_or_path
    session = ort.InferenceSession(source, session_options(), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"the ONNX model takes {len(inputs)} inputs; sysnoise feeds one image batch")
    shape = list(inputs[0].shape or [None])
    batch = fixed_size(shape[0])
    names = [o.name for o in session.get_outputs()]
    info.update(
        {
            "runtime": "onnxruntime",
            "onnxruntime": ort.__version__,
            "providers": session.get_providers(),
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "input_shape": [d if fixed_size(d) else str(d) for d in shape],
            "batch": batch or "dynamic",
            "outputs": names,
        }
    )
    return engine_module(
        "onnxruntime",
        lambda array: session.run(None, {inputs[0].name: array}),
        info,
        batch=batch,
        outputs=names,
        input_shape=shape,
        build_seconds=build_seconds,
    )


@RUNTIMES.register("torch", "torch eager (the reference runtime)")
def torch_eager(model, example=None, calibration=None):
    return model


ONNX = {"available": lambda: extras.available("onnx"), "install": extras.install_line("onnx")}


@RUNTIMES.register(
    "onnxruntime", "exported with torch.onnx.export, run by ONNX Runtime on CPU, float32", applies=takes_images, **ONNX
)
def onnxruntime_fp32(model, example=None, calibration=None):
    start = time.perf_counter()
    info = {"export": onnx_export.describe(model, example)}
    model_bytes = onnx_export.export(model, example)
    return _ort_module(model_bytes, info, build_seconds=time.perf_counter() - start)


def calibration_images(batches) -> list:
    """The calibration batches as single-image float32 arrays (1, C, H, W): they fit an engine model
    of fixed batch size 1 (a raw detector's export) as well as a dynamic one."""
    return [image[None] for b in batches for image in b.detach().float().cpu().numpy()]


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over our calibration images."""

    def __init__(self, batches, input_name: str):
        self.items = iter([{input_name: image} for image in calibration_images(batches)])

    def get_next(self):
        return next(self.items, None)

    def rewind(self):  # not needed by the min-max calibrator; present for the interface
        pass


def _ort_int8(quant_format: str):
    def build(model, example=None, calibration=None):
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        batches = list(calibration or [])
        if not batches:
            raise ValueError("ONNX Runtime INT8 needs calibration batches (none were given)")
        reader_class = type("Reader", (_Reader, CalibrationDataReader), {})
        qdq = quant_format == "QDQ"
        settings = {
            "quant_format": quant_format,
            "per_channel": True,
            "reduce_range": False,
            "activation_type": "QInt8" if qdq else "QUInt8",
            "weight_type": "QInt8",
            "calibrate_method": "MinMax",
            "weights": "symmetric",
            "activations": "asymmetric",
            "calibration_samples": int(sum(len(b) for b in batches)),
        }
        start = time.perf_counter()
        info = {
            "export": onnx_export.describe(model, example),
            "quantization": {"tool": "onnxruntime.quantization.quantize_static", **settings},
        }
        with tempfile.TemporaryDirectory(prefix="sysnoise-ort-") as tmp:
            fp32, prepared, int8 = Path(tmp, "fp32.onnx"), Path(tmp, "prepared.onnx"), Path(tmp, "int8.onnx")
            fp32.write_bytes(onnx_export.export(model, example))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    quant_pre_process(str(fp32), str(prepared))
                info["quantization"]["pre_process"] = "quant_pre_process (shape inference + ORT optimisation)"
            except Exception as err:  # pre-processing is advised, not required
                prepared = fp32
                info["quantization"]["pre_process"] = f"skipped: {type(err).__name__}: {err}"[:300]
            quantize_static(
                str(prepared),
                str(int8),
                reader_class(batches, "input"),
                quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QInt8 if qdq else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
            return _ort_module(int8.read_bytes(), info, build_seconds=time.perf_counter() - start)

    return build


RUNTIMES.register(
    "onnxruntime-int8-qdq",
    "ONNX Runtime INT8 (quantize_static, QDQ, S8S8, per-channel weights, min-max calibration)",
    calibrated=True,
    applies=takes_images,
    **ONNX,
)(_ort_int8("QDQ"))
RUNTIMES.register(
    "onnxruntime-int8-qoperator",
    "ONNX Runtime INT8 (quantize_static, QOperator: QLinearConv etc., U8S8, per-channel weights, min-max)",
    calibrated=True,
    applies=takes_images,
    **ONNX,
)(_ort_int8("QOperator"))


def fx_traceable(model) -> bool:
    """torch.ao FX quantization needs a symbolically traceable model."""
    try:
        import torch.fx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.fx.symbolic_trace(copy.deepcopy(model).eval())
        return True
    except Exception:
        return False


def torch_ao_available() -> bool:
    try:
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: F401
    except Exception:
        return False
    return True


@RUNTIMES.register(
    "torch-ao-int8",
    "torch.ao FX post-training INT8 (x86 backend defaults: per-channel weights, histogram-observed activations)",
    calibrated=True,
    opt_in=True,
    applies=lambda model: takes_images(model) and torch_ao_available() and fx_traceable(model),
)
def torch_ao_int8(model, example=None, calibration=None):
    import torch

    if not torch_ao_available():
        raise RuntimeError("torch.ao.quantization.quantize_fx is not available in this torch")
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    batches = list(calibration or [])
    if not batches:
        raise ValueError("torch.ao INT8 needs calibration batches (none were given)")
    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else torch.backends.quantized.engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        torch.backends.quantized.engine = engine
        prepared = prepare_fx(
            copy.deepcopy(model).eval(), get_default_qconfig_mapping(engine), example_inputs=(example,)
        )
        with torch.no_grad():
            for batch in batches:
                prepared(batch)
        quantized = convert_fx(prepared)
    wrapper = _CpuOnly(quantized)
    wrapper.sysnoise_info = {
        "runtime": "torch.ao quantize_fx",
        "engine": engine,
        "torch": torch.__version__,
        "qconfig": f"get_default_qconfig_mapping({engine!r})",
        "calibration_samples": int(sum(len(b) for b in batches)),
    }
    return wrapper


def _CpuOnly(module):
    """Quantized torch kernels run on CPU only: move inputs there and outputs back."""
    import torch

    class CpuOnly(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.cpu()).to(x.device)

        def to(self, *args, **kwargs):  # stays on CPU whatever the engine's device
            return self

    return CpuOnly(module)


def is_onnx_file(runtime: str) -> bool:
    return runtime.startswith(ONNX_FILE_PREFIX)


def load_onnx_file(path: str | Path):
    """A user's own ONNX file on ONNX Runtime, as the deployed model."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"ONNX file not found: {path}")
    info = {"onnx_file": str(path), "sha256": sha256_file(path)}
    return _ort_module(path, info)


def needs_calibration(runtime: str) -> bool:
    return not is_onnx_file(runtime) and bool(RUNTIMES.get(runtime).meta.get("calibrated"))


def applies(name: str, model) -> bool:
    check = RUNTIMES.get(name).meta.get("applies")
    return True if check is None else bool(check(model))


def apply_runtime(name: str, model, example=None, calibration=None):
    return RUNTIMES(name)(model, example, calibration)
