"""Peak memory does not grow with the number of images beyond the per-sample results.

    .venv/bin/python benchmarks/memory.py [--sizes 1000 10000]

Each size runs in a fresh process (a tiny CNN, small synthetic JPEGs, 5 pipelines), so peak RSS
is that run's own. The per-sample results are ~40 bytes per sample per pipeline (top-5 classes
and probabilities) plus the sample list: the difference between sizes should be about that.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
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
    from sysnoise.models import wrap_module
    from sysnoise.pipeline.spec import Pipeline

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
    loaded = wrap_module(model, reference=Pipeline(input_size=32), num_classes=10)
    started = time.perf_counter()
    api.run(loaded, folder, noises=NOISES, out=out, figures=False,
            options=EngineOptions(batch_size=32, workers=1, progress=False))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the pre-processing worker
    print(f"{time.perf_counter() - started:.1f} {own} {worker}")


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
            done = subprocess.run([sys.executable, __file__, "--child", str(images), str(Path(tmp) / f"out{n}")],
                                  capture_output=True, text=True, check=True)
            seconds, own, worker = done.stdout.strip().splitlines()[-1].split()
            rows.append((n, int(own) / 1024, float(seconds), int(worker) / 1024))
    print(f"\n{'images':>8}{'main peak RSS MiB':>19}{'worker peak MiB':>17}{'seconds':>10}")
    for n, mib, seconds, worker in rows:
        print(f"{n:>8}{mib:>19.1f}{worker:>17.1f}{seconds:>10.1f}")
    if len(rows) >= 2:
        (n0, m0, _, _), (n1, m1, _, _) = rows[0], rows[-1]
        per_sample = (m1 - m0) * 1024 * 1024 / (n1 - n0)
        print(f"growth: {m1 - m0:.1f} MiB for {n1 - n0} more images = {per_sample:.0f} bytes per image "
              f"(5 pipelines; target: per-sample results only, a few hundred bytes)")


if __name__ == "__main__":
    main()
