"""The published results.json schema accepts what runs write and rejects what they must not."""

import copy
import json

import jsonschema
import pytest

from sysnoise.schemas import results_schema

from ..analysis.test_combine import single_results


@pytest.fixture
def results():
    return json.loads(json.dumps(single_results()))


def test_a_run_s_results_validate(results):
    jsonschema.Draft202012Validator(results_schema()).validate(results)


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("variants"),
        lambda r: r["variants"][0].pop("delta_ci"),
        lambda r: r["variants"][0].__setitem__("flip_ci", [1.0]),
        lambda r: r["reference"]["pipeline"].__setitem__("std", [0, 1, 1]),
        lambda r: r.__setitem__("schema", "other/1"),
    ],
)
def test_damaged_results_are_rejected(results, damage):
    broken = copy.deepcopy(results)
    damage(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(results_schema()).validate(broken)
