"""Walk the dataset once and fill every column of the plan.

Per batch: worker processes read each file once and compute every distinct pre-processing node
(pipeline.preprocess); the main process then runs each distinct model stage once per distinct
input. Inputs are deduplicated by content, so a variant whose pixels come out bit-identical to
another's (two decoders that agree, say) costs no forward pass at all. Each column's
post-processing (Task.finish) then runs on the shared forward outputs, so columns that differ
only after the model (NMS, box decoding) share the forward too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sysnoise.engine.outputs import RAGGED_BYTES, RAGGED_LENGTHS, RunOutputs
from sysnoise.engine.plan import Column, Plan
from sysnoise.engine.store import ChunkStore
from sysnoise.errors import SampleError
from sysnoise.inference.build import BuildFailure, build_models
from sysnoise.tasks.base import Task


@dataclass
class EngineOptions:
    batch_size: int = 16
    workers: int = 1  # pre-processing processes beside the model's; 0 = in the main process
    chunk_size: int = 256  # samples committed to disk together (the unit of resume)
    progress: bool = True
    device: str = "cpu"
    cache_dir: str | None = None  # on-disk cache of pre-processed inputs (engine.cache)
    forward_counter: dict = field(default_factory=dict)  # model key -> inputs forwarded (for tests, benchmarks)
    model_info: dict = field(default_factory=dict)  # model key -> what was built (export, runtime, quantization)


class _Source:
    """Map-style dataset for torch's DataLoader: position -> (position, {tensor key: input | error})."""

    def __init__(self, task: Task, samples: list, pipelines, cache=None):
        self.task, self.samples, self.pipelines, self.cache = task, samples, pipelines, cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, position: int):
        if self.cache is None:  # tasks without an input cache keep their simpler signature
            return position, self.task.load_input(self.samples[position], self.pipelines)
        return position, self.task.load_input(self.samples[position], self.pipelines, cache=self.cache)


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # two cores: one worker decodes while the main process runs the model


def _batches(positions: list[int], chunk_size: int, batch_size: int):
    """Batches that never straddle a chunk, so each chunk can be committed when its last batch ends."""
    for chunk_start in range(0, len(positions), chunk_size):
        chunk = positions[chunk_start : chunk_start + chunk_size]
        for start in range(0, len(chunk), batch_size):
            yield chunk[start : start + batch_size]


def evaluate(
    loaded_model,
    dataset,
    plan: Plan,
    store: ChunkStore | None = None,
    options: EngineOptions | None = None,
    on_progress: Callable[[int], None] | None = None,
    task: Task | None = None,
    calibration: list | None = None,
) -> RunOutputs | None:
    """Fill every column; under torchrun, rank 0 gets the RunOutputs and other ranks None.

    calibration: samples, disjoint from `dataset`, that INT8 model stages calibrate on (as
    inputs made by the reference pipeline)."""
    import torch

    from sysnoise.engine import distributed
    from sysnoise.engine.cache import InputCache
    from sysnoise.tasks.classification import ClassificationTask

    task = task or ClassificationTask()
    options = options or EngineOptions()
    columns = plan.columns
    n = len(dataset.samples)
    n_chunks = (n + options.chunk_size - 1) // options.chunk_size
    chunk_of = lambda position: position // options.chunk_size  # noqa: E731
    rank, world = distributed.rank_and_world()
    mine = [index for index in range(n_chunks) if index % world == rank]

    results: dict[int, dict[str, np.ndarray]] = {}
    if store is not None:
        for index in mine:
            if store.done(index):
                results[index] = store.read(index)
    todo = [p for p in range(n) if chunk_of(p) in mine and chunk_of(p) not in results]
    if on_progress:
        on_progress(n - len(todo))

    models = {}
    if todo:
        models = build_models(loaded_model.module, plan.model_pipelines(), reference=plan.reference,
                              calibration_samples=calibration, task=task, batch_size=options.batch_size,
                              device=options.device, info=options.model_info)

    pending: dict[int, dict[int, dict]] = {}  # chunk -> position -> column index -> outputs/error
    cache = InputCache(options.cache_dir) if options.cache_dir else None
    source = _Source(task, dataset.samples, plan.tensor_pipelines(), cache)
    loader = torch.utils.data.DataLoader(
        source,
        batch_sampler=list(_batches(todo, options.chunk_size, options.batch_size)),
        num_workers=options.workers,
        collate_fn=lambda items: items,
        worker_init_fn=_worker_init if options.workers else None,
    )
    with torch.inference_mode():
        for batch in loader:
            _run_batch(task, batch, columns, models, options, pending)
            for chunk in sorted({chunk_of(position) for position, _ in batch}):
                chunk_positions = range(chunk * options.chunk_size, min(n, (chunk + 1) * options.chunk_size))
                if len(pending[chunk]) == len(chunk_positions):
                    results[chunk] = _chunk_arrays(task, pending.pop(chunk), chunk_positions, columns)
                    if store is not None:
                        store.write(chunk, results[chunk])
            if on_progress:
                on_progress(len(batch))

    if world > 1:
        results = distributed.gather_to_rank0(results)
        if results is None:
            return None
    return _assemble(results, n_chunks, columns, dataset)


def _run_batch(task: Task, batch, columns: list[Column], models, options: EngineOptions, pending) -> None:
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
        outputs = task.forward(model, arrays, options.batch_size, options.device)
        for position, index, content in wanted:
            row = unique[content]
            raw = {name: values[row] for name, values in outputs.items()}
            per_column[position][index] = _finish(task, columns[index], raw, inputs[position][columns[index].tensor_key])
    for position in positions:
        pending.setdefault(position // options.chunk_size, {})[position] = per_column[position]


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


def _assemble(results, n_chunks: int, columns: list[Column], dataset) -> RunOutputs:
    arrays: dict[str, dict[str, np.ndarray]] = {}
    errors: dict[str, np.ndarray] = {}
    chunks = [results[i] for i in range(n_chunks)]
    for index, column in enumerate(columns):
        prefix = f"c{index}."
        names = [k[len(prefix):] for k in chunks[0] if k.startswith(prefix)] if chunks else []
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
