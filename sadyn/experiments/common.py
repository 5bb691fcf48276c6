"""Small pieces the recipes share: figure-spec builders, statistics, model and data access."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Overrides of sadyn.training.presets["tiny"] for the recipes' tiny presets: a D=16 model, a
# hundred puzzles, no periodic evaluation. It exercises every code path in seconds; nothing
# it trains is accurate, so training-dependent verdicts at tiny are inconclusive by design.
TINY_TRAIN: dict[str, Any] = {
    "model": {"dim": 16, "heads": 2},
    "train_size": 100,
    "eval_size": 20,
    "eval_every": 0,
    "ckpt_every": 0,
    "tensorboard": False,
}

# Reduced budgets for the many runs of the small preset (overrides of presets["small"]): every
# AKOrN run and every regularized ItrSA run of Fig. 5 (its baseline gets the same budget). Runs
# with equal configs are shared via the cache. Runs are compared at equal steps (the paper
# compares at equal epochs): the minutes are only a safety cap, which a loaded CPU or a costlier
# penalty (Jacobian, Lyapunov) would otherwise hit first.
SMALL_AKORN: dict[str, Any] = {"epochs": 12, "max_minutes": 40.0}
# The normalized ItrSA of the small recipes: the small preset as it was when the recorded
# claims run (results/small-claims) trained it, 20 epochs (the preset now trains 30).
SMALL_ITRSA: dict[str, Any] = {"epochs": 20}
SMALL_REGULARIZED: dict[str, Any] = {"epochs": 8, "max_minutes": 40.0}


def median_band_series(
    label: str,
    x: Sequence[float],
    samples: Sequence[Sequence[float]],
    *,
    lo_q: float = 0.05,
    hi_q: float = 0.95,
) -> dict[str, Any]:
    """A ``line`` series: the median of each sample list at ``x``, with a 5-95% band.

    samples: one list of values per x (non-finite values are ignored)."""
    med, lo, hi = [], [], []
    for vals in samples:
        v = np.asarray(vals, dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            med.append(None), lo.append(None), hi.append(None)
            continue
        q = np.quantile(v, [lo_q, 0.5, hi_q])
        lo.append(float(q[0])), med.append(float(q[1])), hi.append(float(q[2]))
    return {"label": label, "x": list(x), "y": med, "ylo": lo, "yhi": hi}


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (NaN with fewer than 2 usable points)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(xs[keep]), np.log(ys[keep]), 1)[0])


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` measured on ``n`` boards."""
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


# ---------------------------------------------------------------------------------------------
# trained models and test data


@dataclass
class Trained:
    """A model trained (or found) through the cache.

    model: the loaded model (EMA weights of the latest checkpoint), or None when the run left
    no checkpoint (diverged before the first one). status: the run's end. note: what a reader
    should know (e.g. "diverged at step 12; using the last good checkpoint").
    """

    label: str
    entry: Any
    model: Any
    status: str
    note: str = ""

    @property
    def usable(self) -> bool:
        return self.model is not None


def train_and_load(ctx: Any, label: str, config: Any) -> Trained:
    """Train ``config`` through the run's cache (or reuse it) and load the result.

    A cached checkpoint that no longer loads (written by other model code) is discarded and
    retrained once."""
    from sadyn.errors import CheckpointError
    from sadyn.training.checkpoint import load_checkpoint

    for attempt in (0, 1):
        entry = ctx.train(label, config)
        if entry.status == "not trained":
            return Trained(label, entry, None, entry.status, entry.message)
        note = ""
        if entry.status == "diverged":
            note = entry.message
            if not entry.has_checkpoint:
                return Trained(label, entry, None, entry.status, note + " (no checkpoint)")
            note += " (using the last good checkpoint)"
        try:
            model, _, _ = load_checkpoint(entry.path, device=ctx.device)
        except CheckpointError as exc:
            if attempt or not entry.reused:
                raise
            ctx.log(f"cached {label!r} does not load ({exc}); retraining")
            ctx.checkpoints.pop()
            ctx.cache.invalidate(config)
            continue
        model.eval()
        return Trained(label, entry, model, entry.status, note)
    raise AssertionError("unreachable")


def eval_puzzles(spec: str, n: int, seed: int = 0, *, ctx: Any = None) -> Any:
    """``n`` test puzzles: ``"id"`` (SATNet-style test split), ``"ood"`` (RRN-style) or a
    file (``sadyn.sudoku.resolve_dataset``). With ``ctx`` (a RunContext) the set is recorded
    in the results file, with its pool, and refused if its pool is not the declared one."""
    from sadyn.sudoku import resolve_dataset

    puzzles = resolve_dataset(spec, n=n, seed=seed)
    if ctx is not None:
        ctx.record_dataset(spec, n, seed, puzzles)
    return puzzles


def finite_time_exponents(
    model: Any,
    quizzes: Any,
    *,
    horizon: int,
    k: int,
    seed: int = 0,
    tol: float = 1e-4,
    max_iter: int = 50,
) -> np.ndarray:
    """Top-``k`` finite-time Lyapunov exponents ``(1/T) ln sigma_i(J_{T-1} ... J_0)`` of each
    puzzle's loop from its initial state ``X_0``, T = ``horizon``: ``(B, k)``, descending.

    The paper's definition, as :func:`sadyn.probes.lyapunov.lyapunov_probe` computes it, but
    with the subspace iteration's budget (``tol``, ``max_iter``) exposed: the recipes measure
    many models and cap it. Always the matrix-free subspace iteration (the only method that
    scales to S*D = 41,472), so every preset measures the same way. quizzes: ``(B, 81)``.
    """
    from sadyn.dynamics import finite_time_lyapunov
    from sadyn.probes.stepmap import analysis_mode, rollout, step_map, to_numpy

    run = rollout(model, quizzes, 0, seed=seed)
    b, s, d = run.cond.shape
    gen = torch.Generator(device=run.cond.device).manual_seed(seed)
    with analysis_mode(model):
        res = finite_time_lyapunov(
            step_map(model, run.cond),
            run.state(0).reshape(b, s * d),
            horizon,
            k,
            method="subspace",
            generator=gen,
            batched=True,
            options={"tol": tol, "max_iter": max_iter},
        )
    return to_numpy(res.exponents).reshape(b, k)


def accuracy_and_exponents(
    model: Any,
    acc_set: Any,
    le_quizzes: Any,
    *,
    loop: int,
    le_k: int,
    seed: int = 0,
    le_tol: float = 1e-4,
    le_iters: int = 50,
) -> dict[str, Any]:
    """Board/cell accuracy at ``loop`` steps on ``acc_set`` and finite-time Lyapunov exponents
    (horizon ``loop``, top ``le_k``; :func:`finite_time_exponents`) on ``le_quizzes: (B, 81)``.

    Returns ``board_accuracy``, ``cell_accuracy``, ``max_le`` / ``mean_le`` (per puzzle: the
    largest exponent and the mean of the top ``le_k``) and their medians; a loop that diverges
    is reported as ``error`` with the exponents missing.
    """
    from sadyn.errors import DivergenceError
    from sadyn.probes.accuracy import evaluate

    out: dict[str, Any] = {}
    try:
        acc = evaluate(model, acc_set, [loop], seed=seed)
        out.update(board_accuracy=acc["board_accuracy"][0], cell_accuracy=acc["cell_accuracy"][0])
        exps = finite_time_exponents(
            model, le_quizzes, horizon=loop, k=le_k, seed=seed, tol=le_tol, max_iter=le_iters
        )
    except DivergenceError as exc:
        out["error"] = str(exc)
        return out
    max_le, mean_le = exps[:, 0], exps.mean(axis=1)
    out.update(
        max_le=max_le.tolist(),
        mean_le=mean_le.tolist(),
        max_le_median=_finite_median(max_le),
        mean_le_median=_finite_median(mean_le),
    )
    return out


def _finite_median(values: Any) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan
