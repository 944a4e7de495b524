"""Find the skew before spending hours on accuracy: compare two pipelines stage by stage on some
images, or find which known pipeline a device's own pre-processing output matches.

Pure logic over pipeline.preprocess: no model runs here. `diff_pipelines` reports, per stage
(decode, colour, geometry, normalise), the max/mean absolute difference, PSNR and the share of
pixels changed, the first stage where the two outputs diverge, and writes pictures of the
difference amplified (as the SysNoise paper's Fig. 5). `match_folder` scores the catalogue's
pre-processing options against arrays produced elsewhere and names the closest pipeline.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from sysnoise.errors import SampleError, UserInputError
from sysnoise.noises import NOISES, field_noises, split_spec
from sysnoise.pipeline import stored
from sysnoise.pipeline.preprocess import PIXEL_STAGES, Memo, stage_values
from sysnoise.pipeline.spec import Pipeline
from sysnoise.validate import load_pipeline, validate_pipeline


def resolve_pipeline(spec: str, reference: Pipeline) -> Pipeline:
    """'reference'; a YAML/JSON file (fields it leaves out come from the reference); or changes to the
    reference joined by '+': 'decoder=ffmpeg+resize=opencv-bilinear', 'opencv-area' (an option
    name that only one noise has), 'stored:DIR' or any Pipeline field, 'input_size=256'."""
    if spec == "reference":
        return reference
    if Path(spec).is_file():
        return load_pipeline(spec, base=reference)
    pipeline = reference
    for part in spec.split("+"):
        name, options = split_spec(part)
        option = ",".join(options or [])
        if options is None:
            owners = [n.name for n in NOISES if name in n.fn.options() and n.fn.stage != "misconfiguration"]
            if len(owners) != 1:
                hint = f"it belongs to {owners}" if owners else "no noise has it (see `sysnoise list`)"
                raise UserInputError(f"pipeline {spec!r}: cannot tell what {name!r} is: {hint}; write NOISE=OPTION")
            name, option = owners[0], name
        if name in NOISES:
            noise = NOISES(name)
            noise.chosen([option])  # checks the option exists
            pipeline = noise.apply(pipeline, option)
        elif name in Pipeline.__dataclass_fields__:
            try:
                pipeline = Pipeline.from_dict({**pipeline.to_dict(), name: _field_value(reference, name, option)})
            except (TypeError, ValueError) as err:
                raise UserInputError(f"pipeline {spec!r}: bad {name}: {err}") from None
        else:
            raise UserInputError(f"pipeline {spec!r}: {name!r} is neither a noise nor a pipeline field")
    return validate_pipeline(pipeline, f"pipeline {spec!r}")  # a field set directly (operators=...) names options too


def _field_value(reference: Pipeline, name: str, text: str):
    current = getattr(reference, name)
    if isinstance(current, tuple):
        return tuple(type(current[0])(v) if current else v for v in text.split(","))
    return type(current)(text)


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    """Pixel statistics of b against a. PSNR uses a 0-255 peak (uint8 stages only); None when identical."""
    if a.shape != b.shape:
        return {"comparable": False, "shapes": [list(a.shape), list(b.shape)]}
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    changed = (diff > 0).any(axis=-1) if (a.ndim == 3 and a.shape[-1] == 3) else (diff > 0)
    mse = float((diff**2).mean())
    out = {
        "comparable": True,
        "identical": bool(mse == 0.0),
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "changed_pct": float(100 * changed.mean()) if changed.size else 0.0,
    }
    if a.dtype == np.uint8:
        out["psnr_db"] = None if mse == 0 else float(10 * math.log10(255.0**2 / mse))
    return out


def difference_picture(a: np.ndarray, b: np.ndarray, gain: float | None = None) -> tuple[np.ndarray, float]:
    """(a | b | |a - b| x gain side by side, the gain used), as the paper's Fig. 5. gain None: the
    99.5th percentile of the difference shows white (the rare larger ones clip)."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    gain = float(gain) if gain else 255.0 / max(1.0, float(np.percentile(diff, 99.5)))
    amplified = np.clip(diff * gain, 0, 255).astype(np.uint8)
    gap = np.full((a.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([a, gap, b, gap, amplified], axis=1), gain


def _value_or_reason(value) -> tuple[np.ndarray | None, str | None]:
    if isinstance(value, SampleError):
        return None, str(value)
    if value is None:
        return None, "not computed (stored pixels enter later)"
    return value, None


def diff_pipelines(
    a: Pipeline, b: Pipeline, samples: Iterable, out: Path | None = None, gain: float | None = None
) -> dict:
    """samples: objects with .id and .path (a Dataset's samples). With `out`, writes one picture per
    image of the model-input pixels (geometry stage): a | b | amplified difference."""
    rows = []
    for sample in samples:
        try:
            data = Path(sample.path).read_bytes()
        except OSError as err:
            rows.append({"id": sample.id, "error": f"cannot read file: {err.strerror or err}", "stages": {}})
            continue
        memo = Memo()  # shared: the two pipelines decode once when they share a decoder
        va = stage_values(data, a, memo, sample.id)
        vb = stage_values(data, b, memo, sample.id)
        stages, first = {}, None
        for stage in PIXEL_STAGES:
            (xa, ea), (xb, eb) = _value_or_reason(va[stage]), _value_or_reason(vb[stage])
            if ea or eb:
                stages[stage] = {"comparable": False, "errors": [ea, eb]}
            else:
                stages[stage] = compare(xa, xb)
            if first is None and not stages[stage].get("identical", False):
                first = stage
        rows.append({"id": sample.id, "first_divergent_stage": first, "stages": stages})
        geometry = (va["geometry"], vb["geometry"])
        if (
            out is not None
            and all(isinstance(x, np.ndarray) for x in geometry)
            and geometry[0].shape == geometry[1].shape
        ):
            picture, used = difference_picture(*geometry, gain)
            rows[-1]["picture"] = {"path": str(_write_picture(out, sample.id, picture)), "gain": used}
    return {
        "a": a.to_dict(),
        "b": b.to_dict(),
        "changed_fields": {k: [x, y] for k, (x, y) in a.diff(b).items()},
        "first_divergent_stage_by_configuration": a.first_divergent_stage(b),
        "first_divergent_stage": _first_overall(rows),
        "summary": summarise(rows),
        "images": rows,
    }


def _first_overall(rows: list[dict]) -> str | None:
    firsts = [r["first_divergent_stage"] for r in rows if r.get("first_divergent_stage")]
    return min(firsts, key=PIXEL_STAGES.index) if firsts else None


def summarise(rows: list[dict]) -> dict:
    """Per stage over images: worst max, mean of means, mean PSNR over differing images, % identical."""
    out = {}
    for stage in PIXEL_STAGES:
        cells = [r["stages"][stage] for r in rows if r["stages"].get(stage, {}).get("comparable")]
        if not cells:
            out[stage] = {"n": 0}
            continue
        psnrs = [c["psnr_db"] for c in cells if c.get("psnr_db") is not None]
        out[stage] = {
            "n": len(cells),
            "identical_pct": 100 * sum(c["identical"] for c in cells) / len(cells),
            "max_abs": max(c["max_abs"] for c in cells),
            "mean_abs": float(np.mean([c["mean_abs"] for c in cells])),
            "changed_pct": float(np.mean([c["changed_pct"] for c in cells])),
            "psnr_db": float(np.mean(psnrs)) if psnrs else None,
        }
    return out


def _write_picture(folder: Path, sample_id: str, picture: np.ndarray) -> Path:
    from PIL import Image

    path = Path(folder) / "pictures" / (sample_id.replace("/", "__") + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path


# --- which pipeline does a device really run? ---


def device_arrays(folder: Path) -> dict[str, Path]:
    """{relative path without suffix: file} for the .npy/.png files under a device's output folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"{folder}: not a folder")
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".npy", ".png") and path.is_file():
            found[path.relative_to(folder).with_suffix("").as_posix()] = path
    if not found:
        raise UserInputError(f"{folder}: no .npy or .png files")
    return found


def _candidates(current: Pipeline) -> list[tuple[str, Pipeline]]:
    out = []
    for name in (*field_noises("pre-processing"), "channel-order"):  # the axes a device may differ on
        noise = NOISES(name)
        skip = noise.unavailable()
        for option in noise.chosen():
            if option not in skip:
                changed = noise.apply(current, option)
                if changed != current:
                    out.append((f"{name}={option}", changed))
    return out


def match_folder(
    device: Path, samples: list, reference: Pipeline, steps: int = 3, on_step: Callable[[int, str], None] | None = None
) -> dict:
    """Score the catalogue's pre-processing options against a device's arrays and name the closest
    pipeline, by greedy search from the reference: each step keeps the single change that lowers
    the mean absolute difference most, until none does (or an exact match). Sample ids are matched
    by relative path without suffix."""
    files = device_arrays(device)
    by_stem = {str(Path(s.id).with_suffix("")): s for s in samples}
    pairs = [(by_stem[stem], path) for stem, path in files.items() if stem in by_stem]
    if not pairs:
        raise UserInputError(f"{device}: no file matches a source image by relative name (e.g. {next(iter(files))})")
    targets, unreadable = [], []
    for sample, path in pairs:
        try:
            array = stored.read_array(path)
            targets.append(
                (sample, Path(sample.path).read_bytes(), array, stored.infer_stage(array, reference.input_size))
            )
        except (SampleError, OSError) as err:
            unreadable.append({"id": sample.id, "file": str(path), "reason": str(err)})
    if not targets:
        raise UserInputError(f"{device}: no readable pair of device array and source image; first: {unreadable[0]}")
    memos = [Memo() for _ in targets]

    def score(pipeline: Pipeline) -> dict:
        diffs, exact = [], 0
        for memo, (sample, data, array, stage) in zip(memos, targets):
            value = stage_values(data, pipeline, memo, sample.id)[stage]
            if not isinstance(value, np.ndarray) or value.shape != array.shape:
                diffs.append(math.inf)
                continue
            d = np.abs(value.astype(np.float64) - array.astype(np.float64))
            diffs.append(float(d.mean()))
            exact += int(d.max() == 0)
        return {"mean_abs": float(np.mean(diffs)), "exact_pct": 100 * exact / len(targets)}

    best, best_score, path = reference, score(reference), []
    first_ranking = None
    for step in range(steps):
        if best_score["exact_pct"] == 100:
            break
        scored = sorted(((score(p), label, p) for label, p in _candidates(best)), key=lambda t: t[0]["mean_abs"])
        if first_ranking is None:
            first_ranking = [{"change": label, **s} for s, label, _ in scored[:10]]
        if not scored or scored[0][0]["mean_abs"] >= best_score["mean_abs"]:
            break
        best_score, label, best = scored[0]
        path.append({"change": label, **best_score})
        if on_step:
            on_step(step, label)
    stages = sorted({t[3] for t in targets}, key=PIXEL_STAGES.index)
    return {
        "device": str(device),
        "n_matched": len(targets),
        "n_unmatched": len(files) - len(pairs),
        "unreadable": unreadable,
        "stages": stages,
        "reference": {"pipeline": reference.to_dict(), **score(reference)},
        "closest": {
            "pipeline": best.to_dict(),
            "changes": path,
            **best_score,
            "changed_fields": {k: [x, y] for k, (x, y) in reference.diff(best).items()},
        },
        "single_changes_ranked": first_ranking or [],
    }


def render_diff(result: dict) -> str:
    """Plain-text summary of diff_pipelines for the terminal."""
    lines = []
    changed = result["changed_fields"] or {"(none)": ["", ""]}
    lines.append("pipelines differ in: " + ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changed.items()))
    lines.append(
        f"first divergent stage (configuration): {result['first_divergent_stage_by_configuration']}; "
        f"(pixels): {result['first_divergent_stage']}"
    )
    lines.append(
        f"{'stage':<10} {'n':>3} {'identical%':>10} {'max|d|':>8} {'mean|d|':>9} {'changed%':>9} {'PSNR dB':>8}"
    )
    for stage, s in result["summary"].items():
        if not s["n"]:
            lines.append(f"{stage:<10} {0:>3}  (not comparable)")
            continue
        psnr = "-" if s["psnr_db"] is None else f"{s['psnr_db']:.2f}"
        lines.append(
            f"{stage:<10} {s['n']:>3} {s['identical_pct']:>10.1f} {s['max_abs']:>8.3g} {s['mean_abs']:>9.4f} "
            f"{s['changed_pct']:>9.2f} {psnr:>8}"
        )
    return "\n".join(lines)


def render_match(result: dict) -> str:
    closest = result["closest"]
    lines = [
        f"{result['n_matched']} device arrays matched to source images ({result['n_unmatched']} unmatched); "
        f"compared at stage(s): {', '.join(result['stages'])}",
        f"reference pipeline: mean |d| {result['reference']['mean_abs']:.4f}, exact on "
        f"{result['reference']['exact_pct']:.0f}% of images",
    ]
    if closest["changes"]:
        steps = " + ".join(c["change"] for c in closest["changes"])
        lines.append(
            f"closest pipeline: reference + {steps}: mean |d| {closest['mean_abs']:.4f}, "
            f"exact on {closest['exact_pct']:.0f}% of images"
        )
    else:
        lines.append("closest pipeline: the reference itself (no single catalogue change comes closer)")
    lines.append("single changes from the reference, closest first:")
    lines += [
        f"    {c['change']:<40} mean |d| {c['mean_abs']:.4f}  exact {c['exact_pct']:.0f}%"
        for c in result["single_changes_ranked"]
    ]
    return "\n".join(lines)
