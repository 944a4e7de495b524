"""The public Python API: measure a model under a reference pipeline and its noised variants.

    import sysnoise
    results = sysnoise.run("efficientnet_lite0", "photos/", noises=["decoder", "resize"], out="results/x")
    results.reference, results.deltas["resize/opencv-area"], results.to_frame()
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

from sysnoise import extras, subset
from sysnoise.data.class_map import apply_class_map
from sysnoise.engine.execute import EngineOptions, evaluate
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Plan
from sysnoise.engine.store import ChunkStore
from sysnoise.errors import UserInputError
from sysnoise.models import LoadedModel, load_model, with_reference, wrap_module
from sysnoise.noises import NOISES, parse_noise_spec
from sysnoise.pipeline import limits
from sysnoise.pipeline.spec import Pipeline
from sysnoise.progress import ProgressBar
from sysnoise.report.console import reference_lines
from sysnoise.result_view import Results
from sysnoise.tasks.classification import Dataset, check_labels, read_dataset
from sysnoise.validate import check_run, load_pipeline

DEFAULT_NOISES = ("decoder", "resize", "crop", "colour", "channel-order", "precision", "int8", "ceil-mode", "upsample", "runtime")
CLASSIFICATION_STAGES = ("pre-processing", "misconfiguration", "inference")  # post-processing noises are n/a


def option_applies(noise, option: str, module) -> bool:
    """Options whose registry entry carries an `applies` test (LM-only precisions) may not fit a model."""
    if noise.free_form:
        return True
    test = noise.registry.get(option).meta.get("applies")
    return test is None or bool(test(module))


def load(model, weights=None, reference: Pipeline | str | Path | None = None) -> LoadedModel:
    """The model under test (a name, a LoadedModel or an nn.Module) with its reference pipeline:
    its own, or `reference` (a Pipeline or a YAML/JSON file over the model's own)."""
    if isinstance(model, LoadedModel):
        return with_reference(model, reference)
    if isinstance(model, str):
        return load_model(model, weights, reference=reference)
    return wrap_module(model, reference=reference)


def name_of_data(data) -> str:
    """How reports name the data: a dataset name as given, else its folder (and file); a folder the
    sysnoise cache made is named without its content hash."""
    if isinstance(data, str) and not Path(data).exists():
        return data
    path = Path(getattr(data, "root", data))
    name = path.name if path.is_dir() else f"{path.parent.name}/{path.name}"
    return re.sub(r"-[0-9a-f]{16}(?=/|$)", "", name)


def _limited(dataset, limit: int | None):
    """(dataset, record): the --limit subset of its samples (subset.py), recorded for results.json."""
    if limit is None:
        return dataset, None
    total = len(dataset.samples)
    return dataclasses.replace(dataset, samples=subset.limited(dataset.samples, limit)), subset.record(total, limit, 0)


def announce_reference(loaded: LoadedModel, options: EngineOptions) -> None:
    """Print the resolved reference and where each field came from (stderr), once the request is
    checked and before the first decode, so a wrong baseline is seen before the work."""
    if options.progress:
        print("\n".join(reference_lines(loaded.name, loaded.resolved_reference())), file=sys.stderr)


def plan_variants(model: LoadedModel, noise_specs, reference: Pipeline,
                  stages: tuple[str, ...] | None = None) -> tuple[Plan, list[dict]]:
    """stages: the noise stages the task has (text has no image pre-processing); others are n/a."""
    variants, rows = [], []
    for spec in noise_specs:
        noise, options = parse_noise_spec(spec)
        applies = bool(noise.applies(model.module)) and (stages is None or noise.stage in stages)
        rows.append({"name": noise.name, "stage": noise.stage, "description": noise.description, "applies": applies,
                     "unavailable": {}})
        if applies:
            chosen = noise.chosen(options)
            fitting = [o for o in chosen if option_applies(noise, o, model.module)]
            rows[-1]["not_applicable"] = [o for o in chosen if o not in fitting]
            # a missing library matters only for the options that fit this model
            rows[-1]["unavailable"] = {o: why for o, why in noise.unavailable(options).items() if o in fitting}
            variants.extend(noise.variants(reference, fitting, model.module))
    return Plan(reference, tuple(variants)), rows


def run(
    model,
    data,
    *,
    noises=DEFAULT_NOISES,
    out: str | Path = "results/run",
    weights: str | Path | None = None,
    reference: Pipeline | str | Path | None = None,
    list_file: str | Path | None = None,
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
    class_map: str | Path | None = None,
) -> Results | None:
    """Evaluate, analyse and write results.json, outputs.npz and the reports into `out`.

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
    how the reports name the data (default: the dataset name or folder, see name_of_data).
    class_map: a JSON/YAML file mapping the dataset's class names (folders) to the model's class
    indices (data/class_map.py).
    """
    from sysnoise import environment
    from sysnoise.analysis import combine
    from sysnoise.report.figures import Measured, make_figures
    from sysnoise.report.results import build_results, write_reports, write_results

    options = options or EngineOptions()
    check_run(model=model, reference=reference, deploy=deploy, noises=noises, stepwise=stepwise, device=options.device,
              out=out)
    if (stepwise or deploy) and distributed_world() > 1:
        raise UserInputError("--stepwise and --deploy need the single-noise results on every rank: run them "
                             "in one process (or rerun the combination after a distributed run of the noises)")
    if not isinstance(data, Dataset):  # the data is read first: a wrong path fails before a model loads
        from sysnoise.zoo.datasets import resolve_dataset

        data_name = data_name or name_of_data(data)
        data = resolve_dataset(data, "classification")
    dataset = data if isinstance(data, Dataset) else read_dataset(data, list_file, allow_outside_root=allow_outside_root)
    dataset = apply_class_map(dataset, class_map)
    dataset, limited = _limited(dataset, limit)
    loaded = load(model, weights, reference)
    check_labels(dataset, loaded.num_classes)
    if not dataset.samples:
        raise UserInputError(f"{dataset.root}: no usable samples left; problems: {dataset.problems[:3]}")
    plan, noise_rows = plan_variants(loaded, noises, loaded.reference, stages=CLASSIFICATION_STAGES)
    # Bad combination requests fail before any model runs, not after the first pass.
    deploy = _deployment(deploy, loaded.reference)
    combine.check_stepwise(stepwise, {variant.noise for variant in plan.variants})
    if deployed_onnx is not None:
        plan, noise_rows = _with_deployed_onnx(plan, noise_rows, deployed_onnx)
    plan, calibration, calibration_record = _calibration(plan, noise_rows, dataset, deploy, calibration_data,
                                                         calibration_samples, allow_outside_root)

    out = Path(out)
    announce_reference(loaded, options)
    outputs, elapsed, identity, reused = _measure(
        loaded, dataset, plan, out, options, fresh, f"{len(plan.columns)} pipelines",
        samples=[(s.id, s.labels) for s in dataset.samples], calibration=calibration)
    if outputs is None:  # a torchrun rank other than 0: rank 0 writes the results
        return None
    results = build_results(
        task="classification",
        model={**loaded.describe(), "reference_pipeline": loaded.reference.to_dict()},
        dataset={**dataset.describe(), "name": data_name or name_of_data(dataset.root), "limit": limited,
                 "calibration": calibration_record},
        plan=plan,
        outputs=outputs,
        noises=noise_rows,
        environment=environment.describe(),
        run={"seconds": round(elapsed, 2), "batch_size": options.batch_size, "workers": options.workers,
             "identity": identity, "reused": reused,
             "device": options.device, "forwards": {str(k): v for k, v in options.forward_counter.items()},
             "model_stages": options.model_info, **_reading(options)},
        problems=dataset.problems,
    )
    measured = [Measured(column, outputs) for column in plan.columns[1:]]
    combined = _combined_pass(loaded, dataset, results, stepwise, deploy, out, options, fresh, calibration)
    if combined:
        measured += [Measured(column, combined[1]) for column in combined[0].columns[1:]]
    if figures:
        results["figures"] = make_figures(results, measured, {s.id: s.path for s in dataset.samples},
                                          loaded.class_names, out)
    write_results(results, out / "results.json")
    write_reports(results, out)
    return Results(results)


def _deployment(deploy, reference: Pipeline) -> Pipeline | None:
    """The deployment pipeline: a Pipeline, or a YAML/JSON file whose missing fields are the reference's."""
    from sysnoise.analysis.combine import deploy_changes

    if deploy is None:
        return None
    if not isinstance(deploy, Pipeline):
        deploy = load_pipeline(deploy, base=reference)
    deploy_changes(reference, deploy)  # refuses a deployment identical to the reference
    return deploy


def _with_deployed_onnx(plan: Plan, rows: list[dict], path) -> tuple[Plan, list[dict]]:
    """The user's ONNX file on ONNX Runtime as one more variant (runtime "onnx:PATH")."""
    from sysnoise.inference.runtimes import ONNX_FILE_PREFIX
    from sysnoise.noises import Variant

    path = Path(path).resolve()
    if not path.is_file():
        raise UserInputError(f"ONNX file not found: {path}")
    variant = Variant("deployed", "onnx-file", plan.reference.replace(runtime=f"{ONNX_FILE_PREFIX}{path}"))
    row = {"name": "deployed", "stage": "inference", "applies": True, "unavailable": {}, "not_applicable": [],
           "description": f"the user's ONNX file {path.name} on ONNX Runtime vs the torch model"}
    return Plan(plan.reference, plan.variants + (variant,)), rows + [row]


def _calibration(plan: Plan, rows: list[dict], dataset, deploy, calibration_data, calibration_samples,
                 allow_outside_root):
    """(plan, calibration samples or None, record for results.json). Only runs that quantize
    calibrate; a held-out slice is removed from `dataset.samples` here, before anything is
    evaluated. A dataset too small to hold out from leaves the quantizing variants out, saying why."""
    from sysnoise.inference import calibrate
    from sysnoise.inference.build import needs_calibration

    stages = list(plan.model_pipelines().values()) + ([deploy] if deploy is not None else [])
    if not any(needs_calibration(p) for p in stages):
        return plan, None, None
    if calibration_data is None and calibration_samples is None and len(dataset.samples) < calibrate.MIN_DATASET:
        # too few samples to hold some out: the quantizing variants are left out, with the reason
        if deploy is not None and needs_calibration(deploy):
            raise UserInputError("the deployment pipeline quantizes: pass --calibration-data (the dataset is too "
                                 "small to hold samples out)")
        plan = _drop_calibrated(plan, rows, "needs calibration data (--calibration-data): the dataset has "
                                f"{len(dataset.samples)} samples, too few to hold any out")
        return plan, None, None
    if calibration_data is not None:
        chosen = read_dataset(calibration_data, allow_outside_root=allow_outside_root).samples
        if calibration_samples is not None:
            chosen = chosen[: max(1, int(calibration_samples))]
        calibrate.check_disjoint(chosen, dataset.samples)
        split = calibrate.CalibrationSplit([s.path for s in chosen], [s.id for s in chosen], "user")
        split.notes.append(f"from {calibration_data}")
    else:
        dataset.samples, chosen = calibrate.hold_out(dataset.samples, calibration_samples)
        split = calibrate.CalibrationSplit([s.path for s in chosen], [s.id for s in chosen], "held-out")
        split.notes.append("held out of the evaluation of every column (lowest blake2b(id) first)")
    if not chosen:
        raise UserInputError("INT8 calibration has no samples; pass --calibration-data or --calibration-samples")
    return plan, chosen, split.describe()


def _drop_calibrated(plan: Plan, rows: list[dict], reason: str) -> Plan:
    from sysnoise.inference.build import needs_calibration

    dropped = [v for v in plan.variants if needs_calibration(v.pipeline)]
    for row in rows:
        for variant in dropped:
            if variant.noise == row["name"]:
                row.setdefault("unavailable", {})[variant.option] = reason
    return Plan(plan.reference, tuple(v for v in plan.variants if v not in dropped))


def _combined_pass(loaded, dataset, results, stepwise, deploy, out, options, fresh, calibration=None, *,
                   task=None, analysis=None, samples=None):
    """The second engine pass: the stepwise combination (greedy order needs the single-noise
    results) and the deployment pipeline with its attribution variants. Its own store keeps
    resume working; its own reference column keeps it self-contained. None when not asked."""
    from sysnoise.analysis import combine
    from sysnoise.report.results import add_combined

    steps = combine.choose_steps(results, stepwise) if stepwise else []
    variants = combine.stepwise_variants(loaded.reference, steps)
    if deploy is not None:
        variants += combine.deploy_variants(loaded.reference, deploy)
    if not variants:
        return None
    plan = Plan(loaded.reference, tuple(variants))
    outputs = _measure(loaded, dataset, plan, out / "combined", options, fresh,
                       f"{len(plan.columns)} combined pipelines",
                       samples=samples or [(s.id, s.labels) for s in dataset.samples], task=task,
                       calibration=calibration).outputs
    order = combine.GREEDY if stepwise == combine.GREEDY else "given"
    add_combined(results, plan, outputs, steps=steps, order=order, deploy=deploy, analysis=analysis)
    return plan, outputs


_PREPROCESSING_AND_INFERENCE = ("decoder", "resize", "colour", "channel-order", "precision", "int8", "ceil-mode",
                                "upsample")
DETECTION_NOISES = _PREPROCESSING_AND_INFERENCE + (
    "crop=keep-ratio-max-size,letterbox,squash", "box-decoding", "box-rounding", "nms", "score-threshold", "top-k",
    "box-clip")
SEGMENTATION_NOISES = _PREPROCESSING_AND_INFERENCE + ("runtime", "crop=shorter-side,letterbox,squash", "mask-resize")
def default_noises(task: str) -> tuple[str, ...]:
    """The noises a run of `task` measures when none are named."""
    return {"classification": DEFAULT_NOISES, "detection": DETECTION_NOISES, "segmentation": SEGMENTATION_NOISES,
            "language": LANGUAGE_NOISES}[task]


DENSE_STAGES = ("pre-processing", "misconfiguration", "inference", "post-processing")


def run_dense(task_name: str, model, data, *, noises=None, out: str | Path = "results/run", weights=None,
              reference: Pipeline | str | Path | None = None, options: EngineOptions | None = None, fresh: bool = False,
              allow_outside_root: bool = False, stepwise=None, deploy=None, figures: bool = True,
              calibration_data=None, calibration_samples: int | None = None,
              ignore_index: int | None = None, limit: int | None = None) -> Results | None:
    """Detection (COCO JSON + images: box mAP) or segmentation (image / label-map list: mIoU) under
    the reference pipeline and its variants; same outputs as `run` (docs/detection.md).
    ignore_index: segmentation, the label value of unlabeled pixels when `data` is read here
    (default: the reader's, 255; a SegmentationDataset passed in keeps its own).

    `model`: a name, a LoadedModel or a torch module: for detection a torchvision detector or a
    raw-output module (tasks/detection_heads.py), for segmentation a module returning logits."""
    from sysnoise import environment
    from sysnoise.analysis import combine
    from sysnoise.report.figures import Measured, make_figures
    from sysnoise.report.results import build_results, write_reports, write_results
    from sysnoise.tasks.base import TASKS
    from sysnoise.zoo.datasets import resolve_dataset

    if task_name not in ("detection", "segmentation"):
        raise UserInputError(f"run_dense handles detection and segmentation, not {task_name!r}")
    if task_name == "detection":
        extras.require("coco", "detection (COCO box and mask mAP)")
    options = options or EngineOptions()
    check_run(model=model, reference=reference, deploy=deploy, noises=noises or (), stepwise=stepwise,
              device=options.device, out=out)
    if (stepwise or deploy) and distributed_world() > 1:
        raise UserInputError("--stepwise and --deploy need the single-noise results on every rank: run them in one process")
    data_name = name_of_data(data)
    data = resolve_dataset(data, task_name)  # the data is read first: a wrong path fails before a model loads
    if task_name == "detection":
        from sysnoise.tasks.detection import read_detection_data

        dataset = data if hasattr(data, "coco") else read_detection_data(data, allow_outside_root=allow_outside_root)
    else:
        from sysnoise.tasks.segmentation import IGNORE_INDEX, read_segmentation_list

        dataset = data if hasattr(data, "ignore_index") else read_segmentation_list(
            data, allow_outside_root=allow_outside_root, ignore_index=IGNORE_INDEX if ignore_index is None else ignore_index)
    dataset, limited = _limited(dataset, limit)
    loaded = load(model, weights, reference)
    if task_name == "detection":
        from sysnoise.analysis.detection import DetectionAnalysis
        from sysnoise.tasks.detection_heads import raw_detector

        try:
            loaded.module = raw_detector(loaded.module)
        except ValueError as err:
            raise UserInputError(str(err)) from None
        task, analysis = TASKS("detection").bind(loaded.module), DetectionAnalysis(dataset)
        samples = [(s.id, s.labels) for s in dataset.samples]
    else:
        from sysnoise.analysis.segmentation import SegmentationAnalysis
        from sysnoise.tasks.segmentation import logits_module

        loaded.module = logits_module(loaded.module)
        task = TASKS("segmentation").bind(loaded.num_classes, dataset.ignore_index)
        analysis = SegmentationAnalysis(loaded.class_names)
        samples = [(s.id, s.label_path.name, s.label_path.stat().st_size, s.label_path.stat().st_mtime_ns)
                   for s in dataset.samples]  # the confusion counts depend on the label maps
    specs = noises or (DETECTION_NOISES if task_name == "detection" else SEGMENTATION_NOISES)
    plan, noise_rows = plan_variants(loaded, specs, loaded.reference, stages=DENSE_STAGES)
    if task_name == "detection":
        plan = _without(plan, noise_rows, lambda p: p.runtime != "torch",
                        "the ONNX runtimes return one output tensor; a raw detector stage returns several")
    deploy = _deployment(deploy, loaded.reference)
    combine.check_stepwise(stepwise, {variant.noise for variant in plan.variants})
    plan, calibration, calibration_record = _calibration(plan, noise_rows, dataset, deploy, calibration_data,
                                                         calibration_samples, allow_outside_root)
    if calibration:  # the held-out samples left dataset.samples: the fingerprint follows
        kept = {s.id for s in dataset.samples}
        samples = [entry for entry in samples if entry[0] in kept]

    out = Path(out)
    announce_reference(loaded, options)
    outputs, elapsed, identity, reused = _measure(
        loaded, dataset, plan, out, options, fresh, f"{len(plan.columns)} pipelines",
        samples=samples, task=task, calibration=calibration)
    if outputs is None:
        return None
    results = build_results(
        task=task_name, model={**loaded.describe(), "reference_pipeline": loaded.reference.to_dict()},
        dataset={**dataset.describe(), "name": data_name, "limit": limited, "calibration": calibration_record},
        plan=plan, outputs=outputs,
        noises=noise_rows, environment=environment.describe(),
        run={"seconds": round(elapsed, 2), "batch_size": options.batch_size, "workers": options.workers,
             "identity": identity, "reused": reused,
             "device": options.device, "forwards": {str(k): v for k, v in options.forward_counter.items()},
             "model_stages": options.model_info, "bootstrap_resamples": analysis.resamples, **_reading(options)},
        problems=dataset.problems, analysis=analysis)
    measured = [Measured(column, outputs) for column in plan.columns[1:]]
    combined = _combined_pass(loaded, dataset, results, stepwise, deploy, out, options, fresh, calibration,
                              task=task, analysis=analysis, samples=samples)
    if combined:
        measured += [Measured(column, combined[1]) for column in combined[0].columns[1:]]
    if figures:
        results["figures"] = make_figures(results, measured, {s.id: s.path for s in dataset.samples},
                                          loaded.class_names, out)
    write_results(results, out / "results.json")
    write_reports(results, out)
    if task_name == "detection":  # for the user's own tools: the reference column as COCO results
        from sysnoise.engine.store import atomic_write_text

        atomic_write_text(out / "detections-reference.json", json.dumps(coco_detections(out, "reference")) + "\n")
        if "segm_ap" in results["reference"]:  # Mask R-CNN: its masks too, in the segm results format
            atomic_write_text(out / "segmentations-reference.json",
                              json.dumps(coco_detections(out, "reference", masks=True)) + "\n")
    return Results(results)


def _without(plan: Plan, rows: list[dict], unsupported, reason: str) -> Plan:
    """The plan without the variants whose pipeline `unsupported` flags, each listed as unavailable."""
    dropped = [v for v in plan.variants if unsupported(v.pipeline)]
    for row in rows:
        for variant in dropped:
            if variant.noise == row["name"]:
                row.setdefault("unavailable", {})[variant.option] = reason
    return Plan(plan.reference, tuple(v for v in plan.variants if v not in dropped))


def coco_detections(out: str | Path, column: str = "reference", *, masks: bool = False) -> list[dict]:
    """One column of a detection run (results folder `out`) as a COCO results list ({image_id,
    category_id, bbox [x, y, w, h], score}), the format pycocotools' loadRes and other tools read.
    Samples the reference could not process are left out, as in the evaluation. masks: the segm
    results instead ({image_id, category_id, segmentation (RLE), score}) of a model with a mask
    head, from outputs.masks.npz; an error for a column without masks."""
    from sysnoise.analysis.detection import detections_json, segmentations_json
    from sysnoise.report.results import read_results

    out = Path(out)
    results = read_results(out)
    if results.get("task") != "detection":
        raise UserInputError(f"{out}: not a detection run")
    outputs = RunOutputs.load(out / "outputs.npz")
    if column not in outputs.column_ids:
        raise UserInputError(f"{out}: no column {column!r}; columns: {', '.join(outputs.column_ids)}")
    images = json.loads(Path(results["dataset"]["path"]).read_text())["images"]
    image_of = {image["file_name"]: image["id"] for image in images}
    keep = outputs.valid & (outputs.errors[column] == "")
    arrays = outputs.arrays[column]
    image_ids = [image_of[s] for s, ok in zip(outputs.sample_ids, keep) if ok]
    if masks:
        blobs = outputs.ragged(column, "masks") if "masks" in outputs.ragged_names() else []
        blobs = [b for b, ok in zip(blobs, keep) if ok]
        if not any(blobs):
            raise UserInputError(f"{out}: column {column!r} has no masks (a model without a mask head, or "
                                 "post-processing other than the model's own)")
        return segmentations_json(blobs, arrays["scores"][keep], arrays["labels"][keep], image_ids)
    return detections_json(arrays["boxes"][keep], arrays["scores"][keep], arrays["labels"][keep], image_ids)


LANGUAGE_NOISES = ("precision",)
LANGUAGE_STAGES = ("inference",)  # text has no image pre-processing stage


def language_precisions(module) -> list[str]:
    """The precision options that fit a causal LM by default: not native half (slow on a CPU, as
    for vision) and not calibrated INT8 (it calibrates on image batches)."""
    from sysnoise.inference.precision import PRECISIONS

    noise = NOISES("precision")
    return [o for o in noise.chosen(None) if not PRECISIONS.get(o).meta.get("calibrated")
            and option_applies(noise, o, module)]


def run_language(model, data, *, fmt: str | None = None, noises=LANGUAGE_NOISES, out: str | Path = "results/language",
                 options: EngineOptions | None = None, fresh: bool = False,
                 limit: int | None = None) -> Results | None:
    """A causal LM on a JSONL file (see tasks.language): results.json, outputs.npz, report.md."""
    from sysnoise import environment
    from sysnoise.engine.store import atomic_write_text
    from sysnoise.language_models import load_language_model
    from sysnoise.report import language as report
    from sysnoise.report.results import write_results
    from sysnoise.tasks.language import Dataset as TextDataset
    from sysnoise.tasks.language import TASKS, read_jsonl

    options = options or EngineOptions()
    check_run(noises=noises, device=options.device, out=out)
    dataset = data if isinstance(data, TextDataset) else read_jsonl(data, fmt)  # the data before the model
    dataset, limited = _limited(dataset, limit)
    loaded = model if isinstance(model, LoadedModel) else load_language_model(model)
    task = TASKS("language").bind(loaded)
    specs = [f"precision={','.join(language_precisions(loaded.module))}" if spec == "precision" else spec
             for spec in noises]
    plan, noise_rows = plan_variants(loaded, specs, loaded.reference, stages=LANGUAGE_STAGES)

    out = Path(out)
    outputs, elapsed, identity, reused = _measure(
        loaded, dataset, plan, out, options, fresh, f"{len(plan.columns)} systems", task=task,
        samples=[(dataset.format, s.id, s.requests, s.label) for s in dataset.samples])
    if outputs is None:
        return None
    results = report.build_results(
        model=loaded.describe(), dataset={**dataset.describe(), "name": name_of_data(data), "limit": limited},
        plan=plan, outputs=outputs, noises=noise_rows,
        environment=environment.describe(), scoring=task.describe(),
        run={"seconds": round(elapsed, 2), "batch_size": options.batch_size, "workers": options.workers,
             "identity": identity, "reused": reused,
             "device": options.device, "forwards": {str(k): v for k, v in options.forward_counter.items()},
             "model_stages": options.model_info},  # export, runtime versions, quantization settings
    )
    write_results(results, out / "results.json")
    atomic_write_text(out / "report.md", report.render(results))
    return Results(results)


def distributed_world() -> int:
    from sysnoise.engine import distributed

    return distributed.rank_and_world()[1]


def _reading(options: EngineOptions) -> dict:
    """How samples were read, for results.json: the limits in force (pipeline.limits, from the
    SYSNOISE_* variables) and whether samples the pre-flight found corrupt were measured; with
    --adapt, the test-time adaptation every column ran (it changes every output)."""
    adapted = {"adapt": options.adapt} if options.adapt else {}
    return {"include_corrupt": options.include_corrupt, "limits": limits.current().to_dict(), **adapted}


class EnginePass(NamedTuple):
    """One engine pass into a results folder (see `_measure`)."""

    outputs: RunOutputs | None  # None on a torchrun rank other than 0
    seconds: float
    identity: dict  # the run identity's digests (engine/identity.py), for results.json run.identity
    reused: bool  # the folder held this run's finished outputs: nothing was recomputed


def _measure(loaded, dataset, plan: Plan, folder: Path, options: EngineOptions, fresh: bool, label: str, *,
             samples: list, task=None, calibration=None) -> EnginePass:
    """One engine pass into `folder` with resume, its outputs saved as outputs.npz.

    The folder belongs to one run identity (model weights, samples, reference, task, variants,
    calibration, device, reading settings): another run's outputs there are refused, saying what
    differs, unless `fresh`; the folder is locked for the pass; a finished pass asked again is
    reused. Under torchrun every rank evaluates its share of chunks; rank 0 gets the outputs.
    """
    from sysnoise.engine import distributed
    from sysnoise.engine.identity import SHORT, identify
    from sysnoise.tasks.base import TASKS

    rank, world = distributed.rank_and_world()
    options.device = distributed.local_device(options.device)
    identity = identify(loaded, samples, plan, task or TASKS("classification"), calibration, options.device,
                        settings={"reading": _reading(options)})
    store = ChunkStore(folder, identity, fresh=fresh, owner=rank == 0)
    try:
        distributed.barrier()  # no rank starts before rank 0 has validated (or cleared) the folder
        if world == 1 and store.reusable():
            if options.progress:  # quiet runs learn it from run.reused
                print(f"sysnoise: {folder}: reused this run's finished outputs (run {identity.key[:SHORT]}); "
                      "nothing recomputed (--fresh recomputes)", file=sys.stderr)
            return EnginePass(RunOutputs.load(store.final), 0.0, identity.digests, True)
        started = time.perf_counter()
        with ProgressBar(len(dataset.samples), f"{loaded.name}: {label}", options.progress and rank == 0) as advance:
            outputs = evaluate(loaded, dataset, plan, store, options, on_progress=advance, task=task,
                               calibration=calibration)
        elapsed = time.perf_counter() - started
        if outputs is not None:
            outputs.save(store.final)
            store.complete()  # records the outputs' digests, then drops the chunks they merged
        return EnginePass(outputs, elapsed, identity.digests, False)
    finally:
        store.close()


def list_noises() -> dict[str, dict]:
    """Every noise of the catalogue: {name: {stage, description, options: {option: description}}}."""
    return list_catalogue()["noises"]


def list_catalogue() -> dict:
    """Every noise with its options and their one-line descriptions; every model and dataset name."""
    import sysnoise.zoo  # noqa: F401
    from sysnoise.models import MODELS
    from sysnoise.zoo.datasets import DATASETS

    noises = {
        entry.name: {
            "stage": entry.fn.stage,
            "description": entry.description,
            "options": {option: entry.fn.describe_option(option) for option in entry.fn.options()}
            or ({"VALUE": entry.fn.free_form} if entry.fn.free_form else {}),
        }
        for entry in NOISES
    }
    return {"noises": noises, "models": {m.name: m.description for m in MODELS},
            "datasets": {d.name: d.description for d in DATASETS}}


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


def diff(a: str, b: str, images, *, model: str | None = None, reference: str | Path | None = None,
         out: str | Path | None = None, gain: float | None = None, limit: int | None = None, list_file=None) -> dict:
    """Compare pipelines `a` and `b` stage by stage on `images` (see diffing.resolve_pipeline for the
    spellings); with `out`, write diff.json and difference pictures there."""
    from sysnoise import diffing
    from sysnoise.engine.store import atomic_write_text

    base = reference_pipeline(model, reference)
    pa, pb = diffing.resolve_pipeline(a, base), diffing.resolve_pipeline(b, base)
    result = diffing.diff_pipelines(pa, pb, _samples(images, list_file, limit), Path(out) if out else None, gain)
    if out:
        atomic_write_text(Path(out) / "diff.json", json.dumps(result, indent=1) + "\n")
    return result


def match(device: str | Path, images, *, model: str | None = None, reference: str | Path | None = None,
          out: str | Path | None = None, steps: int = 3, limit: int | None = None, list_file=None) -> dict:
    """Which known pipeline produced a device's pre-processing output (.npy/.png named like the images)?"""
    from sysnoise import diffing
    from sysnoise.engine.store import atomic_write_text

    result = diffing.match_folder(Path(device), _samples(images, list_file, limit),
                                  reference_pipeline(model, reference), steps=steps)
    if out:
        atomic_write_text(Path(out) / "match.json", json.dumps(result, indent=1) + "\n")
    return result


def generate(data, out: str | Path, *, pipeline: str = "reference", model: str | None = None,
             reference: str | Path | None = None, list_file=None, fmt: str = "png", stage: str = "geometry",
             allow_outside_root: bool = False, progress: bool = False) -> dict:
    """Write `data` after `stage` of `pipeline` into `out` (PNG or .npy, list file, manifest); evaluate it
    later as a variant with noises=["stored=OUT"]."""
    from sysnoise import diffing
    from sysnoise.generate import generate as write

    chosen = diffing.resolve_pipeline(pipeline, reference_pipeline(model, reference))
    samples = _samples(data, list_file, allow_outside_root=allow_outside_root)
    with ProgressBar(len(samples), f"generate {stage}", progress) as advance:
        return write(samples, chosen, out, fmt=fmt, stage=stage, source=str(data), on_progress=advance)


MATRIX_FIELDS = ("decoder", "colour", "resize", "crop", "precision")  # Pipeline fields with a same-named noise


def _matrix_model(spec: str) -> LoadedModel:
    """A zoo name, or a weights file with the NAME.json `sysnoise train` writes beside it."""
    path = Path(spec)
    if not path.is_file():
        return load_model(spec)
    sidecar = path.with_suffix(".json")
    try:
        model = json.loads(sidecar.read_text())["model"]
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"{path}: a weights file needs {sidecar.name} beside it naming its model "
                             f"(as `sysnoise train` writes): {err}") from None
    return load_model(model, path)


def matrix(models: list[str], data, test: str, *, out: str | Path = "results/matrix", reference: Pipeline | None = None,
           options: EngineOptions | None = None, fresh: bool = False, title: str | None = None) -> dict:
    """Train-by-test matrix (paper Tables 7/8): every model under the test pipelines `test`
    ("resize=pillow-bilinear,opencv-bilinear": the reference with that field swapped), one run per
    model into OUT/runs/LABEL (the test pipelines are its columns, sharing decodes; reruns resume);
    then the matrix from their stored per-sample outputs: OUT/matrix.json, matrix.md, matrix.csv.
    reference: the pipeline the test columns vary (default: the first model's reference)."""
    import re

    from sysnoise.analysis import matrix as analysis
    from sysnoise.engine.store import atomic_write_text
    from sysnoise.report import matrix as report

    field, _, text = analysis.expand_test(test).partition("=")
    tests = [o.strip() for o in text.split(",") if o.strip()]
    if field not in MATRIX_FIELDS or not tests or len(set(tests)) != len(tests):
        raise UserInputError(f"--test {test!r}: expected FIELD=OPTION,OPTION,... with distinct options, FIELD one of "
                             f"{', '.join(MATRIX_FIELDS)}")
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
        results = run(model, data, noises=noises, out=folder, reference=first, options=options, fresh=fresh,
                      figures=False)
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
