"""Turn a base model and a Pipeline's model stage into the model that stage describes.

Order: operator rewrites first (they act on module structure), then precision, then runtime.
The base model is never modified: every step returns a new model (or the same one, untouched,
when it changes nothing).

`calibration` is a list of input batches (float32 tensors made by the reference pipeline from
a calibration split disjoint from the evaluation data); stages that quantize need it.
`example` is one input batch for tracing and probing (export, batch-norm folding); by default
the first calibration sample, else zeros of the pipeline's input size.
"""

from __future__ import annotations

from sysnoise.inference import calibrate, runtimes
from sysnoise.inference.operators import apply_operator
from sysnoise.inference.precision import PRECISIONS, apply_precision, is_native
from sysnoise.inference.precision import needs_calibration as _precision_needs_calibration
from sysnoise.pipeline.spec import Pipeline


def needs_calibration(pipeline: Pipeline) -> bool:
    return _precision_needs_calibration(pipeline.precision) or runtimes.needs_calibration(pipeline.runtime)


def default_example(pipeline: Pipeline, calibration=None):
    import torch

    if calibration:
        return calibration[0][:1]
    return torch.zeros(1, 3, pipeline.input_size, pipeline.input_size)


def build_model(base, pipeline: Pipeline, calibration=None, *, example=None, info: dict | None = None):
    """The model `pipeline`'s model stage describes. `info`, when given, receives what was built:
    export settings, runtime versions, quantization settings, the ONNX file's hash."""
    calibration = list(calibration) if calibration is not None else None
    if needs_calibration(pipeline) and not calibration:
        raise ValueError(f"model stage {pipeline.precision}/{pipeline.runtime} needs calibration data; none given")
    record = info if info is not None else {}
    record.update({"precision": pipeline.precision, "operators": list(pipeline.operators), "runtime": pipeline.runtime})
    if calibration and needs_calibration(pipeline):
        record["calibration_samples"] = int(sum(len(b) for b in calibration))

    if runtimes.is_onnx_file(pipeline.runtime):
        if pipeline.operators or pipeline.precision != "fp32":
            raise ValueError(
                "an ONNX file is a fixed deployed model: operator rewrites and precision "
                f"do not apply to it (got operators={pipeline.operators}, precision={pipeline.precision})"
            )
        model = runtimes.load_onnx_file(pipeline.runtime[len(runtimes.ONNX_FILE_PREFIX) :])
        record["built"] = dict(model.sysnoise_info)
        return model.eval()
    runtimes.RUNTIMES.get(pipeline.runtime)  # unknown names fail before any work
    PRECISIONS.get(pipeline.precision)
    if pipeline.runtime != "torch" and is_native(pipeline.precision):
        raise ValueError(
            f"precision {pipeline.precision} is a torch cast; runtime {pipeline.runtime} "
            "takes the float32 model (use an emulated precision or the runtime's own INT8)"
        )
    if example is None and (pipeline.operators or pipeline.precision != "fp32" or pipeline.runtime != "torch"):
        example = default_example(pipeline, calibration)

    model = base
    for name in pipeline.operators:
        model = apply_operator(name, model, example)
    model = apply_precision(pipeline.precision, model, calibration)
    precision_info = getattr(model, "sysnoise_info", None) if model is not base else None
    if precision_info:
        record["precision_detail"] = dict(precision_info)
    if pipeline.runtime != "torch":
        model = runtimes.apply_runtime(pipeline.runtime, model, example, calibration)
        record["runtime_detail"] = dict(getattr(model, "sysnoise_info", {}) or {})
    return model.eval()


class BuildFailure:
    """A model stage that could not be built (an export or quantizer that rejects this model): its
    columns record the reason for every sample and the run goes on."""

    def __init__(self, message: str):
        self.message = message

    def to(self, *_args, **_kwargs):
        return self


def build_models(
    base,
    pipelines: dict,
    *,
    reference: Pipeline,
    calibration_samples=None,
    task=None,
    batch_size: int = 16,
    device: str = "cpu",
    info: dict | None = None,
) -> dict:
    """{model key: built model or BuildFailure} for the engine. Calibration batches are made once,
    by the reference pipeline, only when some stage quantizes. The reference stage must build."""
    batches = None
    if calibration_samples and any(needs_calibration(p) for p in pipelines.values()):
        batches = calibrate.batches(calibration_samples, reference, batch_size, task)
    models = {}
    for key, pipeline in pipelines.items():
        record = info.setdefault(str(key), {}) if info is not None else None
        try:
            models[key] = build_model(base, pipeline, batches, info=record).to(device)
        except Exception as err:
            if pipeline.replace(precision="fp32", operators=(), runtime="torch") == pipeline:
                raise
            message = f"model stage could not be built: {type(err).__name__}: {err}"[:500]
            if record is not None:
                record["error"] = message
            models[key] = BuildFailure(message)
    return models
