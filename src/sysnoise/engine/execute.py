"""Walk the dataset once and fill every column of the plan.

Per batch: worker processes read each file once and compute every distinct pre-processing node
(pipeline.preprocess); the main process then runs each distinct model stage once per distinct
input. Inputs are deduplicated by content, so a variant whose pixels come out bit-identical to
another's (two decoders that agree, say) costs no forward pass at all. Each column's
post-processing (Task.finish) then runs on the shared forward outputs, so columns that differ
only after the model (NMS, box decoding) share the forward too.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sysnoise.engine import distributed
from sysnoise.engine.cache import InputCache
from sysnoise.engine.forward_plan import DEFAULT_BATCH, Planner, model_threads
from sysnoise.engine.lifetime import die_with_parent, terminate_as_interrupt
from sysnoise.engine.outputs import RAGGED_BYTES, RAGGED_LENGTHS, RunOutputs
from sysnoise.engine.plan import Column, Plan
from sysnoise.engine.store import ChunkStore
from sysnoise.errors import SampleError
from sysnoise.inference import adapt
from sysnoise.inference.build import BuildFailure, build_models
from sysnoise.pipeline.limits import OverBudget, time_budget
from sysnoise.tasks.base import Task


@dataclass
class EngineOptions:
    batch_size: int | None = None  # inputs per forward; None = the fastest on this machine (engine.forward_plan)
    workers: int = 1  # pre-processing processes beside the model's; 0 = in the main process
    threads: int | None = None  # the model's torch threads; None = the cores the workers leave
    chunk_size: int = 256  # samples committed to disk together (a resume may use another size)
    progress: bool = True
    device: str = "cpu"
    cache_dir: str | None = None  # on-disk cache of pre-processed inputs (engine.cache)
    include_corrupt: bool = False  # measure samples the pre-flight finds corrupt (pipeline.integrity)
    forward_counter: dict = field(default_factory=dict)  # model key -> inputs forwarded (for tests, benchmarks)
    model_info: dict = field(default_factory=dict)  # model key -> what was built (export, runtime, quantization)
    forward_plans: dict = field(default_factory=dict)  # str(model key) -> ForwardPlan.to_dict(): layout, batch, why
    adapt: str | None = None  # test-time adaptation (inference/adapt.py): every column adapts its own model copy

    @property
    def loader_batch(self) -> int:
        """Samples pre-processed and handed to the model stages together."""
        return self.batch_size or DEFAULT_BATCH

    def model_threads(self) -> int:
        return self.threads or model_threads(self.workers)

    def forward_record(self) -> dict:
        """How the model stages forwarded, for results.json's run.forward."""
        return {
            "threads": self.model_threads(),
            "workers": self.workers,
            "loader_batch": self.loader_batch,
            "stages": dict(self.forward_plans),
        }


class _Source:
    """Map-style dataset for torch's DataLoader: position -> (position, {tensor key: input | error})."""

    def __init__(self, task: Task, samples: list, pipelines, cache=None, include_corrupt: bool = False):
        self.task, self.samples, self.pipelines, self.cache = task, samples, pipelines, cache
        # tasks without an input cache or a pre-flight (text) keep their simpler signature
        self.reading = {"cache": cache} if cache is not None else {}
        if include_corrupt:
            self.reading["include_corrupt"] = True

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, position: int):
        # One sample's pre-processing within the time budget (pipeline.limits): over it, the sample
        # is skipped with the reason, in every column.
        try:
            with time_budget():
                return position, self.task.load_input(self.samples[position], self.pipelines, **self.reading)
        except OverBudget as over:
            return position, {p.prefix("normalise"): SampleError(str(over)) for p in self.pipelines}


def _worker_init(parent: int, _: int) -> None:
    import torch

    die_with_parent(parent)  # never outlive a killed run
    torch.set_num_threads(1)  # two cores: one worker decodes while the main process runs the model


def _spans_to_compute(
    n: int, chunk_size: int, done: list[tuple[int, int]], rank: int, world: int
) -> list[tuple[int, int]]:
    """The chunks (start, stop) this rank computes: its cells of the chunk_size grid (round-robin
    by rank), less the samples that committed chunks `done` (sorted, disjoint, of any size: an
    earlier run's chunk size may differ) already hold. Each new chunk lies inside one cell, so
    ranks never write overlapping chunks."""
    spans = []
    for start, stop in _cells(n, chunk_size, rank, world):
        position = start
        for done_start, done_stop in done:
            if done_start < stop and done_stop > position:
                if done_start > position:
                    spans.append((position, done_start))
                position = done_stop
        if position < stop:
            spans.append((position, stop))
    return spans


def _cells(n: int, chunk_size: int, rank: int, world: int) -> list[tuple[int, int]]:
    return [(start, min(n, start + chunk_size)) for start in range(0, n, chunk_size)][rank::world]


def _batches(span: tuple[int, int], batch_size: int):
    """Batches that never straddle a chunk, so each chunk can be committed when its last batch ends."""
    for start in range(span[0], span[1], batch_size):
        yield list(range(start, min(span[1], start + batch_size)))


def evaluate(
    loaded_model,
    dataset,
    plan: Plan,
    store: ChunkStore | None = None,
    options: EngineOptions | None = None,
    on_progress: Callable[[int], None] | None = None,
    *,
    task: Task,
    calibration: list | None = None,
) -> RunOutputs | None:
    """Fill every column; under torchrun, rank 0 gets the RunOutputs and other ranks None.

    calibration: samples, disjoint from `dataset`, that INT8 model stages calibrate on (as
    inputs made by the reference pipeline)."""
    import torch

    options = options or EngineOptions()
    columns = adapt.own_models(plan.columns) if options.adapt else plan.columns
    n = len(dataset.samples)
    rank, world = distributed.rank_and_world()
    cells = _cells(n, options.chunk_size, rank, world)
    done = store.spans() if store is not None else []
    # committed chunks that hold samples of this rank's cells (other ranks' new chunks never do)
    results: dict[tuple[int, int], dict[str, np.ndarray]] = {
        span: store.read(span) for span in done if any(span[0] < stop and span[1] > start for start, stop in cells)
    }
    spans = _spans_to_compute(n, options.chunk_size, done, rank, world)
    span_of = {position: span for span in spans for position in range(*span)}
    todo = len(span_of)
    if on_progress:
        on_progress(n - todo)

    models = {}
    if todo:
        stages = {c.model_key: c.pipeline for c in columns} if options.adapt else plan.model_pipelines()
        models = build_models(
            loaded_model.module,
            stages,
            reference=plan.reference,
            calibration_samples=calibration,
            task=task,
            batch_size=options.loader_batch,
            device=options.device,
            info=options.model_info,
        )
        if options.adapt:
            models = adapt.adapting(models, stages, options.adapt, options.loader_batch)

    pending: dict[tuple[int, int], dict[int, dict]] = {}  # chunk -> position -> column index -> outputs/error
    cache = InputCache(options.cache_dir) if options.cache_dir else None
    source = _Source(task, dataset.samples, plan.tensor_pipelines(), cache, options.include_corrupt)
    loader = torch.utils.data.DataLoader(
        source,
        batch_sampler=[batch for span in spans for batch in _batches(span, options.loader_batch)],
        num_workers=options.workers,
        collate_fn=lambda items: items,
        worker_init_fn=functools.partial(_worker_init, os.getpid()) if options.workers else None,
    )
    # an adapting model changes with every forward: no probe, and the batch is part of what it measures
    planner = Planner(
        options.loader_batch if options.adapt else options.batch_size,
        options.device,
        options.forward_plans,
        probe=not options.adapt,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(options.model_threads())
    try:
        with terminate_as_interrupt(), torch.inference_mode():
            for batch in loader:
                for position, row in _run_batch(task, batch, columns, models, planner, options).items():
                    pending.setdefault(span_of[position], {})[position] = row
                for span in sorted({span_of[position] for position, _ in batch}):
                    if len(pending[span]) == span[1] - span[0]:
                        results[span] = _chunk_arrays(task, pending.pop(span), range(*span), columns)
                        if store is not None:
                            store.write(span, results[span])
                if on_progress:
                    on_progress(len(batch))
    finally:
        torch.set_num_threads(threads)  # the caller's setting back

    if world > 1:
        results = distributed.gather_to_rank0(results)
        if results is None:
            return None
    return _assemble(results, n, columns, dataset)


def _run_batch(
    task: Task, batch, columns: list[Column], models, planner: Planner, options: EngineOptions
) -> dict[int, dict]:
    """position -> column index -> that sample's outputs under the column, or its error message."""
    positions = [position for position, _ in batch]
    inputs = {position: nodes for position, nodes in batch}
    per_column: dict[int, dict[int, object]] = {position: {} for position in positions}
    for key, model in models.items():
        if isinstance(model, BuildFailure):  # every sample of its columns records why
            for index, column in enumerate(columns):
                if column.model_key == key:
                    for position in positions:
                        per_column[position][index] = model.message
            continue
        unique: dict[bytes, int] = {}
        arrays: list[np.ndarray] = []
        wanted: list[tuple[int, int, bytes]] = []
        for index, column in enumerate(columns):
            if column.model_key != key:
                continue
            for position in positions:
                node = inputs[position][column.tensor_key]
                if isinstance(node, SampleError):
                    per_column[position][index] = str(node)
                    continue
                content = task.content_key(node)
                if content not in unique:
                    unique[content] = len(arrays)
                    arrays.append(node)
                wanted.append((position, index, content))
        if not arrays:
            continue
        options.forward_counter[key] = options.forward_counter.get(key, 0) + len(arrays)
        outputs = planner.forward(task, key, model, arrays)
        for position, index, content in wanted:
            row = unique[content]
            raw = {name: values[row] for name, values in outputs.items()}
            per_column[position][index] = _finish(
                task, columns[index], raw, inputs[position][columns[index].tensor_key]
            )
    return per_column


def _finish(task: Task, column: Column, raw: dict, model_input) -> dict | str:
    """The column's post-processing of one sample's shared forward outputs; a failure there is that
    sample's failure under that column (recorded, the run goes on)."""
    try:
        return task.finish(column.pipeline, raw, model_input)
    except Exception as err:
        return f"post-processing failed: {type(err).__name__}: {err}"[:500]


def _chunk_arrays(task: Task, rows: dict[int, dict], positions: range, columns: list[Column]) -> dict[str, np.ndarray]:
    """Per column and field one (n, ...) array; a ragged field (failed_outputs gives bytes: one byte
    string per sample, e.g. detection's RLE masks) is stored unpadded as NAME.bytes (uint8, the
    strings end to end) and NAME.lengths (n,), which concatenate across chunks as they are."""
    out: dict[str, np.ndarray] = {}
    failed = task.failed_outputs(1)
    for index, _ in enumerate(columns):
        cells = [rows[p][index] for p in positions]
        for name in failed:
            values = [c[name] if isinstance(c, dict) else failed[name][0] for c in cells]
            if isinstance(failed[name][0], bytes):
                out[f"c{index}.{name}{RAGGED_BYTES}"] = np.frombuffer(b"".join(values), np.uint8).copy()
                out[f"c{index}.{name}{RAGGED_LENGTHS}"] = np.asarray([len(v) for v in values], np.int64)
            else:
                out[f"c{index}.{name}"] = np.stack(values)
        out[f"c{index}.error"] = np.asarray([c if isinstance(c, str) else "" for c in cells], dtype=str)
    return out


def _assemble(results, n: int, columns: list[Column], dataset) -> RunOutputs:
    spans = sorted(results)
    edges = [0] + [stop for _, stop in spans]
    if [start for start, _ in spans] != edges[:-1] or edges[-1] != n:  # never merge a partial run
        raise RuntimeError(f"the committed chunks {spans} do not cover samples 0..{n} exactly once")
    arrays: dict[str, dict[str, np.ndarray]] = {}
    errors: dict[str, np.ndarray] = {}
    chunks = [results[span] for span in spans]
    for index, column in enumerate(columns):
        prefix = f"c{index}."
        names = [k[len(prefix) :] for k in chunks[0] if k.startswith(prefix)] if chunks else []
        merged = {name: np.concatenate([c[prefix + name] for c in chunks]) for name in names}
        errors[column.id] = merged.pop("error", np.asarray([], dtype=str)).astype(str)
        arrays[column.id] = merged
    return RunOutputs(
        column_ids=[c.id for c in columns],
        sample_ids=[s.id for s in dataset.samples],
        labels=dataset.label_matrix(),
        arrays=arrays,
        errors=errors,
    )
