"""Top eigenspace of a large symmetric operator by Chebyshev-filtered block subspace iteration.

The contribution index needs the top ``m`` eigenspace (``m`` = 2% of ``n``: 829 vectors at
``n = S*D = 41,472``) of ``S = (J + J^T)/2``, where each product costs one JVP plus one VJP.
ARPACK asks for those products one vector at a time (its estimate at paper width: 1,125 hours
on one core). Here every product is a *block* of ``p = m + q`` columns pushed through the
map at once (``vmap`` over ``jvp`` / ``vjp``: one batched pass, BLAS-3 matrix products), and
the iteration is built to converge in few blocks on a spectrum clustered near zero:

1. **Bounds.** A short Lanczos run on one random vector gives ``[lower, upper]`` with
   ``lower <= lambda_min(S)`` and ``upper >= lambda_max(S)`` (the extreme Ritz values widened
   by the last Lanczos residual, as in Zhou & Li 2011: a bound on the extreme eigenvalues
   of a symmetric matrix from ``k`` Lanczos steps); ``max(|lower|, |upper|)`` bounds ``||S||``.
2. **Filter.** Each sweep applies the degree-``d`` Chebyshev polynomial that is bounded by 1
   on the unwanted interval ``[floor, cut]`` and grows like ``cosh(d acosh t)`` above
   ``cut`` (Zhou & Saad 2007, "Chebyshev-filtered subspace iteration", the scaled
   three-term recurrence). ``cut`` is the smallest Ritz value of the block; ``floor`` is the
   smallest Lanczos Ritz value less its own residual (an eigenvalue lies within it), lowered
   whenever the block shows a Ritz value below it. A gap
   ``g = (lambda_m - lambda_{p+1}) / (cut - floor)`` is closed ``~exp(d sqrt(2 g))`` times
   per sweep: the interval must reach down to the negative wing of the spectrum, and the
   safe ``lower`` (widened by the whole Lanczos residual, 30% wider on attention Jacobians)
   would cost ``sqrt(1.3)`` in rate for nothing.
3. **Guard vectors.** The block has ``p = m + q`` columns, ``q = max(16, ceil(0.1 m))``
   (:data:`GUARD`): the top ``m + 1`` pairs converge at the rate of ``lambda_{m+1}`` against
   ``lambda_{p+1}``, not against the neighbouring eigenvalue at the cut.
4. **Rayleigh-Ritz.** Orthonormalize (QR), form ``H = V^T S V`` (float64), take its
   eigenpairs, rotate. The product ``S V`` of the Rayleigh-Ritz step is reused as the first
   product of the next filter, so a sweep costs ``d`` block products.
5. **Soft locking.** The leading pairs (within the top ``m``) whose residual is at most
   ``tol ||S||`` are not filtered; later sweeps filter only the other columns, orthogonalized
   against them, and every Rayleigh-Ritz step takes the whole block (the locked columns'
   products ``S v`` are kept and rotated along: no new products). Hard locking (frozen
   vectors) leaves their coupling to the rest as a residual floor near ``tol``: at paper width
   the residual then stalled at 1.3e-3 ``||S||``. The wings converge first (their gap to the
   cut is large), so the sweeps that resolve the dense edge of the bulk run on fewer columns
   (on AKOrN attention Jacobians at S*D = 5,184 and 10,368: 28-34% fewer column products; at
   41,472: 36%).
6. **Stop** when the first ``m + 1`` pairs (the (m+1)-th bounds the gap at the cut) have
   ``||S v - theta v|| <= tol ||S||``, when ``stall`` sweeps take off less than 10% (the
   rounding floor), or at ``max_sweeps`` / ``max_seconds``; ``converged`` and ``stalled`` say
   which, ``history`` records every sweep. The residual is per pair, but a pair's residual does
   not need its neighbours resolved: inside the filtered block a cluster's vectors are some
   rotation of each other, each with a small residual, so the stopping rule is reached at the
   rate of the guard gap however dense the spectrum is at the cut. What the density at the cut
   decides is whether the *space* is determined (below).

**What is guaranteed.** Individual eigenvectors inside a cluster are not identifiable (nor
needed): the contribution index depends on the eigen*space* only. By the Davis-Kahan sin-theta
theorem, the orthogonal projectors onto the computed and the true top-``m`` spaces differ in
spectral norm by at most ``||R||_2 / delta``, with ``R = S Q - Q Theta`` the block residual of
the top-``m`` Ritz pairs and ``delta`` the distance from ``theta_m`` to the rest of the
spectrum, ``lambda_{m+1}``. The share ``x^T P x / x^T x`` then moves by at most the same
amount (``|x^T (P - P') x| <= ||P - P'||_2 x^T x``). ``delta`` is estimated from the Ritz
values: ``theta_m - (theta_{m+1} + r_{m+1})``, ``r_{m+1}`` the (m+1)-th residual (Ritz values
lie below the eigenvalues they approximate, so ``theta_{m+1}`` alone would understate
``lambda_{m+1}``; once the (m+1)-th pair is resolved, an eigenvalue lies within ``r_{m+1}`` of
it). When the cut falls inside a cluster (``delta`` at or below the residuals), the top-``m``
space is not determined by the computation and :attr:`EigenspaceResult.space_error` is 1: a
caller reports that rather than a number that looks precise, and the range of the index over
the cuts it cannot tell apart (:meth:`EigenspaceResult.share_range`): the true top-m space
holds the space above that window and lies inside the space through it, so the true index lies
in the range up to the Davis-Kahan errors of those two spaces, which see the gaps at the
window's edges instead of the one at the cut.

**Inside a dense bulk** (paper width: eigenvalues about 1e-5 ``||S||`` apart at the cut,
tolerance 1e-3 ``||S||`` near float32's rounding) neither the cut nor the window's edges are
resolved and no bound above applies. What is left is how the index converges with the
residual: each Ritz vector near the cut is a mixture of eigenvectors within about its residual
of its Ritz value, and the index of a state moves with it. Measured on an AKOrN attention
Jacobian at S*D = 5,184 against dense ``eigh`` (``track`` records the index after each
sweep): at the state itself (index 0.181) the computed index is low by 0.0032 when the
residuals reach 1.3e-3, 0.0026 at 8e-4, 0.0006 at 2.6e-4, 0.0001 at 1e-4, i.e. one to four
times the relative residual, and the range over the cut window at 1e-3 (0.176-0.180) does
*not* hold the true index: it is the spread over the ambiguous cuts, not an error bar. A
caller wanting the index to ``e`` sets ``tol`` near ``e / 4`` (float32 products reach about
1e-4 at paper width).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.func import vjp, vmap

from sadyn.dynamics._common import Map, check_int, check_positive
from sadyn.dynamics.attention import math_attention
from sadyn.errors import ArgumentError, ShapeError

__all__ = [
    "EigenspaceResult",
    "SymmetricPart",
    "spectrum_bounds",
    "top_eigenspace",
]

MatMat = Callable[[Tensor], Tensor]


class SymmetricPart:
    """``S = (J + J^T) / 2`` of a map's Jacobian at ``x``, applied to blocks of columns.

    ``S @ V`` for ``V: (n, k)``: the VJP ``u -> J^T u`` is recorded once at ``x``; ``J^T V`` is
    a ``vmap`` of it and ``J V`` a ``vmap`` of the VJP of that linear map (reverse over
    reverse: its VJP at any ``u`` sends ``v`` to ``J v``), both in one batched pass, ``chunk``
    columns at a time (bounds the memory of the batched attention intermediates,
    ``chunk * H * S^2`` floats per softmax). Measured on the paper-width AKOrN step on one
    core, reverse-over-reverse costs 0.7x a vmapped ``jvp`` (BENCHMARKS.md).

    Args:
        f: the map ``(n,) -> (n,)``; x: the point ``(n,)``.
        chunk: columns per batched pass.

    Attributes:
        shape: ``(n, n)``; dtype, device: the state's; products: columns multiplied so far.
    """

    def __init__(self, f: Map, x: Tensor, chunk: int = 256):
        if x.ndim != 1:
            raise ShapeError(f"x must be a state vector (n,), got shape {tuple(x.shape)}")
        self.f, self.x = f, x.detach()
        self.chunk = check_int(chunk, "chunk", 1)
        self.shape = (x.numel(), x.numel())
        self.dtype, self.device = x.dtype, x.device
        self.products = 0
        with math_attention():
            fx, self._pull = vjp(f, self.x)
            _, self._pull2 = vjp(self._jtv, torch.zeros_like(fx))

    def _jtv(self, u: Tensor) -> Tensor:
        return self._pull(u)[0]

    def _sv(self, v: Tensor) -> Tensor:
        return 0.5 * (self._pull2(v)[0] + self._pull(v)[0])

    @torch.no_grad()
    def __matmul__(self, V: Tensor) -> Tensor:
        if V.ndim != 2 or V.shape[0] != self.shape[0]:
            raise ShapeError(f"expected an (n, k) block with n = {self.shape[0]}, got {V.shape}")
        out = torch.empty_like(V)
        with math_attention():
            for lo in range(0, V.shape[1], self.chunk):
                cols = V[:, lo : lo + self.chunk].T.contiguous()  # (k, n): vmap over rows
                out[:, lo : lo + self.chunk] = vmap(self._sv)(cols).T
        self.products += V.shape[1]
        return out

    def __call__(self, V: Tensor) -> Tensor:
        """``S @ V``: the operator as the ``op`` of :func:`top_eigenspace`."""
        return self @ V


@dataclass
class EigenspaceResult:
    """The top-``m`` eigenspace of a symmetric operator, with the rest of the final block.

    Attributes:
        m: the eigenspace's dimension.
        ritz_values: ``(p,)`` float64 Ritz values of the final block (``p = m + q``),
            descending; the first ``m`` span the answer.
        ritz_vectors: ``(n, p)`` orthonormal Ritz vectors (the operator's dtype and device).
        residuals: ``(p,)`` float64 ``||S v_i - theta_i v_i|| / scale``.
        scale: the bound on ``||S||_2`` the residuals are relative to.
        gap: estimated ``delta = theta_m - lambda_{m+1}``, relative to ``scale`` (<= 0 when
            the cut is not resolved).
        space_error: Davis-Kahan bound on ``||P - P_true||_2`` (1 when ``gap <= 0``): the
            most any share ``x^T P x / x^T x`` can be off.
        converged: the first ``m + 1`` residuals are at most ``tol`` (the (m+1)-th bounds
            the gap); stalled: the sweeps stopped because the residuals stopped falling
            (the rounding floor of the products) before reaching ``tol``.
        sweeps, products: filter sweeps run, and columns multiplied by the operator.
        seconds, cpu_seconds: wall time, and CPU time of this process.
        history: one entry per Rayleigh-Ritz step (``sweep`` 0 is the start block): the
            largest relative residual of the first ``m + 1`` pairs, the active and locked
            columns, the column products and CPU seconds so far.
    """

    m: int
    ritz_values: Tensor
    ritz_vectors: Tensor
    residuals: Tensor
    scale: float
    gap: float
    space_error: float
    converged: bool
    stalled: bool
    sweeps: int
    products: int
    seconds: float
    cpu_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def values(self) -> Tensor:
        """``(m,)`` the top-``m`` Ritz values, descending."""
        return self.ritz_values[: self.m]

    @property
    def vectors(self) -> Tensor:
        """``(n, m)`` orthonormal basis of the eigenspace."""
        return self.ritz_vectors[:, : self.m]

    def cumulative_shares(self, x: Tensor) -> Tensor:
        """``(p,)`` float64: entry ``k-1`` is the share of ``x: (n,)`` in the first ``k``
        Ritz vectors."""
        x = x.reshape(-1).to(self.ritz_vectors)
        a = (self.ritz_vectors.T @ x).double()
        return torch.cumsum(a * a, 0) / (x.double() @ x.double())

    def share(self, x: Tensor) -> float:
        """``||P x||^2 / ||x||^2``: the share of ``x: (n,)`` in the eigenspace (the
        contribution index); its error is at most :attr:`space_error`."""
        return float(self.cumulative_shares(x)[self.m - 1])

    def cut_window(self) -> tuple[int, int]:
        """``(lo, hi)``: the eigenspace sizes ``k`` whose cut ``theta_k`` lies within the
        residual of ``theta_m`` (the larger of the m-th and (m+1)-th, absolute). Inside a
        cluster the computation cannot tell these cuts apart; ``(m, m)`` when it can."""
        r = float(max(self.residuals[self.m - 1 : self.m + 1].max(), 0.0)) * self.scale
        near = (self.ritz_values - self.ritz_values[self.m - 1]).abs() <= r
        idx = near.nonzero().flatten()
        lo, hi = int(idx.min()) + 1, int(idx.max()) + 1
        return min(lo, self.m), max(hi, self.m)

    def share_range(self, x: Tensor) -> tuple[float, float]:
        """Smallest and largest share of ``x`` over the cuts the computation cannot tell apart:
        the sizes ``lo - 1 .. hi`` of :meth:`cut_window` (the space just above the window and
        every size inside it; ``(share, share)`` when the window is ``(m, m)``). Where the
        window's edges are resolved (gaps there well above the residuals) the true index lies
        in this range up to the Davis-Kahan errors of those two spaces; inside a dense bulk it
        is not a bracket (module docstring)."""
        lo, hi = self.cut_window()
        c = self.cumulative_shares(x)
        if (lo, hi) == (self.m, self.m):
            v = float(c[self.m - 1])
            return v, v
        c = torch.cat([c.new_zeros(1), c])[lo - 1 : hi + 1]  # sizes lo - 1 .. hi
        return float(c.min()), float(c.max())


def _orthonormal(V: Tensor, locked: Tensor | None = None) -> Tensor:
    """Orthonormal basis of ``V: (n, k)``, orthogonal to the orthonormal ``locked: (n, l)``
    (projected out twice before the QR: once is not enough in floating point)."""
    if locked is not None and locked.shape[1]:
        V = V - locked @ (locked.T @ V)
        V = V - locked @ (locked.T @ V)
    return torch.linalg.qr(V, mode="reduced")[0]


@torch.no_grad()
def _lanczos(
    op: MatMat,
    n: int,
    steps: int,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str,
) -> tuple[Tensor, Tensor, float]:
    """``steps`` Lanczos steps (full reorthogonalization) from one random vector: the Ritz
    values ``(k,)`` ascending, their residual norms ``(k,)`` (``|beta_k y_k[-1]|``: an
    eigenvalue lies within each of its Ritz value) and ``|beta_k|``, all float64."""
    steps = min(check_int(steps, "steps", 2), n)
    q = torch.randn(n, 1, generator=generator, dtype=torch.float64, device="cpu").to(device)
    q = (q / q.norm()).to(dtype)
    basis = [q]
    alpha, beta = [], []
    for _ in range(steps):
        w = op(basis[-1])
        a = float((basis[-1].T @ w).double())
        Q = torch.cat(basis, dim=1)
        w = w - Q @ (Q.T @ w)  # full reorthogonalization (twice is enough)
        w = w - Q @ (Q.T @ w)
        alpha.append(a)
        b = float(w.double().norm())
        beta.append(b)
        if b <= 1e-12 * max(1.0, abs(a)) or len(basis) == n:
            break
        basis.append(w / b)
    k = len(alpha)
    T = torch.diag(torch.tensor(alpha, dtype=torch.float64))
    off = torch.tensor(beta[: k - 1], dtype=torch.float64)
    T += torch.diag(off, 1) + torch.diag(off, -1)
    theta, Y = torch.linalg.eigh(T)
    return theta, (beta[-1] * Y[-1]).abs(), abs(beta[-1])


@torch.no_grad()
def spectrum_bounds(
    op: MatMat,
    n: int,
    *,
    steps: int = 40,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """``(lower, upper)`` with ``lower <= lambda_min`` and ``upper >= lambda_max`` of a symmetric
    operator, from ``steps`` Lanczos steps (full reorthogonalization) on one random vector.

    The extreme Ritz values of the tridiagonal ``T_k`` are widened by ``|beta_k|``, the norm of
    the last Lanczos residual: every eigenvalue of ``T_k`` is within ``|beta_k|`` of one of
    the operator's, and the k-step Krylov space already holds the extreme ones well
    (Zhou & Li 2011). ``op`` takes ``(n, k)`` blocks; here ``k = 1``.
    """
    theta, _, slack = _lanczos(op, n, steps, generator, dtype, device)
    return float(theta[0]) - slack, float(theta[-1]) + slack


def _chebyshev(
    op: MatMat, V: Tensor, SV: Tensor, degree: int, lower: float, cut: float, upper: float
) -> Tensor:
    """``p_d(S) V`` with ``p_d`` the degree-``d`` Chebyshev polynomial of ``[lower, cut]``,
    scaled to 1 at ``upper`` (Zhou & Saad's scaled recurrence, mirrored for the top of the
    spectrum). ``SV = S @ V`` is given (reused from the Rayleigh-Ritz step)."""
    e = (cut - lower) / 2
    c = (cut + lower) / 2
    sigma1 = e / (upper - c)
    sigma = sigma1
    prev, cur = V, (SV - c * V) * (sigma1 / e)
    for _ in range(1, degree):
        sigma_next = 1.0 / (2.0 / sigma1 - sigma)
        nxt = (op(cur) - c * cur) * (2.0 * sigma_next / e) - (sigma * sigma_next) * prev
        prev, cur, sigma = cur, nxt, sigma_next
    return cur


def _rayleigh_ritz(V: Tensor, SV: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rayleigh-Ritz on the orthonormal ``V: (n, k)`` with ``SV = S V`` given: ``(theta desc
    (k,) float64, V Y, S V Y, residual norms (k,) float64)``."""
    H = V.T.double() @ SV.double()
    H = (H + H.T) / 2
    theta, Y = torch.linalg.eigh(H)
    theta, Y = theta.flip(0), Y.flip(1)
    Yd = Y.to(V.dtype)
    V, SV = V @ Yd, SV @ Yd
    res = (SV - V * theta.to(V.dtype)).double().norm(dim=0)
    return theta, V, SV, res


def _space_error(V: Tensor, SV: Tensor, theta: Tensor, res: Tensor, m: int, scale: float):
    """``(gap / scale, Davis-Kahan bound)`` for the top-``m`` Ritz pairs (module docstring)."""
    gap = float(theta[m - 1] - (theta[m] + res[m]))
    if gap <= 0:
        return gap / scale, 1.0
    R = SV[:, :m] - V[:, :m] * theta[:m].to(V.dtype)
    r2 = float(torch.linalg.matrix_norm(R.double(), ord=2))
    return gap / scale, min(1.0, r2 / gap)


def _filter_bounds(
    op: MatMat,
    n: int,
    bounds: tuple[float, float] | None,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str,
) -> tuple[float, float, float]:
    """``(lower, upper, floor)``: safe spectrum bounds (given, or from 40 Lanczos steps) and
    the filter's lower end: the smallest Lanczos Ritz value less its own residual (an
    eigenvalue lies within it; the extreme one converges first), far tighter than the safe
    ``lower`` (its interval sets the rate: module docstring)."""
    if bounds is not None:
        lower, upper = (float(b) for b in bounds)
        return lower, upper, lower
    ritz, ritz_res, slack = _lanczos(op, n, 40, generator, dtype, device)
    lower, upper = float(ritz[0]) - slack, float(ritz[-1]) + slack
    return lower, upper, max(lower, float(ritz[0] - ritz_res[0]))


def _sweep(
    op: MatMat, V: Tensor, SV: Tensor, k: int, degree: int, floor: float, cut: float, upper: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One sweep with the first ``k`` columns of ``V: (n, p)`` locked: filter the others
    (damping ``[floor, cut]``), orthonormalize them against the locked ones, one product for
    them, Rayleigh-Ritz on the whole block (the locked columns' products reused)."""
    if not floor < cut < upper:  # a block spanning the whole spectrum: nothing to damp
        cut = floor + 0.5 * (upper - floor)
    X = V[:, :k]
    A = _orthonormal(_chebyshev(op, V[:, k:], SV[:, k:], degree, floor, cut, upper), X)
    return _rayleigh_ritz(torch.cat([X, A], 1), torch.cat([SV[:, :k], op(A)], 1))


def _block_size(n: int, m: int, oversample: int | None) -> tuple[int, int]:
    """``(m, p)``: the checked eigenspace size and the block's columns ``m + q``."""
    m = check_int(m, "m", 1)
    if m >= n:
        raise ArgumentError(f"need m < n, got m={m}, n={n}")
    if oversample is None:
        return m, min(n, m + max(16, math.ceil(GUARD * m)))
    return m, min(n, m + check_int(oversample, "oversample", 1))


def _out_of_time(c0: float, max_seconds: float | None) -> bool:
    return max_seconds is not None and time.process_time() - c0 > max_seconds


def _shares(V: Tensor, track: Tensor) -> Tensor:
    """``(b,)`` float64 shares of the columns of ``track: (n, b)`` in the span of the
    orthonormal ``V: (n, m)``."""
    a = V.T.double() @ track
    return a.square().sum(0) / track.square().sum(0)


#: Guard vectors per wanted vector (the default ``oversample`` is ``max(16, GUARD * m)``).
GUARD = 0.1


@torch.no_grad()
def top_eigenspace(
    op: MatMat,
    n: int,
    m: int,
    *,
    oversample: int | None = None,
    degree: int = 12,
    tol: float = 1e-3,
    max_sweeps: int = 60,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    bounds: tuple[float, float] | None = None,
    stall: int = 3,
    lock: bool = True,
    max_seconds: float | None = None,
    progress: Callable[[int, float], None] | None = None,
    track: Tensor | None = None,
) -> EigenspaceResult:
    """The top-``m`` (largest algebraic) eigenspace of a symmetric ``(n, n)`` operator.

    Args:
        op: ``V: (n, k) -> S V: (n, k)`` (e.g. a :class:`SymmetricPart`, or a dense tensor's
            ``__matmul__``), in ``dtype`` on ``device``.
        m: eigenspace dimension, ``1 <= m < n``.
        oversample: guard vectors ``q`` (default ``max(16, ceil(GUARD * m))``); the top-``m``
            space converges at the rate set by ``lambda_{m+1}`` against ``lambda_{m+q+1}``.
        degree: Chebyshev degree per sweep (block products per sweep).
        tol: residual tolerance relative to ``||S||_2`` (its bound from the Lanczos run);
            float32 products reach about 1e-4 at n = 4e4 (module docstring: what it gives).
        max_sweeps: stop after this many sweeps even if not converged (``converged=False``).
        generator: the random start block (reproducible results).
        bounds: ``(lower, upper)`` spectrum bounds if known (else a Lanczos run finds them).
        stall: stop (``stalled=True``) when ``stall`` sweeps reduce the largest residual by
            less than 10%: the products' rounding floor is reached.
        lock: do not filter the leading Ritz pairs (within the top ``m``) whose residual is
            below ``tol``; they stay in the Rayleigh-Ritz steps (soft locking).
        max_seconds: stop (``converged=False``) once a sweep ends past this many CPU seconds
            of this process (``time.process_time``: on a shared machine, the work done, not
            the wait; with one thread, core-seconds).
        progress: called after each sweep with ``(sweep, largest relative residual)``.
        track: ``(n,)`` or ``(n, b)`` vectors whose shares in the top-``m`` Ritz space are
            recorded in ``history`` after every sweep (``"shares"``): how the index settles.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    m, p = _block_size(n, m, oversample)
    degree = check_int(degree, "degree", 1)
    tol = check_positive(tol, "tol")
    count = [0]

    def counted(V: Tensor) -> Tensor:
        count[0] += V.shape[1]
        return op(V)

    lower, upper, floor = _filter_bounds(counted, n, bounds, generator, dtype, device)
    scale = max(abs(lower), abs(upper), 1e-300)
    limit = tol * scale
    V = torch.randn(n, p, generator=generator, dtype=torch.float64, device="cpu").to(device, dtype)
    V = _orthonormal(V)
    theta, V, SV, res = _rayleigh_ritz(V, counted(V))
    sweeps, stalled = 0, False
    top = min(m + 1, p)  # the (m+1)-th pair bounds the gap at the cut
    history: list[dict[str, Any]] = []
    track = None if track is None else track.reshape(n, -1).to(device, torch.float64)
    while True:
        # soft locking (module docstring): leading pairs of the top m at the tolerance
        k = int((res[:m] <= limit).long().cumprod(0).sum()) if lock else 0
        worst = float(res[:top].max())
        entry = {"sweep": sweeps, "max_residual": worst / scale, "active": p - k, "locked": k}
        history.append({**entry, "products": count[0], "cpu_seconds": time.process_time() - c0})
        if track is not None:
            history[-1]["shares"] = _shares(V[:, :m], track).tolist()
        if sweeps and progress is not None:
            progress(sweeps, worst / scale)
        if worst <= limit or sweeps >= max_sweeps or p >= n or _out_of_time(c0, max_seconds):
            break
        if len(history) > stall and worst > 0.9 * history[-1 - stall]["max_residual"] * scale:
            stalled = True  # `stall` sweeps took off less than 10%: the rounding floor
            break
        # a Ritz value below the floor shows an eigenvalue there: lower the floor to it
        floor = min(floor, float(theta[-1] - res[-1]))
        theta, V, SV, res = _sweep(counted, V, SV, k, degree, floor, float(theta[-1]), upper)
        sweeps += 1
    gap, err = _space_error(V, SV, theta, res, m, scale) if p > m else (math.inf, 0.0)
    return EigenspaceResult(
        m=m,
        ritz_values=theta,
        ritz_vectors=V,
        residuals=res / scale,
        scale=scale,
        gap=gap,
        space_error=err,
        converged=bool((res[:top] <= limit).all()),
        stalled=stalled,
        sweeps=sweeps,
        products=count[0],
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
        history=history,
    )
