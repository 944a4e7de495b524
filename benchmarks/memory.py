"""Peak memory does not grow with the number of images beyond the per-sample results.

    .venv/bin/python benchmarks/memory.py [--sizes 1000 10000]

Each size runs in a fresh process (a tiny CNN, small synthetic JPEGs, 5 pipelines), so peak RSS
is that run's own. What a run must keep per sample is measured in the same process: the sample
list (tracemalloc while reading the folder) and the per-sample results (the bytes of the arrays in
outputs.npz: top-5 classes and probabilities, error strings, labels). The growth of peak RSS
between sizes should be about their sum, and nothing else (at most one more copy of the results:
the chunks are concatenated into the run's arrays at the end).
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

NOISES = ["resize=opencv-area,opencv-bilinear,pillow-nearest", "precision=fp16"]


def make_images(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(np.roll(base, i % 64, axis=1)).save(buffer, "JPEG", quality=90)
        (folder / f"{i:06d}.jpg").write_bytes(buffer.getvalue())


def child(folder: str, out: str) -> None:
    import torch

    from sysnoise import api
    from sysnoise.engine.execute import EngineOptions
    from sysnoise.engine.outputs import RunOutputs
    from sysnoise.models import wrap_module
    from sysnoise.pipeline.spec import Pipeline
    from sysnoise.tasks.classification import read_dataset

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, 2, 1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(3, 2, 1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    )
    loaded = wrap_module(model, reference=Pipeline(input_size=32), num_classes=10)
    tracemalloc.start()
    dataset = read_dataset(folder)
    sample_list = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    started = time.perf_counter()
    api.run(
        loaded,
        dataset,
        noises=NOISES,
        out=out,
        figures=False,
        options=EngineOptions(batch_size=32, workers=1, progress=False),
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the pre-processing worker
    seconds = time.perf_counter() - started
    outputs = RunOutputs.load(Path(out) / "outputs.npz")
    results = (
        outputs.labels.nbytes
        + sum(a.nbytes for column in outputs.arrays.values() for a in column.values())
        + sum(e.nbytes for e in outputs.errors.values())
    )
    print(f"{seconds:.1f} {own} {worker} {sample_list} {results}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            images = Path(tmp) / f"images{n}"
            make_images(images, n)
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(images), str(Path(tmp) / f"out{n}")],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds, own, worker, sample_list, results = done.stdout.strip().splitlines()[-1].split()
            rows.append((n, int(own) / 1024, float(seconds), int(worker) / 1024, int(sample_list), int(results)))
    print(
        f"\n{'images':>8}{'main peak RSS MiB':>19}{'worker peak MiB':>17}{'seconds':>10}"
        f"{'sample list B/image':>21}{'results B/image':>17}"
    )
    for n, mib, seconds, worker, sample_list, results in rows:
        print(f"{n:>8}{mib:>19.1f}{worker:>17.1f}{seconds:>10.1f}{sample_list / n:>21.0f}{results / n:>17.0f}")
    if len(rows) >= 2:
        (n0, m0, *_, l0, r0), (n1, m1, *_, l1, r1) = rows[0], rows[-1]
        per_sample = (m1 - m0) * 1024 * 1024 / (n1 - n0)
        kept = ((l1 + r1) - (l0 + r0)) / (n1 - n0)
        print(
            f"growth: {m1 - m0:.1f} MiB for {n1 - n0} more images = {per_sample:.0f} bytes per image; "
            f"what must be kept: {kept:.0f} bytes per image (sample list + results of 5 pipelines); "
            f"target: growth within that plus one copy of the results ({kept + (r1 - r0) / (n1 - n0):.0f})"
        )


if __name__ == "__main__":
    main()
