"""Semantic segmentation: image + label-map pairs, logits shared by every post-processing variant,
predictions brought back to the label map's size and counted into per-image confusion matrices.

Data: a list file of `image label-map` lines (paths relative to the list's folder; '#' starts a
comment), or a folder holding `segmentation.txt`. Label maps are single-channel PNGs of class
indices (Cityscapes trainIds style) with an ignore index (255 by default). Each image is scored
against its own label map, at the label map's size: the prediction goes back through the inverse
of the pipeline's geometry (postprocess/segmentation.py).

Stored per image: the confusion counts (exact mIoU and per-class IoU, and an exact, cheap paired
bootstrap), the count of label pixels outside the model's classes, and the predictions on a
64 x 64 lattice of pixels (how many pixels a variant relabels).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sysnoise.analysis.segmentation import SegmentationAnalysis
from sysnoise.errors import SampleError, UserInputError
from sysnoise.listfile import split_fields
from sysnoise.postprocess.options import configure
from sysnoise.postprocess.segmentation import (
    GRID,
    NO_PREDICTION,
    SegmentationPost,
    confusion,
    grid_sample_positions,
    predict,
)
from sysnoise.tasks.base import Task, forward_by_shape, read_sample
from sysnoise.tasks.definition import ALL_STAGES, TASKS, Prepared, TaskDefinition
from sysnoise.tasks.detection import geometric_inputs
from sysnoise.tasks.segmentation_heads import logits_module

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelMapSample:
    id: str  # the image path relative to the root
    path: Path
    label_path: Path
    width: int | None = None  # filled in from the label map when it is read
    height: int | None = None
    labels: tuple[int, ...] = ()


@dataclass
class SegmentationDataset:
    root: Path
    list_file: Path
    samples: list[LabelMapSample]
    problems: list[dict] = field(default_factory=list)
    ignore_index: int = IGNORE_INDEX
    kind: str = "segmentation-list"

    @property
    def n_labeled(self) -> int:
        return len(self.samples)

    def label_matrix(self) -> np.ndarray:
        return np.full((len(self.samples), 1), -1, np.int64)

    def describe(self) -> dict:
        return {
            "path": str(self.list_file),
            "kind": self.kind,
            "n_samples": len(self.samples),
            "n_labeled": len(self.samples),
            "n_dropped_while_reading": len(self.problems),
            "ignore_index": self.ignore_index,
        }


LIST_FORMAT = (
    "one pair per line: IMAGE LABEL-MAP, or IMAGE<TAB>LABEL-MAP when a path has spaces; a line "
    "starting with # is a comment"
)


def read_segmentation_list(
    path: str | Path, *, allow_outside_root: bool = False, ignore_index: int = IGNORE_INDEX
) -> SegmentationDataset:
    path = Path(path)
    if path.is_dir():
        path = path / "segmentation.txt"
    if not path.is_file():
        raise UserInputError(f"segmentation list not found: {path} (lines of 'image label-map')")
    root = path.parent.resolve()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path}: cannot read: {err}") from None
    samples, problems, seen = [], [], set()
    for number, raw in enumerate(lines, 1):
        where = f"{path}:{number}"
        parts = split_fields(raw, where, 2, LIST_FORMAT)
        if parts is None:
            continue
        if len(parts) != 2:
            problems.append({"id": parts[0], "where": where, "reason": "expected 'image label-map'"})
            continue
        image, label = ((root / p).resolve() for p in parts)
        if not allow_outside_root and not (image.is_relative_to(root) and label.is_relative_to(root)):
            problems.append({"id": parts[0], "where": where, "reason": "path escapes the dataset root"})
        elif parts[0] in seen:
            problems.append({"id": parts[0], "where": where, "reason": "duplicate entry (kept the first)"})
        elif not image.is_file() or not label.is_file():
            problems.append({"id": parts[0], "where": where, "reason": "image or label map not found"})
        else:
            seen.add(parts[0])
            samples.append(LabelMapSample(parts[0], image, label))
    if not samples:
        raise UserInputError(
            f"{path}: no usable image/label pairs; {len(problems)} dropped"
            + (f", first: {problems[0]}" if problems else "")
        )
    return SegmentationDataset(root, path, samples, problems, ignore_index)


def read_label_map(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("L", "P", "I", "I;16"):
            raise SampleError(f"label map {path.name} is {image.mode}: expected one channel of class indices")
        return np.asarray(image).astype(np.int64)


class SegmentationTask(Task):
    """Bound to a model before use: TASKS('segmentation').bind(num_classes, ignore_index)."""

    name = "segmentation"

    def __init__(
        self,
        num_classes: int | None = None,
        ignore_index: int = IGNORE_INDEX,
        reference: SegmentationPost | None = None,
    ):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.reference = reference or SegmentationPost(ignore_index=ignore_index)

    def bind(self, num_classes: int, ignore_index: int = IGNORE_INDEX, reference: SegmentationPost | None = None):
        return SegmentationTask(num_classes, ignore_index, reference)

    def load_input(self, sample, pipelines, cache=None, include_corrupt: bool = False):
        label_path = getattr(sample, "label_path", None)  # calibration images come without label maps
        try:
            data = read_sample(sample.path, include_corrupt)
            target = read_label_map(Path(label_path)) if label_path else None
        except OSError as err:
            return {p.prefix("normalise"): SampleError(f"cannot read file: {err.strerror or err}") for p in pipelines}
        except SampleError as err:
            return {p.prefix("normalise"): SampleError(str(err)) for p in pipelines}
        except Exception as err:  # a label PNG Pillow cannot read is this sample's problem
            return {p.prefix("normalise"): SampleError(f"label map: {type(err).__name__}: {err}") for p in pipelines}
        if target is None:
            return geometric_inputs(data, pipelines, sample)
        sized = replace(sample, width=target.shape[1], height=target.shape[0])
        return geometric_inputs(data, pipelines, sized, target)

    def forward(self, model, inputs, batch_size, device):
        return forward_by_shape(model, inputs, batch_size, device)

    def finish(self, pipeline, outputs, model_input):
        config = configure(self.reference, pipeline.postprocess, "segmentation")
        target = model_input.target
        prediction = predict(outputs["logits"], config, model_input.to_source, target.shape)
        counts, unknown = confusion(target, prediction, self.num_classes, self.ignore_index)
        rows, cols = grid_sample_positions(*target.shape)
        shown = target[rows][:, cols] != self.ignore_index
        grid = np.where(shown, prediction[rows][:, cols], NO_PREDICTION)
        return {
            "confusion": counts.astype(np.int64),
            "unknown": np.int64(unknown),
            "grid": np.clip(grid, 0, NO_PREDICTION).astype(np.uint8),
        }

    def failed_outputs(self, n):
        c = self.num_classes or 1
        return {
            "confusion": np.zeros((n, c, c + 1), np.int64),
            "unknown": np.zeros(n, np.int64),
            "grid": np.full((n, GRID, GRID), NO_PREDICTION, np.uint8),
        }


class Segmentation(TaskDefinition):
    name = "segmentation"
    stages = ALL_STAGES
    settings = ("ignore_index",)

    def read(self, data, *, allow_outside_root: bool = False, ignore_index: int = IGNORE_INDEX) -> SegmentationDataset:
        """ignore_index: the label value of unlabeled pixels (a SegmentationDataset passed in keeps its own)."""
        if isinstance(data, SegmentationDataset):
            return data
        return read_segmentation_list(data, allow_outside_root=allow_outside_root, ignore_index=ignore_index)

    def prepare(self, loaded, dataset) -> Prepared:
        loaded.module = logits_module(loaded.module)
        return Prepared(
            SegmentationTask(loaded.num_classes, dataset.ignore_index), SegmentationAnalysis(loaded.class_names)
        )

    def fingerprint(self, dataset) -> list:
        # the confusion counts depend on the label maps too
        return [
            (s.id, s.label_path.name, s.label_path.stat().st_size, s.label_path.stat().st_mtime_ns)
            for s in dataset.samples
        ]


TASKS.register(
    "segmentation",
    "semantic segmentation: mIoU and per-class IoU from per-image confusion counts, "
    "logits shared by post-processing variants",
)(Segmentation())
