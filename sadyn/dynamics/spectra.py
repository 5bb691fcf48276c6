"""Spectra of the Jacobian at a point: spectral norm, eigenvalues, singular values.

Attention Jacobians are strongly non-normal, so eigenvalues (stability of a fixed point,
oscillation) and singular values (worst-case one-step amplification) differ: report both.
Small ``n`` is handled densely; large ``n`` matrix-free: power iteration on ``J^T J`` for the
norm, ARPACK (``scipy.sparse.linalg.eigs`` / ``svds``) on :class:`JacobianOperator` for top-k.
An iterative method that does not converge (power iteration past ``max_iter``, ARPACK past its
bounded restarts) says so with a :class:`~sadyn.dynamics.ConvergenceWarning`; under "auto"
(and for ARPACK always) the dense method takes over where the Jacobian fits in memory
(:data:`DENSE_FALLBACK_BYTES`), else ARPACK raises :class:`~sadyn.errors.ConvergenceError`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, eigs, svds
from torch import Tensor

from sadyn.dynamics._common import (
    DENSE_MAX,
    ConvergenceWarning,
    Map,
    OnNonFinite,
    as_batched,
    check_int,
    check_on_nonfinite,
    check_positive,
    default_generator,
    randn_like_on,
    report_nonfinite,
    unbatch,
)
from sadyn.dynamics.attention import attention_safe
from sadyn.dynamics.jacobian import JacobianOperator, value_and_jacobian
from sadyn.errors import ArgumentError, ConvergenceError, ShapeError

#: A fallback to the dense method runs where the batch's float64 Jacobians (and LAPACK's
#: workspace, about as much again) fit in this many bytes.
DENSE_FALLBACK_BYTES = 2**30
#: ARPACK restarts at most (scipy's default is ``10 n``: 647 s on an orthogonal map of
#: n = 1100, whose eigenvalues share one modulus and never separate).
ARPACK_MAX_ITER = 300


def dense_fits(b: int, n: int) -> bool:
    """Whether ``b`` dense float64 ``n x n`` Jacobians (twice, for the workspace) fit in
    :data:`DENSE_FALLBACK_BYTES`."""
    return 2 * 8 * b * n * n <= DENSE_FALLBACK_BYTES


class _NonFiniteProduct(Exception):
    """Raised inside an ARPACK callback when a Jacobian product is NaN/inf (aborts ARPACK)."""


def _finite_rows(J: Tensor) -> Tensor:
    """``(B,)``: rows whose ``(B, n, n)`` Jacobian is entirely finite."""
    return torch.isfinite(J).flatten(1).all(-1)


def _guard_dense(
    J: Tensor, name: str, batched: bool, on_nonfinite: OnNonFinite
) -> tuple[Tensor, Tensor]:
    """Report non-finite Jacobian rows once and replace them by zeros (LAPACK never sees NaN).

    Returns ``(J with bad rows zeroed, bad (B,))``.
    """
    bad = ~_finite_rows(J)
    if bool(bad.any()):
        report_nonfinite(name, bad.nonzero().flatten().tolist(), 0, batched, on_nonfinite)
        J = torch.where(bad[:, None, None], torch.zeros_like(J), J)
    return J, bad


def _checked_operator(op, name: str):
    """``op`` (a scipy LinearOperator) with products that raise on NaN/inf."""
    from scipy.sparse.linalg import LinearOperator

    def wrap(fn):
        def apply(v: np.ndarray) -> np.ndarray:
            out = fn(v)
            if not np.isfinite(out).all():
                raise _NonFiniteProduct(name)
            return out

        return apply

    return LinearOperator(
        op.shape,
        matvec=wrap(op.matvec),
        rmatvec=wrap(op.rmatvec),
        matmat=wrap(op.matmat),
        rmatmat=wrap(op.rmatmat),
        dtype=op.dtype,
    )


@dataclass
class SpectralNormResult:
    """``||J(x)||_2`` and its right singular vector.

    Attributes:
        value: the norm, a float (or ``(B,)`` float64 tensor when batched).
        vector: the unit right singular vector ``v`` (``||J v|| = value``), ``(n,)`` or
            ``(B, n)``; pass it back as ``v0`` to warm-start at a nearby state.
        iterations: power iterations run (0 for the dense method).
        converged: whether the relative change fell below ``tol`` (per row when batched).
    """

    value: float | Tensor
    vector: Tensor
    iterations: int
    converged: bool | Tensor


def _pick(method: str, n: int, allowed: tuple[str, ...], dense_max: int = DENSE_MAX) -> str:
    if method not in ("auto", *allowed):
        raise ArgumentError(f"method must be one of {('auto', *allowed)}, got {method!r}")
    if method == "auto":
        return allowed[0] if n <= dense_max else allowed[1]
    return method


@attention_safe
@torch.no_grad()
def spectral_norm(
    f: Map,
    x: Tensor,
    *,
    method: Literal["auto", "dense", "power", "lanczos"] = "auto",
    tol: float = 1e-6,
    max_iter: int = 200,
    v0: Tensor | None = None,
    generator: torch.Generator | None = None,
    batched: bool = False,
    on_nonfinite: OnNonFinite = "warn",
) -> SpectralNormResult:
    """The spectral norm ``sigma_max(J(x))`` of the map's Jacobian.

    "dense" takes the SVD of the materialised ``J`` (exact; default for ``n <= DENSE_MAX``).
    "power" iterates ``v <- J^T J v / ||J^T J v||`` (one JVP and one VJP per iteration) until
    the residual ``||J^T J v - s^2 v|| <= tol s^2`` in every row, ``s = ||J v||``: then some
    singular value lies within ``tol/2`` (relative) of ``s``, and typically much closer (the
    error is second order). Power iteration converges as ``(sigma_2 / sigma_1)^2`` per step,
    which can be next to nothing: "auto" above ``DENSE_MAX`` runs it and, when it stops
    unconverged after ``max_iter``, takes the dense SVD where the Jacobian fits in memory
    (:func:`dense_fits`; at n = 1296 that is seconds), and otherwise restarted Lanczos
    (ARPACK ``svds``, k = 1, from the power iterate: its rate depends on the square root of the
    gap, so clustered top singular values, where power iteration stalls, still converge).
    "lanczos" runs ARPACK from the start. An unconverged result (explicit "power", or ARPACK
    out of restarts) comes with one :class:`~sadyn.dynamics.ConvergenceWarning` and is a lower
    bound of the norm.

    Args:
        f, x: the map and the point (``(n,)``, or ``(B, n)`` with ``batched``).
        v0: warm start, ``(n,)`` or ``(B, n)`` (e.g. the previous result's ``vector``).
        generator: draws the random start when ``v0`` is None.
        on_nonfinite: a row whose Jacobian products are NaN/inf gets value NaN with one
            :class:`~sadyn.dynamics.NonFiniteStateWarning` ("warn"), or raises
            :class:`~sadyn.errors.DivergenceError` ("raise").
    """
    check_on_nonfinite(on_nonfinite)
    tol = check_positive(tol, "tol", allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    F, X = as_batched(f, x, batched)
    b, n = X.shape
    if method == "lanczos":
        start = _norm_power(F, X, tol, 1, v0, generator, True, on_nonfinite)
        res = _norm_lanczos(F, X, start, tol, max_iter, batched, every_row=True)
    else:
        chosen = _pick(method, n, ("dense", "power"))
        if chosen == "dense":
            return _norm_dense(F, X, batched, on_nonfinite)
        res = _norm_power(F, X, tol, max_iter, v0, generator, batched, on_nonfinite)
        if _settled(res):
            return res
        if method == "auto" and dense_fits(b, n):
            return _norm_dense(F, X, batched, on_nonfinite)
        if method == "auto":
            res = _norm_lanczos(F, X, res, tol, max_iter, batched)
    if _settled(res):
        return res
    warnings.warn(
        f"spectral_norm: {method} iteration did not converge (max_iter = {max_iter}, "
        f"tol {tol:.0e}); the value is a lower bound. Use method='dense' (exact) or raise "
        "max_iter",
        ConvergenceWarning,
        stacklevel=4,
    )
    return res


def _settled(res: SpectralNormResult) -> bool:
    """Every row converged, or every row is NaN (diverged: nothing more to do)."""
    conv = torch.as_tensor(res.converged)
    return bool(conv.all()) or bool(torch.isnan(torch.as_tensor(res.value)).all())


def _norm_lanczos(
    F: Map,
    X: Tensor,
    start: SpectralNormResult,
    tol: float,
    max_iter: int,
    batched: bool,
    every_row: bool = False,
) -> SpectralNormResult:
    """ARPACK ``svds`` (k = 1) on the rows ``start`` left unconverged (``every_row``: all
    finite rows), from ``start``'s vectors; ``max(10, max_iter // 10)`` restarts of 20
    Lanczos vectors. A row ARPACK does not converge keeps the larger of the two estimates
    (both are lower bounds), flagged unconverged."""
    op = JacobianOperator(F, X, batched=True, on_nonfinite=None)
    value = torch.as_tensor(start.value, dtype=torch.float64).reshape(-1).clone()
    vector = start.vector.reshape(X.shape).clone()
    conv = torch.as_tensor(start.converged).reshape(-1).clone()
    for r in range(X.shape[0]):
        if (bool(conv[r]) and not every_row) or bool(torch.isnan(value[r])):
            continue
        v0 = vector[r].detach().cpu().double().numpy()
        try:
            _, s, vt = svds(
                op.to_scipy(row=r), k=1, which="LM", v0=v0, tol=tol,
                maxiter=max(10, max_iter // 10), ncv=min(20, X.shape[1] - 1),
            )  # fmt: skip
        except ArpackNoConvergence:
            conv[r] = False
            continue
        if float(s[0]) >= float(value[r]) or every_row:
            value[r] = float(s[0])
            vector[r] = torch.as_tensor(vt[0], dtype=X.dtype, device=X.device)
        conv[r] = True
    return SpectralNormResult(
        _scalar(value, batched),
        unbatch(vector, batched),
        start.iterations,
        bool(conv.all()) if not batched else conv,
    )


def _norm_dense(F: Map, X: Tensor, batched: bool, on_nonfinite: OnNonFinite) -> SpectralNormResult:
    """The exact norm from the SVD of the materialised float64 Jacobian."""
    J, bad = _guard_dense(
        value_and_jacobian(F, X)[1].to(torch.float64), "spectral_norm", batched, on_nonfinite
    )
    _, s, vh = torch.linalg.svd(J)
    value = torch.where(bad, float("nan"), s[:, 0])
    vec = vh[:, 0, :].to(X.dtype)
    vec = torch.where(bad[:, None], float("nan"), vec)
    conv = ~bad
    return SpectralNormResult(
        _scalar(value, batched), unbatch(vec, batched), 0, conv if batched else bool(conv[0])
    )


def _norm_power(
    F: Map,
    X: Tensor,
    tol: float,
    max_iter: int,
    v0: Tensor | None,
    generator: torch.Generator | None,
    batched: bool,
    on_nonfinite: OnNonFinite,
) -> SpectralNormResult:
    """Power iteration on ``J^T J`` (see :func:`spectral_norm`)."""
    b, n = X.shape
    op = JacobianOperator(F, X, batched=True, on_nonfinite=None)
    tiny = torch.finfo(X.dtype).tiny
    if v0 is None:
        v = randn_like_on((b, n), X, default_generator(generator))
    else:
        v = torch.as_tensor(v0, dtype=X.dtype, device=X.device)
        if v.numel() != b * n:
            raise ShapeError(f"v0 must have shape {(b, n)[1 - batched :]}, got {tuple(v.shape)}")
        v = v.reshape(b, n).clone()
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(tiny)
    converged = torch.zeros(b, dtype=torch.bool, device=X.device)
    sigma = torch.zeros(b, dtype=torch.float64, device=X.device)
    bad = torch.zeros(b, dtype=torch.bool, device=X.device)
    it = 0
    for it in range(1, max_iter + 1):
        u = op.matvec(v)
        w = op.rmatvec(u)
        new_bad = ~(torch.isfinite(u).all(-1) & torch.isfinite(w).all(-1)) & ~bad
        if bool(new_bad.any()):
            rows = new_bad.nonzero().flatten().tolist()
            report_nonfinite("spectral_norm", rows, it, batched, on_nonfinite)
            bad |= new_bad
        u = torch.where(bad[:, None], 0.0, u)
        w = torch.where(bad[:, None], 0.0, w)
        theta = (u * u).sum(-1, keepdim=True)  # s^2 = v^T J^T J v
        resid = (w - theta * v).norm(dim=-1).to(torch.float64)
        sigma = torch.where(bad, float("nan"), theta[:, 0].to(torch.float64).sqrt())
        # J v == 0 exactly means J == 0 along v; keep v (s = 0 is then the answer if J == 0).
        converged = (resid <= tol * theta[:, 0].to(torch.float64)) & ~bad
        norm_w = w.norm(dim=-1, keepdim=True)
        v_next = torch.where(norm_w > 0, w / norm_w.clamp_min(tiny), v)
        if bool((converged | bad).all()):
            break
        v = v_next
    return SpectralNormResult(
        _scalar(sigma, batched),
        unbatch(v, batched),
        it,
        bool(converged.all()) if not batched else converged,
    )


def _scalar(value: Tensor, batched: bool) -> float | Tensor:
    return value if batched else float(value[0])


def _sorted_by_modulus(values: np.ndarray) -> np.ndarray:
    order = np.argsort(-np.abs(values), kind="stable")
    return values[order]


def _start_vector(n: int, generator: torch.Generator | None) -> np.ndarray:
    g = default_generator(generator)
    return torch.randn(n, generator=g, dtype=torch.float64, device=g.device).cpu().numpy()


@attention_safe
@torch.no_grad()
def eigenvalues(
    f: Map,
    x: Tensor,
    k: int | None = None,
    *,
    method: Literal["auto", "dense", "arnoldi"] = "auto",
    batched: bool = False,
    tol: float = 0.0,
    max_iter: int = ARPACK_MAX_ITER,
    generator: torch.Generator | None = None,
    on_nonfinite: OnNonFinite = "warn",
) -> np.ndarray:
    """Eigenvalues of ``J(x)``, sorted by modulus, largest first.

    "dense": ``torch.linalg.eigvals`` of the materialised Jacobian (float64), all ``n`` or the
    first ``k``. "arnoldi": the top ``k`` by modulus from ARPACK (``scipy.sparse.linalg.eigs``,
    implicitly restarted Arnoldi) on the matrix-free :class:`JacobianOperator`. "auto" is dense
    when ``k`` is None or ``n <= DENSE_MAX``. ARPACK needs ``k < n - 1``; larger ``k`` is dense.

    ARPACK cannot separate eigenvalues that share one modulus (an orthogonal map): it stops
    after ``max_iter`` restarts, and then the dense method answers (with a
    :class:`~sadyn.dynamics.ConvergenceWarning`) where the Jacobians fit in memory
    (:func:`dense_fits`), else :class:`~sadyn.errors.ConvergenceError` is raised.

    Batched Arnoldi runs ARPACK row by row, and each product pushes the whole batch through
    the map (an opaque batched map cannot evaluate one row alone): ``B`` times the cost of
    ``B`` unbatched calls' products. Prefer a loop over unbatched maps when you have one.

    Args:
        k: how many (None: all, dense only).
        tol: ARPACK's relative accuracy (0: machine precision).
        max_iter: ARPACK restarts at most (each about ``2k`` products).
        generator: draws ARPACK's start vector (reproducible runs).
        on_nonfinite: a row whose Jacobian is NaN/inf gives NaN with one
            :class:`~sadyn.dynamics.NonFiniteStateWarning` ("warn") or raises ("raise");
            LAPACK/ARPACK never see the NaN.
    Returns:
        complex128 array ``(k,)`` (or ``(n,)``); batched ``(B, k)``.
    """
    check_on_nonfinite(on_nonfinite)
    tol = check_positive(tol, "tol", allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    F, X = as_batched(f, x, batched)
    b, n = X.shape
    k = _check_k(k, n)
    method = _pick(method, n, ("dense", "arnoldi")) if k is not None else "dense"
    if method == "arnoldi" and k >= n - 1:
        method = "dense"
    nan = complex(float("nan"), float("nan"))
    if method == "arnoldi":
        assert k is not None
        v0 = _start_vector(n, generator)

        def solve(A) -> np.ndarray:
            vals = eigs(A, k=k, which="LM", v0=v0, tol=tol, maxiter=max_iter,
                        return_eigenvectors=False)  # fmt: skip
            return _sorted_by_modulus(np.asarray(vals, dtype=np.complex128))

        op = JacobianOperator(F, X, batched=True, on_nonfinite=None)
        rows = _arpack_rows(solve, op, b, n, k, nan, "eigenvalues", batched, on_nonfinite)
        if rows is not None:
            out = np.stack(rows).astype(np.complex128)
            return out if batched else out[0]
    J, bad = _guard_dense(
        value_and_jacobian(F, X)[1].to(torch.float64), "eigenvalues", batched, on_nonfinite
    )
    ev = torch.linalg.eigvals(J).cpu().numpy()
    rows = [
        np.full(k or n, nan) if bad[i] else _sorted_by_modulus(r)[: k or n]
        for i, r in enumerate(ev)
    ]
    out = np.stack(rows).astype(np.complex128)
    return out if batched else out[0]


def _arpack_rows(
    solve, op, b: int, n: int, k: int, nan, name: str, batched: bool, on_nonfinite: OnNonFinite
) -> list[np.ndarray] | None:
    """``solve`` (ARPACK) on each row's operator; NaN rows for non-finite products (reported
    once). None when ARPACK did not converge in some row and the dense method fits (after a
    :class:`ConvergenceWarning`); :class:`ConvergenceError` when it does not fit."""
    rows, bad_rows, stuck = [], [], []
    for i in range(b):
        try:
            rows.append(solve(_checked_operator(op.to_scipy(row=i), name)))
        except _NonFiniteProduct:
            rows.append(np.full(k, nan))
            bad_rows.append(i)
        except ArpackNoConvergence:
            stuck.append(i)
    if bad_rows:
        report_nonfinite(name, bad_rows, 0, batched, on_nonfinite)
    if not stuck:
        return rows
    where = f"rows {stuck}" if batched else "the map"
    if not dense_fits(b, n):
        raise ConvergenceError(
            f"{name}: ARPACK did not converge for {where} (n = {n}, k = {k}), and the dense "
            f"Jacobians ({2 * 8 * b * n * n / 2**30:.1f} GiB with workspace) do not fit in "
            f"{DENSE_FALLBACK_BYTES / 2**30:.0f} GiB: eigenvalues of one modulus cannot be "
            "separated by Arnoldi; ask for fewer (k) or another point"
        )
    warnings.warn(
        f"{name}: ARPACK did not converge for {where} (n = {n}, k = {k}); computed densely",
        ConvergenceWarning,
        stacklevel=4,
    )
    return None


@attention_safe
@torch.no_grad()
def singular_values(
    f: Map,
    x: Tensor,
    k: int | None = None,
    *,
    method: Literal["auto", "dense", "svds"] = "auto",
    batched: bool = False,
    tol: float = 0.0,
    max_iter: int = ARPACK_MAX_ITER,
    generator: torch.Generator | None = None,
    on_nonfinite: OnNonFinite = "warn",
) -> np.ndarray:
    """Singular values of ``J(x)``, largest first.

    "dense": ``svdvals`` of the materialised Jacobian. "svds": top ``k`` from ARPACK
    (``scipy.sparse.linalg.svds``) on :class:`JacobianOperator` (JVP + VJP products).
    "auto" is dense when ``k`` is None or ``n <= DENSE_MAX``. Batched "svds" runs row by row
    (see :func:`eigenvalues` for its cost, and for ``max_iter`` and the dense fallback).

    A row whose Jacobian is NaN/inf gives NaN with one warning (``on_nonfinite``).

    Returns:
        float64 array ``(k,)`` (or ``(n,)``); batched ``(B, k)``.
    """
    check_on_nonfinite(on_nonfinite)
    tol = check_positive(tol, "tol", allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    F, X = as_batched(f, x, batched)
    b, n = X.shape
    k = _check_k(k, n)
    method = _pick(method, n, ("dense", "svds")) if k is not None else "dense"
    if method == "svds" and k >= n:
        method = "dense"
    if method == "svds":
        assert k is not None
        v0 = _start_vector(n, generator)

        def solve(A) -> np.ndarray:
            s = svds(A, k=k, which="LM", v0=v0, tol=tol, maxiter=max_iter,
                     return_singular_vectors=False)  # fmt: skip
            return np.sort(s)[::-1]

        op = JacobianOperator(F, X, batched=True, on_nonfinite=None)
        rows = _arpack_rows(solve, op, b, n, k, np.nan, "singular_values", batched, on_nonfinite)
        if rows is not None:
            out = np.ascontiguousarray(np.stack(rows), dtype=np.float64)
            return out if batched else out[0]
    J, bad = _guard_dense(
        value_and_jacobian(F, X)[1].to(torch.float64), "singular_values", batched, on_nonfinite
    )
    out = torch.linalg.svdvals(J).cpu().numpy()[:, : k or n]
    out[bad.cpu().numpy()] = np.nan
    out = np.ascontiguousarray(out, dtype=np.float64)
    return out if batched else out[0]


def _check_k(k: int | None, n: int) -> int | None:
    if k is None:
        return None
    k = check_int(k, "k")
    if not 1 <= k <= n:
        raise ShapeError(f"k must lie in 1..n = {n}, got {k}")
    return k
