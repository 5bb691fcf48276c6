"""Statistics over training seeds, and the three-way decision the recipes' judges use.

A trained comparison is decided on seed means: the unit of replication is a training run, not a
test board. :func:`welch` compares two groups of per-seed numbers (Welch's t, two-sided), and
:func:`one_sample` tests per-seed numbers (e.g. a gain) against 0. :func:`decide` turns a test
into ``pass`` (significant, in the claimed direction), ``fail`` (significant, against it) or
``no effect`` (inside seed noise at ``alpha``), and ``inconclusive`` when there are too few
seeds to test. :func:`spearman_test` gives a rank correlation with a bootstrap CI and a
permutation p-value.

Checked against scipy (``scipy.stats.ttest_ind(equal_var=False)``, ``ttest_1samp``) in
``tests/experiments/test_stats.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

NO_EFFECT = "no effect"


def _finite(values: Sequence[float | None]) -> np.ndarray:
    v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
    return v[np.isfinite(v)]


def mean_sd(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "sd", "n", "values"}`` of the finite values (sd with ddof=1; NaN if n < 2)."""
    v = _finite(values)
    return {
        "mean": float(v.mean()) if v.size else math.nan,
        "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
        "n": int(v.size),
        "values": [float(x) for x in v],
    }


def welch(a: Sequence[float | None], b: Sequence[float | None], alpha: float) -> dict[str, Any]:
    """Welch's two-sided t-test of ``mean(a) - mean(b)``, with its ``1 - alpha`` CI.

    Returns ``diff, se, t, df, p, ci, n_a, n_b`` (``p`` NaN when either group has fewer than 2
    values). Two groups without spread: ``p`` is 0 if the means differ, 1 if not."""
    x, y = _finite(a), _finite(b)
    out: dict[str, Any] = {"n_a": int(x.size), "n_b": int(y.size)}
    if x.size < 2 or y.size < 2:
        diff = float(x.mean() - y.mean()) if x.size and y.size else math.nan
        return {
            **out,
            "diff": diff,
            "se": math.nan,
            "t": math.nan,
            "df": math.nan,
            "p": math.nan,
            "ci": [math.nan, math.nan],
        }
    from scipy import stats

    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff = float(x.mean() - y.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:
        p = 0.0 if diff != 0 else 1.0
        return {
            **out,
            "diff": diff,
            "se": 0.0,
            "t": math.copysign(math.inf, diff) if diff else 0.0,
            "df": float(x.size + y.size - 2),
            "p": p,
            "ci": [diff, diff],
        }
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    t = diff / se
    p = float(2 * stats.t.sf(abs(t), df))
    q = float(stats.t.ppf(1 - alpha / 2, df))
    return {
        **out,
        "diff": diff,
        "se": se,
        "t": float(t),
        "df": float(df),
        "p": p,
        "ci": [diff - q * se, diff + q * se],
    }


def one_sample(values: Sequence[float | None], alpha: float, mu: float = 0.0) -> dict[str, Any]:
    """Two-sided one-sample t-test of ``mean(values) - mu`` (keys as :func:`welch`)."""
    x = _finite(values)
    out: dict[str, Any] = {"n_a": int(x.size), "n_b": 0}
    if x.size < 2:
        diff = float(x.mean() - mu) if x.size else math.nan
        return {
            **out,
            "diff": diff,
            "se": math.nan,
            "t": math.nan,
            "df": math.nan,
            "p": math.nan,
            "ci": [math.nan, math.nan],
        }
    from scipy import stats

    diff = float(x.mean() - mu)
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    df = float(x.size - 1)
    if se == 0.0:
        p = 0.0 if diff != 0 else 1.0
        return {
            **out,
            "diff": diff,
            "se": 0.0,
            "t": math.copysign(math.inf, diff) if diff else 0.0,
            "df": df,
            "p": p,
            "ci": [diff, diff],
        }
    t = diff / se
    q = float(stats.t.ppf(1 - alpha / 2, df))
    return {
        **out,
        "diff": diff,
        "se": se,
        "t": float(t),
        "df": df,
        "p": float(2 * stats.t.sf(abs(t), df)),
        "ci": [diff - q * se, diff + q * se],
    }


def decide(test: dict[str, Any], direction: str, alpha: float) -> str | None:
    """``"pass"`` when ``test`` is significant at ``alpha`` in ``direction`` (``"above"``:
    diff > 0, ``"below"``: diff < 0), ``"fail"`` when significant the other way,
    ``"no effect"`` when not significant, ``None`` (inconclusive) when it could not be run."""
    if direction not in ("above", "below"):
        raise ValueError(f"direction must be 'above' or 'below', got {direction!r}")
    p, diff = test.get("p"), test.get("diff")
    if p is None or diff is None or not (math.isfinite(p) and math.isfinite(diff)):
        return None
    if p >= alpha or diff == 0:
        return NO_EFFECT
    return "pass" if (diff > 0) == (direction == "above") else "fail"


def spearman_test(
    x: Sequence[float], y: Sequence[float], *, alpha: float, boot: int, seed: int = 0
) -> dict[str, Any]:
    """Spearman's rho of ``x`` and ``y`` with a percentile bootstrap ``1 - alpha`` CI (pairs
    resampled ``boot`` times) and a two-sided permutation p-value (``boot`` permutations,
    ``(1 + #{|rho_perm| >= |rho|}) / (1 + boot)``). Keys: ``rho, ci, p, n`` (``diff`` = rho, so
    :func:`decide` applies)."""
    import warnings

    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant inputs: rho is NaN, reported as such
        return _spearman_test(x, y, alpha=alpha, boot=boot, seed=seed, spearmanr=spearmanr)


def _spearman_test(
    x: Sequence[float], y: Sequence[float], *, alpha: float, boot: int, seed: int, spearmanr: Any
) -> dict[str, Any]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n < 4:
        return {
            "rho": math.nan,
            "diff": math.nan,
            "ci": [math.nan, math.nan],
            "p": math.nan,
            "n": n,
        }
    rho = float(spearmanr(a, b).statistic)
    if not math.isfinite(rho):
        return {
            "rho": math.nan,
            "diff": math.nan,
            "ci": [math.nan, math.nan],
            "p": math.nan,
            "n": n,
        }
    gen = np.random.default_rng(seed)
    boots = []
    for _ in range(boot):
        i = gen.integers(0, n, n)
        r = spearmanr(a[i], b[i]).statistic
        if np.isfinite(r):
            boots.append(r)
    ci = (
        [float(np.quantile(boots, alpha / 2)), float(np.quantile(boots, 1 - alpha / 2))]
        if boots
        else [math.nan, math.nan]
    )
    hits = 0
    for _ in range(boot):
        r = spearmanr(a, gen.permutation(b)).statistic
        hits += bool(np.isfinite(r) and abs(r) >= abs(rho) - 1e-12)
    return {"rho": rho, "diff": rho, "ci": ci, "p": (1 + hits) / (1 + boot), "n": n}


def loglog_fit(x: Sequence[float], y: Sequence[float], alpha: float) -> dict[str, Any]:
    """Least-squares slope of log y on log x over every (x, y) pair (repeated x allowed), with
    its ``1 - alpha`` t interval: ``slope, ci, se, n``."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
    lx, ly = np.log(xs[keep]), np.log(ys[keep])
    n = int(lx.size)
    if n < 3 or np.ptp(lx) == 0:
        return {"slope": math.nan, "ci": [math.nan, math.nan], "se": math.nan, "n": n}
    from scipy import stats

    res = stats.linregress(lx, ly)
    q = float(stats.t.ppf(1 - alpha / 2, n - 2))
    se = float(res.stderr)
    return {
        "slope": float(res.slope),
        "ci": [res.slope - q * se, res.slope + q * se],
        "se": se,
        "n": n,
    }
