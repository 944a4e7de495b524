"""Dataset names: `--data scenes` instead of a path. Each entry materialises its split into the
cache on first use (sysnoise.zoo.scenes, seconds) and returns the path a reader takes."""

from __future__ import annotations

from pathlib import Path

from sysnoise.registry import Registry

DATASETS: Registry = Registry("dataset")


def _register(name: str, description: str, kind: str, split: str, target: str, task: str):
    def materialise(seed: int = 0, root: Path | None = None, n: int | None = None) -> Path:
        from sysnoise.zoo import scenes

        return scenes.materialise(kind, split, seed=seed, n=n, root=root) / target

    DATASETS.register(name, description, task=task, kind=kind, split=split)(materialise)


for _split, _suffix in (("val", ""), ("train", "-train")):
    _register(f"scenes{_suffix}", f"scenes classification {_split} split: list file (10 shape classes on real photos)",
              "classification", _split, "labels.txt", "classification")
    _register(f"scenes-det{_suffix}", f"scenes detection {_split} split: COCO annotations.json (boxes + RLE masks)",
              "detection", _split, "annotations.json", "detection")
    _register(f"scenes-seg{_suffix}", f"scenes segmentation {_split} split: list of 'image label-map' (255 = ignore)",
              "detection", _split, "segmentation.txt", "segmentation")


def resolve_dataset(data):
    """A registered dataset name that is not an existing path -> the materialised path; else `data`."""
    if isinstance(data, str) and data in DATASETS and not Path(data).exists():
        return DATASETS(data)()
    return data
