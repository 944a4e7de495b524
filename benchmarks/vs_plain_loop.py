"""sysnoise against a plain per-variant script, each as its own process: whole-process wall time,
interleaved rounds (the order alternates, so a machine's drift lands on both), medians and ratio.

    .venv/bin/python benchmarks/vs_plain_loop.py [--data demo|scenes|LIST] [--model efficientnet_lite0]
                                                 [--rounds 4] [--limit N] [--json FILE]

The pipelines: the model's reference, its resize swapped for each of 11 Pillow / OpenCV kernels
(the reference's own among them), and the OpenCV decoder: 12 pipelines. The plain script
(`plain_loop.py`) evaluates them one after another, decoding every image again for each;
`sysnoise run` evaluates them in one pass with its defaults (reports and figures included). Both
print per-pipeline accuracies, compared here so the two are known to compute the same thing. One
untimed `sysnoise run` first lets the forward probe (engine/forward_plan.py) keep its choice in
the cache, as every run after a machine's first finds it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
RESIZES = [
    "pillow-bilinear",
    "pillow-nearest",
    "pillow-box",
    "pillow-hamming",
    "pillow-bicubic",
    "pillow-lanczos",
    "opencv-nearest",
    "opencv-bilinear",
    "opencv-area",
    "opencv-bicubic",
    "opencv-lanczos4",
]


def list_file(data: str, limit: int | None, folder: Path) -> Path:
    """The data as a list file of absolute paths (the first `limit` samples), which both processes read."""
    if data == "demo":
        from sysnoise.zoo.photos import materialise

        path = Path(materialise())
    elif Path(data).is_file():
        path = Path(data)
    else:
        from sysnoise.zoo.datasets import resolve_dataset

        path = Path(resolve_dataset(data))
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    lines = lines[:limit] if limit else lines
    out = folder / "list.txt"
    out.write_text("".join(f"{path.parent / line}\n" for line in lines))
    return out


def commands(model: str, listed: Path, out: Path, extra: list[str]) -> dict[str, list[str]]:
    from sysnoise.api import load_model

    reference = load_model(model).reference
    variants = [f"{reference.decoder}:{reference.resize}"] + [f"pillow:{r}" for r in RESIZES if r != reference.resize]
    variants.append(f"opencv:{reference.resize}")
    plain = [
        sys.executable,
        str(HERE / "plain_loop.py"),
        "--model",
        model,
        "--list",
        str(listed),
        "--size",
        str(reference.input_size),
        "--crop-pct",
        str(reference.crop_pct),
        "--mean",
        *map(str, reference.mean),
        "--std",
        *map(str, reference.std),
        "--json",
        str(out / "plain.json"),
    ]
    plain += [arg for v in variants for arg in ("--variant", v)]
    resizes = ",".join(r for r in RESIZES if r != reference.resize)
    sysnoise = [
        sys.executable,
        "-m",
        "sysnoise",
        "run",
        "--model",
        model,
        "--data",
        str(listed),
        "--noise",
        f"resize={resizes}",
        "--noise",
        "decoder=opencv",
        "--out",
        str(out / "sysnoise"),
        "--allow-outside-root",
        "--fresh",
        "--quiet",
        *extra,
    ]
    return {"plain": plain, "sysnoise": sysnoise}


def timed(command: list[str], threads: int | None = None) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def agreement(out: Path) -> list[tuple[str, float, float]]:
    """(pipeline, plain accuracy, sysnoise accuracy) for each of the 12."""
    plain = json.loads((out / "plain.json").read_text())
    results = json.loads((out / "sysnoise" / "results.json").read_text())
    ours = {
        (c["pipeline"]["decoder"], c["pipeline"]["resize"]): c["top1"]
        for c in [results["reference"], *results["variants"]]
    }
    return [(v, acc, ours.get(tuple(v.split(":")), float("nan"))) for v, acc in plain.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--sysnoise-arg", action="append", default=[], help="extra `sysnoise run` argument")
    parser.add_argument("--plain-threads", type=int, help="torch threads of the plain script (default: torch's)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        listed = list_file(args.data, args.limit, out)
        runs = commands(args.model, listed, out, args.sysnoise_arg)
        timed(runs["sysnoise"])  # untimed: the forward plan probed once and cached, as on any later run
        seconds: dict[str, list[float]] = {"plain": [], "sysnoise": []}
        for round_ in range(args.rounds):
            for name in ("plain", "sysnoise") if round_ % 2 == 0 else ("sysnoise", "plain"):
                seconds[name].append(timed(runs[name], args.plain_threads if name == "plain" else None))
                print(
                    f"round {round_ + 1}: {name} {seconds[name][-1]:.1f} s (load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        checks = agreement(out)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    threads = f"plain with {args.plain_threads or 'torch default'} threads"
    print(
        f"\n{args.model} on {args.data}, 12 pipelines, {args.rounds} interleaved rounds (whole-process wall time, "
        f"{threads})"
    )
    for name, values in seconds.items():
        print(f"  {name:<9} median {median[name]:6.1f} s   rounds {', '.join(f'{v:.1f}' for v in values)}")
    print(f"  plain / sysnoise = {median['plain'] / median['sysnoise']:.2f}x   (target >= 1.15x)")
    differ = [c for c in checks if abs(c[1] - c[2]) > 1e-9]
    print(
        f"  per-pipeline accuracy: {len(checks) - len(differ)} of {len(checks)} equal in both"
        + "".join(f"\n    differs: {v}: plain {a:.2f}, sysnoise {b:.2f}" for v, a, b in differ)
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": seconds, "median": median, "accuracy": checks}, indent=1))


if __name__ == "__main__":
    main()
