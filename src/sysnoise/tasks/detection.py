"""Object detection: COCO-format data, model inputs that remember their geometry, raw head outputs
shared by every post-processing variant, and detections mapped back onto the annotated image.

Data: a COCO annotation JSON (images with file_name, width, height; annotations with image_id,
category_id, bbox [x, y, w, h]; categories) whose file names are relative to the JSON's folder
(or to `root`). Annotations COCOeval would trip on are repaired or dropped with a warning each
kind; those it handles its own way (boxes reaching outside the image, images without objects,
crowd regions) are kept and counted, so the evaluation is COCOeval's.

The model's label indices are taken as COCO category ids (true of torchvision's COCO models and of
the zoo detector); detections of a label that is not a category are scored as COCOeval does: never.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sysnoise import json_input
from sysnoise.analysis.detection import DetectionAnalysis
from sysnoise.errors import SampleError, UserInputError
from sysnoise.pipeline import limits
from sysnoise.pipeline.geometry import CROPS, input_to_source
from sysnoise.pipeline.preprocess import Memo, stage_values
from sysnoise.postprocess.detection import DetectionPost, detect, empty, encode_masks
from sysnoise.postprocess.options import configure
from sysnoise.tasks import coco_results
from sysnoise.tasks.base import Task, forward_by_shape, read_sample
from sysnoise.tasks.definition import ALL_STAGES, TASKS, Prepared, TaskDefinition
from sysnoise.tasks.detection_heads import raw_detector


@dataclass(frozen=True)
class CocoImage:
    id: str  # the image's file_name
    path: Path
    image_id: int
    width: int | None  # as annotated; None: taken from the decoded image
    height: int | None
    labels: tuple[int, ...] = ()  # category ids of its objects (what the run fingerprint records)


@dataclass
class CocoDataset:
    root: Path
    annotation_file: Path
    samples: list[CocoImage]
    coco: dict  # the ground truth as COCOeval will read it (repaired, unknown categories left out)
    class_names: dict[int, str]  # category id -> name
    problems: list[dict] = field(default_factory=list)  # images dropped (missing file, duplicate id)
    warnings: list[dict] = field(default_factory=list)  # {kind, count, examples}: repaired or dropped annotations
    kind: str = "coco"

    @property
    def n_labeled(self) -> int:
        return len(self.samples)

    def label_matrix(self) -> np.ndarray:
        """The engine's per-sample label table: detection keeps its ground truth in `coco`."""
        return np.full((len(self.samples), 1), -1, np.int64)

    def describe(self) -> dict:
        with_objects = {a["image_id"] for a in self.coco["annotations"]}
        return {
            "path": str(self.annotation_file),
            "kind": self.kind,
            "n_samples": len(self.samples),
            "n_labeled": len(self.samples),
            "n_dropped_while_reading": len(self.problems),
            "n_annotations": len(self.coco["annotations"]),
            "n_images_without_objects": sum(1 for s in self.samples if s.image_id not in with_objects),
            "categories": {str(k): v for k, v in self.class_names.items()},
            "warnings": self.warnings,
        }


class _Warnings:
    """Problems grouped by kind: one warning per kind with a count and the first examples."""

    def __init__(self, source: Path):
        self.source, self.kinds = source, {}

    def add(self, kind: str, example: str) -> None:
        entry = self.kinds.setdefault(kind, {"kind": kind, "count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < 3:
            entry["examples"].append(example)

    def emit(self) -> list[dict]:
        for entry in self.kinds.values():
            warnings.warn(
                f"{self.source}: {entry['count']} x {entry['kind']} (e.g. {'; '.join(entry['examples'])})", stacklevel=3
            )
        return list(self.kinds.values())


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _is_id(value) -> bool:
    """An id COCOeval and the outputs' int64 arrays can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _categories(entries: list, source: Path) -> dict[int, str]:
    """category id -> name; a category that is not an object with an integer id is an error."""
    out = {}
    for index, category in enumerate(entries):
        where = f"{source}: categories[{index}]"
        if not isinstance(category, dict):
            raise UserInputError(
                f'{where}: a category is an object {{"id": INTEGER, "name": TEXT}}, got {type(category).__name__}'
            )
        if "id" not in category:
            raise UserInputError(f'{where}: no "id"; give each category an integer id (the model\'s label for it)')
        if not _is_id(category["id"]):
            raise UserInputError(
                f"{where}: id {category['id']!r} is not an integer; give each category an integer id "
                "(the model's label for it)"
            )
        out[category["id"]] = str(category.get("name", category["id"]))
    return out


def read_coco(
    annotation_file: str | Path, root: str | Path | None = None, *, allow_outside_root: bool = False
) -> CocoDataset:
    """A COCO detection dataset; image paths are relative to `root` (default: the JSON's folder)."""
    annotation_file = Path(annotation_file)
    root = Path(root or annotation_file.parent).resolve()
    try:
        text = annotation_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"{annotation_file}: cannot read COCO annotations: {err}") from None
    data = json_input.loads(text, str(annotation_file))
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserInputError(f"{annotation_file}: not COCO annotations (no 'images' list)")
    if not isinstance(data.get("categories"), list) or not data["categories"]:
        raise UserInputError(f"{annotation_file}: no 'categories': COCOeval needs the category list")
    if not isinstance(data.get("annotations") or [], list):
        raise UserInputError(f"{annotation_file}: 'annotations' is not a list of objects")
    notes = _Warnings(annotation_file)
    categories = _categories(data["categories"], annotation_file)
    samples: dict[int, CocoImage] = {}
    problems, images = [], []
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict):
            raise UserInputError(
                f'{annotation_file}: images[{index}]: an image is an object {{"id", "file_name", '
                f'"width", "height"}}, got {type(image).__name__}'
            )
        name, image_id = image.get("file_name"), image.get("id")
        if not isinstance(name, str) or not _is_id(image_id):
            problems.append({"id": str(name), "reason": "image entry without file_name or integer id"})
            continue
        if "\0" in name:
            raise UserInputError(
                f"{annotation_file}: images[{index}]: NUL byte in file_name {name!r}; a file_name "
                "is a path relative to the annotation file's folder"
            )
        path = (root / name).resolve()
        if image_id in samples:
            problems.append({"id": name, "reason": f"duplicate image id {image_id} (kept the first)"})
        elif not allow_outside_root and not path.is_relative_to(root):
            problems.append({"id": name, "reason": "path escapes the dataset root (use --allow-outside-root)"})
        elif not path.is_file():
            problems.append({"id": name, "reason": "file not found"})
        else:
            width, height = image.get("width"), image.get("height")
            if not (_number(width) and _number(height) and width > 0 and height > 0):
                notes.add("image without width/height (taken from the decoded file)", name)
                width = height = None
            elif width * height > limits.current().max_pixels:
                raise UserInputError(
                    f"{annotation_file}: images[{index}] ({name}): width x height {width} x {height} "
                    f"is beyond any image sysnoise decodes ({limits.current().max_pixels} pixels, "
                    "SYSNOISE_MAX_PIXELS); correct it, or leave width/height out to take the size "
                    "from the file"
                )
            samples[image_id] = CocoImage(name, path, image_id, width and int(width), height and int(height))
            images.append(image)
    annotations = [
        a
        for number, ann in enumerate(data.get("annotations") or [])
        if (a := _checked(ann, number, samples, categories, notes)) is not None
    ]
    if not samples:
        raise UserInputError(
            f"{annotation_file}: no usable images; {len(problems)} dropped"
            + (f", first: {problems[0]}" if problems else "")
        )
    labels: dict[int, list[int]] = {}
    for ann in annotations:
        labels.setdefault(ann["image_id"], []).append(int(ann["category_id"]))
    kept = [replace(s, labels=tuple(labels.get(s.image_id, ()))) for s in samples.values()]
    coco = {"images": images, "annotations": annotations, "categories": data["categories"]}
    return CocoDataset(root, annotation_file, kept, coco, categories, problems, notes.emit())


def _checked(ann, number: int, samples: dict[int, CocoImage], categories: dict, notes: _Warnings) -> dict | None:
    """The annotation as COCOeval can read it, or None (dropped); each repair or drop is noted."""
    if not isinstance(ann, dict):
        notes.add("annotation that is not an object (dropped)", f"#{number}")
        return None
    where = f"annotation {ann.get('id', f'#{number}')}"
    for key in ("image_id", "category_id"):
        if not _is_id(ann.get(key)):
            raise UserInputError(
                f"{notes.source}: annotations[{number}]: {key} {ann.get(key)!r} is not an integer; "
                f"give each annotation the integer {key} it belongs to"
            )
    if ann.get("iscrowd", 0) not in (0, 1):
        raise UserInputError(f"{notes.source}: annotations[{number}]: iscrowd {ann['iscrowd']!r} is not 0 or 1")
    sample, bbox = samples.get(ann["image_id"]), ann.get("bbox")
    if sample is None:
        notes.add("annotation of an image not evaluated (unknown, missing or duplicate image id; dropped)", where)
        return None
    if ann.get("category_id") not in categories:
        notes.add("unknown category id (dropped: COCOeval never evaluates it)", f"{where}: {ann.get('category_id')}")
        return None
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
        notes.add("bbox not [x, y, w, h] numbers (dropped)", where)
        return None
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        notes.add("empty box (w or h <= 0; kept, as COCOeval keeps it)", where)
    if sample.width and (x < 0 or y < 0 or x + w > sample.width or y + h > sample.height):
        notes.add("box reaching outside its image (kept, as COCOeval keeps it)", where)
    ann = dict(ann)
    if not _number(ann.get("area")):
        notes.add("no area (set to w x h)", where)
        ann["area"] = float(w * h)
    ann.setdefault("iscrowd", 0)
    ann["id"] = number + 1  # COCOeval indexes annotations by id: unique ids whatever the file had
    return ann


def read_detection_data(path: str | Path, *, allow_outside_root: bool = False) -> CocoDataset:
    """A COCO JSON, or a folder holding annotations.json (or annotations/instances_*.json)."""
    path = Path(path)
    if path.is_dir():
        found = [path / "annotations.json"] + sorted((path / "annotations").glob("instances_*.json"))
        found = [f for f in found if f.is_file()]
        if not found:
            raise UserInputError(f"{path}: no annotations.json or annotations/instances_*.json (COCO format)")
        return read_coco(found[0], path, allow_outside_root=allow_outside_root)
    if not path.is_file():
        raise UserInputError(f"dataset not found: {path}")
    return read_coco(path, allow_outside_root=allow_outside_root)


@dataclass(frozen=True)
class GeometricInput:
    """A model input that remembers where it came from: post-processing maps its results back onto
    the annotated image with `to_source` (ax, bx, ay, by: x_source = ax * x_input + bx)."""

    array: np.ndarray  # (3, h, w) float32, normalised
    to_source: tuple[float, float, float, float]
    source_size: tuple[int, int]  # (width, height) of the annotated image
    target: np.ndarray | None = None  # segmentation: the label map

    def __array__(self, dtype=None, copy=None):  # the engine hashes and stacks inputs as arrays
        return self.array if dtype is None else self.array.astype(dtype)


def geometric_inputs(data: bytes, pipelines, sample, target=None) -> dict[tuple, object]:
    """Every pipeline's input for one sample, with its map back to the annotated image (whose size
    is the sample's, or the decoded file's). Decoders that scale while decoding are allowed for:
    the geometry is computed on the decoded size and scaled to the annotated one."""
    memo, out = Memo(), {}
    annotated = (getattr(sample, "width", None), getattr(sample, "height", None))  # calibration samples have none
    for p in pipelines:
        values = stage_values(data, p, memo, sample.id)
        tensor, decoded = values["normalise"], values.get("decode")
        if isinstance(tensor, SampleError):
            out[p.prefix("normalise")] = tensor
            continue
        if isinstance(decoded, np.ndarray):
            decoded_size = (decoded.shape[1], decoded.shape[0])
        else:  # pixels stored after decoding: the annotated size is all there is
            decoded_size = annotated if annotated[0] else None
        if decoded_size is None:
            out[p.prefix("normalise")] = SampleError(
                "stored pixels of an image without width/height: nothing to map the results back to"
            )
            continue
        width, height = annotated if annotated[0] else decoded_size
        geometry = CROPS(p.crop)(*decoded_size, p.input_size, p.crop_pct)
        ax, bx, ay, by = input_to_source(geometry, *decoded_size)
        sx, sy = width / decoded_size[0], height / decoded_size[1]
        out[p.prefix("normalise")] = GeometricInput(
            tensor, (ax * sx, bx * sx, ay * sy, by * sy), (width, height), target
        )
    return out


class DetectionTask(Task):
    """Bound to a model (its reference post-processing) before use: TASKS('detection').bind(module).

    A model with a mask head (raw outputs with "mask_probs", tasks/detection_heads.py) also stores
    per sample "masks": its detections' masks as COCO RLE (postprocess.detection.encode_masks), a
    ragged field (engine.execute), for columns whose post-processing is the model's own (the mask
    head ran on exactly those boxes); b"" in the others, which get no segm AP."""

    name = "detection"

    def __init__(self, reference: DetectionPost | None = None, masks: bool = False):
        self.reference, self.masks = reference, masks

    def bind(self, module) -> "DetectionTask":
        return DetectionTask(module.post_reference, bool(getattr(module, "has_masks", False)))

    def load_input(self, sample, pipelines, cache=None, include_corrupt: bool = False):
        # no input cache: the inputs carry their geometry, which the cache does not store
        try:
            data = read_sample(sample.path, include_corrupt)
        except SampleError as err:
            return {p.prefix("normalise"): SampleError(str(err)) for p in pipelines}
        return geometric_inputs(data, pipelines, sample)

    def forward(self, model, inputs, batch_size, device):
        return forward_by_shape(model, inputs, batch_size, device)

    def finish(self, pipeline, outputs, model_input):
        if self.reference is None:
            raise RuntimeError("DetectionTask is not bound to a model: use TASKS('detection').bind(module)")
        config = configure(self.reference, pipeline.postprocess, "detection")
        height, width = model_input.array.shape[-2:]
        found = detect(outputs, config, (height, width), model_input.to_source, model_input.source_size)
        if self.masks:
            found["masks"] = b""
            if config == self.reference and "mask_probs" in outputs:  # the boxes the mask head ran on
                k = int((found["labels"] >= 0).sum())
                found["masks"] = encode_masks(outputs["mask_probs"][:k], found["boxes"][:k], model_input.source_size)
        return found

    def failed_outputs(self, n):
        out = empty(n)
        if self.masks:
            out["masks"] = [b""] * n  # ragged: one byte string per sample
        return out


class Detection(TaskDefinition):
    name = "detection"
    stages = ALL_STAGES
    requires = ("coco", "detection (COCO box and mask mAP)")

    def read(self, data, *, allow_outside_root: bool = False) -> CocoDataset:
        return (
            data if isinstance(data, CocoDataset) else read_detection_data(data, allow_outside_root=allow_outside_root)
        )

    def prepare(self, loaded, dataset) -> Prepared:
        try:
            loaded.module = raw_detector(loaded.module)
        except ValueError as err:
            raise UserInputError(str(err)) from None
        return Prepared(DetectionTask().bind(loaded.module), DetectionAnalysis(dataset))

    def write_files(self, out: Path, results: dict) -> list[Path]:
        return coco_results.write_reference(out, results)


TASKS.register(
    "detection",
    "object detection: COCO box mAP (pycocotools; mask AP for Mask R-CNN), raw outputs "
    "shared by post-processing variants",
)(Detection())
