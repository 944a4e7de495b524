"""The scenes generator: deterministic to the byte, and its labels, boxes and masks agree."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from sysnoise.errors import UserInputError
from sysnoise.zoo import scenes
from sysnoise.zoo.datasets import DATASETS, resolve_dataset


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_and_prefix_property():
    a = scenes.generate(0, "val", "classification", 6, workers=1)
    b = scenes.generate(0, "val", "classification", 6, workers=1)
    assert [r["jpeg"] for r in a] == [r["jpeg"] for r in b]
    assert [r["label"] for r in a] == [r["label"] for r in b]
    # each image is a function of (seed, split, index): a smaller n is a prefix of a larger one
    c = scenes.generate(0, "val", "classification", 3, workers=1)
    assert [r["jpeg"] for r in c] == [r["jpeg"] for r in a[:3]]


def test_parallel_generation_equals_serial():
    serial = scenes.generate(1, "train", "detection", 4, workers=1)
    parallel = scenes._worker((1, "train", "detection", 2, 4))
    assert [r["jpeg"] for r in serial[2:]] == [r["jpeg"] for r in parallel]
    assert [r["png"] for r in serial[2:]] == [r["png"] for r in parallel]


def test_seed_and_split_change_the_images():
    base = scenes.generate(0, "val", "classification", 3, workers=1)
    other_seed = scenes.generate(1, "val", "classification", 3, workers=1)
    other_split = scenes.generate(0, "train", "classification", 3, workers=1)
    assert all(x["jpeg"] != y["jpeg"] for x, y in zip(base, other_seed))
    assert all(x["jpeg"] != y["jpeg"] for x, y in zip(base, other_split))


@pytest.mark.parametrize("kind", ["classification", "detection"])
def test_materialise_is_byte_identical(tmp_path, kind):
    first = scenes.materialise(kind, "val", n=5, root=tmp_path / "a", workers=1)
    second = scenes.materialise(kind, "val", n=5, root=tmp_path / "b", workers=2)
    assert first.name == second.name  # the folder name carries the fingerprint
    assert _tree_digest(first) == _tree_digest(second)
    assert scenes.materialise(kind, "val", n=5, root=tmp_path / "a") == first  # cached


def test_jpeg_is_the_declared_encoder():
    import io

    from PIL import Image

    record = scenes.generate(0, "val", "classification", 1, workers=1)[0]
    with Image.open(io.BytesIO(record["jpeg"])) as im:
        assert im.format == "JPEG" and im.size == (80, 80) and im.mode == "RGB"
        # 4:2:0: luma sampled 2x2 relative to chroma
        assert im.layer[0][1:3] == (2, 2) and im.layer[1][1:3] == (1, 1)


def test_classification_list_file_reads(tmp_path):
    from sysnoise.tasks.classification import read_dataset

    folder = scenes.materialise("classification", "val", n=8, root=tmp_path, workers=1)
    dataset = read_dataset(folder / "labels.txt")
    assert len(dataset.samples) == 8 and not dataset.problems
    expected = [scenes.render(0, "val", i)["objects"][0]["category"] for i in range(8)]
    assert [s.labels for s in dataset.samples] == [(c,) for c in expected]
    assert (folder / "classes.txt").read_text().split() == list(scenes.CLASSES)


def test_classification_scene_has_its_labeled_object():
    for index in range(10):
        scene = scenes.render(0, "val", index)
        assert len(scene["objects"]) == 1
        obj = scene["objects"][0]
        assert obj["mask"].sum() >= 20
        labels = scene["label_map"]
        assert set(np.unique(labels[obj["mask"]])) <= {obj["category"] + 1, scenes.IGNORE}


@pytest.mark.parametrize("index", range(6))
def test_masks_boxes_and_label_map_agree(index):
    scene = scenes.render(3, "val", index, "detection")
    labels, objects = scene["label_map"], scene["objects"]
    assert 1 <= len(objects) <= 4
    union = np.zeros(labels.shape, bool)
    for obj in objects:
        mask = obj["mask"]
        assert mask.any()
        assert not (mask & union).any(), "visible masks must not overlap"
        union |= mask
        x, y, w, h = scenes.box_of(mask)
        ys, xs = np.nonzero(mask)
        assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
        # the label map says this object's class on its mask, except on the ignore band
        values = labels[mask]
        assert set(np.unique(values)) <= {obj["category"] + 1, scenes.IGNORE}
        assert (values == obj["category"] + 1).mean() > 0.4
    # every non-background, non-ignore label pixel belongs to an object of that class
    for value in np.unique(labels):
        if value in (0, scenes.IGNORE):
            continue
        pixels = labels == value
        owners = np.zeros(labels.shape, bool)
        for obj in objects:
            if obj["category"] + 1 == value:
                owners |= obj["mask"]
        assert not (pixels & ~owners).any()
    assert not ((labels != 0) & (labels != scenes.IGNORE) & ~union).any()


def test_coco_file_agrees_with_masks_and_label_maps(tmp_path):
    from PIL import Image
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    folder = scenes.materialise("detection", "val", seed=2, n=4, root=tmp_path, workers=1)
    coco = COCO(str(folder / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(scenes.CLASSES)
    lines = (folder / "segmentation.txt").read_text().split("\n")
    for image_id, line in zip(sorted(coco.getImgIds()), [row for row in lines if row]):
        image_file, label_file = line.split()
        info = coco.loadImgs(image_id)[0]
        assert info["file_name"] == image_file and (folder / image_file).is_file()
        labels = np.asarray(Image.open(folder / label_file))
        assert labels.shape == (info["height"], info["width"])
        scene = scenes.render(2, "val", image_id - 1, "detection")
        assert np.array_equal(labels, scene["label_map"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert len(anns) == len(scene["objects"])
        for ann, obj in zip(anns, scene["objects"]):
            mask = mask_utils.decode(ann["segmentation"]).astype(bool)
            assert np.array_equal(mask, obj["mask"])
            assert ann["area"] == mask.sum() and ann["iscrowd"] == 0
            assert ann["bbox"] == scenes.box_of(mask)
            assert ann["category_id"] == obj["category"] + 1
            assert np.allclose(mask_utils.toBbox(ann["segmentation"]), ann["bbox"])
    record = json.loads((folder / "dataset.json").read_text())
    assert record["seed"] == 2 and record["encoder"]["quality"] == 90


def test_dataset_names_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("SYSNOISE_CACHE", str(tmp_path))
    assert {"scenes", "scenes-train", "scenes-det", "scenes-det-train", "scenes-seg", "scenes-seg-train"} <= set(
        DATASETS.names()
    )
    assert resolve_dataset(str(tmp_path)) == str(tmp_path)  # an existing path is left alone
    assert resolve_dataset("not-a-dataset") == "not-a-dataset"
    path = DATASETS("scenes")(n=4)
    assert path.name == "labels.txt" and path.is_file() and path.is_relative_to(tmp_path)


def test_dataset_name_follows_the_task(tmp_path, monkeypatch):
    """`--task detection --data scenes` is the detection split of scenes (the issue's own command);
    a split named for another task is refused rather than swapped."""
    monkeypatch.setenv("SYSNOISE_CACHE", str(tmp_path))
    monkeypatch.setattr(scenes, "DEFAULT_SIZES", {k: 2 for k in scenes.DEFAULT_SIZES})  # tiny splits
    assert resolve_dataset("scenes", "classification").name == "labels.txt"
    assert resolve_dataset("scenes-train", "segmentation").name == "segmentation.txt"
    det = resolve_dataset("scenes", "detection")
    assert det.name == "annotations.json" and det.parent == DATASETS("scenes-det")().parent
    with pytest.raises(UserInputError, match="'scenes-det' is for detection, not classification.*scenes"):
        resolve_dataset("scenes-det", "classification")
