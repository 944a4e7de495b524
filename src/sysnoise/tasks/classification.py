"""Image classification: dataset readers, per-sample outputs and per-sample scores.

Labels are sets of acceptable classes (usually one), in the spirit of ImageNet-ReaL: a photo of a
cat whose breed cannot be told is right as tabby, tiger cat or Egyptian cat. A sample with an
empty set is unlabeled and is scored by agreement with the reference pipeline only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from sysnoise.analysis.classification import ClassificationAnalysis
from sysnoise.data import formats
from sysnoise.data.class_map import apply_class_map
from sysnoise.data.images import IMAGE_EXTENSIONS, Dataset, Sample
from sysnoise.errors import UserInputError
from sysnoise.listfile import split_fields
from sysnoise.tasks.base import Task, forward_by_shape
from sysnoise.tasks.definition import TASKS, Prepared, TaskDefinition

TOP_K = 5


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _walk_images(folder: Path) -> list[Path]:
    # followlinks=False: a symlink loop in the tree cannot make the walk run forever.
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        found.extend(Path(dirpath) / f for f in sorted(filenames) if _is_image(Path(f)))
    return found


def _relative_id(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def read_image_folder(root: Path) -> Dataset:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples = [
        Sample(_relative_id(p, root), p, (index,))
        for index, name in enumerate(classes)
        for p in _walk_images(root / name)
    ]
    return Dataset(root, samples, "imagefolder", class_names=classes)


def read_unlabeled_folder(root: Path) -> Dataset:
    return Dataset(root, [Sample(_relative_id(p, root), p) for p in _walk_images(root)], "unlabeled")


LIST_FORMAT = (
    "one sample per line: PATH, or PATH LABELS, or PATH<TAB>LABELS when PATH has spaces; LABELS are "
    "class indices joined by commas; a line starting with # is a comment"
)


def parse_list_line(line: str, where: str) -> tuple[str, tuple[int, ...]] | None:
    """(relative path, label set) of one list-file line, None for a blank or comment line.

    The format (README, "Measure your own model"): `PATH` (unlabeled), `PATH LABELS` or
    `PATH<TAB>LABELS`, LABELS being class indices joined by commas. A tab makes the path verbatim
    (spaces and # allowed); without one the path has no spaces. # starts a comment only at the
    start of a line, so `hash#1.jpg` is a path."""
    fields = split_fields(line, where, 2, LIST_FORMAT)
    if fields is None:
        return None
    path, labels = fields[0], (fields[1] if len(fields) == 2 else "")
    try:
        return path, tuple(int(v) for v in labels.split(",")) if labels else ()
    except ValueError:
        raise UserInputError(
            f"{where}: labels {labels!r} are not class indices joined by commas ({LIST_FORMAT})"
        ) from None


def list_line(path: str, labels: tuple[int, ...]) -> str:
    """One list-file line that parse_list_line reads back as (path, labels), whatever the path."""
    separator = "\t" if any(c.isspace() for c in path) else " "
    return f"{path}{separator}{','.join(map(str, labels))}".rstrip(" ")


def read_list_file(list_file: Path, root: Path | None = None, *, allow_outside_root: bool = False) -> Dataset:
    """A list file (parse_list_line's format), paths relative to `root` (default: its folder)."""
    root = (root or list_file.parent).resolve()
    samples, problems, seen = [], [], set()
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"{list_file}: cannot read list file: {err}") from None
    for number, raw in enumerate(lines, 1):
        where = f"{list_file}:{number}"
        parsed = parse_list_line(raw, where)
        if parsed is None:
            continue
        rel, labels = parsed
        path = (root / rel).resolve()
        if not allow_outside_root and not path.is_relative_to(root):
            problems.append(
                {"id": rel, "where": where, "reason": "path escapes the dataset root (use --allow-outside-root)"}
            )
            continue
        if any(label < 0 for label in labels):
            problems.append({"id": rel, "where": where, "reason": f"negative label {labels}"})
            continue
        if rel in seen:
            problems.append({"id": rel, "where": where, "reason": "duplicate entry (kept the first)"})
            continue
        if not path.is_file():
            problems.append({"id": rel, "where": where, "reason": "file not found"})
            continue
        seen.add(rel)
        samples.append(Sample(rel, path, labels))
    return Dataset(root, samples, "listfile", problems=problems)


def read_dataset(path: str | Path, list_file: str | Path | None = None, **options) -> Dataset:
    """A list file, a class-folder tree (ImageFolder), a folder of unlabeled images, or a format of
    data.formats (WebDataset shards, a Hugging Face dataset)."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"dataset not found: {path}")
    if list_file is not None:
        dataset = read_list_file(Path(list_file), path, **options)
    elif (data_format := formats.find(path)) is not None:  # WebDataset shards, Hugging Face datasets
        dataset = data_format.fn(path)
    elif path.is_file():
        dataset = read_list_file(path, **options)
    else:
        subdirs = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
        top_images = [p for p in path.iterdir() if p.is_file() and _is_image(p)]
        dataset = read_image_folder(path) if subdirs and not top_images else read_unlabeled_folder(path)
    if not dataset.samples:
        raise UserInputError(
            f"{path}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); "
            f"{len(dataset.problems)} entries were dropped"
            + (f", first: {dataset.problems[0]}" if dataset.problems else "")
        )
    return dataset


def check_labels(dataset: Dataset, num_classes: int) -> None:
    """Drop samples whose label the model cannot output, recording why; warn whenever the labels
    cannot be the model's classes: named classes (folders, a ClassLabel column) counted otherwise
    than the model's classes, or labels past its last class."""
    names = dataset.class_names
    remedy = (
        "Map the dataset's class names to the model's indices with --class-map FILE (JSON/YAML "
        "`name: index`), give a list file with the model's class indices (PATH<TAB>INDEX lines), or the "
        "images in one folder (unlabeled: agreement with the reference only)"
    )
    if names and len(names) != num_classes:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        what, order = ("class folders", "sorted") if dataset.kind == "imagefolder" else ("classes", "their")
        warnings.warn(
            f"{dataset.root}: {len(names)} {what} ({shown}) are scored as the model's classes "
            f"0..{len(names) - 1} in {order} order, but the model has {num_classes} classes: unless they "
            f"are its first classes in its order, the accuracy means nothing. {remedy}",
            stacklevel=2,
        )
    kept, outside = [], []
    for sample in dataset.samples:
        bad = [label for label in sample.labels if label >= num_classes]
        if bad:
            dataset.problems.append(
                {"id": sample.id, "reason": f"label {bad} outside the model's {num_classes} classes"}
            )
            outside.append(sample.id)
        else:
            kept.append(sample)
    if outside:
        warnings.warn(
            f"{dataset.root}: {len(outside)} of {len(dataset.samples)} samples have labels outside the "
            f"model's {num_classes} classes (e.g. {outside[0]}) and are left out: are the labels the "
            f"model's class indices? {remedy}",
            stacklevel=2,
        )
    dataset.samples = kept


def outputs_from_logits(logits) -> dict[str, np.ndarray]:
    """What is stored per sample: the top-5 classes and their softmax probabilities."""
    import torch

    probs = torch.softmax(logits.float(), dim=1)
    k = min(TOP_K, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    out = failed_outputs(len(probs))  # models with fewer than TOP_K classes keep -1 padding
    out["topk"][:, :k] = indices.numpy()
    out["prob"][:, :k] = values.numpy()
    return out


def failed_outputs(n: int) -> dict[str, np.ndarray]:
    return {"topk": np.full((n, TOP_K), -1, np.int32), "prob": np.zeros((n, TOP_K), np.float32)}


class ClassificationTask(Task):
    name = "classification"

    def forward(self, model, inputs, batch_size, device):
        """Inputs of one size batched together (a deployment pipeline may change the input size
        beside the reference's), outputs back in input order."""
        import torch

        logits = forward_by_shape(model, inputs, batch_size, device)["logits"]
        return outputs_from_logits(torch.from_numpy(logits))

    def failed_outputs(self, n):
        return failed_outputs(n)


class Classification(TaskDefinition):
    name = "classification"
    settings = ("list_file", "class_map")

    def read(self, data, *, allow_outside_root: bool = False, list_file=None, class_map=None) -> Dataset:
        dataset = (
            data if isinstance(data, Dataset) else read_dataset(data, list_file, allow_outside_root=allow_outside_root)
        )
        return apply_class_map(dataset, class_map)

    def prepare(self, loaded, dataset) -> Prepared:
        check_labels(dataset, loaded.num_classes)
        return Prepared(ClassificationTask(), ClassificationAnalysis())


TASKS.register("classification", "image classification: top-1/top-5 accuracy and agreement")(Classification())
