"""The columns of a variant table, each declared once: its header (human reports), its key
(report.csv), how its cell is printed and what report.csv holds. report.md, report.html, the
terminal table and report.csv all read these; a new column is one line here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sysnoise.analysis.metric import Metric


def fmt(value, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def fmt_ci(ci, places: int) -> str:
    return "-" if not ci or None in ci else f"[{ci[0]:.{places}f}, {ci[1]:.{places}f}]"


def fmt_p(p) -> str:
    return "-" if p is None else f"{p:.2g}"


def star(row: dict) -> str:
    return "*" if row.get("distinguishable_from_zero") else ""


def value_of(row: dict, metric: Metric):
    """A row's metric (language rows written before metric keys held it as `value`)."""
    return row.get(metric.key, row.get("value"))


def _pair(values, index: int):
    return "" if not values else values[index]


def _blank(value):
    return "" if value is None else value


@dataclass(frozen=True)
class Column:
    key: str  # the results row field it shows; report.csv's column name
    header: str  # in report.md / report.html / the terminal; "" = the metric's label
    text: Callable[[dict, int, Metric], str]  # (row, places, metric) -> cell
    csv: Callable[[dict, Metric], dict] | None = None  # row -> report.csv cells; default {key: row[key]}
    csv_keys: tuple[str, ...] = ()  # the report.csv columns `csv` fills; default (key,)
    optional: bool = False  # shown only when the run's rows carry the field (language: agreement)

    def title(self, metric: Metric) -> str:
        return self.header or metric.label

    @property
    def csv_fields(self) -> tuple[str, ...]:
        return self.csv_keys or (self.key,)

    def csv_cells(self, row: dict, metric: Metric) -> dict:
        return self.csv(row, metric) if self.csv else {self.key: _blank(row.get(self.key))}


VARIANT_COLUMNS = (
    Column("noise", "noise", lambda r, p, m: r["noise"]),
    Column("option", "option", lambda r, p, m: r["option"]),
    Column(
        "value",
        "",
        lambda r, p, m: fmt(value_of(r, m), p),
        csv=lambda r, m: {"metric": m.key, "value": _blank(value_of(r, m))},
        csv_keys=("metric", "value"),
    ),
    Column("delta", "delta", lambda r, p, m: fmt(r["delta"], p) + star(r)),
    Column(
        "delta_ci",
        "95% CI",
        lambda r, p, m: fmt_ci(r["delta_ci"], p),
        csv=lambda r, m: {"delta_ci_low": _pair(r["delta_ci"], 0), "delta_ci_high": _pair(r["delta_ci"], 1)},
        csv_keys=("delta_ci_low", "delta_ci_high"),
    ),
    Column(
        "p_value",
        "p",
        lambda r, p, m: fmt_p(r["p_value"]),
        csv=lambda r, m: {"p_value": _blank(r["p_value"]), "distinguishable_from_zero": r["distinguishable_from_zero"]},
        csv_keys=("p_value", "distinguishable_from_zero"),
    ),
    Column(
        "flip_rate",
        "flips %",
        lambda r, p, m: fmt(r["flip_rate"], p),
        csv=lambda r, m: {
            "flip_rate": _blank(r["flip_rate"]),
            "flip_ci_low": _pair(r["flip_ci"], 0),
            "flip_ci_high": _pair(r["flip_ci"], 1),
        },
        csv_keys=("flip_rate", "flip_ci_low", "flip_ci_high"),
    ),
    Column("correct_to_wrong", "c->w", lambda r, p, m: str(r["correct_to_wrong"])),
    Column("wrong_to_correct", "w->c", lambda r, p, m: str(r["wrong_to_correct"])),
    Column("token_agreement", "agreement %", lambda r, p, m: fmt(r["token_agreement"], 2), optional=True),
    Column("mean_abs_loglik_change", "|dLL|", lambda r, p, m: fmt(r["mean_abs_loglik_change"], 4), optional=True),
    Column("identical", "identical %", lambda r, p, m: fmt(r["identical"], 0)),
    Column("n_failed", "failed", lambda r, p, m: str(r["n_failed"])),
)
# the terminal's number columns, dropped last to first when it is narrow (names wrap instead)
TERMINAL = ("value", "delta", "delta_ci", "flip_rate", "identical")
STEPWISE = ("value", "delta", "delta_ci", "p_value", "flip_rate")  # a stepwise row's numbers


def columns_for(rows: list[dict], keys: tuple[str, ...] | None = None) -> list[Column]:
    """The declared columns (only `keys`, in their order) that these rows can fill."""
    chosen = [c for c in VARIANT_COLUMNS if keys is None or c.key in keys]
    if keys is not None:
        chosen.sort(key=lambda c: keys.index(c.key))
    return [c for c in chosen if not c.optional or any(c.key in r for r in rows)]


def breakdown_columns(metric: Metric) -> list[Column]:
    """The metric's breakdown (top-5; AP50, APs...; pixel accuracy) as columns beside the metric."""
    return [
        Column(key, header, lambda r, p, m, key=key: fmt(r.get(key), p))
        for key, header in metric.breakdown
        if key != metric.key
    ]
