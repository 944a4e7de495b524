"""--class-map FILE: a dataset's class names (ImageFolder folders such as ImageNet wnids, a
ClassLabel column's names) -> the model's class indices, a JSON object or YAML mapping
(`n01440764: 0`). Without one, named classes are scored as the model's classes 0..N-1 in the
dataset's order, right only when they are its first N classes in its order
(classification.check_labels warns when they cannot be)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sysnoise.data.images import Dataset
from sysnoise.errors import UserInputError
from sysnoise.pipeline.spec import key_lines

FORMAT = "one `class name: model index` entry per class (a JSON object or YAML mapping)"


def load(path: str | Path) -> dict[str, int]:
    """The mapping in `path`; every error names the file (and the entry's line)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise UserInputError(f"{path}: cannot read class map: {reason}") from None
    try:
        data = yaml.safe_load(text)  # JSON is YAML
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserInputError(f"{where}: not a JSON/YAML class map ({problem}); write {FORMAT}") from None
    if not isinstance(data, dict) or not data:
        raise UserInputError(f"{path}: expected {FORMAT}, got {type(data).__name__ if data else 'nothing'}")
    lines = key_lines(text)
    mapping = {}
    for name, index in data.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            line = lines.get(str(name))
            raise UserInputError(
                f"{path}{f':{line}' if line else ''}: {name!r} maps to {index!r}; a model class "
                f"index is an integer >= 0 ({FORMAT})"
            )
        mapping[str(name)] = index
    return mapping


def apply_class_map(dataset: Dataset, path: str | Path | None) -> Dataset:
    """`dataset` with each label replaced by the model index its class name maps to (unchanged
    without a map). Every class that labels a sample must be in the map."""
    if path is None:
        return dataset
    mapping = load(path)
    names = dataset.class_names
    if not names:
        raise UserInputError(
            f"{path}: a class map maps class names, and {dataset.root} ({dataset.kind}) has none: "
            "it applies to class folders (ImageFolder) and ClassLabel columns; a list file or "
            ".cls members give the model's indices themselves"
        )
    used = sorted({names[label] for sample in dataset.samples for label in sample.labels})
    missing = [name for name in used if name not in mapping]
    if missing:
        raise UserInputError(
            f"{path}: no model index for {len(missing)} of the dataset's classes "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); add them "
            "or leave their images out"
        )
    samples = [
        dataclasses.replace(sample, labels=tuple(sorted({mapping[names[label]] for label in sample.labels})))
        for sample in dataset.samples
    ]
    return dataclasses.replace(dataset, samples=samples, class_names=None)
