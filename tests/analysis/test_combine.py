"""Stepwise combination and deployment attribution on a toy model whose deltas are known exactly.

The toy: 100 labeled samples; the reference gets samples 0..79 right. Each (field, option) away
from the reference breaks a fixed set of those samples, and resize + precision together break
three more (an interaction). A pipeline's prediction on a sample is wrong when any active option
breaks it, so every delta below is a count of broken samples, computed by hand.
"""

import numpy as np
import pytest

from sysnoise.analysis import combine
from sysnoise.analysis.classification import ClassificationAnalysis
from sysnoise.analysis.document import add_combined, build_results
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Plan
from sysnoise.errors import UserInputError
from sysnoise.noises import get_noise
from sysnoise.pipeline.spec import Pipeline

N, CLASSES = 100, 4
REFERENCE = Pipeline()
BREAKS = {
    ("decoder", "opencv"): {0, 1},
    ("resize", "opencv-nearest"): {2, 3, 4, 5, 6},
    ("resize", "pillow-box"): {2},
    ("precision", "fp16"): {5, 6, 7},
}
INTERACTION = ({"resize", "precision"}, {10, 11, 12})  # only when both fields are changed
SINGLE = {"decoder": ["opencv"], "resize": ["pillow-box", "opencv-nearest"], "precision": ["fp16"]}


def broken(pipeline: Pipeline) -> set[int]:
    changed = REFERENCE.diff(pipeline)
    out: set[int] = set()
    for field, (_, value) in changed.items():
        out |= BREAKS[(field, value)]
    if INTERACTION[0] <= set(changed):
        out |= INTERACTION[1]
    return out


def toy_outputs(plan: Plan) -> RunOutputs:
    labels = (np.arange(N) % CLASSES)[:, None]
    arrays, errors = {}, {}
    for column in plan.columns:
        right = np.arange(N) < 80
        right[sorted(broken(column.pipeline))] = False
        top1 = np.where(right, labels[:, 0], (labels[:, 0] + 1) % CLASSES)
        topk = np.stack([(top1 + k) % CLASSES for k in range(5)], axis=1).astype(np.int32)
        arrays[column.id] = {"topk": topk, "prob": np.full((N, 5), 0.2, np.float32)}
        errors[column.id] = np.full(N, "", dtype=str)
    return RunOutputs([c.id for c in plan.columns], [f"s{i}" for i in range(N)], labels, arrays, errors)


def single_results() -> dict:
    variants = [v for name, options in SINGLE.items() for v in get_noise(name).variants(REFERENCE, options)]
    plan = Plan(REFERENCE, tuple(variants))
    noises = [{"name": n, "stage": get_noise(n).stage, "description": "", "applies": True} for n in SINGLE]
    return build_results(
        task="classification",
        analysis=ClassificationAnalysis(),
        model={"name": "toy"},
        dataset={"path": "toy"},
        plan=plan,
        outputs=toy_outputs(plan),
        noises=noises,
        environment={},
        run={},
        problems=[],
    )


def run_stepwise(results: dict, stepwise) -> dict:
    steps = combine.choose_steps(results, stepwise)
    plan = Plan(REFERENCE, tuple(combine.stepwise_variants(REFERENCE, steps)))
    order = "greedy" if stepwise == "greedy" else "given"
    return add_combined(results, plan, toy_outputs(plan), ClassificationAnalysis(), steps=steps, order=order)[
        "stepwise"
    ]


def test_single_noise_deltas_are_the_broken_counts():
    results = single_results()
    assert {v["id"]: v["delta"] for v in results["variants"]} == pytest.approx(
        {"decoder/opencv": 2, "resize/pillow-box": 1, "resize/opencv-nearest": 5, "precision/fp16": 3}
    )


def test_greedy_adds_the_worst_single_noises_first_and_reports_cumulative_deltas():
    stepwise = run_stepwise(single_results(), "greedy")
    assert stepwise["order"] == "greedy"
    assert [(s["added_noise"], s["added_option"]) for s in stepwise["steps"]] == [
        ("resize", "opencv-nearest"),
        ("precision", "fp16"),
        ("decoder", "opencv"),
    ]
    # {2..6} -> 5; + {5,6,7} and the resize x precision interaction {10,11,12} -> 9; + {0,1} -> 11
    assert [s["delta"] for s in stepwise["steps"]] == pytest.approx([5, 9, 11])
    assert [s["correct_to_wrong"] for s in stepwise["steps"]] == [5, 9, 11]
    last = stepwise["steps"][-1]
    assert last["changed"] == {
        "decoder": ["pillow", "opencv"],
        "resize": ["pillow-bilinear", "opencv-nearest"],
        "precision": ["fp32", "fp16"],
    }
    assert last["distinguishable_from_zero"]  # 11 discordant pairs, all one way: p = 2 / 2**11


def test_user_order_and_named_options():
    stepwise = run_stepwise(single_results(), ["decoder", "resize=pillow-box", "precision"])
    assert [(s["added_noise"], s["added_option"]) for s in stepwise["steps"]] == [
        ("decoder", "opencv"),
        ("resize", "pillow-box"),
        ("precision", "fp16"),
    ]
    # {0,1} -> 2; + {2} -> 3; + {5,6,7} + interaction {10,11,12} -> 9
    assert [s["delta"] for s in stepwise["steps"]] == pytest.approx([2, 3, 9])


@pytest.mark.parametrize(
    "specs, message",
    [
        (["resize=no-such-kernel"], "has no option"),
        (["colour"], "not measured on its own"),
        (["resize", "resize=pillow-box"], "named twice"),
    ],
)
def test_bad_stepwise_requests_say_what_is_wrong(specs, message):
    with pytest.raises(UserInputError, match=message):
        combine.choose_steps(single_results(), specs)


def test_deployment_attribution_alone_last_and_interaction():
    deploy = REFERENCE.replace(decoder="opencv", resize="opencv-nearest", precision="fp16")
    variants = combine.deploy_variants(REFERENCE, deploy)
    assert [v.option for v in variants] == [
        "full",
        "only:decoder",
        "without:decoder",
        "only:resize",
        "without:resize",
        "only:precision",
        "without:precision",
    ]
    plan = Plan(REFERENCE, tuple(variants))
    section = add_combined(single_results(), plan, toy_outputs(plan), ClassificationAnalysis(), deploy=deploy)["deploy"]
    # total: {0,1} | {2..6} | {5,6,7} | {10,11,12} = 11 samples
    assert section["total"]["delta"] == pytest.approx(11)
    by_field = {c["field"]: c for c in section["changes"]}
    assert {f: c["effect_alone"] for f, c in by_field.items()} == pytest.approx(
        {"decoder": 2, "resize": 5, "precision": 3}
    )
    # last = total - (deployment without the change): 11-9, 11-5, 11-7
    assert {f: c["effect_last"] for f, c in by_field.items()} == pytest.approx(
        {"decoder": 2, "resize": 6, "precision": 4}
    )
    assert section["interaction"] == pytest.approx(11 - (2 + 5 + 3))
    assert by_field["resize"]["deploy"] == "opencv-nearest" and by_field["resize"]["reference"] == "pillow-bilinear"


def test_a_single_change_deployment_needs_one_variant_and_is_its_own_attribution():
    deploy = REFERENCE.replace(resize="opencv-nearest")
    variants = combine.deploy_variants(REFERENCE, deploy)
    assert [v.option for v in variants] == ["full"]
    plan = Plan(REFERENCE, tuple(variants))
    section = add_combined(single_results(), plan, toy_outputs(plan), ClassificationAnalysis(), deploy=deploy)["deploy"]
    assert section["changes"][0]["effect_alone"] == section["changes"][0]["effect_last"] == pytest.approx(5)
    assert section["interaction"] == pytest.approx(0)


def test_a_deployment_equal_to_the_reference_is_refused():
    with pytest.raises(UserInputError, match="identical"):
        combine.deploy_variants(REFERENCE, Pipeline())


def test_label_free_data_ranks_by_flip_rate():
    results = single_results()
    for row in results["variants"]:  # drop the labels: only agreement is left
        row["delta"] = None
    results["variants"][0]["flip_rate"] = 50.0  # decoder/opencv now flips the most
    assert combine.greedy_steps(results)[0] == combine.Step("decoder", "opencv")


def test_configuration_errors_are_measured_but_not_combined():
    # Swapped channels (colour=bgr, the channel-order noise) are reported, never part of the worst case.
    results = single_results()
    for noise, option in (("colour", "bgr"), ("channel-order", "bgr")):
        results["variants"].append(
            {
                **results["variants"][0],
                "id": f"{noise}/{option}",
                "noise": noise,
                "option": option,
                "delta": 40.0,
                "flip_rate": 40.0,
            }
        )
        results["noises"].append({"name": noise, "stage": get_noise(noise).stage, "description": "", "applies": True})
    assert [s.noise for s in combine.greedy_steps(results)] == ["resize", "precision", "decoder"]
    assert "colour" not in combine.worst_rows(results)


INT8_BREAKS = set(range(20, 28))  # int8-percentile breaks 8 samples: worse alone than fp16's 3


@pytest.fixture
def with_int8(monkeypatch):
    monkeypatch.setitem(BREAKS, ("precision", "int8-percentile"), INT8_BREAKS)
    monkeypatch.setitem(SINGLE, "int8", ["int8-percentile"])


def test_greedy_with_int8_and_precision_keeps_int8_in_the_combined_pipeline(with_int8):
    results = single_results()
    stepwise = run_stepwise(results, "greedy")
    # int8 and precision both set the `precision` field: one pipeline holds one of them, the worse
    assert [(s["added_noise"], s["added_option"]) for s in stepwise["steps"]] == [
        ("int8", "int8-percentile"),
        ("resize", "opencv-nearest"),
        ("decoder", "opencv"),
    ]
    assert stepwise["steps"][-1]["changed"]["precision"] == ["fp32", "int8-percentile"]
    # 8; + {2..6} and the resize x precision interaction {10,11,12} -> 16; + {0,1} -> 18
    assert [s["delta"] for s in stepwise["steps"]] == pytest.approx([8, 16, 18])
    assert stepwise["combines"] == ["int8", "resize", "decoder"]
    assert stepwise["left_out"] == [
        {
            "noise": "precision",
            "option": "fp16",
            "field": "precision",
            "kept_noise": "int8",
            "kept_option": "int8-percentile",
        }
    ]
    from sysnoise.report import csv, markdown

    said = markdown.combined_what(results)
    assert said.startswith("int8=int8-percentile+resize=opencv-nearest+decoder=opencv")
    assert "precision=fp16 left out" in said and "int8=int8-percentile" in said
    rows = [line for line in csv.render(results).splitlines() if line.startswith("stepwise,")]
    assert len(rows) == 3 and all("precision=fp16 (same field precision as int8)" in r for r in rows)


def test_named_steps_refuse_two_noises_on_one_field(with_int8):
    with pytest.raises(UserInputError, match="'int8' and 'precision' both set the pipeline's 'precision' field"):
        combine.choose_steps(single_results(), ["int8", "precision"])


def test_operator_noises_share_their_field_and_all_combine():
    # operator rewrites accumulate in one tuple: two operator noises are both kept
    a, b = get_noise("ceil-mode"), get_noise("upsample")
    assert a.field == b.field == "operators" and not a.exclusive
    both = b.apply(a.apply(REFERENCE, "maxpool-ceil"), "upsample-bilinear")
    assert set(both.operators) == {"maxpool-ceil", "upsample-bilinear"}
