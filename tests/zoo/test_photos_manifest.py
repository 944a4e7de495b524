"""Checks on the embedded demo photo set (src/sysnoise/zoo/photos/manifest.json).

The labels themselves were chosen by a person looking at each photo; these tests
only guard the manifest's shape, that every referenced file is where it says,
and that the label names agree with torchvision's ImageNet-1k category list.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

PHOTOS = Path(__file__).resolve().parents[2] / "src" / "sysnoise" / "zoo" / "photos"
MANIFEST = PHOTOS / "manifest.json"
ID_RE = re.compile(r"^[a-z0-9_]+$")
KEYS = {"id", "source", "origin", "licence", "labels", "label_names", "why"}
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def manifest() -> dict:
    with MANIFEST.open(encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def photos(manifest) -> list[dict]:
    return manifest["photos"]


@pytest.fixture(scope="module")
def categories() -> list[str]:
    from torchvision.models import ResNet50_Weights  # offline metadata, no download

    cats = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(cats) == 1000
    return cats


def _package_dir(pkg: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    assert spec is not None and spec.submodule_search_locations, f"package {pkg!r} not importable"
    return Path(spec.submodule_search_locations[0])


def _resolve(source: dict) -> Path:
    if "file" in source:
        return PHOTOS / source["file"]
    return _package_dir(source["package"]) / source["path"]


def test_top_level(manifest):
    assert set(manifest) == {"schema", "label_space", "photos"}
    assert manifest["schema"] == 1
    assert manifest["label_space"] == "imagenet-1k (torchvision category order)"
    assert isinstance(manifest["photos"], list) and manifest["photos"]


def test_entries_well_formed(photos):
    for p in photos:
        assert set(p) == KEYS, p.get("id")
        assert isinstance(p["id"], str) and ID_RE.match(p["id"]), p["id"]
        for k in ("origin", "licence", "why"):
            assert isinstance(p[k], str) and p[k].strip(), (p["id"], k)
        src = p["source"]
        assert isinstance(src, dict)
        if "file" in src:
            assert set(src) == {"file"}, p["id"]
            name = src["file"]
            assert "/" not in name and "\\" not in name and not name.startswith("."), p["id"]
        else:
            assert set(src) == {"package", "path"}, p["id"]
            assert src["package"] in {"skimage", "matplotlib"}, p["id"]
            assert not Path(src["path"]).is_absolute() and ".." not in Path(src["path"]).parts, p["id"]
        assert isinstance(p["labels"], list) and isinstance(p["label_names"], list)
        assert all(isinstance(i, int) and not isinstance(i, bool) for i in p["labels"]), p["id"]
        assert len(set(p["labels"])) == len(p["labels"]), p["id"]
        assert len(p["labels"]) <= 5, f"{p['id']}: label sets should stay small"


def test_ids_unique(photos):
    ids = [p["id"] for p in photos]
    assert len(ids) == len(set(ids))


def test_committed_files_unique(photos):
    files = [p["source"]["file"] for p in photos if "file" in p["source"]]
    assert len(files) == len(set(files))


def test_every_source_exists(photos):
    missing = [p["id"] for p in photos if not _resolve(p["source"]).is_file()]
    assert not missing, f"missing source files: {missing}"


def test_label_names_match_torchvision(photos, categories):
    for p in photos:
        assert all(0 <= i < len(categories) for i in p["labels"]), p["id"]
        assert p["label_names"] == [categories[i] for i in p["labels"]], p["id"]


def test_committed_files_are_jpeg_or_png(photos):
    for p in photos:
        if "file" not in p["source"]:
            continue
        path = PHOTOS / p["source"]["file"]
        head = path.read_bytes()[:8]
        if path.suffix.lower() in (".jpg", ".jpeg"):
            assert head.startswith(JPEG_MAGIC), p["id"]
        elif path.suffix.lower() == ".png":
            assert head.startswith(PNG_MAGIC), p["id"]
        else:
            pytest.fail(f"{p['id']}: unexpected file type {path.name}")


def test_no_stray_files(photos):
    listed = {p["source"]["file"] for p in photos if "file" in p["source"]}
    present = {f.name for f in PHOTOS.iterdir() if f.is_file()} - {"manifest.json", "README.md"}
    assert present == listed


def test_committed_size_budget():
    total = sum(f.stat().st_size for f in PHOTOS.iterdir() if f.is_file())
    assert total < 8 * 1024 * 1024


def test_enough_labeled(photos):
    labeled = [p for p in photos if p["labels"]]
    assert len(labeled) >= 20
    assert len(photos) >= 30


def test_photos_decode(photos):
    from PIL import Image

    for p in photos:
        with Image.open(_resolve(p["source"])) as im:
            im.load()
            w, h = im.size
            assert w >= 64 and h >= 64, p["id"]
