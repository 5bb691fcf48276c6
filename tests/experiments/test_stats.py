"""Seed statistics against scipy and known cases; the three-way decision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sadyn.experiments import stats


def test_welch_matches_scipy_and_its_ci_contains_the_difference():
    a, b = [0.91, 0.93, 0.92, 0.95], [0.80, 0.84, 0.79]
    t = stats.welch(a, b, 0.05)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert t["t"] == pytest.approx(ref.statistic) and t["p"] == pytest.approx(ref.pvalue)
    assert t["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert t["ci"][0] < t["diff"] < t["ci"][1]
    assert t["ci"][0] > 0  # significant at 5% <=> the CI excludes 0


def test_one_sample_matches_scipy():
    g = [0.05, 0.08, 0.02]
    t = stats.one_sample(g, 0.05)
    ref = sps.ttest_1samp(g, 0.0)
    assert t["t"] == pytest.approx(ref.statistic) and t["p"] == pytest.approx(ref.pvalue)


@pytest.mark.parametrize(
    "a, b, direction, expected",
    [
        ([0.90, 0.91, 0.92], [0.80, 0.81, 0.82], "above", "pass"),
        ([0.90, 0.91, 0.92], [0.80, 0.81, 0.82], "below", "fail"),
        ([0.80, 0.86, 0.82], [0.81, 0.84, 0.83], "above", "no effect"),
        ([0.80, 0.86, 0.82], [0.81, 0.84, 0.83], "below", "no effect"),
        ([0.9], [0.8, 0.81], "above", None),  # one seed: no test
    ],
)
def test_decide_three_ways(a, b, direction, expected):
    assert stats.decide(stats.welch(a, b, 0.05), direction, 0.05) == expected


def test_groups_without_spread():
    assert stats.welch([1.0, 1.0], [0.0, 0.0], 0.05)["p"] == 0.0
    assert stats.decide(stats.welch([0.0, 0.0], [0.0, 0.0], 0.05), "above", 0.05) == "no effect"
    assert math.isnan(stats.mean_sd([1.0])["sd"]) and stats.mean_sd([None, 2.0])["n"] == 1


def test_spearman_ci_and_permutation_p():
    x = np.arange(12.0)
    strong = stats.spearman_test(x, -x + 0.01 * np.sin(x), alpha=0.05, boot=400)
    assert strong["rho"] == pytest.approx(-1.0) and strong["p"] < 0.01
    assert strong["ci"][1] <= -0.9
    rng = np.random.default_rng(1)
    noise = stats.spearman_test(x, rng.normal(size=12), alpha=0.05, boot=400)
    assert noise["ci"][0] < noise["rho"] < noise["ci"][1]
    assert stats.decide(strong, "below", 0.05) == "pass"
    assert math.isnan(stats.spearman_test([1, 2], [2, 1], alpha=0.05, boot=10)["rho"])


def test_loglog_fit_recovers_a_power_law_with_a_ci():
    x = np.repeat([4, 16, 64, 256], 5)
    rng = np.random.default_rng(0)
    y = 3.0 * x**0.5 * np.exp(0.05 * rng.normal(size=x.size))
    fit = stats.loglog_fit(x, y, 0.05)
    assert fit["ci"][0] < 0.5 < fit["ci"][1] and fit["slope"] == pytest.approx(0.5, abs=0.03)
