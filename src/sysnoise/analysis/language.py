"""From the language task's per-item outputs to the numbers a report shows, with the same
statistics as vision: paired bootstrap intervals and McNemar's exact test on per-item
correctness for accuracies; a paired bootstrap over items for perplexity (a ratio of sums,
not a mean of per-item values, so the metric is recomputed on each resample).

Delta is a loss, positive when the variant is worse: reference minus variant for accuracy
(percentage points, as the paper), variant minus reference for perplexity.
"""

from __future__ import annotations

import math

import numpy as np

from sysnoise.analysis import statistics as st
from sysnoise.analysis.metric import METRICS
from sysnoise.analysis.stats import VariantStats
from sysnoise.engine.outputs import RunOutputs


def choice_scores(arrays: dict, metric: str) -> np.ndarray:
    """(n, choices) scores: summed log-likelihood (acc) or per character of the ending (acc_norm)."""
    loglik = arrays["loglik"]
    if metric == "acc_norm":
        with np.errstate(divide="ignore", invalid="ignore"):
            return loglik / arrays["chars"]
    return loglik


def predictions(arrays: dict, kind: str, metric: str) -> np.ndarray:
    """(n,) the chosen request for multiple choice (-1 where every score is missing)."""
    if kind != "choice":
        raise ValueError(f"only multiple choice has a chosen answer, not {kind!r}")
    scores = choice_scores(arrays, metric)
    missing = np.isnan(scores).all(axis=1)
    chosen = np.argmax(np.where(np.isnan(scores), -np.inf, scores), axis=1)  # first of ties, as the harness
    return np.where(missing, -1, chosen)


def correct(arrays: dict, labels: np.ndarray, kind: str, metric: str) -> np.ndarray:
    """(n,) bool: the chosen answer is the label (choice), greedy decoding gives the word (lastword)."""
    if kind == "choice":
        return predictions(arrays, kind, metric) == labels[:, 0]
    if kind == "lastword":
        return arrays["greedy"][:, 0].astype(bool)
    raise ValueError(f"{kind!r} items have no accuracy")


def perplexity(arrays: dict, rows: np.ndarray) -> float:
    tokens = arrays["tokens"][rows, 0].sum()
    return float(np.exp(-arrays["loglik"][rows, 0].sum() / tokens)) if tokens else math.nan


def perplexity_forms(arrays: dict, rows: np.ndarray) -> dict:
    """Token perplexity beside lm-evaluation-harness's forms of the same summed log-likelihood:
    word and byte perplexity (exp(-sum loglik / sum words or bytes), its weighted_perplexity) and
    bits per byte (-sum loglik / sum bytes / ln 2). Words are len(re.split(r"\\s+", text))."""
    loglik = float(arrays["loglik"][rows, 0].sum())
    words, nbytes = int(arrays["words"][rows].sum()), int(arrays["bytes"][rows].sum())
    return {
        "token_perplexity": perplexity(arrays, rows),
        "word_perplexity": math.exp(-loglik / words) if words else math.nan,
        "byte_perplexity": math.exp(-loglik / nbytes) if nbytes else math.nan,
        "bits_per_byte": -loglik / nbytes / math.log(2) if nbytes else math.nan,
        "words": words,
        "bytes": nbytes,
    }


def changed_answers(reference: dict, variant: dict, kind: str, metric: str) -> np.ndarray:
    """(n,) bool: the answer changed: the chosen ending, or the greedy tokens at scored positions."""
    if kind == "choice":
        return predictions(reference, kind, metric) != predictions(variant, kind, metric)
    return (reference["argmax"] != variant["argmax"]).any(axis=1)


def token_agreement(reference: dict, variant: dict) -> float:
    """% of stored scored positions where both systems predict the same next token."""
    stored = (reference["argmax"] >= 0) & (variant["argmax"] >= 0)
    return float(100 * (reference["argmax"] == variant["argmax"])[stored].mean()) if stored.any() else math.nan


class LanguageAnalysis:
    """A language run's numbers; `kind` (choice, lastword, text) and the metric come from the
    JSONL format (tasks/language.py FORMATS)."""

    resamples = st.DEFAULT_RESAMPLES

    def __init__(self, kind: str, metric: str):
        self.kind, self.metric = kind, METRICS[metric]

    def reference_metrics(self, outputs: RunOutputs) -> dict:
        kind, metric = self.kind, self.metric.key
        valid = outputs.valid
        ref = {k: v[valid] for k, v in outputs.arrays[outputs.column_ids[0]].items()}
        out = {"n": int(valid.sum()), "n_labeled": int(valid.sum()) if kind != "text" else 0}
        if kind == "text":
            out.update(
                {
                    metric: perplexity(ref, np.arange(out["n"])),
                    f"{metric}_ci": None,
                    "tokens": int(ref["tokens"][:, 0].sum()),
                    "perplexities": perplexity_forms(ref, np.arange(out["n"])),
                }
            )
        else:
            hits = correct(ref, outputs.labels[valid], kind, metric)
            out.update(
                {
                    metric: float(100 * hits.mean()) if hits.size else None,
                    f"{metric}_ci": st.wilson_percent(hits),
                    "tokens": int(ref["tokens"].sum()),
                }
            )
        return out

    def variant_stats(self, outputs: RunOutputs, column_id: str, noise: str, option: str) -> VariantStats:
        kind, metric = self.kind, self.metric.key
        valid = outputs.valid
        ref = {k: v[valid] for k, v in outputs.arrays[outputs.column_ids[0]].items()}
        var = {k: v[valid] for k, v in outputs.arrays[column_id].items()}
        failed = outputs.errors[column_id][valid] != ""
        n = int(valid.sum())
        flips = changed_answers(ref, var, kind, metric) | failed
        both = ~np.isnan(ref["loglik"]) & ~np.isnan(var["loglik"])
        tokens = ref["tokens"][both].sum()
        change = float(np.abs(ref["loglik"] - var["loglik"])[both].sum() / tokens) if tokens else math.nan
        identical = (np.isnan(ref["loglik"]) == np.isnan(var["loglik"])).all(axis=1) & (
            np.nan_to_num(ref["loglik"]) == np.nan_to_num(var["loglik"])
        ).all(axis=1)
        agreement = token_agreement(ref, var)

        c2w = w2c = 0
        forms = None
        if kind == "text":
            rows_ok = ~failed
            forms = perplexity_forms(var, np.flatnonzero(rows_ok))
            comparison = st.paired_bootstrap_metric(
                lambda idx: perplexity(var, idx[rows_ok[idx]]), lambda idx: perplexity(ref, idx[rows_ok[idx]]), n
            )
            value, delta, ci, p = (
                perplexity(var, np.flatnonzero(rows_ok)),
                comparison.delta,
                comparison.ci,
                comparison.p_value,
            )
            flip_rate = 100 - agreement
            flip_ci = (math.nan, math.nan)
        else:
            labels = outputs.labels[valid]
            var_hit = correct(var, labels, kind, metric) & ~failed
            compared = st.paired_hits(correct(ref, labels, kind, metric), var_hit, self.resamples)
            value, delta, ci, p = float(100 * var_hit.mean()), compared.delta, compared.ci, compared.p_value
            c2w, w2c = compared.correct_to_wrong, compared.wrong_to_correct
            flip_rate, flip_ci = float(100 * flips.mean()), st.wilson_percent(flips)
        return VariantStats(
            id=column_id,
            noise=noise,
            option=option,
            n=n,
            n_labeled=n if kind != "text" else 0,
            metric=metric,
            value=value,
            delta=delta,
            delta_ci=ci,
            p_value=p,
            correct_to_wrong=c2w,
            wrong_to_correct=w2c,
            flip_rate=flip_rate,
            flip_ci=flip_ci,
            n_failed=int(failed.sum()),
            identical=float(100 * identical.mean()) if n else math.nan,
            extra={"token_agreement": agreement, "mean_abs_loglik_change": change, "perplexities": forms},
        )
