"""Release gates: `--fail-if EXPR` conditions checked against a run's results.

    EXPR    := [SCOPE "."] STAT OP NUMBER ["%"]
    SCOPE   := a noise name (resize) | a variant id (resize/opencv-area) | deploy | combined
               (omitted: every single-noise variant)
    STAT    := delta | flip                      per variant: fails if any variant in scope does
             | mean | max | std                  a noise's spread over its options (delta on
                                                 labeled data, else flip rate)
    OP      := > | >= | < | <=

Deltas are in the metric's points (reference minus variant: positive is a loss); flip rates in %
("%" after the number is optional and means the same). A condition is parsed and checked against
the catalogue before any work (a typo must not make a gate that can never fail); after the run,
`violations` lists each condition that holds, with the values that make it hold.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from sysnoise.errors import UserInputError
from sysnoise.noises import NOISES, split_spec

FAILED_GATE_EXIT = 3  # distinct from usage errors (2) and interruption (130)
VARIANT_STATS = {"delta": "delta", "flip": "flip_rate"}
SPREAD_STATS = ("mean", "max", "std")
SCOPES = ("deploy", "combined")
OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_SYNTAX = re.compile(
    r"^\s*(?:(?P<scope>[A-Za-z0-9_./:+-]+?)\.)?(?P<stat>[a-z]+)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+))\s*%?\s*$"
)


@dataclass(frozen=True)
class Gate:
    text: str
    scope: str | None
    stat: str
    op: str
    value: float

    def holds(self, measured: float | None) -> bool:
        return measured is not None and OPERATORS[self.op](measured, self.value)


def parse(text: str) -> Gate:
    """One condition, checked for syntax, statistic and scope (an unknown noise is a usage error)."""
    match = _SYNTAX.match(text)
    if not match:
        raise UserInputError(
            f"--fail-if {text!r}: expected [NOISE.]STAT OP NUMBER, e.g. 'delta>0.5', "
            "'resize.max>1', 'flip>2%', 'deploy.delta>0.3'"
        )
    scope, stat = match["scope"], match["stat"]
    if stat not in VARIANT_STATS and stat not in SPREAD_STATS:
        raise UserInputError(
            f"--fail-if {text!r}: unknown statistic {stat!r}; one of {', '.join([*VARIANT_STATS, *SPREAD_STATS])}"
        )
    if scope is not None:
        noise = scope.split("/", 1)[0]
        if noise not in SCOPES and noise not in NOISES:
            NOISES(noise)  # raises with the nearest names
    if stat in SPREAD_STATS and (scope is None or "/" in scope or scope in SCOPES):
        raise UserInputError(
            f"--fail-if {text!r}: {stat} is a noise's spread over its options: name the noise (e.g. resize.{stat}>1)"
        )
    return Gate(text.strip(), scope, stat, match["op"], float(match["value"]))


def check_requested(gates: list[Gate], *, noises: list[str], deploy: bool, stepwise: bool) -> None:
    """Refuse, before work, a gate on something the run will not measure (a noise not asked for,
    a combination not requested): such a gate could never fail. noises: the run's noise specs."""
    asked = {split_spec(spec)[0] for spec in noises}
    for gate in gates:
        noise = gate.scope.split("/", 1)[0] if gate.scope else None
        if noise and noise not in SCOPES and noise not in asked:
            raise UserInputError(
                f"--fail-if {gate.text!r}: noise {noise!r} is not measured in this run "
                f"(measured: {', '.join(sorted(asked))}); add --noise {noise}"
            )
        if gate.scope == "deploy" and not deploy:
            raise UserInputError(f"--fail-if {gate.text!r}: needs --deploy (no deployment is measured)")
        if gate.scope == "combined" and not stepwise:
            raise UserInputError(f"--fail-if {gate.text!r}: needs --stepwise (no combination is measured)")


def _effect_key(results: dict) -> str:
    return "delta" if any(v.get("delta") is not None for v in results["variants"]) else "flip_rate"


def _rows(results: dict, scope: str | None) -> list[dict]:
    if scope == "deploy":
        return [results["deploy"]["total"]] if results.get("deploy") else []
    if scope == "combined":
        steps = results.get("stepwise", {}).get("steps", [])
        return steps[-1:]
    variants = results["variants"]
    if scope is None:
        return variants
    return [v for v in variants if v["id"] == scope or v["noise"] == scope]


def measured(gate: Gate, results: dict) -> list[tuple[str, float]]:
    """(what, value) pairs the gate compares: one per variant in scope, or the noise's spread."""
    if gate.stat in SPREAD_STATS:
        noise = next((n for n in results["noises"] if n["name"] == gate.scope), None)
        summary = (noise or {}).get("summary") or {}
        spread = summary.get(_effect_key(results))
        return [(gate.scope, spread[gate.stat])] if spread else []
    key = VARIANT_STATS[gate.stat]
    return [(row.get("id", gate.scope), row[key]) for row in _rows(results, gate.scope) if row.get(key) is not None]


def violations(gates: list[Gate], results: dict) -> list[dict]:
    """Each gate that holds: {gate, values: {what: value}} for the values that make it hold."""
    out = []
    for gate in gates:
        bad = {what: value for what, value in measured(gate, results) if gate.holds(value)}
        if bad:
            out.append({"gate": gate.text, "values": bad})
    return out
