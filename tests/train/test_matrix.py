"""The train-by-test matrix from per-sample outputs: cells, row mean/std (ddof=1), paired
comparisons between rows, and the rendered tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sysnoise.analysis import matrix
from sysnoise.analysis.statistics import wilson_interval
from sysnoise.engine.outputs import RunOutputs
from sysnoise.pipeline.spec import Pipeline
from sysnoise.report.matrix import render_csv, render_markdown

N = 400
TESTS = ["pillow-bilinear", "opencv-bilinear", "opencv-nearest"]
REF = Pipeline(input_size=64, crop_pct=1.0)


def outputs(correct_counts: list[int], n: int = N) -> RunOutputs:
    """Column c is right on its first correct_counts[c] samples (label 0) and wrong after."""
    columns = ["reference"] + [f"resize/{t}" for t in TESTS[1:]]
    arrays, errors = {}, {}
    for column, k in zip(columns, correct_counts):
        topk = np.tile(np.arange(5, dtype=np.int32), (n, 1)) + 1  # class 1 first: wrong
        topk[:k, 0] = 0
        arrays[column] = {"topk": topk, "prob": np.zeros((n, 5), np.float32)}
        errors[column] = np.full(n, "", dtype="<U32")
    return RunOutputs(columns, [f"s{i}" for i in range(n)], np.zeros((n, 1), np.int64), arrays, errors)


def row(label: str, trained: list[str], counts: list[int]) -> matrix.RowRun:
    training = [(REF.replace(resize=t), 1 / len(trained)) for t in trained]
    columns = {TESTS[0]: "reference", **{t: f"resize/{t}" for t in TESTS[1:]}}
    return matrix.RowRun(label, training, outputs(counts), columns)


COUNTS = {"pil": [340, 330, 280], "cvl": [320, 336, 290], "cvn": [300, 310, 330], "mix": [335, 334, 326]}


def rows():
    return [
        row("Pillow-bilinear", ["pillow-bilinear"], COUNTS["pil"]),
        row("OpenCV-bilinear", ["opencv-bilinear"], COUNTS["cvl"]),
        row("OpenCV-nearest", ["opencv-nearest"], COUNTS["cvn"]),
        row("mix", TESTS, COUNTS["mix"]),
    ]


def test_cells_rows_and_matched_columns():
    doc = matrix.compute(rows(), "resize", TESTS)
    assert doc["n"] == N and [r["label"] for r in doc["rows"]] == [
        "Pillow-bilinear",
        "OpenCV-bilinear",
        "OpenCV-nearest",
        "mix",
    ]
    for described, key in zip(doc["rows"], COUNTS):
        accuracies = [100 * k / N for k in COUNTS[key]]
        assert [c["top1"] for c in described["cells"]] == pytest.approx(accuracies)
        assert described["mean"] == pytest.approx(np.mean(accuracies))
        assert described["std"] == pytest.approx(np.std(accuracies, ddof=1))
        for cell, k in zip(described["cells"], COUNTS[key]):
            assert cell["ci"] == pytest.approx([100 * v for v in wilson_interval(k, N)])
        assert described["mean_ci"][0] <= described["mean"] <= described["mean_ci"][1]
    assert [r["matched"] for r in doc["rows"]] == TESTS + [None]
    assert [r["kind"] for r in doc["rows"]] == ["fixed"] * 3 + ["mix"]
    assert doc["rows"][3]["trained"] == pytest.approx({t: 1 / 3 for t in TESTS})


def test_mixed_row_against_fixed_and_matched_rows():
    doc = matrix.compute(rows(), "resize", TESTS)
    mix_std = np.std([100 * k / N for k in COUNTS["mix"]], ddof=1)
    by_other = {c["against"]: c for c in doc["mix_vs_fixed"]}
    assert set(by_other) == {"Pillow-bilinear", "OpenCV-bilinear", "OpenCV-nearest"}
    pil_std = np.std([100 * k / N for k in COUNTS["pil"]], ddof=1)
    assert by_other["Pillow-bilinear"]["std_difference"] == pytest.approx(mix_std - pil_std)
    # a clearly smaller spread on 400 samples: the paired interval excludes zero
    assert by_other["Pillow-bilinear"]["std_difference_ci"][1] < 0
    costs = {c["test"]: c for c in doc["mix_cost_vs_matched"]}
    for c, test in enumerate(TESTS):
        matched = COUNTS[["pil", "cvl", "cvn"][c]][c]
        assert costs[test]["cost"] == pytest.approx(100 * (matched - COUNTS["mix"][c]) / N)
        # first-k structure: the discordant pairs all go one way, |difference| of them
        d = abs(matched - COUNTS["mix"][c])
        assert costs[test]["p_value"] == pytest.approx(min(1.0, 2 * 0.5**d))


def test_identical_rows_differ_by_exactly_zero_because_resamples_are_shared():
    twin = [row("a", ["pillow-bilinear"], COUNTS["pil"]), row("b", TESTS, COUNTS["pil"])]
    doc = matrix.compute(twin, "resize", TESTS)
    comparison = doc["mix_vs_fixed"][0]
    assert comparison["std_difference_ci"] == [0.0, 0.0] and comparison["mean_difference_ci"] == [0.0, 0.0]


def test_bootstrap_is_seeded_and_reasonably_wide():
    a, b = matrix.compute(rows(), "resize", TESTS), matrix.compute(rows(), "resize", TESTS)
    assert a == b
    low, high = a["rows"][0]["mean_ci"]
    # the mean of three highly correlated columns near 79%: about +-2 * sqrt(p(1-p)/n) points
    half = 2 * 100 * math.sqrt(0.79 * 0.21 / N)
    assert 0.5 * half < (high - low) / 2 < 1.5 * half


def test_unreadable_samples_leave_every_row_and_failures_count_as_wrong():
    rs = rows()
    rs[1].outputs.errors["reference"][0] = "DecodeError: truncated"  # sample 0 out of every row
    rs[3].outputs.errors["resize/opencv-nearest"][1] = "DecodeError: odd"  # a right answer that failed
    doc = matrix.compute(rs, "resize", TESTS)
    assert doc["n"] == N - 1
    assert doc["rows"][0]["cells"][0]["correct"] == COUNTS["pil"][0] - 1
    assert doc["rows"][3]["cells"][2]["correct"] == COUNTS["mix"][2] - 2


def test_rows_on_different_samples_are_refused():
    rs = rows()
    rs[2].outputs.sample_ids[5] = "other"
    with pytest.raises(ValueError, match="different samples"):
        matrix.compute(rs, "resize", TESTS)


def test_training_is_read_from_the_trained_record_or_the_zoo_card():
    a, b = REF.replace(resize="opencv-nearest"), REF.replace(resize="opencv-bilinear")
    record = {"training": {"pipelines": [a.to_dict(), b.to_dict()], "probabilities": [0.75, 0.25]}}
    assert matrix.training_of(record, REF) == [(a, 0.75), (b, 0.25)]
    assert matrix.training_of({"training_system": a.to_dict()}, REF) == [(a, 1.0)]
    assert matrix.training_of({"training_system": [a.to_dict(), b.to_dict()]}, REF) == [(a, 0.5), (b, 0.5)]
    assert matrix.training_of({}, REF) == [(REF, 1.0)]


def test_rendered_tables_carry_every_number():
    doc = matrix.compute(rows(), "resize", TESTS)
    text = render_markdown(doc)
    table = [line for line in text.splitlines() if line.startswith("| Pillow-bilinear |")][0]
    assert "**85.0** [" in table  # the matched cell, bold, with its interval (1 decimal: n = 400)
    assert table.count("[") == len(TESTS) + 2
    assert "| mix | opencv-nearest | OpenCV-nearest | 82.5 | 81.5 | 1.0 |" in text
    lines = render_csv(doc).splitlines()
    assert lines[0] == "field,kind,row,trained,test,value,ci_low,ci_high,n,p_value"
    cells = [line for line in lines if ",cell," in line]
    assert len(cells) == 4 * len(TESTS)
    assert sum(",cost," in line for line in lines) == len(TESTS)
