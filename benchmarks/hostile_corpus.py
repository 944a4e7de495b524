"""Every file of Pillow's own test images through every decoder: bounded memory, no hang, no traceback.

    nice .venv/bin/python benchmarks/hostile_corpus.py [--cache DIR] [--workers 1] [--json FILE]

Pillow's sdist (the installed version) is downloaded once with pip into --cache (default
~/.cache/sysnoise-bench; offline: says so and exits 0) and its Tests/images unpacked there:
images of every format, crafted crashers, fuzzer finds (`timeout-*`, `crash-*`) and non-image
files, all of them named in one list file. A child process evaluates them as a sysnoise run
does (DataLoader workers, the `decoder` noise with every option, a tiny CNN: the pre-processing
is what is measured) while this process samples the RSS of the child's whole process tree.

Reports: peak RSS (the tree's total and its largest process), wall time, the files skipped by
reason, the decoders' failures on files the reference decoded, and whether the child's stderr
holds a Python traceback. Targets (issue 18): peak RSS under 2.5 GB, no hang, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

TARGET_PEAK_MB = 2.5 * 1024


def fetch_images(cache: Path) -> Path | None:
    """Tests/images of the installed Pillow's sdist, unpacked under `cache`; None when offline."""
    release = version("pillow")
    images = cache / f"pillow-{release}" / "Tests" / "images"
    if images.is_dir():
        return images
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"pillow-{release}.tar.gz"
    if not archive.is_file():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                f"pillow=={release}",
                "-d",
                str(cache),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not archive.is_file():
            print(f"cannot download Pillow {release}'s sdist (offline?): {done.stderr.strip()[-300:]}")
            return None
    prefix = f"pillow-{release}/Tests/images/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and (m.isfile() or m.isdir())]
        tar.extractall(cache, members=members, filter="data")
    return images


def write_list(images: Path) -> Path:
    """Every file under `images`, one relative path a line (unlabeled)."""
    files = sorted(p.relative_to(images).as_posix() for p in images.rglob("*") if p.is_file())
    listing = images.parent / "all-images.txt"
    listing.write_text("".join(f"{name}\n" for name in files))
    return listing


def child(images: str, listing: str, out: str, workers: int) -> None:
    import torch

    from sysnoise import api
    from sysnoise.engine.execute import EngineOptions
    from sysnoise.models import wrap_module
    from sysnoise.pipeline.spec import Pipeline

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, 2, 1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    )
    loaded = wrap_module(model, reference=Pipeline(input_size=64), num_classes=10)
    api.run(
        loaded,
        images,
        list_file=listing,
        noises=["decoder"],
        out=out,
        figures=False,
        fresh=True,
        options=EngineOptions(batch_size=16, workers=workers, progress=False),
    )


def tree_rss(root: int) -> tuple[int, int]:
    """(total, largest) resident bytes of `root` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    sizes = []
    for pid in tree:
        try:
            sizes.append(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
        except OSError:
            continue
    return sum(sizes), max(sizes, default=0)


def reason_kind(reason: str) -> str:
    """A skip reason without its particulars: the text before the first colon, numbers as N."""
    return re.sub(r"\d+", "N", reason.split(":", 1)[0]).strip()


def measure(images: Path, out: Path, workers: int, limit_s: float) -> dict:
    listing = write_list(images)
    command = [sys.executable, __file__, "--child", str(images), str(listing), str(out), str(workers)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_total = peak_largest = 0
    while process.poll() is None and time.perf_counter() - started < limit_s:
        total, largest = tree_rss(process.pid)
        peak_total, peak_largest = max(peak_total, total), max(peak_largest, largest)
        time.sleep(0.1)
    hung = process.poll() is None
    if hung:
        process.kill()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    return {
        "pillow": version("pillow"),
        "files": len(listing.read_text().splitlines()),
        "workers": workers,
        "exit_code": process.returncode,
        "hung": hung,
        "traceback": "Traceback (most recent call last)" in stderr,
        "stderr_tail": stderr[-2000:],
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_total / 2**20),
        "peak_rss_largest_process_mb": round(peak_largest / 2**20),
        "evaluated": results.get("reference", {}).get("n"),
        "n_corrupt": results.get("dataset", {}).get("n_corrupt"),
        "skipped_by_reason": dict(Counter(reason_kind(s["reason"]) for s in results.get("skipped", [])).most_common()),
        "decoder_failures": {column: len(rows) for column, rows in results.get("variant_failures", {}).items()},
        "limits": results.get("run", {}).get("limits"),
    }


def render(figures: dict) -> str:
    lines = [
        f"Pillow {figures['pillow']} Tests/images: {figures['files']} files, decoder noise (every option), "
        f"--workers {figures['workers']}",
        f"exit code {figures['exit_code']}, hung: {figures['hung']}, traceback: {figures['traceback']}",
        f"wall time {figures['seconds']} s; peak RSS {figures['peak_rss_mb']} MB (process tree), "
        f"{figures['peak_rss_largest_process_mb']} MB (largest process); target < {TARGET_PEAK_MB:.0f} MB",
        f"evaluated by the reference: {figures['evaluated']}; corrupt data: {figures['n_corrupt']}",
        "",
        "| skipped: reason | files |",
        "|---|---|",
        *[f"| {kind} | {n} |" for kind, n in figures["skipped_by_reason"].items()],
        "",
        "| decoder failures on files the reference decoded | files |",
        "|---|---|",
        *[f"| {column} | {n} |" for column, n in figures["decoder_failures"].items()],
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "sysnoise-bench"))
    parser.add_argument("--out", help="results folder of the run (default: CACHE/run)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--limit-s", type=float, default=3600, help="wall-clock limit; past it the run counts as hung")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child[:3], int(args.child[3]))
        return 0
    cache = Path(args.cache).expanduser()
    images = fetch_images(cache)
    if images is None:
        return 0
    figures = measure(images, Path(args.out or cache / "run"), args.workers, args.limit_s)
    print(render(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    ok = not figures["hung"] and not figures["traceback"] and figures["exit_code"] == 0
    return 0 if ok and figures["peak_rss_mb"] < TARGET_PEAK_MB else 1


if __name__ == "__main__":
    sys.exit(main())
