"""Intervals cover at their nominal rate on simulated data; tests match hand computation."""

import math

import numpy as np
import pytest

from sysnoise.analysis.statistics import (
    mcnemar_exact,
    paired_bootstrap_ci,
    paired_bootstrap_metric,
    spread,
    wilson_interval,
)

# Paired correctness (reference right?, variant right?) with cell probabilities
# (1,1), (1,0), (0,1), (0,0): the true delta is P(1,0) - P(0,1).
CELLS = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])


def simulate(rng, n, probs):
    pairs = CELLS[rng.choice(4, size=n, p=probs)]
    return pairs[:, 0].astype(float), pairs[:, 1].astype(float)


@pytest.mark.parametrize("n", [60, 400])
def test_bootstrap_interval_covers_the_true_delta_at_about_the_nominal_rate(n):
    probs = [0.70, 0.08, 0.03, 0.19]
    true_delta = probs[1] - probs[2]
    rng = np.random.default_rng(12345)
    reps = 500
    covered = 0
    for rep in range(reps):
        ref, var = simulate(rng, n, probs)
        low, high = paired_bootstrap_ci(ref - var, seed=rep)
        covered += low <= true_delta <= high
    # 500 replications: the standard error of a 95% rate is 1 point; a percentile bootstrap on a
    # 0/±1 variable runs a little under nominal at small n, never far.
    assert 0.91 <= covered / reps <= 0.98


def test_generic_bootstrap_covers_a_non_decomposable_metric():
    # A ratio of sums (precision-like) is not a mean over samples: the metric sees the resampled
    # indices. Truth: E[hits] / E[attempts] for each column.
    rng = np.random.default_rng(7)
    n, reps = 150, 100
    p_attempt, p_hit_ref, p_hit_var = 0.6, 0.8, 0.7
    true_delta = p_hit_ref - p_hit_var  # hits only count where attempted, so the ratio is p_hit
    covered = 0
    for rep in range(reps):
        attempted = rng.random(n) < p_attempt
        u = rng.random(n)  # shared uniform: the two columns are positively correlated, as paired runs are
        ref_hit, var_hit = attempted & (u < p_hit_ref), attempted & (u < p_hit_var)
        result = paired_bootstrap_metric(
            lambda i: ref_hit[i].sum() / max(1, attempted[i].sum()),
            lambda i: var_hit[i].sum() / max(1, attempted[i].sum()),
            n,
            resamples=300,
            seed=rep,
        )
        covered += result.ci[0] <= true_delta <= result.ci[1]
    assert 0.88 <= covered / reps <= 0.995


def test_generic_bootstrap_test_rejects_at_about_alpha_under_the_null_and_finds_real_differences():
    rng = np.random.default_rng(3)
    n, reps = 200, 100
    null_rejections = 0
    for rep in range(reps):
        ref, var = simulate(rng, n, [0.7, 0.06, 0.06, 0.18])  # equal discordant cells: no difference
        result = paired_bootstrap_metric(lambda i: ref[i].mean(), lambda i: var[i].mean(), n, resamples=300, seed=rep)
        null_rejections += result.p_value < 0.05
    assert null_rejections / reps <= 0.12  # nominal 5%, binomial s.e. 2 points
    ref, var = simulate(rng, n, [0.6, 0.2, 0.02, 0.18])  # delta 0.18: unmistakable
    result = paired_bootstrap_metric(lambda i: ref[i].mean(), lambda i: var[i].mean(), n, resamples=400)
    assert result.p_value < 0.01 and result.ci[0] > 0
    assert result.delta == pytest.approx(ref.mean() - var.mean())


def test_generic_bootstrap_of_identical_columns_is_exactly_zero_with_p_one():
    values = np.arange(10.0)
    result = paired_bootstrap_metric(lambda i: values[i].mean(), lambda i: values[i].mean(), 10, resamples=50)
    assert result.delta == 0 and result.ci == (0.0, 0.0) and result.p_value == 1.0


def test_generic_bootstrap_p_value_agrees_with_the_interval():
    # p < 0.05 exactly when the 95% interval leaves out 0 (up to the +1 correction).
    rng = np.random.default_rng(11)
    for rep in range(25):
        ref, var = simulate(rng, 80, [0.7, 0.09, 0.04, 0.17])
        r = paired_bootstrap_metric(lambda i: ref[i].mean(), lambda i: var[i].mean(), 80, resamples=599, seed=rep)
        excludes_zero = r.ci[0] > 0 or r.ci[1] < 0
        if excludes_zero:
            assert r.p_value <= 0.052
        else:
            assert r.p_value >= 0.05


@pytest.mark.parametrize(
    "b, c, expected",
    [
        (0, 0, 1.0),
        (3, 3, 1.0),
        (1, 0, 1.0),  # 2 * 1/2
        (0, 5, 2 / 32),  # both tails of Binomial(5, 1/2) at the extremes
        (0, 6, 2 / 64),
        (2, 8, 2 * (1 + 10 + 45) / 1024),
        (8, 2, 2 * (1 + 10 + 45) / 1024),  # symmetric in the two counts
        (1, 9, 2 * (1 + 10) / 1024),
    ],
)
def test_mcnemar_exact_matches_hand_computation(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected)


def test_wilson_interval_matches_the_textbook_case():
    # 8 of 10 at 95%: the textbook Wilson interval is [0.4902, 0.9433].
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_spread_uses_the_sample_standard_deviation():
    s = spread([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3) and s["max"] == 4.0
    assert s["std"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
