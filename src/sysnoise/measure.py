"""One measurement flow for every task: read the data, load and prepare the model, plan the
variants, calibrate, run the engine pass(es), analyse, write. What differs between tasks comes
from the task's definition (tasks/definition.py), never from a branch on its name here.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

from sysnoise import environment, extras, subset
from sysnoise.analysis import combine
from sysnoise.analysis.document import add_combined, build_results
from sysnoise.engine import distributed
from sysnoise.engine.execute import EngineOptions, evaluate
from sysnoise.engine.identity import SHORT, identify
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Plan
from sysnoise.engine.store import ChunkStore
from sysnoise.errors import UserInputError
from sysnoise.inference import calibrate
from sysnoise.inference.build import needs_calibration
from sysnoise.inference.runtimes import ONNX_FILE_PREFIX
from sysnoise.loaded_model import LoadedModel
from sysnoise.noises import Variant, default_noises, parse_noise_spec
from sysnoise.pipeline import limits
from sysnoise.pipeline.spec import Pipeline
from sysnoise.progress import ProgressBar
from sysnoise.report.console import reference_lines
from sysnoise.report.figures import Measured, make_figures
from sysnoise.report.results import write_reports, write_results
from sysnoise.result_view import Results
from sysnoise.tasks.classification import read_dataset
from sysnoise.tasks.definition import TASKS, TaskDefinition
from sysnoise.validate import check_run, load_pipeline
from sysnoise.zoo.datasets import resolve_dataset


def name_of_data(data) -> str:
    """How reports name the data: a dataset name as given, else its folder (and file); a folder the
    sysnoise cache made is named without its content hash."""
    if isinstance(data, str) and not Path(data).exists():
        return data
    path = Path(getattr(data, "root", data))
    name = path.name if path.is_dir() else f"{path.parent.name}/{path.name}"
    return re.sub(r"-[0-9a-f]{16}(?=/|$)", "", name)


def limited(dataset, limit: int | None):
    """(dataset, record): the --limit subset of its samples (subset.py), recorded for results.json."""
    if limit is None:
        return dataset, None
    total = len(dataset.samples)
    return dataclasses.replace(dataset, samples=subset.limited(dataset.samples, limit)), subset.record(total, limit, 0)


def option_applies(noise, option: str, module) -> bool:
    """Options whose registry entry carries an `applies` test (LM-only precisions) may not fit a model."""
    if noise.free_form:
        return True
    test = noise.registry.get(option).meta.get("applies")
    return test is None or bool(test(module))


def plan_variants(
    model: LoadedModel, noise_specs, reference: Pipeline, stages: tuple[str, ...] | None = None
) -> tuple[Plan, list[dict]]:
    """stages: the noise stages the task has (text has no image pre-processing); others are n/a."""
    variants, rows = [], []
    for spec in noise_specs:
        noise, options = parse_noise_spec(spec)
        applies = bool(noise.applies(model.module)) and (stages is None or noise.stage in stages)
        rows.append(
            {
                "name": noise.name,
                "stage": noise.stage,
                "description": noise.description,
                "applies": applies,
                "unavailable": {},
            }
        )
        if applies:
            chosen = noise.chosen(options)
            fitting = [o for o in chosen if option_applies(noise, o, model.module)]
            rows[-1]["not_applicable"] = [o for o in chosen if o not in fitting]
            # a missing library matters only for the options that fit this model
            rows[-1]["unavailable"] = {o: why for o, why in noise.unavailable(options).items() if o in fitting}
            variants.extend(noise.variants(reference, fitting, model.module))
    return Plan(reference, tuple(variants)), rows


def without(plan: Plan, rows: list[dict], reason_for) -> Plan:
    """The plan without the variants `reason_for(pipeline)` gives a reason for, each listed as
    unavailable with that reason."""
    reasons = {v: reason_for(v.pipeline) for v in plan.variants}
    for row in rows:
        for variant, reason in reasons.items():
            if reason and variant.noise == row["name"]:
                row.setdefault("unavailable", {})[variant.option] = reason
    return Plan(plan.reference, tuple(v for v, reason in reasons.items() if not reason))


def deployment(deploy, reference: Pipeline) -> Pipeline | None:
    """The deployment pipeline: a Pipeline, or a YAML/JSON file whose missing fields are the reference's."""
    if deploy is None:
        return None
    if not isinstance(deploy, Pipeline):
        deploy = load_pipeline(deploy, base=reference)
    combine.deploy_changes(reference, deploy)  # refuses a deployment identical to the reference
    return deploy


def with_deployed_onnx(plan: Plan, rows: list[dict], path) -> tuple[Plan, list[dict]]:
    """The user's ONNX file on ONNX Runtime as one more variant (runtime "onnx:PATH")."""
    path = Path(path).resolve()
    if not path.is_file():
        raise UserInputError(f"ONNX file not found: {path}")
    variant = Variant("deployed", "onnx-file", plan.reference.replace(runtime=f"{ONNX_FILE_PREFIX}{path}"))
    row = {
        "name": "deployed",
        "stage": "inference",
        "applies": True,
        "unavailable": {},
        "not_applicable": [],
        "description": f"the user's ONNX file {path.name} on ONNX Runtime vs the torch model",
    }
    return Plan(plan.reference, plan.variants + (variant,)), rows + [row]


class Calibration(NamedTuple):
    samples: list | None  # what INT8 stages calibrate on; None: nothing quantizes
    record: dict | None  # for results.json dataset.calibration


def calibration_split(
    plan: Plan, rows: list[dict], dataset, deploy, calibration_data, calibration_samples, allow_outside_root
) -> tuple[Plan, Calibration]:
    """Only runs that quantize calibrate; a held-out slice is removed from `dataset.samples` here,
    before anything is evaluated. A dataset too small to hold out from leaves the quantizing
    variants out, saying why."""
    stages = list(plan.model_pipelines().values()) + ([deploy] if deploy is not None else [])
    if not any(needs_calibration(p) for p in stages):
        return plan, Calibration(None, None)
    if calibration_data is None and calibration_samples is None and len(dataset.samples) < calibrate.MIN_DATASET:
        if deploy is not None and needs_calibration(deploy):
            raise UserInputError(
                "the deployment pipeline quantizes: pass --calibration-data (the dataset is too "
                "small to hold samples out)"
            )
        reason = (
            f"needs calibration data (--calibration-data): the dataset has {len(dataset.samples)} samples, "
            "too few to hold any out"
        )
        return without(plan, rows, lambda p: reason if needs_calibration(p) else None), Calibration(None, None)
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
    return plan, Calibration(chosen, split.describe())


def reading(options: EngineOptions) -> dict:
    """How samples were read, for results.json: the limits in force (pipeline.limits, from the
    SYSNOISE_* variables) and whether samples the pre-flight found corrupt were measured; with
    --adapt, the test-time adaptation every column ran (it changes every output)."""
    adapted = {"adapt": options.adapt} if options.adapt else {}
    return {"include_corrupt": options.include_corrupt, "limits": limits.current().to_dict(), **adapted}


class EnginePass(NamedTuple):
    """One engine pass into a results folder (see `engine_pass`)."""

    outputs: RunOutputs | None  # None on a torchrun rank other than 0
    seconds: float
    identity: dict  # the run identity's digests (engine/identity.py), for results.json run.identity
    reused: bool  # the folder held this run's finished outputs: nothing was recomputed


@dataclasses.dataclass(frozen=True)
class Run:
    """What one measurement's engine passes share."""

    task: object  # the prepared engine task
    samples: list  # the samples' fingerprint (TaskDefinition.fingerprint), read once for every pass
    loaded: LoadedModel
    dataset: object
    options: EngineOptions
    fresh: bool
    calibration: list | None


def engine_pass(run: Run, plan: Plan, folder: Path, label: str) -> EnginePass:
    """One engine pass into `folder` with resume, its outputs saved as outputs.npz.

    The folder belongs to one run identity (model weights, samples, reference, task, variants,
    calibration, device, reading settings): another run's outputs there are refused, saying what
    differs, unless `fresh`; the folder is locked for the pass; a finished pass asked again is
    reused. Under torchrun every rank evaluates its share of chunks; rank 0 gets the outputs.
    """
    options = run.options
    rank, world = distributed.rank_and_world()
    options.device = distributed.local_device(options.device)
    identity = identify(
        run.loaded,
        run.samples,
        plan,
        run.task,
        run.calibration,
        options.device,
        settings={"reading": reading(options)},
    )
    store = ChunkStore(folder, identity, fresh=run.fresh, owner=rank == 0)
    try:
        distributed.barrier()  # no rank starts before rank 0 has validated (or cleared) the folder
        if world == 1 and store.reusable():
            if options.progress:  # quiet runs learn it from run.reused
                print(
                    f"sysnoise: {folder}: reused this run's finished outputs (run {identity.key[:SHORT]}); "
                    "nothing recomputed (--fresh recomputes)",
                    file=sys.stderr,
                )
            return EnginePass(RunOutputs.load(store.final), 0.0, identity.digests, True)
        started = time.perf_counter()
        with ProgressBar(
            len(run.dataset.samples), f"{run.loaded.name}: {label}", options.progress and rank == 0
        ) as advance:
            outputs = evaluate(
                run.loaded,
                run.dataset,
                plan,
                store,
                options,
                on_progress=advance,
                task=run.task,
                calibration=run.calibration,
            )
        elapsed = time.perf_counter() - started
        if outputs is not None:
            outputs.save(store.final)
            store.complete()  # records the outputs' digests, then drops the chunks they merged
        return EnginePass(outputs, elapsed, identity.digests, False)
    finally:
        store.close()


def combined_pass(run: Run, analysis, results: dict, stepwise, deploy, out: Path):
    """The second engine pass: the stepwise combination (greedy order needs the single-noise
    results) and the deployment pipeline with its attribution variants. Its own store keeps
    resume working; its own reference column keeps it self-contained. None when not asked."""
    steps = combine.choose_steps(results, stepwise) if stepwise else []
    variants = combine.stepwise_variants(run.loaded.reference, steps)
    if deploy is not None:
        variants += combine.deploy_variants(run.loaded.reference, deploy)
    if not variants:
        return None
    plan = Plan(run.loaded.reference, tuple(variants))
    outputs = engine_pass(run, plan, out / "combined", f"{len(plan.columns)} combined pipelines").outputs
    order = combine.GREEDY if stepwise == combine.GREEDY else "given"
    add_combined(results, plan, outputs, analysis, steps=steps, order=order, deploy=deploy)
    return plan, outputs


def run_record(passed: EnginePass, options: EngineOptions) -> dict:
    """results.json `run`: time, engine settings, identity, forwards and model stages."""
    return {
        "seconds": round(passed.seconds, 2),
        "batch_size": options.batch_size,
        "workers": options.workers,
        "forward": options.forward_record(),
        "identity": passed.identity,
        "reused": passed.reused,
        "device": options.device,
        "forwards": {str(k): v for k, v in options.forward_counter.items()},
        "model_stages": options.model_info,
        **reading(options),
    }


def measure(
    task: str | TaskDefinition,
    model,
    data,
    *,
    noises=None,
    out: str | Path = "results/run",
    weights=None,
    reference: Pipeline | str | Path | None = None,
    options: EngineOptions | None = None,
    fresh: bool = False,
    allow_outside_root: bool = False,
    stepwise=None,
    deploy=None,
    figures: bool = True,
    calibration_data=None,
    calibration_samples: int | None = None,
    deployed_onnx=None,
    limit: int | None = None,
    data_name: str | None = None,
    **settings,
) -> Results | None:
    """Measure `model` on `data` for `task` (a registered name or a TaskDefinition) under the
    reference pipeline and its variants; write results.json, outputs.npz and the reports into
    `out` (see api.run for the arguments). settings: the task's own reading settings
    (classification: list_file, class_map; segmentation: ignore_index; language: fmt)."""
    definition = TASKS(task) if isinstance(task, str) else task
    definition.check_settings(settings)
    if definition.requires:
        extras.require(*definition.requires)
    options = options or EngineOptions()
    if noises is None:
        noises = default_noises(definition.name)
        if not noises:
            raise UserInputError(f"--task {definition.name} has no default noises: name them with --noise")
    if options.include_corrupt and not definition.images:
        raise UserInputError(
            f"--include-corrupt is for image tasks (--task {definition.name} has no corrupt-data pre-flight)"
        )
    check_run(
        model=model,
        reference=reference,
        deploy=deploy,
        noises=noises,
        stepwise=stepwise,
        device=options.device,
        out=out,
    )
    if (stepwise or deploy) and distributed.rank_and_world()[1] > 1:
        raise UserInputError(
            "--stepwise and --deploy need the single-noise results on every rank: run them "
            "in one process (or rerun the combination after a distributed run of the noises)"
        )
    data_name = data_name or name_of_data(data)
    # the data is read first: a wrong path fails before a model loads
    dataset = definition.read(
        resolve_dataset(data, definition.name),
        allow_outside_root=allow_outside_root,
        **{k: v for k, v in settings.items() if v is not None},
    )
    dataset, limit_record = limited(dataset, limit)
    loaded = definition.load(model, weights, reference)
    prepared = definition.prepare(loaded, dataset)
    if not dataset.samples:
        raise UserInputError(
            f"{getattr(dataset, 'root', data)}: no usable samples left; problems: {dataset.problems[:3]}"
        )
    plan, noise_rows = plan_variants(loaded, noises, loaded.reference, stages=definition.stages)
    plan = without(plan, noise_rows, definition.unsupported)
    # bad combination requests fail before any model runs, not after the first pass
    deploy = deployment(deploy, loaded.reference)
    combine.check_stepwise(stepwise, {variant.noise for variant in plan.variants})
    if deployed_onnx is not None:
        plan, noise_rows = with_deployed_onnx(plan, noise_rows, deployed_onnx)
    plan, calibration = calibration_split(
        plan, noise_rows, dataset, deploy, calibration_data, calibration_samples, allow_outside_root
    )

    out = Path(out)
    if options.progress and definition.images:  # the baseline, before the first decode
        print("\n".join(reference_lines(loaded.name, loaded.resolved_reference())), file=sys.stderr)
    # after the calibration hold-out: the fingerprint is of the samples evaluated
    run = Run(prepared.task, definition.fingerprint(dataset), loaded, dataset, options, fresh, calibration.samples)
    passed = engine_pass(run, plan, out, f"{len(plan.columns)} pipelines")
    if passed.outputs is None:  # a torchrun rank other than 0: rank 0 writes the results
        return None
    results = build_results(
        task=definition.name,
        analysis=prepared.analysis,
        model={**loaded.describe(), "reference_pipeline": definition.view(loaded.reference)},
        dataset={**dataset.describe(), "name": data_name, "limit": limit_record, "calibration": calibration.record},
        plan=plan,
        outputs=passed.outputs,
        noises=noise_rows,
        environment=environment.describe(definition.libraries()),
        run=run_record(passed, options),
        problems=dataset.problems,
        view=definition.view,
        more=definition.describe(prepared),
    )
    measured = [Measured(column, passed.outputs) for column in plan.columns[1:]]
    combined = combined_pass(run, prepared.analysis, results, stepwise, deploy, out)
    if combined:
        measured += [Measured(column, combined[1]) for column in combined[0].columns[1:]]
    if figures and definition.images:
        results["figures"] = make_figures(
            results, measured, {s.id: s.path for s in dataset.samples}, loaded.class_names, out
        )
    write_results(results, out / "results.json")
    write_reports(results, out)
    definition.write_files(out, results)
    return Results(results)
