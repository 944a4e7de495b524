"""Difference amplification and the choice of flip examples, against hand-made cases."""

import numpy as np

from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Column
from sysnoise.pipeline.spec import Pipeline
from sysnoise.report.figures import Measured, amplified_difference, flips_of, pick_flips


def test_amplification_brings_the_largest_differences_to_full_brightness():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (2, 0, 1)  # differences of 2 and 1 on 3 of the 12 values
    b[1, 1, 2] = 2
    shown, factor, stats = amplified_difference(a, b)
    assert factor == 128  # 255 / 2, the 99.5th percentile of the non-zero differences, rounded half to even
    assert shown[0, 0].tolist() == [255, 0, 128] and shown[1, 1, 2] == 255 and shown[0, 1].tolist() == [0, 0, 0]
    assert stats == {"max_abs": 2, "mean_abs": 5 / 12, "changed_pct": 100 * 3 / 12}


def test_identical_pixels_stay_black_at_factor_one():
    a = np.full((3, 3, 3), 7, np.uint8)
    shown, factor, stats = amplified_difference(a, a)
    assert factor == 1 and not shown.any() and stats["max_abs"] == 0


def outputs_with(columns: dict[str, list[int]], labels: list[int]) -> RunOutputs:
    """Top-1 per sample for each column (reference first); label -1 means unlabeled."""
    n = len(labels)
    arrays = {
        c: {
            "topk": np.stack([np.array(top1) + k for k in range(5)], 1).astype(np.int32),
            "prob": np.zeros((n, 5), np.float32),
        }
        for c, top1 in columns.items()
    }
    errors = {c: np.full(n, "", dtype=str) for c in columns}
    return RunOutputs(list(columns), [f"s{i}" for i in range(n)], np.array(labels)[:, None], arrays, errors)


def test_flips_are_classified_and_the_most_telling_come_first_on_distinct_samples():
    #            s0 s1 s2 s3 s4
    labels = [0, 1, 2, -1, 0]
    outputs = outputs_with(
        {
            "reference": [0, 0, 2, 5, 3],
            "resize/a": [1, 1, 2, 6, 3],  # s0 right->wrong, s1 wrong->right, s3 unlabeled change
            "decoder/b": [1, 0, 0, 5, 4],  # s0 right->wrong, s2 right->wrong, s4 wrong->wrong change
        },
        labels,
    )
    resize = Measured(Column("resize/a", Pipeline(), "resize", "a"), outputs)
    decoder = Measured(Column("decoder/b", Pipeline(), "decoder", "b"), outputs)
    assert [(f.position, f.kind) for f in flips_of(resize)] == [
        (0, "correct->wrong"),
        (1, "wrong->correct"),
        (3, "changed"),
    ]
    assert [(f.position, f.kind) for f in flips_of(decoder)] == [
        (0, "correct->wrong"),
        (2, "correct->wrong"),
        (4, "changed"),
    ]
    picked = [(f.measured.column.id, f.position, f.kind) for f in pick_flips([resize, decoder], limit=4)]
    # one of each kind first (worst kind first), then an unseen noise, never a sample twice
    assert picked == [
        ("resize/a", 0, "correct->wrong"),
        ("resize/a", 1, "wrong->correct"),
        ("resize/a", 3, "changed"),
        ("decoder/b", 2, "correct->wrong"),
    ]


def test_a_failed_variant_sample_is_no_flip_example():
    outputs = outputs_with({"reference": [0, 0], "resize/a": [1, 1]}, [0, 0])
    outputs.errors["resize/a"][1] = "decode failed"
    measured = Measured(Column("resize/a", Pipeline(), "resize", "a"), outputs)
    assert [f.position for f in flips_of(measured)] == [0]
