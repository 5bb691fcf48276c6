"""The product SVD by alternating QR sweeps: the top singular values of ``J_{T-1} ... J_0``
without ever forming the product.

A block of tangents is swept forward through the factors with a QR at every step
(``M V = Q R_T...R_1``), then backward through their transposes from the end basis
(``M^T U = P S_1...S_T``), and so on: block subspace iteration on ``M^T M`` in which every
product is kept as a chain of triangular factors. ``log sigma_i`` is read from the chain in
logs: the diagonal of a product of triangular matrices is the product of their diagonals,
and the diagonal block of a cluster of close singular values is the product of the diagonal
blocks, whose SVD (a Rayleigh-Ritz step within the cluster, :func:`ritz`) separates values
the plain iteration cannot. Values that differ by more than ``exp(GAP)`` separate by
themselves, by that factor per sweep.

The values are read from the last *forward* sweep (its right vectors at ``x_0`` and left
vectors at ``x_T`` match them). The backward sweep is a second, independent reading of the
same singular values: in exact arithmetic the two agree to the iteration error. When each
direction has settled on its own reading but the two still disagree, the iteration has hit
its rounding floor (a strongly non-normal chain amplifies the per-step rounding, see
docs/dynamics.md): it stops there, and the error estimate is twice the disagreement.

A chain is anything with ``step(t, V) = J_t V`` and ``step_t(t, U) = J_t^T U`` on
``(B, n, p)`` blocks: :class:`~sadyn.dynamics.propagator.Propagator` (matrix-free) or the
materialised Jacobians of :mod:`sadyn.dynamics.finite_time_dense`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sadyn.dynamics._common import progress_bar

#: Singular values closer than ``exp(GAP)`` (in ratio) are resolved together by Rayleigh-Ritz.
GAP = math.log(1e3)
#: A Rayleigh-Ritz cluster spans at most ``exp(SPAN)``, so its SVD keeps ~1e-10 relative
#: accuracy on its smallest value even in the worst case of LAPACK's absolute error bound.
SPAN = math.log(1e6)
#: Sweeps of at least this many steps show a progress bar (when asked for).
PROGRESS_MIN_STEPS = 100
#: Rounding floor: a direction has "settled" when its reading moved by at most this fraction
#: of the forward-backward disagreement since its previous reading. A converging iteration
#: moves each reading by about the disagreement itself; readings converging from both sides
#: at contraction ``rho`` per sweep move by ``(1 - rho) / rho`` of it, so only ``rho > 0.9``
#: can pass for a floor: 200 sweeps from 1e-3 to 1e-12, past any ``max_iter`` default, and
#: twice the disagreement still bounds the forward reading's error then. (At 0.01 a chaotic
#: tanh RNN's full spectrum at its floor ran all 101 sweeps again, as before.)
SETTLED = 0.1


@dataclass
class Sweep:
    """One QR sweep through the chain: ``Op A = end R_total`` with ``R_total`` kept in logs.

    Attributes:
        end: ``(B, n, p)`` orthonormal basis at the far end.
        logd: ``(B, p)`` float64, ``log R_total[i, i]`` (``-inf`` for exact zero directions).
        scale: ``(B, p)`` finite logs used to scale ``unit``.
        unit: ``(B, p, p)`` float64, ``diag(exp(-scale)) R_total``: unit-diagonal upper
            triangular (entries of the triangle are ``R_total[i, j] / R_total[i, i]``).
        local: per-step ``log |R_ii|``, ``(B, T, p)``.
    """

    end: Tensor
    logd: Tensor
    scale: Tensor
    unit: Tensor
    local: Tensor


def sweep(
    apply: Callable[[int, Tensor], Tensor],
    order: range,
    A: Tensor,
    zero_tol: float,
    bad: Tensor,
    desc: str | None = None,
) -> Sweep:
    """Push the block ``A: (B, n, p)`` through ``apply(t, .)`` for ``t`` in ``order``, QR each step.

    A stretch ``R_ii <= zero_tol * max_j ||(J Q)_j||`` is an exact zero (``-inf``). Rows in
    ``bad`` are frozen (their tangents stay as they are), and rows whose tangents turn
    non-finite are added to ``bad`` (in place); the caller reports them. ``desc``: show a
    progress bar under that name (long sweeps only).
    """
    b, _, p = A.shape
    f64 = torch.float64
    logd = torch.zeros(b, p, dtype=f64, device=A.device)
    scale = torch.zeros(b, p, dtype=f64, device=A.device)
    unit = torch.eye(p, dtype=f64, device=A.device).expand(b, p, p).clone()
    upper = torch.ones(p, p, dtype=torch.bool, device=A.device).triu()
    local = []
    Q = A
    show = desc is not None and len(order) >= PROGRESS_MIN_STEPS
    for t in progress_bar(order, len(order), show, desc or ""):
        Y = apply(t, Q)
        ok = torch.isfinite(Y).flatten(1).all(-1)
        bad |= ~ok
        if bool(bad.any()):
            Y = torch.where(bad[:, None, None], Q, Y)
        Q, R = torch.linalg.qr(Y)
        d = R.diagonal(dim1=-2, dim2=-1)
        sign = torch.where(d < 0, -1.0, 1.0).to(Q.dtype)
        Q = Q * sign[..., None, :]
        R = (R * sign[..., :, None]).to(f64)
        r = R.diagonal(dim1=-2, dim2=-1)
        colnorm = Y.norm(dim=-2).amax(dim=-1, keepdim=True).to(f64)
        logr = torch.where(r <= zero_tol * colnorm, float("-inf"), r.clamp_min(1e-300).log())
        local.append(logr)
        logd = logd + logr
        new_scale = scale + r.clamp_min(1e-300).log()
        # unit <- diag(exp(-new_scale)) R diag(exp(scale)) unit, kept finite
        expo = (scale[:, None, :] - new_scale[:, :, None]).clamp(max=600.0)
        N = torch.where(upper, R * expo.exp(), 0.0)
        unit = (N @ unit).clamp(-1e150, 1e150)
        scale = new_scale
    return Sweep(end=Q, logd=logd, scale=scale, unit=unit, local=torch.stack(local, dim=1))


def clusters(logd: list[float]) -> list[tuple[int, int]]:
    """Contiguous index ranges ``[i, j)`` of close finite values (consecutive gaps < GAP,
    total span <= SPAN); singletons are left out."""
    out = []
    i = 0
    p = len(logd)
    while i < p:
        j = i + 1
        if math.isfinite(logd[i]):
            lo = hi = logd[i]
            while j < p and math.isfinite(logd[j]) and abs(logd[j] - logd[j - 1]) < GAP:
                lo, hi = min(lo, logd[j]), max(hi, logd[j])
                if hi - lo > SPAN:
                    break
                j += 1
        if j - i > 1:
            out.append((i, j))
        i = j
    return out


def ritz(sw: Sweep) -> tuple[Tensor, Tensor, Tensor]:
    """Rayleigh-Ritz within clusters of close values of one sweep.

    ``R_total[c, c] = Y_c diag(s_c) W_c^T`` for each cluster ``c``. Returns ``(logs (B, p),
    Y (B, p, p), W (B, p, p))``: the log singular value estimates and the block-diagonal
    rotations (identity outside clusters), so that ``Op (A W) ~= (end Y) diag(exp(logs))``.
    """
    b, p = sw.logd.shape
    logs = sw.logd.clone()
    eye = torch.eye(p, dtype=torch.float64, device=sw.logd.device)
    Y = eye.expand(b, p, p).clone()
    W = eye.expand(b, p, p).clone()
    rows = sw.logd.cpu().tolist()
    for r, row in enumerate(rows):
        for i, j in clusters(row):
            sc = sw.scale[r, i:j]
            top = sc.max()
            block = (sc - top).exp()[:, None] * sw.unit[r, i:j, i:j]
            if not bool(torch.isfinite(block).all()):
                continue
            u, s, vh = torch.linalg.svd(block)
            logs[r, i:j] = s.clamp_min(1e-300).log() + top
            Y[r, i:j, i:j] = u
            W[r, i:j, i:j] = vh.mT
    return logs, Y, W


def sort_values(logs: Tensor) -> tuple[Tensor, Tensor]:
    """Values sorted largest first (``-inf`` last, NaN rows untouched) and the permutation."""
    key = torch.where(torch.isnan(logs), float("-inf"), logs)
    order = torch.argsort(key, dim=-1, descending=True, stable=True)
    return logs.gather(-1, order), order


def permute_cols(A: Tensor, order: Tensor) -> Tensor:
    return A.gather(-1, order[:, None, :].expand(-1, A.shape[1], -1))


@dataclass
class SVDResult:
    exponents: Tensor  # (B, k) sorted, read from the last forward sweep
    right: Tensor  # (B, n, k) right singular vectors at x_0
    end: Tensor  # (B, n, k) the forward sweep's end basis (left vectors at x_T)
    local: Tensor  # (B, T, k) per-step logs of the last forward sweep
    sweeps: int
    converged: Tensor  # (B,)
    error: Tensor  # (B,)
    bad: Tensor  # (B,)
    rounding: Tensor | None = None  # (B,) rows stopped at the rounding floor


@dataclass
class _Reading:
    """One sweep's reading: exponents ``(B, k)``, right vectors at ``x_0``, end basis, local."""

    est: Tensor
    right: Tensor
    end: Tensor
    local: Tensor


def _read(sw: Sweep, start: Tensor, k: int, T: int, forward: bool) -> _Reading:
    """The sorted exponents of one sweep and its vectors (Ritz-rotated within clusters)."""
    logs, Yr, Wr = ritz(sw)
    vals, order = sort_values(logs)
    end = permute_cols(sw.end @ Yr.to(sw.end.dtype), order)
    right = permute_cols(start @ Wr.to(start.dtype), order) if forward else end
    return _Reading(vals[:, :k] / T, right, end, permute_cols(sw.local, order))


def product_svd(
    chain: Any,
    T: int,
    V: Tensor,
    k: int,
    *,
    tol: float,
    max_sweeps: int,
    zero_tol: float,
    bad: Tensor,
    warm: bool = False,
    progress: bool = False,
) -> SVDResult:
    """Top-``k`` singular values of ``J_{T-1} ... J_0`` by alternating QR sweeps.

    Args:
        chain: has ``step(t, V) = J_t V`` and ``step_t(t, U) = J_t^T U`` on ``(B, n, p)``.
        V: ``(B, n, p)`` orthonormal start block at ``x_0`` (``p >= k``).
        tol: stop when every row's estimated error of its top-``k`` exponents is ``<= tol``.
        max_sweeps: sweeps at most (forward and backward alternate; the first is forward).
        warm: ``V`` is already close (the dense start): one change suffices to judge.
        bad: ``(B,)`` rows to freeze (updated in place with rows whose tangents blew up).
        progress: a progress bar over each long sweep.
    """
    b, dev = V.shape[0], V.device
    last: dict[bool, Tensor] = {}  # the last reading in each direction
    last_change: Tensor | None = None
    error = torch.full((b,), float("inf"), dtype=torch.float64, device=dev)
    converged = torch.zeros(b, dtype=torch.bool, device=dev)
    rounding = torch.zeros(b, dtype=torch.bool, device=dev)
    start, fwd, sweeps = V, None, 0
    for s in range(1, max_sweeps + 1):
        forward = s % 2 == 1
        apply, order = (chain.step, range(T)) if forward else (chain.step_t, range(T - 1, -1, -1))
        desc = f"finite-time exponents, sweep {s}" if progress else None
        reading = _read(sweep(apply, order, start, zero_tol, bad, desc), start, k, T, forward)
        if forward:
            fwd = reading
        start, sweeps = reading.end, s
        if (not forward) in last:
            change = _change(reading.est, last[not forward])
            error = change if warm else _error_estimate(change, last_change)
            if forward in last and last_change is not None:
                floor = _rounding_floor(reading.est, last[forward], change, last_change, tol)
                rounding |= floor
                error = torch.where(rounding, 2.0 * change, error)
            last_change = change
            converged = error <= tol
        last[forward] = reading.est
        if bool((converged | bad | rounding).all()):
            break
    assert fwd is not None
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=dev)
    return SVDResult(
        exponents=torch.where(bad[:, None], nan, fwd.est),
        right=fwd.right[..., :k],
        end=fwd.end[..., :k],
        local=fwd.local[..., :k],
        sweeps=sweeps,
        converged=converged & ~bad,
        error=torch.where(bad, nan, error),
        bad=bad,
        rounding=rounding & ~bad & ~converged,
    )


def _rounding_floor(
    est: Tensor, same: Tensor, change: Tensor, last_change: Tensor, tol: float
) -> Tensor:
    """``(B,)``: rows whose forward and backward readings have each settled (moved by at most
    ``SETTLED`` times their disagreement since the reading two sweeps back) while the
    disagreement stays above ``tol`` and does not shrink: more sweeps cannot help."""
    settled = _change(est, same) <= SETTLED * change
    stalled = change >= 0.5 * last_change
    return settled & stalled & (change > tol)


def _error_estimate(change: Tensor, last_change: Tensor | None, linear: bool = True) -> Tensor:
    """Remaining error after a change, from the observed contraction ``rho`` per step.

    Linear convergence (subspace iteration): the geometric tail ``change * rho / (1 - rho)``,
    doubled and at least ``2 * change``: several modes converge at once and the slowest takes
    over (measured on attention maps, the bare tail underestimates by up to 2x). Superlinear
    convergence (block Krylov, ``linear=False``): the bare tail, doubled. ``inf`` until two
    changes are known.
    """
    if last_change is None:
        return torch.full_like(change, float("inf"))
    rho = (change / last_change.clamp_min(1e-300)).clamp(max=0.999)
    rho = torch.where(last_change > 0, rho, 0.0)
    tail = rho / (1.0 - rho)
    error = 2.0 * change * (torch.clamp(tail, min=1.0) if linear else tail)
    return torch.where(change > 0, error, 0.0)


def _change(est: Tensor, prev: Tensor) -> Tensor:
    same = (est == prev) | (torch.isneginf(est) & torch.isneginf(prev))
    return torch.where(same, 0.0, (est - prev).abs()).amax(-1)
