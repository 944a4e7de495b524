"""COCO files a user may give: a broken structure ends before any model loads with
`sysnoise: error: FILE: where: what, how to fix` and exit 2; a file without objects is measured
and reported as having no evaluable samples (issue 18 s.5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sysnoise.cli import main
from tests.conftest import write_jpeg
from tests.test_input_errors import refused


def coco(tmp_path, **changes) -> dict:
    write_jpeg(tmp_path / "a.jpg", np.full((40, 50, 3), 90, np.uint8))
    write_jpeg(tmp_path / "b.jpg", np.full((40, 50, 3), 30, np.uint8))
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 50, "height": 40},
            {"id": 2, "file_name": "b.jpg", "width": 50, "height": 40},
        ],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 10], "area": 200, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    data.update(changes)
    return data


def argv(path, out) -> list[str]:
    # a model name that does not exist: the data is read (and refused) before any model loads
    return [
        "run",
        "--task",
        "detection",
        "--model",
        "no-such-detector",
        "--data",
        str(path),
        "--out",
        str(out),
        "--no-progress",
        "--workers",
        "0",
    ]


def _image(**changes) -> dict:
    return {"id": 1, "file_name": "a.jpg", "width": 50, "height": 40, **changes}


def _annotation(**changes) -> dict:
    return {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 10], "area": 200, "iscrowd": 0, **changes}


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"categories": [{"name": "thing"}]}, 'categories[0]: no "id"; give each category an integer id'),
        ({"categories": [{"id": "1", "name": "thing"}]}, "categories[0]: id '1' is not an integer"),
        ({"categories": [{"id": float("nan"), "name": "thing"}]}, "categories[0]: id nan is not an integer"),
        ({"categories": [{"id": 1.5, "name": "thing"}]}, "categories[0]: id 1.5 is not an integer"),
        ({"categories": ["thing"]}, "categories[0]: a category is an object"),
        ({"images": [_image(), 7]}, "images[1]: an image is an object"),
        ({"annotations": [_annotation(image_id=[1, 2])]}, "annotations[0]: image_id [1, 2] is not an integer"),
        ({"annotations": [_annotation(category_id=[1])]}, "annotations[0]: category_id [1] is not an integer"),
        ({"annotations": [_annotation(iscrowd="yes")]}, "annotations[0]: iscrowd 'yes' is not 0 or 1"),
        ({"images": [_image(file_name="a\0.jpg")]}, "images[0]: NUL byte in file_name 'a\\x00.jpg'"),
        (
            {"images": [_image(width=1e300, height=1e300)]},
            "images[0] (a.jpg): width x height 1e+300 x 1e+300 is beyond any image sysnoise decodes",
        ),
        ({"annotations": {"0": _annotation()}}, "'annotations' is not a list of objects"),
    ],
)
def test_a_coco_file_with_a_broken_structure_is_refused_naming_the_entry(changes, expected, tmp_path, capsys):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco(tmp_path, **changes)))
    message = refused(argv(path, tmp_path / "out"), capsys)
    assert message.startswith(f"{path}: ") and expected in message, message


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"images": [], "categories": [{"id": ' + "7" * 5000 + "}]}", ": a number in the JSON is too long to read"),
        ('{"images": ' + "[" * 100000 + "]" * 100000 + "}", ": JSON nested too deeply to read"),
    ],
)
def test_hostile_json_is_refused_without_a_traceback(text, expected, tmp_path, capsys):
    path = tmp_path / "annotations.json"
    path.write_text(text)
    assert refused(argv(path, tmp_path / "out"), capsys) == f"{path}{expected}" + (
        " (Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits); ids, sizes and "
        "labels are ordinary numbers"
        if "long" in expected
        else "; the data nests a few levels"
    )


def test_a_coco_file_without_objects_reports_no_evaluable_samples(tmp_path, capsys):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco(tmp_path, annotations=[])))
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--task",
            "detection",
            "--model",
            "zoo-detector",
            "--data",
            str(path),
            "--out",
            str(out),
            "--no-progress",
            "--workers",
            "0",
            "--noise",
            "nms=nms-plus1,nms-iou-0.45",
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "No evaluable samples for mAP: the ground truth holds no objects" in report
    assert "No evaluable samples for mAP" in (out / "report.html").read_text()
    results = json.loads((out / "results.json").read_text())
    assert results["reference"]["map"] is None
    # an undefined metric has no interval and no test: nothing is "distinguishable from zero"
    assert all(v["p_value"] is None and not v["distinguishable_from_zero"] for v in results["variants"])
