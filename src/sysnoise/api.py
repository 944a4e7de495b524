"""The public Python API: measure a model under a reference pipeline and its noised variants.

    import sysnoise.api as sn
    results = sn.run("efficientnet_lite0", "photos/", noises=["decoder", "resize"], out="results/x")
"""

from __future__ import annotations

import time
from pathlib import Path

from sysnoise.engine.execute import EngineOptions, evaluate
from sysnoise.engine.plan import Plan
from sysnoise.engine.store import ChunkStore
from sysnoise.errors import UserInputError
from sysnoise.models import LoadedModel, load_model, wrap_module
from sysnoise.noises import NOISES, parse_noise_spec
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.classification import Dataset, check_labels, read_dataset

DEFAULT_NOISES = ("decoder", "resize", "crop", "colour", "precision", "ceil-mode")


def plan_variants(model: LoadedModel, noise_specs, reference: Pipeline) -> tuple[Plan, list[dict]]:
    variants, rows = [], []
    for spec in noise_specs:
        noise, options = parse_noise_spec(spec)
        applies = bool(noise.applies(model.module))
        rows.append({"name": noise.name, "stage": noise.stage, "description": noise.description, "applies": applies})
        if applies:
            variants.extend(noise.variants(reference, options))
    return Plan(reference, tuple(variants)), rows


def run(
    model,
    data,
    *,
    noises=DEFAULT_NOISES,
    out: str | Path = "results/run",
    weights: str | Path | None = None,
    reference: Pipeline | None = None,
    list_file: str | Path | None = None,
    options: EngineOptions | None = None,
    fresh: bool = False,
    allow_outside_root: bool = False,
) -> dict:
    """Evaluate, analyse and write results.json, outputs.npz and report.md into `out`."""
    from sysnoise import environment
    from sysnoise.report import markdown
    from sysnoise.report.results import build_results, write_results

    options = options or EngineOptions()
    loaded = model if isinstance(model, LoadedModel) else (
        load_model(model, weights, reference=reference) if isinstance(model, str) else wrap_module(model, reference=reference)
    )
    if reference is not None:
        loaded.reference = reference
    dataset = data if isinstance(data, Dataset) else read_dataset(data, list_file, allow_outside_root=allow_outside_root)
    check_labels(dataset, loaded.num_classes)
    if not dataset.samples:
        raise UserInputError(f"{dataset.root}: no usable samples left; problems: {dataset.problems[:3]}")
    plan, noise_rows = plan_variants(loaded, noises, loaded.reference)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = {
        "model": loaded.describe(),
        "samples": [(s.id, s.labels) for s in dataset.samples],
        "columns": plan.fingerprint(),
    }
    store = ChunkStore(out, fingerprint, fresh=fresh)
    started = time.perf_counter()
    with _progress(len(dataset.samples), f"{loaded.name}: {len(plan.columns)} pipelines", options.progress) as advance:
        outputs = evaluate(loaded, dataset, plan, store, options, on_progress=advance)
    elapsed = time.perf_counter() - started

    outputs.save(out / "outputs.npz")
    results = build_results(
        task="classification",
        model={**loaded.describe(), "reference_pipeline": loaded.reference.to_dict()},
        dataset=dataset.describe(),
        plan=plan,
        outputs=outputs,
        noises=noise_rows,
        environment=environment.describe(),
        run={"seconds": round(elapsed, 2), "batch_size": options.batch_size, "workers": options.workers,
             "device": options.device, "forwards": {str(k): v for k, v in options.forward_counter.items()}},
        problems=dataset.problems,
    )
    write_results(results, out / "results.json")
    (out / "report.md").write_text(markdown.render(results))
    for chunk in store.chunks.glob("*.npz"):  # the final files now hold everything
        chunk.unlink()
    return results


class _progress:
    """A rich progress bar when asked for (and a terminal shows it); a no-op callback otherwise."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.enabled = total, label, enabled

    def __enter__(self):
        if not self.enabled:
            return lambda _n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


def list_catalogue() -> dict:
    """Every noise with its options and their one-line descriptions; every model name."""
    import sysnoise.zoo  # noqa: F401
    from sysnoise.models import MODELS

    noises = {
        entry.name: {
            "stage": entry.fn.stage,
            "description": entry.description,
            "options": {option: entry.fn.describe_option(option) for option in entry.fn.options()},
        }
        for entry in NOISES
    }
    return {"noises": noises, "models": {m.name: m.description for m in MODELS}}
