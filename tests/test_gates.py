"""--fail-if conditions, the deterministic --limit subset and the --json summary, on results whose
numbers are written by hand."""

from types import SimpleNamespace

import pytest

from sysnoise import gates, subset
from sysnoise.errors import UserInputError
from sysnoise.registry import UnknownNameError
from sysnoise.report.summary import summary


def _results():
    def row(noise, option, delta, flip):
        return {
            "id": f"{noise}/{option}",
            "noise": noise,
            "option": option,
            "delta": delta,
            "flip_rate": flip,
            "delta_ci": [delta - 1, delta + 1],
            "flip_ci": [0, flip + 1],
            "n": 100,
            "n_failed": 0,
        }

    variants = [
        row("resize", "opencv-area", 0.4, 1.0),
        row("resize", "pillow-nearest", 2.0, 6.0),
        row("decoder", "opencv", 0.0, 0.5),
    ]
    return {
        "task": "classification",
        "model": {"name": "m"},
        "dataset": {"path": "/d", "name": "d"},
        "reference": {"metric": "top1", "top1": 75.0, "top1_ci": [70, 80], "n": 100, "n_labeled": 100},
        "variants": variants,
        "noises": [
            {
                "name": "resize",
                "stage": "pre-processing",
                "applies": True,
                "summary": {"delta": {"mean": 1.2, "max": 2.0, "std": 1.131}, "flip_rate": {"mean": 3.5}},
            },
            {
                "name": "decoder",
                "stage": "pre-processing",
                "applies": True,
                "summary": {"delta": {"mean": 0.0, "max": 0.0, "std": 0.0}, "flip_rate": {"mean": 0.5}},
            },
        ],
        "deploy": {"total": {"id": "deploy/full", "delta": 0.25, "flip_rate": 2.0}},
    }


@pytest.mark.parametrize(
    "text, failed",
    [
        ("delta>0.5", {"resize/pillow-nearest": 2.0}),
        ("delta>=0.4", {"resize/opencv-area": 0.4, "resize/pillow-nearest": 2.0}),
        ("resize.max>1", {"resize": 2.0}),
        ("resize.max>2", {}),
        ("decoder.mean<0.1", {"decoder": 0.0}),
        ("flip>2%", {"resize/pillow-nearest": 6.0}),
        ("flip > 0.75", {"resize/opencv-area": 1.0, "resize/pillow-nearest": 6.0}),
        ("resize/opencv-area.delta>0.3", {"resize/opencv-area": 0.4}),
        ("deploy.delta>0.3", {}),
        ("deploy.delta>0.2", {"deploy/full": 0.25}),
    ],
)
def test_each_gate_form_fails_on_exactly_the_values_that_hold(text, failed):
    found = gates.violations([gates.parse(text)], _results())
    assert found == ([{"gate": text.strip(), "values": failed}] if failed else [])


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("delta=0.5", UserInputError, "expected"),
        ("latency>3", UserInputError, "unknown statistic 'latency'"),
        ("resise.max>1", UnknownNameError, "resise"),
        ("max>1", UserInputError, "name the noise"),
    ],
)
def test_a_bad_gate_is_a_usage_error(text, error, message):
    with pytest.raises(error, match=message):
        gates.parse(text)


def test_a_gate_on_something_not_measured_is_refused_before_work():
    with pytest.raises(UserInputError, match="'crop' is not measured"):
        gates.check_requested(
            [gates.parse("crop.max>1")], noises=["resize", "decoder=opencv"], deploy=False, stepwise=False
        )
    with pytest.raises(UserInputError, match="needs --deploy"):
        gates.check_requested([gates.parse("deploy.delta>1")], noises=["resize"], deploy=False, stepwise=False)
    gates.check_requested(
        [gates.parse("decoder.max>1")], noises=["resize", "decoder=opencv"], deploy=False, stepwise=False
    )


def test_limit_is_deterministic_stratified_and_keeps_order():
    samples = [SimpleNamespace(id=f"s{i:03d}", labels=(i % 4 if i < 80 else 3,)) for i in range(100)]
    # labels: 0, 1, 2 have 20 each; 3 has 40
    chosen = subset.limited(samples, 10)
    assert len(chosen) == 10
    counts = {k: sum(s.labels[0] == k for s in chosen) for k in range(4)}
    assert counts == {0: 2, 1: 2, 2: 2, 3: 4}  # each label keeps its share
    assert chosen == subset.limited(list(reversed(samples)), 10)[::-1]  # independent of file order
    assert [s.id for s in chosen] == sorted(s.id for s in chosen)  # original order kept
    assert subset.limited(samples, 10, seed=1) != chosen
    assert subset.limited(samples, 1000) == samples


def test_limit_largest_remainder_and_unlabeled():
    samples = [SimpleNamespace(id=f"u{i}", labels=()) for i in range(7)] + [
        SimpleNamespace(id=f"a{i}", labels=(5,)) for i in range(3)
    ]
    chosen = subset.limited(samples, 5)
    # shares 3.5 and 1.5: both remainders .5, ties broken by the stratum's name: 5 before None
    assert sum(s.labels == () for s in chosen) == 3 and sum(s.labels == (5,) for s in chosen) == 2


def test_json_summary_carries_every_interval_and_the_failed_gates():
    results = _results()
    failed = gates.violations([gates.parse("delta>0.5")], results)
    doc = summary(results, failed)
    assert doc["reference"] == {"metric": "top1", "value": 75.0, "ci": [70, 80], "n": 100, "n_labeled": 100}
    assert [v["delta_ci"] for v in doc["variants"]] == [[-0.6, 1.4], [1.0, 3.0], [-1.0, 1.0]]
    assert doc["gates"]["failed"] == failed and doc["deploy"]["delta"] == 0.25
