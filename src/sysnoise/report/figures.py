"""Pictures for the report, made once at run time so that `sysnoise report` re-renders from stored
files only: the pixel difference between the reference's and a variant's pre-processing of one
sample (amplified, as the paper's Fig. 5), and the model inputs behind flipped predictions.

Only pre-processing runs here (cheap, a few samples); predictions come from the stored outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sysnoise.analysis.combine import worst_rows
from sysnoise.data.formats import read_bytes
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Column
from sysnoise.errors import SampleError
from sysnoise.pipeline.preprocess import pixels
from sysnoise.pipeline.spec import Pipeline

MAX_DIFFERENCES = 4
MAX_FLIPS = 6
FOLDER = "figures"
KINDS = ("correct->wrong", "wrong->correct", "changed")  # most telling first


@dataclass(frozen=True)
class Measured:
    """A variant column with the outputs it was measured in (single-noise or combined pass)."""

    column: Column
    outputs: RunOutputs


@dataclass(frozen=True)
class Flip:
    measured: Measured
    position: int  # sample position in the outputs
    kind: str


def flips_of(measured: Measured) -> list[Flip]:
    """Samples whose top-1 the variant changed (variant failures excluded: no prediction to show)."""
    out = measured.outputs
    if "topk" not in out.arrays[out.column_ids[0]]:  # detection, segmentation: no single answer to flip
        return []
    ref_top = out.arrays[out.column_ids[0]]["topk"][:, 0]
    var_top = out.arrays[measured.column.id]["topk"][:, 0]
    went_through = out.valid & (out.errors[measured.column.id] == "")
    labels = out.labels
    labeled = (labels >= 0).any(axis=1)
    ref_right = (labels == ref_top[:, None]).any(axis=1)
    var_right = (labels == var_top[:, None]).any(axis=1)
    flips = []
    for position in np.flatnonzero(went_through & (ref_top != var_top)):
        if labeled[position] and ref_right[position] and not var_right[position]:
            kind = KINDS[0]
        elif labeled[position] and var_right[position] and not ref_right[position]:
            kind = KINDS[1]
        else:
            kind = KINDS[2]
        flips.append(Flip(measured, int(position), kind))
    return flips


def pick_flips(measured: list[Measured], limit: int = MAX_FLIPS) -> list[Flip]:
    """The most telling flips first (correct->wrong), never the same sample twice, spread out:
    a first pass takes one flip of each kind, a second only unseen noises, a third the rest."""
    candidates = [f for m in measured for f in flips_of(m)]
    candidates.sort(key=lambda f: KINDS.index(f.kind))  # stable: keeps column and sample order
    chosen: list[Flip] = []
    sample_of = lambda f: f.measured.outputs.sample_ids[f.position]  # noqa: E731
    passes = (
        lambda f: f.kind not in {c.kind for c in chosen},
        lambda f: f.measured.column.noise not in {c.measured.column.noise for c in chosen},
        lambda f: True,
    )
    for wanted in passes:
        for flip in candidates:
            if len(chosen) == limit:
                return chosen
            if sample_of(flip) not in {sample_of(c) for c in chosen} and wanted(flip):
                chosen.append(flip)
    return chosen


def pick_differences(results: dict, measured: list[Measured]) -> list[tuple[Measured, int]]:
    """Candidates in order: per pre-processing noise its worst option, then the full combination
    and the deployment, each on a sample it flipped (the first valid sample when it flipped none).
    Only variants whose pixels can differ from the reference's at the same size qualify."""
    by_id = {m.column.id: m for m in measured}
    wanted = [row["id"] for row in worst_rows(results).values()]
    steps = results.get("stepwise", {}).get("steps", [])
    wanted += [steps[-1]["id"]] if steps else []
    wanted += ["deploy/full"] if "deploy" in results else []
    reference = Pipeline.from_dict(results["reference"]["pipeline"])
    picks = []
    for variant_id in wanted:
        m = by_id.get(variant_id)
        if m is None:
            continue
        p = m.column.pipeline
        if p.prefix("geometry") == reference.prefix("geometry") or p.input_size != reference.input_size:
            continue
        flips = flips_of(m)
        valid = np.flatnonzero(m.outputs.valid)
        if flips or valid.size:
            picks.append((m, flips[0].position if flips else int(valid[0])))
    return picks


def amplified_difference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int, dict]:
    """|a - b| per channel, multiplied so that the largest differences (99.5th percentile of the
    non-zero ones, robust to a few outliers) reach full brightness; the factor is reported."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    nonzero = diff[diff > 0]
    factor = int(np.clip(round(255 / np.percentile(nonzero, 99.5)), 1, 128)) if nonzero.size else 1
    stats = {
        "max_abs": int(diff.max()),
        "mean_abs": float(diff.mean()),
        "changed_pct": float(100 * (diff > 0).mean()),
    }
    return np.clip(diff * factor, 0, 255).astype(np.uint8), factor, stats


def _panel(images: list[np.ndarray], gap: int = 6) -> np.ndarray:
    h = max(i.shape[0] for i in images)
    parts = []
    for index, image in enumerate(images):
        padded = np.full((h, image.shape[1], 3), 255, np.uint8)
        padded[: image.shape[0]] = image
        parts.append(padded)
        if index < len(images) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


def _pixels(path: Path, sample: str, pipelines: list[Pipeline]) -> dict[tuple, object]:
    """{geometry prefix: uint8 image, or a SampleError / None where there is no picture to show
    (a failed stage, or pixels stored past the geometry stage)}."""
    return pixels(read_bytes(path), pipelines, sample_id=sample)


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, "PNG", optimize=True)


def _prediction(outputs: RunOutputs, column_id: str, position: int, class_names) -> dict:
    index = int(outputs.arrays[column_id]["topk"][position, 0])
    return {
        "class": index,
        "name": class_names[index] if class_names and 0 <= index < len(class_names) else f"class {index}",
        "prob": float(outputs.arrays[column_id]["prob"][position, 0]),
    }


def make_figures(
    results: dict, measured: list[Measured], sample_paths: dict[str, Path], class_names, folder: Path
) -> dict:
    """Write figures/*.png under `folder` and return what the report needs to show them
    (paths relative to `folder`, captions' numbers, predictions with class names)."""
    target = folder / FOLDER
    for old in list(target.glob("difference-*.png")) + list(target.glob("flip-*.png")):
        old.unlink()  # a rerun must not leave pictures of another run behind
    reference = Pipeline.from_dict(results["reference"]["pipeline"])
    figures: dict[str, list] = {"differences": [], "flips": []}

    for m, position in pick_differences(results, measured):
        if len(figures["differences"]) == MAX_DIFFERENCES:
            break
        sample = m.outputs.sample_ids[position]
        try:
            nodes = _pixels(sample_paths[sample], sample, [reference, m.column.pipeline])
        except SampleError:
            continue  # the file went away since the run: no picture, the report says what it has
        a, b = nodes[reference.prefix("geometry")], nodes[m.column.pipeline.prefix("geometry")]
        if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.shape != b.shape:
            continue  # no picture, or sizes that differ (keep-ratio vs letterbox): no pixel-wise difference
        diff, factor, stats = amplified_difference(a, b)
        if stats["max_abs"] == 0:
            continue  # bit-identical pixels: nothing to see
        name = f"{FOLDER}/difference-{len(figures['differences']) + 1}.png"
        _save_png(_panel([a, b, diff]), folder / name)
        figures["differences"].append(
            {"variant": m.column.id, "sample": sample, "file": name, "amplification": factor, **stats}
        )

    class_names = list(class_names) if class_names else None
    for flip in pick_flips(measured):
        out, column = flip.measured.outputs, flip.measured.column
        sample = out.sample_ids[flip.position]
        try:
            node = _pixels(sample_paths[sample], sample, [column.pipeline])[column.pipeline.prefix("geometry")]
        except SampleError:
            continue
        if not isinstance(node, np.ndarray):
            continue
        name = f"{FOLDER}/flip-{len(figures['flips']) + 1}.png"
        _save_png(node, folder / name)
        labels = [int(v) for v in out.labels[flip.position] if v >= 0]
        figures["flips"].append(
            {
                "variant": column.id,
                "sample": sample,
                "file": name,
                "kind": flip.kind,
                "labels": [
                    {"class": v, "name": class_names[v] if class_names and v < len(class_names) else f"class {v}"}
                    for v in labels
                ],
                "reference": _prediction(out, out.column_ids[0], flip.position, class_names),
                "prediction": _prediction(out, column.id, flip.position, class_names),
            }
        )
    return figures
