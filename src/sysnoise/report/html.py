"""report.html: one self-contained page (inline CSS, inline SVG charts, images as data URIs, no
script, nothing fetched) that a person can read: summary, per-noise deltas with intervals, the
stepwise chart, the deployment attribution, pixel-difference pictures, flipped predictions and
the environment. Rendered from results.json and the stored figures only."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from sysnoise.analysis.combine import effect, effect_ci, worst_rows
from sysnoise.analysis.metric import metric_of, places_of
from sysnoise.report.columns import STEPWISE, columns_for, fmt, fmt_ci, star, value_of
from sysnoise.report.markdown import (
    calibration_note,
    combined_what,
    data_title,
    labeled,
    misconfigured,
    noise_cell,
    nothing_measured,
    precision_note,
    shown,
)

SIGNIFICANT = "#b2182b"  # distinguishable from zero
NOT_SIGNIFICANT = "#8da0b3"
FLIPS = "#d9a441"
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2430;
  margin:0;background:#f6f7f9}
main{max-width:1120px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 8px;border-bottom:1px solid #e3e6ea;
  padding-bottom:4px}h3{font-size:16px;margin:18px 0 6px}
.sub{color:#5b6573;margin:0 0 18px}.note{color:#5b6573;font-size:13.5px;max-width:900px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{flex:1 1 200px;border:1px solid #e3e6ea;border-radius:8px;padding:10px 14px;background:#fbfcfd}
.card .k{font-size:12.5px;color:#5b6573;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:24px;font-weight:600;margin:2px 0}.card .d{font-size:13px;color:#5b6573}
table{border-collapse:collapse;margin:8px 0 4px;font-size:13.5px}.wide{overflow-x:auto;max-width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#f1f3f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.sig{color:#b2182b;font-weight:600}.na{color:#8a94a3}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:14px;align-items:start}
figure{margin:0;border:1px solid #e3e6ea;border-radius:8px;padding:8px;background:#fff}
figure svg{max-width:100%;height:auto;display:block}
figure.stepwise,figure.deploy{display:inline-block;max-width:100%}figcaption{font-size:13px;color:#3c4553;margin-top:4px}
.flips{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:14px}
.flip img{width:100%;max-width:224px;image-rendering:pixelated;display:block;margin:0 auto}
.diff img{width:100%;max-width:720px;image-rendering:pixelated;display:block}
.kind{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;background:#eef1f4}
.kind.correct-wrong{background:#fbe3e4;color:#8c1a24}.kind.wrong-correct{background:#e2f2e6;color:#1e6b34}
code{font-size:12.5px;background:#f1f3f5;padding:0 3px;border-radius:3px}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _svg(fig) -> str:
    """A matplotlib figure as inline SVG; text stays text (browser fonts); no metadata block
    (a timestamp would make re-renders differ, and its URLs look like fetches)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sysnoise"}):
        fig.savefig(buffer, format="svg", metadata={key: None for key in ("Date", "Creator", "Format", "Type")})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue and doctype: inline SVG starts at <svg


def _figure(
    width: float,
    height: float,
    *,
    labels: list[str],
    bottom: float = 0.5,
    top: float = 0.1,
    panels: int = 1,
    ylabel: bool = False,
):
    """A figure with margins (inches) set from its tick labels' length: a fixed layout draws once,
    where tight/constrained layouts draw twice and make the report several times slower."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.patch.set_alpha(0)
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
    left = 0.15 + 0.066 * max([len(label) for label in labels] + [1]) + (0.3 if ylabel else 0)  # ~9 pt chars
    fig.subplots_adjust(
        left=min(0.5, left / width), right=1 - 0.15 / width, bottom=bottom / height, top=1 - top / height, wspace=0.08
    )
    return fig, axes


def _style_axes(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="x", color="#e3e6ea", linewidth=0.8)
    ax.set_axisbelow(True)


def _errors(value: float, ci) -> list[list[float]]:
    # Percentile intervals need not contain the point estimate: clamp to draw a valid whisker.
    return [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]


def _bars(
    ax,
    names: list[str],
    values: list[float],
    cis: list,
    colours: list[str],
    xlabel: str,
    places: int,
    resolution: float,
    signed: bool,
) -> None:
    """Horizontal bars with 95% interval whiskers; the axis spans at least one sample's worth on
    each side of 0, so an all-zero noise is not drawn at a meaningless scale."""
    top = len(names) - 1  # first row on top; no invert_yaxis, which shared axes would apply twice
    for row, (value, ci, colour) in enumerate(zip(values, cis, colours)):
        y = top - row
        ax.barh(y, value, color=colour, height=0.62)
        if ci:
            ax.errorbar(value, y, xerr=_errors(value, ci), fmt="none", ecolor="#1d2430", capsize=3, linewidth=1)
        ax.annotate(
            f"{value:.{places}f}",
            (max(value, ci[1] if ci else value), y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
            color="#3c4553",
        )
    ends = [v for value, ci in zip(values, cis) for v in ([value] + (list(ci) if ci else []))]
    low, high = min(ends + [-resolution if signed else 0.0]), max(ends + [resolution])
    pad = 0.18 * (high - low)  # room for the value labels
    ax.set_xlim(low - (0.05 * (high - low) if low < 0 else 0.05 * resolution), high + pad)
    ax.axvline(0, color="#1d2430", linewidth=0.8)
    ax.set_yticks([top - row for row in range(len(names))], names, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=8.5)
    _style_axes(ax)


def noise_chart(rows: list[dict], title: str, places: int, resolution: float, with_delta: bool) -> str:
    """One noise: per option the delta with its bootstrap interval (labeled data; red where
    distinguishable from zero) beside the flip rate with its Wilson interval."""
    panels = 2 if with_delta else 1
    names = [r["option"] for r in rows]
    fig, axes = _figure(6.6 if with_delta else 4.6, 1.05 + 0.3 * len(rows), labels=names, top=0.35, panels=panels)
    if with_delta:
        colours = [SIGNIFICANT if r.get("distinguishable_from_zero") else NOT_SIGNIFICANT for r in rows]
        _bars(
            axes[0],
            names,
            [r["delta"] for r in rows],
            [r["delta_ci"] for r in rows],
            colours,
            "delta, points",
            places,
            resolution,
            signed=True,
        )
    _bars(
        axes[-1],
        names,
        [r["flip_rate"] for r in rows],
        [r["flip_ci"] for r in rows],
        [FLIPS] * len(rows),
        "flips, % of samples",
        places,
        resolution,
        signed=False,
    )
    fig.suptitle(title, fontsize=10.5, x=0.02, y=1 - 0.06 / fig.get_figheight(), ha="left", va="top")
    return _svg(fig)


def stepwise_chart(steps: list[dict], ylabel: str, places: int) -> str:
    fig, (ax,) = _figure(7.2, 3.4, labels=["-00.0"], bottom=0.75, ylabel=True)
    xs = list(range(1, len(steps) + 1))
    values = [effect(s) for s in steps]
    cis = [effect_ci(s) for s in steps]
    ax.plot(xs, values, color=SIGNIFICANT, marker="o", linewidth=1.6)
    if all(cis):
        ax.fill_between(xs, [c[0] for c in cis], [c[1] for c in cis], color=SIGNIFICANT, alpha=0.13, linewidth=0)
    for x, value in zip(xs, values):
        ax.annotate(
            f"{value:.{places}f}", (x, value), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=8.5
        )
    ax.axhline(0, color="#1d2430", linewidth=0.8)
    ax.set_xticks(xs, [f"+{s['added_noise']}\n{s['added_option']}" for s in steps], fontsize=8)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_xlim(0.5, len(steps) + 0.5)
    ax.tick_params(axis="y", labelsize=8.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#e3e6ea", linewidth=0.8)
    return _svg(fig)


def attribution_chart(changes: list[dict], xlabel: str) -> str:
    fig, (ax,) = _figure(6.4, 0.9 + 0.55 * len(changes), labels=[c["field"] for c in changes])
    ys = range(len(changes))
    ax.barh(
        [y - 0.18 for y in ys],
        [c["effect_alone"] for c in changes],
        height=0.34,
        color=NOT_SIGNIFICANT,
        label="alone (on the reference)",
    )
    ax.barh(
        [y + 0.18 for y in ys],
        [c["effect_last"] for c in changes],
        height=0.34,
        color=SIGNIFICANT,
        label="last (on top of all other changes)",
    )
    ax.axvline(0, color="#1d2430", linewidth=0.8)
    ax.set_yticks(list(ys), [c["field"] for c in changes], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="best")
    _style_axes(ax)
    return _svg(fig)


def _data_uri(path: Path) -> str | None:
    try:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return None


def _num(value, places, sig=False) -> str:
    text = esc(fmt(value, places))
    return f'<td class="n{" sig" if sig else ""}">{text}{"*" if sig else ""}</td>'


def _table(headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def summary_cards(results: dict, places: int) -> str:
    ref, metric = results["reference"], metric_of(results)
    cards = [
        (
            f"reference {metric.label}",
            fmt(value_of(ref, metric), places),
            f"95% CI {fmt_ci(ref.get(metric.key + '_ci'), places)} on {ref['n_labeled']} labeled"
            if labeled(results)
            else f"{ref['n']} unlabeled samples: agreement only",
        )
    ]
    worst = worst_rows(results) if ref["n"] else {}  # no sample: no effect to rank
    if worst:
        row = max(worst.values(), key=lambda r: (effect(r), r["flip_rate"]))
        what = "delta" if row["delta"] is not None else "flip rate"
        cards.append(
            (
                f"worst single noise ({what})",
                fmt(effect(row), places) + star(row),
                f"{row['id']}, 95% CI {fmt_ci(effect_ci(row), places)}",
            )
        )
    steps = results.get("stepwise", {}).get("steps")
    if steps:
        last = steps[-1]
        cards.append(
            (
                f"{len(steps)} noises combined",
                fmt(effect(last), places) + star(last),
                f"{combined_what(results)}; 95% CI {fmt_ci(effect_ci(last), places)}",
            )
        )
    if results.get("deploy"):
        total = results["deploy"]["total"]
        cards.append(
            (
                "deployment pipeline",
                fmt(effect(total), places) + star(total),
                f"95% CI {fmt_ci(effect_ci(total), places)}",
            )
        )
    variants = [v for v in results["variants"] if v["noise"] not in misconfigured(results)]
    if labeled(results):
        cards.append(
            (
                "distinguishable from zero",
                f"{sum(v['distinguishable_from_zero'] for v in variants)} of {len(variants)}",
                f"variants with p < 0.05 ({metric.test})",
            )
        )
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div><div class="d">{esc(d)}</div></div>'
            for k, v, d in cards
        )
        + "</div>"
    )


def summary_table(results: dict, places: int) -> str:
    ref, metric = results["reference"], metric_of(results)
    noises = [n for n in results["noises"] if n["name"] not in misconfigured(results)]  # reported apart
    headers = ["model", f"reference {metric.label}"] + [n["name"] for n in noises]
    cells = [f"<td>{esc(results['model']['name'])}</td>", _num(value_of(ref, metric), places)]
    for noise in noises:
        text = noise_cell(noise, places)
        cells.append(f'<td class="n{" na" if text in ("n/a", "-") else ""}">{esc(text)}</td>')
    steps = results.get("stepwise", {}).get("steps")
    if steps:
        headers.append("combined")
        cells.append(_num(effect(steps[-1]), places, bool(star(steps[-1]))))
    # many noises (detection has 16) make a wide row: it scrolls inside its box, not the page
    return '<div class="wide">' + _table(headers, ["<tr>" + "".join(cells) + "</tr>"]) + "</div>"


def noise_charts(results: dict, noises: list[dict], places: int) -> str:
    ref = results["reference"]
    if not ref["n"]:  # no sample: nothing to draw (nothing_measured says why)
        return ""
    resolution = 100 / max(1, ref["n_labeled"] or ref["n"])
    with_delta = labeled(results) and not nothing_measured(results)
    by_noise: dict[str, list[dict]] = {}
    for row in results["variants"]:
        by_noise.setdefault(row["noise"], []).append(row)
    parts = []
    for noise in noises:
        name = noise["name"]
        if not noise["applies"]:
            body = f'<p class="na">n/a: {esc(name)} does not apply to this model.</p>'
        elif name not in by_noise:
            body = '<p class="na">No option other than the reference itself: nothing to measure.</p>'
        else:
            body = noise_chart(by_noise[name], f"{name} ({noise['stage']})", places, resolution, with_delta)
        parts.append(
            f'<figure class="noise" data-noise="{esc(name)}">{body}'
            f"<figcaption>{esc(noise['description'])}</figcaption></figure>"
        )
    return '<div class="grid">' + "".join(parts) + "</div>"


def _cells(row: dict, columns, places: int, metric) -> str:
    """One row's cells under the declared columns: numbers right-aligned, a distinguishable delta marked."""
    out = []
    for column in columns:
        kind = "" if column.key in ("noise", "option") else "n"
        if column.key == "delta" and star(row):
            kind += " sig"
        out.append(
            f'<td class="{kind}">{esc(column.text(row, places, metric))}</td>'
            if kind
            else f"<td>{esc(column.text(row, places, metric))}</td>"
        )
    return "".join(out)


def option_table(rows: list[dict], results: dict, places: int) -> str:
    metric = metric_of(results)
    columns = columns_for(rows)
    return _table([c.title(metric) for c in columns], [f"<tr>{_cells(v, columns, places, metric)}</tr>" for v in rows])


def stepwise_section(results: dict, places: int) -> str:
    stepwise = results.get("stepwise")
    if not stepwise:
        return ""
    steps = stepwise["steps"]
    ylabel = "cumulative delta, points" if labeled(results) else "cumulative flip rate, %"
    how = "greedily, worst single noise first" if stepwise["order"] == "greedy" else "in the order given"
    metric = metric_of(results)
    columns = columns_for(steps, STEPWISE)
    rows = [
        f'<tr><td class="n">{s["step"]}</td><td>+{esc(s["added_noise"])} = {esc(s["added_option"])}</td>'
        f"{_cells(s, columns, places, metric)}</tr>"
        for s in steps
    ]
    table = _table(["step", "added", metric.label, "cumulative delta", "95% CI", "p", "flips %"], rows)
    return (
        f'<h2 id="stepwise">Combined noise, step by step</h2><p class="note">Noises added one at a time '
        f"({esc(how)}); each step is the reference with every option so far applied (the paper's Fig. 3). "
        f'The band is the 95% interval.</p><figure class="stepwise">{stepwise_chart(steps, ylabel, places)}'
        f"</figure>{table}"
    )


def deploy_section(results: dict, places: int) -> str:
    deploy = results.get("deploy")
    if not deploy:
        return ""
    xlabel = "delta, points" if labeled(results) else "flip rate, %"
    rows = [
        f"<tr><td>{esc(c['field'])}</td><td><code>{esc(c['reference'])}</code></td><td><code>{esc(c['deploy'])}"
        f"</code></td>{_num(c['effect_alone'], places, c['alone_distinguishable'])}"
        f'<td class="n">{esc(fmt_ci(c["effect_alone_ci"], places))}</td>{_num(c["effect_last"], places)}</tr>'
        for c in deploy["changes"]
    ]
    total = deploy["total"]
    return (
        f'<h2 id="deploy">Deployment pipeline</h2><p class="note">Total: <b>{esc(fmt(effect(total), places))}'
        f"{star(total)}</b> {esc(fmt_ci(effect_ci(total), places))}. <i>alone</i>: the change applied on its own to "
        "the reference; <i>last</i>: the total minus the deployment with the change undone, i.e. what it adds "
        f"once everything else is deployed. Interaction (total minus the sum of alone): "
        f"{esc(fmt(deploy['interaction'], places))}.</p>"
        f'<figure class="deploy">{attribution_chart(deploy["changes"], xlabel)}</figure>'
        + _table(["field", "reference", "deployed", "alone", "95% CI", "last"], rows)
    )


def differences_section(results: dict, folder: Path) -> str:
    items = (results.get("figures") or {}).get("differences") or []
    parts = []
    for d in items:
        uri = _data_uri(folder / d["file"])
        if uri is None:
            continue
        parts.append(
            f'<figure class="diff"><img alt="pixel difference, {esc(d["variant"])}" src="{uri}">'
            f"<figcaption><b>{esc(d['variant'])}</b> on <code>{esc(shown(d['sample']))}</code>: reference input | variant "
            f"input | |difference| ×{d['amplification']}. Max |diff| {d['max_abs']}, mean {d['mean_abs']:.2f}, "
            f"{d['changed_pct']:.0f}% of values differ.</figcaption></figure>"
        )
    if not parts:
        return ""
    return (
        '<h2 id="differences">Pixel differences</h2><p class="note">What the model receives under the '
        "reference and under a variant, and their difference amplified (as the paper's Fig. 5).</p>" + "".join(parts)
    )


def flips_section(results: dict, folder: Path) -> str:
    items = (results.get("figures") or {}).get("flips") or []
    cards = []
    for f in items:
        uri = _data_uri(folder / f["file"])
        if uri is None:
            continue
        labels = ", ".join(item["name"] for item in f["labels"]) or "unlabeled"
        kind_class = re.sub(r"[^a-z]+", "-", f["kind"]).strip("-")
        cards.append(
            f'<figure class="flip"><img alt="{esc(shown(f["sample"]))} under {esc(f["variant"])}" src="{uri}">'
            f'<figcaption><code>{esc(shown(f["sample"]))}</code> <span class="kind {kind_class}">{esc(f["kind"])}</span><br>'
            f"label: {esc(labels)}<br>reference: <b>{esc(f['reference']['name'])}</b> "
            f"({f['reference']['prob']:.2f})<br>{esc(f['variant'])}: <b>{esc(f['prediction']['name'])}</b> "
            f"({f['prediction']['prob']:.2f})</figcaption></figure>"
        )
    if not cards:
        return ""
    return (
        '<h2 id="flips">Flipped predictions</h2><p class="note">Samples whose top-1 a variant changed, '
        "shown as the variant's model input; the most telling first (correct → wrong).</p>"
        f'<div class="flips">{"".join(cards)}</div>'
    )


def environment_section(results: dict) -> str:
    env = results["environment"]
    rows = [f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in env["libraries"].items() if v]
    decoders = env["decoder_libraries"]
    rows += [f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in decoders.items() if v and k != "decoders"]
    rows += [
        f"<tr><td>decoder <code>{esc(k)}</code></td><td>{esc(v)}</td></tr>"
        for k, v in decoders.get("decoders", {}).items()
    ]
    pipeline = "".join(
        f"<tr><td>{esc(k)}</td><td><code>{esc(v)}</code></td></tr>" for k, v in results["reference"]["pipeline"].items()
    )
    return (
        f'<h2 id="environment">Environment</h2><p class="note">Python {esc(env["python"])} on {esc(env["platform"])}; '
        f"CPU {esc(env['cpu'])}; GPU {esc(env.get('cuda') or 'none')}. Library versions are part of the system "
        'under test.</p><div class="grid"><div>'
        + _table(["library", "version"], rows)
        + "</div><div>"
        + _table(["reference pipeline", "value"], [pipeline])
        + "</div></div>"
    )


def misconfiguration_section(results: dict, places: int) -> str:
    names = misconfigured(results)
    rows = [v for v in results["variants"] if v["noise"] in names]
    if not rows:
        return ""
    return (
        '<h2 id="misconfiguration">Configuration errors (not noise)</h2><p class="note">What a wrong setting '
        "costs, shown apart from the noises and left out of the summary and the combined worst case.</p>"
        + noise_charts(results, [n for n in results["noises"] if n["name"] in names], places)
        + option_table(rows, results, places)
    )


def unavailable_note(results: dict) -> str:
    missing = [
        f"{n['name']}/{option} ({why})" for n in results["noises"] for option, why in n.get("unavailable", {}).items()
    ]
    return (
        f'<p class="note">Not measured here, an optional library is missing: {esc("; ".join(missing))}.</p>'
        if missing
        else ""
    )


def problems_section(results: dict) -> str:
    rows = [
        f"<tr><td><code>{esc(shown(s['id']))}</code></td><td>skipped</td><td>{esc(s['reason'])}</td></tr>"
        for s in results["skipped"]
    ]
    for column, failures in results.get("variant_failures", {}).items():
        rows += [
            f"<tr><td><code>{esc(shown(f['id']))}</code></td><td>failed under {esc(column)}</td>"
            f"<td>{esc(f['reason'])}</td></tr>"
            for f in failures
        ]
    return f'<h2 id="problems">Problems</h2>{_table(["sample", "what", "reason"], rows)}' if rows else ""


def render(results: dict, folder: str | Path) -> str:
    folder = Path(folder)
    places, metric = places_of(results), metric_of(results)
    ref = results["reference"]
    what = (
        f"delta: reference minus variant in points; * and red: distinguishable from zero ({metric.test}, p < 0.05)"
        if labeled(results)
        else "no labels: the flip rate (how often the top-1 changed) is all that can be measured"
    )
    title = f"sysnoise: {results['model']['name']} on {data_title(results)}"
    noises = [n for n in results["noises"] if n["name"] not in misconfigured(results)]
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{esc(results["task"])} · {ref["n"]} samples ({ref["n_labeled"]} labeled), '
        f"{len(results['skipped'])} skipped · {esc(results['dataset']['path'])} · {esc(results['created'])}</p>",
        f'<p class="nothing"><b>{esc(nothing_measured(results))}</b></p>' if nothing_measured(results) else "",
        summary_cards(results, places),
        f'<p class="note">{esc(precision_note(results, places))} {esc(what)}. {esc(calibration_note(results))}</p>',
        f'<h2 id="summary">Summary</h2><p class="note">The paper\'s {metric.table} shape: one cell '
        "per noise, mean ± std (max) over its options.</p>",
        summary_table(results, places),
        '<h2 id="noises">Every noise with its 95% interval</h2>',
        noise_charts(results, noises, places),
        unavailable_note(results),
        stepwise_section(results, places),
        deploy_section(results, places),
        differences_section(results, folder),
        flips_section(results, folder),
        misconfiguration_section(results, places),
        '<h2 id="options">Every option</h2>',
        option_table([v for v in results["variants"] if v["noise"] not in misconfigured(results)], results, places),
        problems_section(results),
        environment_section(results),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body><main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main></body></html>\n"
    )
