"""The public Python API: measure a model under a reference pipeline and its noised variants.

import sysnoise
results = sysnoise.run("efficientnet_lite0", "photos/", noises=["decoder", "resize"], out="results/x")
results.reference, results.deltas["resize/opencv-area"], results.to_frame()
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sysnoise import catalogue, diffing
from sysnoise.analysis import matrix as analysis
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.store import atomic_write_text
from sysnoise.errors import UserInputError
from sysnoise.generate import generate as write_copy
from sysnoise.loaded_model import LoadedModel
from sysnoise.measure import measure
from sysnoise.models import load_model
from sysnoise.noises import NOISES, field_noises, split_spec
from sysnoise.pipeline.spec import Pipeline
from sysnoise.progress import ProgressBar
from sysnoise.report import matrix as report
from sysnoise.result_view import Results
from sysnoise.tasks.classification import read_dataset
from sysnoise.tasks.coco_results import coco_detections
from sysnoise.validate import load_pipeline

__all__ = [
    "run",
    "list_noises",
    "list_catalogue",
    "load_model",
    "coco_detections",
    "diff",
    "match",
    "generate",
    "matrix",
    "reference_pipeline",
]
list_catalogue = catalogue.describe


def run(
    model,
    data,
    *,
    task: str = "classification",
    noises=None,
    out: str | Path = "results/run",
    weights: str | Path | None = None,
    reference: Pipeline | str | Path | None = None,
    options: EngineOptions | None = None,
    fresh: bool = False,
    allow_outside_root: bool = False,
    stepwise: str | list[str] | None = None,
    deploy: Pipeline | str | Path | None = None,
    figures: bool = True,
    calibration_data: str | Path | None = None,
    calibration_samples: int | None = None,
    deployed_onnx: str | Path | None = None,
    limit: int | None = None,
    data_name: str | None = None,
    list_file: str | Path | None = None,
    class_map: str | Path | None = None,
    ignore_index: int | None = None,
    fmt: str | None = None,
) -> Results | None:
    """Evaluate, analyse and write results.json, outputs.npz and the reports into `out`.

    task: classification (images: top-1), detection (COCO JSON + images: box mAP), segmentation
    (image / label-map list: mIoU), language (a causal LM on a JSONL file), or any registered task.
    model: a name (`sysnoise list`), a LoadedModel or a torch module (detection: a torchvision
    detector or a raw-output module, tasks/detection_heads.py; segmentation: logits).
    noises: noise specs ("resize", "resize=OPTION,..."); default: the catalogue's for the task.

    stepwise: "greedy" (worst single noises first) or noise names ("resize" or "resize=OPTION") to
    combine one at a time; deploy: a Pipeline or YAML file (missing fields from the reference)
    measured as one variant with its delta attributed to the fields it changes. Both run as a
    second pass into `out`/combined once the single-noise results are known. figures: re-run the
    pre-processing on a few samples for the report's difference pictures and flip examples.

    INT8 stages calibrate on `calibration_data` (a folder or list file, disjoint from `data`) or,
    by default, on a deterministic held-out slice of `data` that is then left out of every
    column's evaluation (inference/calibrate.py; results.json dataset.calibration lists it).
    calibration_samples: how many to hold out / use. deployed_onnx: the user's own ONNX file,
    measured on ONNX Runtime as the variant deployed/onnx-file against the torch model.
    limit: a deterministic, label-stratified subset of that many samples (subset.py). data_name:
    how the reports name the data (default: the dataset name or folder, measure.name_of_data).

    The task's own reading settings: list_file and class_map (classification: a JSON/YAML file
    mapping the dataset's class names to the model's class indices), ignore_index (segmentation:
    the label value of unlabeled pixels, default 255), fmt (language: the JSONL format).
    """
    return measure(
        task,
        model,
        data,
        noises=noises,
        out=out,
        weights=weights,
        reference=reference,
        options=options,
        fresh=fresh,
        allow_outside_root=allow_outside_root,
        stepwise=stepwise,
        deploy=deploy,
        figures=figures,
        calibration_data=calibration_data,
        calibration_samples=calibration_samples,
        deployed_onnx=deployed_onnx,
        limit=limit,
        data_name=data_name,
        list_file=list_file,
        class_map=class_map,
        ignore_index=ignore_index,
        fmt=fmt,
    )


def list_noises() -> dict[str, dict]:
    """Every noise of the catalogue: {name: {stage, description, options: {option: description}}}."""
    return catalogue.describe()["noises"]


def reference_pipeline(model: str | None = None, reference: str | Path | None = None) -> Pipeline:
    """The pipeline to compare against: a YAML/JSON file (fields it leaves out come from the model's
    reference), else the model's own reference, else the Pipeline defaults."""
    base = load_model(model).reference if model else None
    if reference is None:
        return base or Pipeline()
    return load_pipeline(reference, base=base)


def _samples(images, list_file=None, limit: int | None = None, **options) -> list:
    dataset = read_dataset(images, list_file, **options)
    return dataset.samples[:limit] if limit else dataset.samples


def diff(
    a: str,
    b: str,
    images,
    *,
    model: str | None = None,
    reference: str | Path | None = None,
    out: str | Path | None = None,
    gain: float | None = None,
    limit: int | None = None,
    list_file=None,
) -> dict:
    """Compare pipelines `a` and `b` stage by stage on `images` (see diffing.resolve_pipeline for the
    spellings); with `out`, write diff.json and difference pictures there."""
    base = reference_pipeline(model, reference)
    pa, pb = diffing.resolve_pipeline(a, base), diffing.resolve_pipeline(b, base)
    result = diffing.diff_pipelines(pa, pb, _samples(images, list_file, limit), Path(out) if out else None, gain)
    if out:
        atomic_write_text(Path(out) / "diff.json", json.dumps(result, indent=1) + "\n")
    return result


def match(
    device: str | Path,
    images,
    *,
    model: str | None = None,
    reference: str | Path | None = None,
    out: str | Path | None = None,
    steps: int = 3,
    limit: int | None = None,
    list_file=None,
) -> dict:
    """Which known pipeline produced a device's pre-processing output (.npy/.png named like the images)?"""
    result = diffing.match_folder(
        Path(device), _samples(images, list_file, limit), reference_pipeline(model, reference), steps=steps
    )
    if out:
        atomic_write_text(Path(out) / "match.json", json.dumps(result, indent=1) + "\n")
    return result


def generate(
    data,
    out: str | Path,
    *,
    pipeline: str = "reference",
    model: str | None = None,
    reference: str | Path | None = None,
    list_file=None,
    fmt: str = "png",
    stage: str = "geometry",
    allow_outside_root: bool = False,
    progress: bool = False,
) -> dict:
    """Write `data` after `stage` of `pipeline` into `out` (PNG or .npy, list file, manifest); evaluate it
    later as a variant with noises=["stored=OUT"]."""
    chosen = diffing.resolve_pipeline(pipeline, reference_pipeline(model, reference))
    samples = _samples(data, list_file, allow_outside_root=allow_outside_root)
    with ProgressBar(len(samples), f"generate {stage}", progress) as advance:
        return write_copy(samples, chosen, out, fmt=fmt, stage=stage, source=str(data), on_progress=advance)


def _matrix_model(spec: str) -> LoadedModel:
    """A zoo name, or a weights file with the NAME.json `sysnoise train` writes beside it."""
    path = Path(spec)
    if not path.is_file():
        return load_model(spec)
    sidecar = path.with_suffix(".json")
    try:
        model = json.loads(sidecar.read_text())["model"]
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(
            f"{path}: a weights file needs {sidecar.name} beside it naming its model "
            f"(as `sysnoise train` writes): {err}"
        ) from None
    return load_model(model, path)


def matrix(
    models: list[str],
    data,
    test: str,
    *,
    out: str | Path = "results/matrix",
    reference: Pipeline | None = None,
    options: EngineOptions | None = None,
    fresh: bool = False,
    title: str | None = None,
) -> dict:
    """Train-by-test matrix (paper Tables 7/8): every model under the test pipelines `test`
    ("resize=pillow-bilinear,opencv-bilinear": the reference with that field swapped), one run per
    model into OUT/runs/LABEL (the test pipelines are its columns, sharing decodes; reruns resume);
    then the matrix from their stored per-sample outputs: OUT/matrix.json, matrix.md, matrix.csv.
    reference: the pipeline the test columns vary (default: the first model's reference)."""
    field, tests = split_spec(analysis.expand_test(test))
    fields = field_noises()
    if field not in fields or not tests or len(set(tests)) != len(tests):
        raise UserInputError(
            f"--test {test!r}: expected FIELD=OPTION,OPTION,... with distinct options, FIELD one of {', '.join(fields)}"
        )
    NOISES(field).chosen(tests)  # names every unknown option
    loaded = [_matrix_model(spec) for spec in models]
    labels = [m.card.get("label", m.name) for m in loaded]
    if len(set(labels)) != len(labels):
        raise UserInputError(f"two models share a label in {labels}; give each its own weights/NAME.json label")
    first = (reference or loaded[0].reference).replace(**{field: tests[0]})
    out, rows = Path(out), []
    for spec, model, label in zip(models, loaded, labels):
        training = analysis.training_of(model.card, model.reference)  # before run() sets the test reference
        folder = out / "runs" / re.sub(r"[^A-Za-z0-9._-]+", "-", label)
        noises = [f"{field}={','.join(tests[1:])}"] if len(tests) > 1 else []
        results = run(
            model, data, noises=noises, out=folder, reference=first, options=options, fresh=fresh, figures=False
        )
        columns = {tests[0]: "reference", **{v["option"]: v["id"] for v in results["variants"]}}
        missing = [t for t in tests if t not in columns]
        if missing:
            reasons = {k: v for n in results["noises"] for k, v in n.get("unavailable", {}).items()}
            raise UserInputError(f"test option(s) {missing} not measured here: {reasons}")
        rows.append(analysis.RowRun(label, training, RunOutputs.load(folder / "outputs.npz"), columns, source=spec))
    doc = analysis.compute(rows, field, tests)
    doc["data"] = str(data)
    doc["test_base"] = first.to_dict()
    atomic_write_text(out / "matrix.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(out / "matrix.md", report.render_markdown(doc, title) + "\n")
    atomic_write_text(out / "matrix.csv", report.render_csv(doc))
    return doc
