"""How each model stage forwards on this machine: memory layout, batch size, threads.

The same model computes the same function in any memory layout and batch size, up to float
rounding (docs/scale.md measures the logit difference), but not at the same speed: on a CPU a
convolutional network given channels-last (NHWC) memory runs oneDNN's fast kernels, and the
best batch size depends on the caches. So each distinct model stage forwards in the layout and batch
size a short probe on its first real inputs finds fastest, and the choice is kept per machine and
model stage under the sysnoise cache folder, so later runs skip the probe. A batch size the user
gives is kept as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sysnoise.engine.cache import cache_root
from sysnoise.environment import cpu_name

CONTIGUOUS, CHANNELS_LAST = "contiguous", "channels-last"
DEFAULT_BATCH = 16  # samples the loader hands over per step; the forward's batch where nothing is probed
PROBE_BATCHES = (4, 8, 16, 32)
PROBE_SECONDS = 3.0  # past this a probe tries no larger batch (its forwards are extra work)
LAYOUT_MARGIN = 0.05  # channels-last only where it is this much faster: a change of layout changes rounding
CACHE_FILE = "forward-plans.json"


@dataclass(frozen=True)
class ForwardPlan:
    """How one model stage forwards: `batch_size` inputs at a time in `layout`, and why."""

    batch_size: int
    layout: str = CONTIGUOUS
    chosen_by: str = "default"  # probe | cache | --batch-size (layout by probe) | fixed | default (not images)
    per_image_ms: dict = field(default_factory=dict)  # candidate "layout/batch" -> measured milliseconds

    def to_dict(self) -> dict:
        return asdict(self)


def model_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads for the model beside `workers` pre-processing processes: $SYSNOISE_THREADS or
    $OMP_NUM_THREADS if set (the user's choice, or torchrun's one per rank), else the cores the
    workers leave free, at least one (docs/scale.md measures the alternatives on two cores)."""
    for variable in ("SYSNOISE_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(variable, "").isdigit() and int(os.environ[variable]) > 0:
            return int(os.environ[variable])
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores - workers)


def to_layout(model, layout: str) -> None:
    """The model's 4-D parameters and buffers into `layout`, in place (values unchanged)."""
    import torch

    if isinstance(model, torch.nn.Module):
        model.to(memory_format=torch.channels_last if layout == CHANNELS_LAST else torch.contiguous_format)


class Planned:
    """`model` called with its input batch in the plan's memory layout."""

    def __init__(self, model, plan: ForwardPlan):
        self.model, self.plan = model, plan

    def __call__(self, x):
        import torch

        if self.plan.layout == CHANNELS_LAST and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)


def convolutional(model) -> bool:
    """A torch module with 2-D convolutions: the models whose speed depends on the memory layout."""
    import torch

    return isinstance(model, torch.nn.Module) and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def image_batch(inputs: list) -> bool:
    return bool(inputs) and all(np.asarray(i).ndim == 3 for i in inputs[:1])


def machine_signature(device: str) -> dict:
    """What the speed of a forward depends on besides the model: processor, cores, threads, torch."""
    import torch

    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device,
        "gpu": gpu,
    }


def model_signature(model) -> str:
    """The model's structure (class, parameter names, shapes and dtypes), not its values: what its
    speed depends on."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return type(model).__qualname__
    parts = [type(model).__qualname__] + [
        f"{name}:{tuple(t.shape)}:{t.dtype}" for name, t in model.state_dict().items() if hasattr(t, "shape")
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def measure(model, inputs: list, layout: str, batch_size: int, device: str) -> float:
    """Seconds per input of `model` forwarding a batch of `batch_size` (the inputs repeated as
    needed) in `layout`: the best of two runs after one untimed (kernels are chosen on the first)."""
    import torch

    repeated = [inputs[i % len(inputs)] for i in range(batch_size)]
    x = torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) for i in repeated])).to(device)
    to_layout(model, layout)
    planned = Planned(model, ForwardPlan(batch_size, layout))
    best = float("inf")
    with torch.inference_mode():
        for attempt in range(3):
            started = time.perf_counter()
            planned(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if attempt:
                best = min(best, time.perf_counter() - started)
    return best / batch_size


def probe(
    model, inputs: list, device: str, batch_size: int | None = None, budget_s: float = PROBE_SECONDS
) -> ForwardPlan:
    """The fastest layout, then (unless given) the fastest batch size, measured on `inputs` (all
    of one shape). Channels-last is tried only on convolutional models and kept only where it is
    LAYOUT_MARGIN faster; larger batches are tried while they keep getting faster."""
    started = time.perf_counter()
    first = batch_size or 8
    times: dict[tuple[str, int], float] = {(CONTIGUOUS, first): measure(model, inputs, CONTIGUOUS, first, device)}
    layout = CONTIGUOUS
    if convolutional(model):
        times[CHANNELS_LAST, first] = measure(model, inputs, CHANNELS_LAST, first, device)
        if times[CHANNELS_LAST, first] < (1 - LAYOUT_MARGIN) * times[CONTIGUOUS, first]:
            layout = CHANNELS_LAST
    if batch_size is None:
        for size in (4, *[b for b in PROBE_BATCHES if b > first]):
            left = budget_s - (time.perf_counter() - started)
            if 3 * size * times[layout, first] > left:
                break
            best_so_far = min(t for (lay, _), t in times.items() if lay == layout)
            times[layout, size] = measure(model, inputs, layout, size, device)
            if size > first and times[layout, size] > best_so_far:
                break  # larger batches stopped paying
    chosen = min((b for (lay, b) in times if lay == layout), key=lambda b: times[layout, b])
    to_layout(model, layout)
    return ForwardPlan(
        chosen,
        layout,
        "probe" if batch_size is None else "--batch-size; layout by probe",
        {f"{lay}/{b}": round(1000 * t, 2) for (lay, b), t in sorted(times.items())},
    )


class Planner:
    """Each model stage's ForwardPlan, chosen on its first inputs (probed, or read from the cache
    of earlier probes on this machine), and the forwards run by it. `record` receives each stage's
    plan for results.json."""

    def __init__(
        self, batch_size: int | None, device: str, record: dict, cache_dir: Path | None = None, probe: bool = True
    ):
        self.batch_size, self.device, self.record, self.probe = batch_size, device, record, probe
        self.cache_file = (cache_dir or cache_root()) / CACHE_FILE
        self.plans: dict = {}

    def forward(self, task, key, model, inputs: list):
        if key not in self.plans:
            self.plans[key] = self.choose(key, model, inputs)
            self.record[str(key)] = self.plans[key].to_dict()
        plan = self.plans[key]
        # only a channels-last plan wraps the model: a task may read the model's own attributes
        planned = Planned(model, plan) if plan.layout == CHANNELS_LAST else model
        return task.forward(planned, inputs, plan.batch_size, self.device)

    def choose(self, stage, model, inputs: list) -> ForwardPlan:
        if not self.probe:
            return ForwardPlan(self.batch_size or DEFAULT_BATCH, CONTIGUOUS, "fixed (no probe: the stage adapts)")
        if not image_batch(inputs):
            return ForwardPlan(self.batch_size or DEFAULT_BATCH)
        shape = np.asarray(inputs[0]).shape
        same = [i for i in inputs if np.asarray(i).shape == shape][: max(PROBE_BATCHES)]
        key = hashlib.sha256(
            json.dumps(
                [machine_signature(self.device), str(stage), model_signature(model), shape, self.batch_size],
                sort_keys=True,
            ).encode()
        ).hexdigest()
        cached = self._read_cache().get(key)
        if cached:
            plan = ForwardPlan(cached["batch_size"], cached["layout"], "cache", cached["per_image_ms"])
            to_layout(model, plan.layout)
            return plan
        plan = probe(model, same, self.device, self.batch_size)
        self._write_cache(key, plan)
        return plan

    def _read_cache(self) -> dict:
        try:
            return json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return {}

    def _write_cache(self, key: str, plan: ForwardPlan) -> None:
        """Best effort (a read-only cache folder only costs the next run a probe); atomic, so
        concurrent runs never read half a file."""
        entries = {**self._read_cache(), key: plan.to_dict()}
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_name(f".{CACHE_FILE}.{os.getpid()}")
            tmp.write_text(json.dumps(entries, indent=1))
            os.replace(tmp, self.cache_file)
        except OSError:
            pass
