"""The terminal summary at 80 columns (a pipe, a CI log) and narrower: every number whole."""

import io
import re

import pytest
from rich.console import Console

from sysnoise.analysis.metric import places_of
from sysnoise.report.columns import fmt_ci
from sysnoise.report.console import print_summary

from ..analysis.test_combine import single_results


def _render(results, width: int) -> str:
    buffer = io.StringIO()
    print_summary(results, Console(file=buffer, width=width, force_terminal=False, color_system=None))
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 60, 40])
def test_every_interval_and_number_is_printed_whole(width):
    results = single_results()
    for v in results["variants"]:  # long names and wide intervals, as real runs have
        v["option"] = v["option"] + "-with-a-long-suffix"
        v["delta_ci"] = [-12.345, 123.456]
    text = _render(results, width)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    places = places_of(results)
    shown = re.findall(r"\[-?\d+(?:\.\d+)?, -?\d+(?:\.\d+)?\]", text)
    if width >= 60:  # the interval column fits: one whole interval per variant
        assert shown == [fmt_ci(v["delta_ci"], places) for v in results["variants"]]
    else:  # too narrow for it: the column is left out, never cut
        assert shown == [] and "95% CI" not in text
    for v in results["variants"]:  # the metric column is the last to go: always there
        assert re.search(r"(?<![\d.])" + re.escape(f"{v['top1']:.{places}f}"), text)
