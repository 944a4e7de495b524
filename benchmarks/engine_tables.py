"""Markdown tables of the deployment engines from sysnoise results folders (docs/inference.md).

    python benchmarks/engine_tables.py RESULTS_DIR [RESULTS_DIR ...]

One table per folder: per `runtime` option its delta of the task metric (with the 95% interval),
flip rate and agreement with the reference, the build time and the engine's own inference time
per image (results.json run.model_stages[...].runtime_detail.timing), or the reason it is n/a
(a build failure's error).
Pre-processing variants (resize, colour) get delta, flip rate and agreement only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _stages_by_runtime(results: dict) -> dict:
    return {stage.get("runtime"): stage for stage in results["run"]["model_stages"].values()}


def _number(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _timing(stage: dict) -> tuple[str, str]:
    timing = (stage or {}).get("runtime_detail", {}).get("timing") or {}
    images = timing.get("images") or 0
    per_image = 1000 * timing["inference_seconds"] / images if images else None
    return _number(timing.get("build_seconds"), 1), _number(per_image, 1)


def table(folder: Path) -> str:
    results = json.loads((folder / "results.json").read_text())
    metric = results["reference"].get("metric", "top1")
    reference = results["reference"].get(metric)
    stages = _stages_by_runtime(results)
    lines = [
        f"{results['model']['name']} on {results['dataset'].get('name') or folder.name}: reference {metric} "
        f"{_number(reference)}, n = {results['reference']['n']}",
        "",
        f"| variant | delta {metric} [95% CI] | flip rate % | agreement % | build s | inference ms/image |",
        "|---|---|---|---|---|---|",
    ]
    for variant in results["variants"]:
        stage = stages.get(variant["option"]) if variant["noise"] == "runtime" else None
        if stage and "error" in stage:  # a build failure: every sample failed, the reason is the result
            reason = " ".join(stage["error"].replace("model stage could not be built: ", "").split())
            lines.append(f"| {variant['id']} | n/a: {reason[:240].replace('|', '/')} | | | | |")
            continue
        ci = variant.get("delta_ci") or [None, None]
        flip = variant.get("flip_rate")
        build, per_image = _timing(stage) if stage else ("", "")
        failed = f" ({variant['n_failed']} failed)" if variant.get("n_failed") else ""
        lines.append(
            f"| {variant['id']}{failed} | {_number(variant.get('delta'))} [{_number(ci[0])}, {_number(ci[1])}] "
            f"| {_number(flip)} | {_number(None if flip is None else 100 - flip)} | {build} | {per_image} |"
        )
    for row in results["noises"]:
        for option, reason in {
            **row.get("unavailable", {}),
            **{o: "n/a for this model" for o in row.get("not_applicable", [])},
        }.items():
            lines.append(f"| {row['name']}/{option} | n/a: {reason} | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(table(Path(arg)) for arg in sys.argv[1:]))
