"""Dataset names: `--data scenes` instead of a path. Each entry materialises its split into the
cache on first use (sysnoise.zoo.scenes, seconds) and returns the path a reader takes."""

from __future__ import annotations

from pathlib import Path

from sysnoise.errors import UserInputError
from sysnoise.registry import Registry
from sysnoise.zoo import photo_corpus, scenes

DATASETS: Registry = Registry("dataset")


def _register(name: str, description: str, kind: str, split: str, target: str, task: str, family: str):
    def materialise(seed: int = 0, root: Path | None = None, n: int | None = None) -> Path:
        return scenes.materialise(kind, split, seed=seed, n=n, root=root) / target

    DATASETS.register(name, description, task=task, kind=kind, split=split, family=family)(materialise)


for _split, _suffix in (("val", ""), ("train", "-train")):
    _register(
        f"scenes{_suffix}",
        f"scenes classification {_split} split: list file (10 shape classes on real photos)",
        "classification",
        _split,
        "labels.txt",
        "classification",
        f"scenes{_suffix}",
    )
    _register(
        f"scenes-det{_suffix}",
        f"scenes detection {_split} split: COCO annotations.json (boxes + RLE masks)",
        "detection",
        _split,
        "annotations.json",
        "detection",
        f"scenes{_suffix}",
    )
    _register(
        f"scenes-seg{_suffix}",
        f"scenes segmentation {_split} split: list of 'image label-map' (255 = ignore)",
        "detection",
        _split,
        "segmentation.txt",
        "segmentation",
        f"scenes{_suffix}",
    )

DATASETS.register(
    "photos-large",
    "about 500 real photographs from Debian packages, unlabeled (flip rates); fetched "
    "once with apt-get download (`sysnoise fetch-photos`)",
    task="classification",
    kind="unlabeled",
    split="val",
    family="photos-large",
)(photo_corpus.materialise)


def resolve_dataset(data, task: str | None = None):
    """A registered dataset name that is not an existing path -> the materialised path; else `data`.

    With `task`, a family's plain name serves each of its tasks: `--task detection --data scenes`
    means scenes-det, as a user would read it."""
    if not (isinstance(data, str) and data in DATASETS and not Path(data).exists()):
        return data
    entry = DATASETS.get(data)
    if task is not None and entry.meta["task"] != task:
        # only the family's plain name stands for all its tasks; scenes-det for classification is a mistake
        same_family = [e for e in DATASETS if e.meta["family"] == data and e.meta["task"] == task]
        if not same_family:
            raise UserInputError(
                f"dataset {data!r} is for {entry.meta['task']}, not {task}; "
                f"datasets for {task}: {', '.join(e.name for e in DATASETS if e.meta['task'] == task)}"
            )
        entry = same_family[0]
    return entry.fn()
