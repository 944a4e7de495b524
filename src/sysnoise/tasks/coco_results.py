"""A detection run's columns as COCO results lists ({image_id, category_id, bbox, score}, or the
segm form with RLE masks): the format pycocotools' loadRes and other tools read. A finished run
writes its reference column so (detections-reference.json)."""

from __future__ import annotations

import json
from pathlib import Path

from sysnoise.analysis.detection import detections_json, segmentations_json
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.store import atomic_write_text
from sysnoise.errors import UserInputError
from sysnoise.report.results import read_results


def coco_detections(out: str | Path, column: str = "reference", *, masks: bool = False) -> list[dict]:
    """One column of a detection run (results folder `out`) as a COCO results list ({image_id,
    category_id, bbox [x, y, w, h], score}), the format pycocotools' loadRes and other tools read.
    Samples the reference could not process are left out, as in the evaluation. masks: the segm
    results instead ({image_id, category_id, segmentation (RLE), score}) of a model with a mask
    head, from outputs.masks.npz; an error for a column without masks."""
    out = Path(out)
    results = read_results(out)
    if results.get("task") != "detection":
        raise UserInputError(f"{out}: not a detection run")
    outputs = RunOutputs.load(out / "outputs.npz")
    if column not in outputs.column_ids:
        raise UserInputError(f"{out}: no column {column!r}; columns: {', '.join(outputs.column_ids)}")
    images = json.loads(Path(results["dataset"]["path"]).read_text())["images"]
    image_of = {image["file_name"]: image["id"] for image in images}
    keep = outputs.valid & (outputs.errors[column] == "")
    arrays = outputs.arrays[column]
    image_ids = [image_of[s] for s, ok in zip(outputs.sample_ids, keep) if ok]
    if masks:
        blobs = outputs.ragged(column, "masks") if "masks" in outputs.ragged_names() else []
        blobs = [b for b, ok in zip(blobs, keep) if ok]
        if not any(blobs):
            raise UserInputError(
                f"{out}: column {column!r} has no masks (a model without a mask head, or "
                "post-processing other than the model's own)"
            )
        return segmentations_json(blobs, arrays["scores"][keep], arrays["labels"][keep], image_ids)
    return detections_json(arrays["boxes"][keep], arrays["scores"][keep], arrays["labels"][keep], image_ids)


def write_reference(out: Path, results: dict) -> list[Path]:
    """detections-reference.json (and segmentations-reference.json for a model with a mask head)."""
    written = [out / "detections-reference.json"]
    atomic_write_text(written[0], json.dumps(coco_detections(out, "reference")) + "\n")
    if "segm_ap" in results["reference"]:
        written.append(out / "segmentations-reference.json")
        atomic_write_text(written[1], json.dumps(coco_detections(out, "reference", masks=True)) + "\n")
    return written
