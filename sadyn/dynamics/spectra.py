"""Spectra of the Jacobian at a point: spectral norm, eigenvalues, singular values.

Attention Jacobians are strongly non-normal, so eigenvalues (stability of a fixed point,
oscillation) and singular values (worst-case one-step amplification) differ: report both.
Small ``n`` is handled densely; large ``n`` matrix-free: power iteration on ``J^T J`` for the
norm, ARPACK (``scipy.sparse.linalg.eigs`` / ``svds``) on :class:`JacobianOperator` for top-k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from scipy.sparse.linalg import eigs, svds
from torch import Tensor

from sadyn.dynamics._common import (
    DENSE_MAX,
    Map,
    as_batched,
    default_generator,
    randn_like_on,
    unbatch,
)
from sadyn.dynamics.attention import attention_safe
from sadyn.dynamics.jacobian import JacobianOperator, jacobian
from sadyn.errors import ShapeError

if TYPE_CHECKING:
    from matplotlib.axes import Axes


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
        raise ValueError(f"method must be one of {('auto', *allowed)}, got {method!r}")
    if method == "auto":
        return allowed[0] if n <= dense_max else allowed[1]
    return method


@attention_safe
@torch.no_grad()
def spectral_norm(
    f: Map,
    x: Tensor,
    *,
    method: Literal["auto", "dense", "power"] = "auto",
    tol: float = 1e-6,
    max_iter: int = 200,
    v0: Tensor | None = None,
    generator: torch.Generator | None = None,
    batched: bool = False,
) -> SpectralNormResult:
    """The spectral norm ``sigma_max(J(x))`` of the map's Jacobian.

    "dense" takes the SVD of the materialised ``J`` (exact; default for ``n <= DENSE_MAX``).
    "power" iterates ``v <- J^T J v / ||J^T J v||`` (one JVP and one VJP per iteration) until
    the residual ``||J^T J v - s^2 v|| <= tol s^2`` in every row, ``s = ||J v||``: then some
    singular value lies within ``tol/2`` (relative) of ``s``, and typically much closer (the
    error is second order). Power iteration converges as ``(sigma_2 / sigma_1)^2`` per step.

    Args:
        f, x: the map and the point (``(n,)``, or ``(B, n)`` with ``batched``).
        v0: warm start, ``(n,)`` or ``(B, n)`` (e.g. the previous result's ``vector``).
        generator: draws the random start when ``v0`` is None.
    """
    F, X = as_batched(f, x, batched)
    b, n = X.shape
    method = _pick(method, n, ("dense", "power"))
    if method == "dense":
        J = jacobian(F, X, batched=True)
        _, s, vh = torch.linalg.svd(J.to(torch.float64))
        value = s[:, 0]
        vec = vh[:, 0, :].to(X.dtype)
        return SpectralNormResult(
            _scalar(value, batched), unbatch(vec, batched), 0, _flag(True, b, batched)
        )

    op = JacobianOperator(F, X, batched=True)
    tiny = torch.finfo(X.dtype).tiny
    if v0 is None:
        v = randn_like_on((b, n), X, default_generator(generator))
    else:
        v = torch.as_tensor(v0, dtype=X.dtype, device=X.device).reshape(b, n).clone()
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(tiny)
    converged = torch.zeros(b, dtype=torch.bool, device=X.device)
    sigma = torch.zeros(b, dtype=torch.float64, device=X.device)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        u = op.matvec(v)
        w = op.rmatvec(u)
        theta = (u * u).sum(-1, keepdim=True)  # s^2 = v^T J^T J v
        resid = (w - theta * v).norm(dim=-1).to(torch.float64)
        sigma = theta[:, 0].to(torch.float64).sqrt()
        # J v == 0 exactly means J == 0 along v; keep v (s = 0 is then the answer if J == 0).
        converged = resid <= tol * theta[:, 0].to(torch.float64)
        norm_w = w.norm(dim=-1, keepdim=True)
        v_next = torch.where(norm_w > 0, w / norm_w.clamp_min(tiny), v)
        if bool(converged.all()):
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


def _flag(flag: bool, b: int, batched: bool) -> bool | Tensor:
    return torch.full((b,), flag) if batched else flag


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
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Eigenvalues of ``J(x)``, sorted by modulus, largest first.

    "dense": ``torch.linalg.eigvals`` of the materialised Jacobian (float64), all ``n`` or the
    first ``k``. "arnoldi": the top ``k`` by modulus from ARPACK (``scipy.sparse.linalg.eigs``,
    implicitly restarted Arnoldi) on the matrix-free :class:`JacobianOperator`. "auto" is dense
    when ``k`` is None or ``n <= DENSE_MAX``. ARPACK needs ``k < n - 1``; larger ``k`` is dense.

    Batched Arnoldi runs ARPACK row by row, and each product pushes the whole batch through
    the map (an opaque batched map cannot evaluate one row alone): ``B`` times the cost of
    ``B`` unbatched calls' products. Prefer a loop over unbatched maps when you have one.

    Args:
        k: how many (None: all, dense only).
        tol: ARPACK's relative accuracy (0: machine precision).
        generator: draws ARPACK's start vector (reproducible runs).
    Returns:
        complex128 array ``(k,)`` (or ``(n,)``); batched ``(B, k)``.
    """
    F, X = as_batched(f, x, batched)
    b, n = X.shape
    k = _check_k(k, n)
    method = _pick(method, n, ("dense", "arnoldi")) if k is not None else "dense"
    if method == "arnoldi" and k >= n - 1:
        method = "dense"
    if method == "dense":
        J = jacobian(F, X, batched=True).to(torch.float64)
        ev = torch.linalg.eigvals(J).cpu().numpy()
        rows = [_sorted_by_modulus(r)[: k or n] for r in ev]
    else:
        op = JacobianOperator(F, X, batched=True)
        v0 = _start_vector(n, generator)
        rows = []
        for i in range(b):
            vals = eigs(
                op.to_scipy(row=i), k=k, which="LM", v0=v0, tol=tol, return_eigenvectors=False
            )
            rows.append(_sorted_by_modulus(np.asarray(vals, dtype=np.complex128)))
    out = np.stack(rows).astype(np.complex128)
    return out if batched else out[0]


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
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Singular values of ``J(x)``, largest first.

    "dense": ``svdvals`` of the materialised Jacobian. "svds": top ``k`` from ARPACK
    (``scipy.sparse.linalg.svds``) on :class:`JacobianOperator` (JVP + VJP products).
    "auto" is dense when ``k`` is None or ``n <= DENSE_MAX``. Batched "svds" runs row by row
    (see :func:`eigenvalues` for its cost).

    Returns:
        float64 array ``(k,)`` (or ``(n,)``); batched ``(B, k)``.
    """
    F, X = as_batched(f, x, batched)
    b, n = X.shape
    k = _check_k(k, n)
    method = _pick(method, n, ("dense", "svds")) if k is not None else "dense"
    if method == "svds" and k >= n:
        method = "dense"
    if method == "dense":
        J = jacobian(F, X, batched=True).to(torch.float64)
        out = torch.linalg.svdvals(J).cpu().numpy()[:, : k or n]
    else:
        op = JacobianOperator(F, X, batched=True)
        v0 = _start_vector(n, generator)
        rows = []
        for i in range(b):
            s = svds(
                op.to_scipy(row=i), k=k, which="LM", v0=v0, tol=tol, return_singular_vectors=False
            )
            rows.append(np.sort(s)[::-1])
        out = np.stack(rows)
    out = np.ascontiguousarray(out, dtype=np.float64)
    return out if batched else out[0]


def _check_k(k: int | None, n: int) -> int | None:
    if k is None:
        return None
    k = int(k)
    if not 1 <= k <= n:
        raise ShapeError(f"k must lie in 1..n = {n}, got {k}")
    return k


def plot_eigenvalues(
    eigs: np.ndarray | Tensor,
    ax: Axes | None = None,
    *,
    label: str | None = None,
    unit_circle: bool = True,
    **scatter_kwargs,
) -> Axes:
    """Scatter eigenvalues in the complex plane, with the unit circle (stability of a map).

    Args:
        eigs: complex values, any shape (flattened).
        ax: axes to draw on (default: a new figure).
        label: legend label of the points.
        unit_circle: draw ``|z| = 1`` (a map is linearly stable inside it).
        scatter_kwargs: passed to ``ax.scatter`` (e.g. ``s``, ``alpha``, ``color``).
    Returns:
        the axes.
    """
    import matplotlib.pyplot as plt

    z = np.asarray(eigs.detach().cpu() if isinstance(eigs, Tensor) else eigs).ravel()
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    if unit_circle:
        t = np.linspace(0.0, 2.0 * np.pi, 400)
        ax.plot(np.cos(t), np.sin(t), color="0.5", lw=1.0, ls="--", zorder=0)
    kw = {"s": 12, "alpha": 0.8, **scatter_kwargs}
    ax.scatter(z.real, z.imag, label=label, **kw)
    ax.axhline(0.0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0.0, color="0.85", lw=0.6, zorder=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    if label is not None:
        ax.legend(loc="best")
    return ax
