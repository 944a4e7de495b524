"""COCO data reading (bad annotations warn and are handled as COCOeval handles them), COCOeval on a
hand-worked case, and the resampled mAP of the bootstrap against COCOeval itself."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from sysnoise.analysis.detection import ResampledAP, coco_eval, detections_json, ground_truth
from sysnoise.errors import UserInputError
from sysnoise.tasks.detection import read_coco, read_detection_data
from tests.conftest import write_jpeg

# One image, two objects, three detections: hit (0.9), miss (0.8), hit (0.7) at every IoU threshold.
# Precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; COCO's envelope gives 1 up to recall 0.5 (51 of the
# 101 recall thresholds) and 2/3 above (50): AP = (51 + 50 * 2/3) / 101 = 253 / 303.
HAND_AP = 253 / 303


def _hand_case():
    coco = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [50, 50, 30, 20], "area": 600, "iscrowd": 0},
        ],
        "categories": [{"id": 3, "name": "square"}],
    }
    dets = [
        {"image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 20], "score": 0.9},
        {"image_id": 7, "category_id": 3, "bbox": [70, 0, 10, 10], "score": 0.8},
        {"image_id": 7, "category_id": 3, "bbox": [50, 50, 30, 20], "score": 0.7},
    ]
    return coco, dets


def test_cocoeval_on_a_hand_worked_case():
    coco, dets = _hand_case()
    evaluation = coco_eval(ground_truth(coco), dets, [7])
    assert evaluation.stats[0] == pytest.approx(HAND_AP)  # AP @[.5:.95]
    assert evaluation.stats[1] == pytest.approx(HAND_AP)  # AP50
    assert evaluation.stats[8] == pytest.approx(1.0)  # AR@100: both objects found
    assert ResampledAP(evaluation, [7])(np.ones(1)) == pytest.approx(100 * HAND_AP)


def test_no_detections_at_all_is_zero_not_a_crash():
    coco, _ = _hand_case()
    evaluation = coco_eval(ground_truth(coco), [], [7])
    assert evaluation.stats[0] == 0
    assert ResampledAP(evaluation, [7])(np.ones(1)) == 0


def _random_case(seed: int, n_images: int = 25):
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in range(n_images)]
    anns, dets = [], []
    for image in images:
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 70, 2)
            w, h = rng.uniform(3, 60, 2)  # small, medium and large objects
            c = int(rng.integers(1, 4))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image["id"],
                    "category_id": c,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": int(rng.random() < 0.1),
                }
            )
            for _ in range(rng.integers(0, 3)):
                j = rng.normal(0, 3, 4)
                dets.append(
                    {
                        "image_id": image["id"],
                        "category_id": c if rng.random() < 0.8 else int(rng.integers(1, 4)),
                        "bbox": [x + j[0], y + j[1], max(1, w + j[2]), max(1, h + j[3])],
                        "score": float(rng.random()),
                    }
                )
        for _ in range(rng.integers(0, 2)):  # false positives
            dets.append(
                {
                    "image_id": image["id"],
                    "category_id": int(rng.integers(1, 4)),
                    "bbox": list(rng.uniform(0, 50, 2)) + list(rng.uniform(5, 30, 2)),
                    "score": float(rng.random()),
                }
            )
    coco = {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in (1, 2, 3)]}
    return coco, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resampled_ap_is_cocoeval_on_the_full_set(seed):
    coco, dets = _random_case(seed)
    ids = [image["id"] for image in coco["images"]]
    evaluation = coco_eval(ground_truth(coco), dets, ids)
    assert ResampledAP(evaluation, ids)(np.ones(len(ids))) == pytest.approx(100 * evaluation.stats[0], abs=1e-9)


def test_an_image_drawn_twice_counts_as_a_copy_of_it():
    coco, dets = _random_case(3, n_images=6)
    ids = [image["id"] for image in coco["images"]]
    weights = np.array([2, 0, 1, 3, 0, 1])
    resampled = ResampledAP(coco_eval(ground_truth(coco), dets, ids), ids)(weights)
    # the same multiset written out: copies of images under new ids, evaluated by COCOeval
    images, anns, copies, next_id = [], [], [], 1000
    for image, count in zip(coco["images"], weights):
        for copy in range(count):
            new_id = image["id"] if copy == 0 else (next_id := next_id + 1)
            images.append({**image, "id": new_id})
            anns += [
                {**a, "id": len(anns) + k + 1, "image_id": new_id}
                for k, a in enumerate(x for x in coco["annotations"] if x["image_id"] == image["id"])
            ]
            copies += [{**d, "image_id": new_id} for d in dets if d["image_id"] == image["id"]]
    explicit = {**coco, "images": images, "annotations": anns}
    expected = coco_eval(ground_truth(explicit), copies, [i["id"] for i in images]).stats[0]
    assert resampled == pytest.approx(100 * expected, abs=1e-9)


def test_detections_json_is_the_coco_results_format():
    boxes = np.zeros((2, 3, 4), np.float32)
    boxes[0, 0] = [10, 20, 30, 60]
    labels = np.array([[3, -1, -1], [-1, -1, -1]])
    scores = np.array([[0.5, 0, 0], [0, 0, 0]], np.float32)
    assert detections_json(boxes, scores, labels, [11, 12]) == [
        {"image_id": 11, "category_id": 3, "bbox": [10.0, 20.0, 20.0, 40.0], "score": 0.5}
    ]


def _write_dataset(tmp_path, annotations, images=None):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_jpeg(tmp_path / name, np.full((40, 50, 3), 128, np.uint8))
    coco = {
        "images": images
        or [
            {"id": 1, "file_name": "a.jpg", "width": 50, "height": 40},
            {"id": 2, "file_name": "b.jpg", "width": 50, "height": 40},
            {"id": 3, "file_name": "c.jpg", "width": 50, "height": 40},
        ],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}],
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def test_bad_annotations_warn_and_are_handled_as_cocoeval_does(tmp_path):
    path = _write_dataset(
        tmp_path,
        [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [40, 30, 20, 20], "area": 400, "iscrowd": 0},  # outside
            {
                "id": 11,
                "image_id": 1,
                "category_id": 9,
                "bbox": [0, 0, 10, 10],
                "area": 100,
                "iscrowd": 0,
            },  # unknown cat
            {"id": 12, "image_id": 2, "category_id": 2, "bbox": [5, 5, 10, 10]},  # no area, no iscrowd
            {"id": 13, "image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},  # no image
            {"id": 14, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3], "area": 6, "iscrowd": 0},  # malformed
        ],
    )  # image 3 has no objects at all
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = read_coco(path)
    messages = " | ".join(str(w.message) for w in caught)
    for expected in ("outside its image", "unknown category id", "no area", "not evaluated", "bbox not"):
        assert expected in messages
    assert [s.image_id for s in dataset.samples] == [1, 2, 3]
    assert [a["category_id"] for a in dataset.coco["annotations"]] == [1, 2]
    assert dataset.coco["annotations"][1]["area"] == 100 and dataset.coco["annotations"][1]["iscrowd"] == 0
    assert dataset.describe()["n_images_without_objects"] == 1
    # COCOeval runs on it: the box outside the image is found, image 3's detection is a false positive
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [40, 30, 20, 20], "score": 0.9},
        {"image_id": 2, "category_id": 2, "bbox": [5, 5, 10, 10], "score": 0.8},
        {"image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.95},
    ]
    evaluation = coco_eval(ground_truth(dataset.coco), dets, [1, 2, 3])
    # class 1: FP (0.95) then TP: precision 1/2 at recall 1 -> AP 0.5; class 2: AP 1
    assert evaluation.stats[0] == pytest.approx(0.75)


def test_missing_files_and_duplicate_ids_are_dropped_with_reasons(tmp_path):
    _write_dataset(
        tmp_path,
        [],
        images=[
            {"id": 1, "file_name": "a.jpg", "width": 50, "height": 40},
            {"id": 1, "file_name": "b.jpg", "width": 50, "height": 40},
            {"id": 2, "file_name": "gone.jpg", "width": 50, "height": 40},
            {"id": 3, "file_name": "../c.jpg", "width": 50, "height": 40},
        ],
    )
    dataset = read_detection_data(tmp_path)
    assert [s.id for s in dataset.samples] == ["a.jpg"]
    reasons = [p["reason"] for p in dataset.problems]
    assert any("duplicate image id" in r for r in reasons) and any("not found" in r for r in reasons)
    assert any("escapes" in r for r in reasons)


def test_unreadable_or_non_coco_files_are_clear_errors(tmp_path):
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(UserInputError, match="x.json:1: not valid JSON"):
        read_coco(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(UserInputError, match="categories"):
        read_coco(tmp_path / "y.json")
    with pytest.raises(UserInputError, match="annotations.json"):
        read_detection_data(tmp_path)


def test_batched_resamples_equal_one_at_a_time(monkeypatch):
    coco, dets = _random_case(4, n_images=12)
    ids = [image["id"] for image in coco["images"]]
    resampled = ResampledAP(coco_eval(ground_truth(coco), dets, ids), ids)
    weights = np.stack([np.bincount(r, minlength=12) for r in np.random.default_rng(0).integers(0, 12, (40, 12))])
    together = resampled.batch(weights)
    monkeypatch.setattr(ResampledAP, "ELEMENTS", 1)  # one resample at a time
    assert np.array_equal(resampled.batch(weights), together)
    assert [resampled(w) for w in weights[:5]] == pytest.approx(together[:5].tolist(), abs=1e-12)


def test_prefilled_values_are_the_bootstraps_own_draws():
    from sysnoise.analysis import statistics as st
    from sysnoise.analysis.bootstrap import CachedMetric

    calls = []
    metric = CachedMetric(
        lambda indices: calls.append(1) or float(np.mean(indices)),
        batch=lambda w: (w @ np.arange(w.shape[1])) / w.sum(axis=1),
    )
    values = metric.prefill(30, 300)
    expected = [float(np.mean(r)) for block in st.bootstrap_blocks(30, 300) for r in block]
    assert values.tolist() == pytest.approx(expected)
    st.paired_bootstrap_metric(metric, lambda indices: 0.0, 30, resamples=300)
    assert len(calls) == 1  # only the full set: every resample was found prefilled
