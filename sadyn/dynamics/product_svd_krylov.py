"""Block Krylov acceleration of the product SVD at short horizons.

For a densely packed spectrum (the attention maps at T = 16: sixteen exponents within 0.1)
subspace iteration gains ``exp(-T gap)`` per sweep, which is next to nothing; a Krylov space
``[V, (M^T M) V, ...]`` built from the same sweeps converges much faster. Each iteration is
one forward sweep of the newest block (QR every step), a Rayleigh-Ritz step (the SVD of
``M K`` formed explicitly from the sweeps' triangular factors), one backward sweep from the
forward sweep's end basis and a block Gram-Schmidt of its end block against the earlier
blocks. Forming ``M K`` is exact only while the top-``k`` values span less than
``exp(KRYLOV_SPAN)``; wider spectra (long horizons) separate by themselves under subspace
iteration (:func:`~sadyn.dynamics.product_svd.product_svd`), so then (unless forced) nothing
is done and ``used`` is False.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sadyn.dynamics._common import randn_like_on
from sadyn.dynamics.product_svd import Sweep, _change, _error_estimate, sweep

#: The block Krylov acceleration forms ``M K`` explicitly: only while the top-k singular
#: values span less than this (in log), so that it loses nothing of them.
KRYLOV_SPAN = math.log(1e4)
#: At most this many blocks in the Krylov space (memory: blocks * p vectors of size n); past
#: it the iteration goes on as subspace iteration from the Ritz vectors.
KRYLOV_MAX_BLOCKS = 12
#: Krylov blocks of ``ceil(k / 2)`` columns from this ``k`` on (below: ``k + oversample``).
HALF_BLOCK_MIN_K = 8


@dataclass
class KrylovResult:
    vectors: Tensor  # (B, n, p) Ritz vectors at x_0, best first
    used: bool  # False: the spread was too wide, vectors is the start block
    converged: Tensor  # (B,)
    error: Tensor  # (B,)
    sweeps: int
    values: Tensor | None = None  # (B, k) Ritz exponents (float64), sorted
    left: Tensor | None = None  # (B, n, k) left Ritz vectors at x_T (M ritz, normalised)
    spread: Tensor | None = None  # (B,) log(sigma_1 / sigma_k) of the Ritz values
    #: a sweep met an exact zero direction (its -inf comes from the per-step rule of a sweep,
    #: which the Ritz values of the explicitly formed ``M K`` cannot give)
    zero: bool = False


def _residual_error(
    K: Tensor,
    fwd: Sweep,
    bwd: Sweep,
    vh: Tensor,
    logs: Tensor,
    k: int,
    T: int,
) -> Tensor:
    """Bound on the error of the top-``k`` Ritz exponents from their residuals, ``(B,)``.

    With ``A = M^T M`` and the orthonormal Krylov basis ``K = [K_old, K_last]``, ``A K_old``
    lies in ``span K`` (each block is ``M^T M`` of the one before, orthogonalised), so the
    residual of a Ritz pair ``(theta, z = K y)`` is ``r = (I - K K^T) A K_last y_last``, and
    ``A K_last = P S R`` from the last forward sweep (``M K_last = E R``) and the backward
    sweep from its end basis (``M^T E = P S``). For symmetric ``A`` some eigenvalue lies
    within ``|r|`` of ``theta`` (Weyl / Kahan), so the exponent ``log(theta) / (2 T)`` is off
    by at most ``-log(1 - |r| / theta) / (2 T)``: a bound, not an extrapolation, but
    pessimistic by a wide margin (the eigenvalue error is ``O(|r|^2)``). Where it is smaller,
    the quadratic (Temple) estimate ``|r|^2 / gap`` is used instead, ``gap`` the distance to
    the nearest other Ritz value, once ``|r| <= gap / 2`` (an estimate: it is a bound when
    that gap is the true one, which a converging space makes so).
    """
    f64 = torch.float64
    pl = fwd.unit.shape[-1]
    ylast = vh[:, :, -pl:].mT  # (B, pl, m): every Ritz vector's last-block coordinates
    ref_r = fwd.scale.amax(-1, keepdim=True)
    ref_s = bwd.scale.amax(-1, keepdim=True)
    Rs = (fwd.scale - ref_r).clamp(min=-700.0).exp()[..., None] * fwd.unit
    Ss = (bwd.scale - ref_s).clamp(min=-700.0).exp()[..., None] * bwd.unit
    Z = bwd.end.to(f64) @ (Ss @ (Rs @ ylast))
    K64 = K.to(f64)
    for _ in range(2):
        Z = Z - K64 @ (K64.mT @ Z)
    top = logs[:, :1]
    # residuals and Ritz values relative to theta_1 (finite), (B, m)
    r1 = (Z.norm(dim=-2).clamp_min(1e-300).log() + ref_r + ref_s - 2.0 * top).exp()
    theta = (2.0 * (logs - top)).exp()
    log_theta = 2.0 * logs[:, :k]
    rho = (r1[:, :k] / theta[:, :k]).clamp(max=1e30)  # |r_i| / theta_i
    lin = torch.where(rho < 1.0, -torch.log1p(-rho.clamp(max=1.0 - 1e-16)), float("inf"))
    # quadratic (Temple) estimate |r|^2 / gap; the gap to every other Ritz value shrunk by
    # that value's own residual (its eigenvalue may lie that much closer), and only once the
    # residual is well inside the gap
    dist = (theta[:, :k, None] - theta[:, None, :]).abs() - r1[:, None, :]
    dist = dist + torch.eye(theta.shape[-1], dtype=f64, device=dist.device)[:k] * 1e300
    gap = dist.amin(-1).clamp_min(0.0) / theta[:, :k]  # relative gap, (B, k)
    quad = torch.where(rho <= 0.5 * gap, rho.square() / gap.clamp_min(1e-300), float("inf"))
    err = torch.minimum(lin, quad)
    err = torch.where(torch.isfinite(log_theta), err / (2.0 * T), float("inf"))
    return err.amax(-1)


def _extend(K: Tensor, P: Tensor, gen: torch.Generator) -> Tensor:
    """``P: (B, n, p)`` made orthonormal and orthogonal to ``K: (B, n, m)`` (block Gram-Schmidt,
    twice); columns that lay in ``span K`` (the space stopped growing there) are replaced by
    random ones, so the new block is always a valid orthonormal extension."""
    norm0 = P.norm(dim=-2)
    for _ in range(2):
        P = P - K @ (K.mT @ P)
    lost = P.norm(dim=-2) <= 1e-8 * norm0.clamp_min(1e-300)
    if bool(lost.any()):
        fresh = randn_like_on(tuple(P.shape), P, gen)
        P = torch.where(lost[:, None, :], fresh, P)
        for _ in range(2):
            P = P - K @ (K.mT @ P)
    Q = torch.linalg.qr(P)[0]
    Q = Q - K @ (K.mT @ Q)
    return torch.linalg.qr(Q)[0]


@dataclass
class _Space:
    """The growing Krylov space: blocks ``K_j: (B, n, w)`` at ``x_0`` and their images
    ``M K_j / exp(ref)`` at ``x_T`` (float64), with the latest Rayleigh-Ritz results."""

    blocks: list[Tensor]
    ref: Tensor | None = None  # (B,) log scale shared by the images
    images: list[Tensor] = field(default_factory=list)
    zero: bool = False

    def add_image(self, sw: Sweep) -> None:
        assert self.ref is not None
        R = (sw.scale - self.ref[:, None]).clamp(min=-700.0).exp()[..., None] * sw.unit
        self.images.append(sw.end.to(torch.float64) @ R)
        self.zero = self.zero or bool(torch.isneginf(sw.logd).any())

    def rayleigh_ritz(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(K, Qw, uw, vh, logs)``: the basis ``(B, n, m)``, and the SVD of ``M K`` (as
        ``Qw uw diag(exp(logs)) vh``), ``logs: (B, m)`` the log singular values."""
        assert self.ref is not None
        W = torch.cat(self.images, dim=-1)  # M K / exp(ref): (B, n, m)
        K = torch.cat(self.blocks, dim=-1)
        Qw, Rw = torch.linalg.qr(W)
        uw, sv, vh = torch.linalg.svd(Rw)
        return K, Qw, uw, vh, sv.clamp_min(1e-300).log() + self.ref[:, None]


def _spread(logd: Tensor, k: int) -> Tensor:
    """``(B,)``: ``log(sigma_1 / sigma_k)`` over the finite values among the top ``k``."""
    top = torch.sort(logd, dim=-1, descending=True).values[:, :k]
    fin = torch.isfinite(top)
    hi = torch.where(fin, top, float("-inf")).amax(-1)
    lo = torch.where(fin, top, float("inf")).amin(-1)
    return torch.where(fin.any(-1), hi - lo, 0.0)


def block_krylov(
    chain: Any,
    T: int,
    V: Tensor,
    k: int,
    *,
    tol: float,
    max_iter: int,
    zero_tol: float,
    bad: Tensor,
    generator: torch.Generator,
    force: bool = False,
    stop: str = "residual",
) -> KrylovResult:
    """Ritz vectors of ``M^T M`` on the block Krylov space ``[V, (M^T M) V, ...]``.

    Stopping (``stop``): "residual" (default) bounds each Ritz value's error by its residual
    after the backward sweep of the same iteration (:func:`_residual_error`), so an iteration
    can stop as soon as its values are good, with no extra sweep to observe a change;
    "change" extrapolates the last two changes of the Ritz values (superlinear form of
    :func:`~sadyn.dynamics.product_svd._error_estimate`: two more forward sweeps). Either
    way the values, the Ritz vectors at ``x_0`` and the left vectors at ``x_T`` are returned
    (``values``, ``vectors``, ``left``).
    """
    space = _Space([V])
    b, n, w = V.shape
    error = torch.full((b,), float("inf"), dtype=torch.float64, device=V.device)
    converged = torch.zeros(b, dtype=torch.bool, device=V.device)
    prev = last_change = est = ritz = left = None
    sweeps = 0

    def backward(end: Tensor) -> Sweep:
        nonlocal sweeps
        sweeps += 1
        return sweep(chain.step_t, range(T - 1, -1, -1), end, zero_tol, bad)

    for it in range(max_iter):
        sw = sweep(chain.step, range(T), space.blocks[-1], zero_tol, bad)
        sweeps += 1
        if space.ref is None:
            if not force and bool((_spread(sw.logd, k) > KRYLOV_SPAN).any()):
                return KrylovResult(V, False, converged, error, sweeps)
            space.ref = sw.scale.amax(-1)
        space.add_image(sw)
        K, Qw, uw, vh, logs = space.rayleigh_ritz()
        m = K.shape[-1]
        if m < k:  # a block narrower than k: the space is too small to estimate yet
            if m + w > n:
                break
            space.blocks.append(_extend(K, backward(sw.end).end, generator))
            continue
        est = logs[:, :k] / T
        ritz = K @ vh[:, : max(w, k)].mT.to(K.dtype)
        left = (Qw @ uw[:, :, :k]).to(K.dtype)
        if m >= n:  # K is the whole space: Rayleigh-Ritz is exact
            error, converged = torch.zeros_like(error), torch.ones_like(converged)
            break
        if prev is not None and stop == "change":
            change = _change(est, prev)
            error = _error_estimate(change, last_change, linear=False)
            last_change, converged = change, error <= tol
            if bool((converged | bad).all()):
                break
        prev = est
        last_it = it == max_iter - 1
        if last_it or (stop == "change" and m + w > n):
            break  # out of iterations, or the space cannot grow by a block (n reached)
        back = backward(sw.end)
        if stop == "residual":
            error = _residual_error(K, sw, back, vh, logs, k, T)
            converged = error <= tol
            if bool((converged | bad).all()) or m + w > n:
                break
        space.blocks.append(_extend(K, back.end, generator))
    if est is None:  # too few blocks to hold k values
        return KrylovResult(V, False, converged, error, sweeps)
    return KrylovResult(
        ritz,
        True,
        converged & ~bad,
        error,
        sweeps,
        values=est,
        left=left,
        spread=_spread(est * T, k),
        zero=space.zero,
    )


def default_block(k: int, p: int, n: int) -> int:
    """Columns per Krylov block: ``ceil(k / 2)`` for ``k >= HALF_BLOCK_MIN_K`` (and room for
    the space to grow: ``2 p <= n``), else ``p``.

    A sweep costs about its column count (a batched tangent product), and a Krylov space
    gains a polynomial degree per iteration whatever its block width, so narrower blocks
    reach the same accuracy in fewer column-sweeps: on the ItrSA step at T = 16, k = 16,
    blocks of 8 reached tol 1e-4 in about 60% of the time of blocks of 20 (BENCHMARKS.md,
    "dynamics"). Below ``k = 8`` the per-sweep overhead dominates and the old rule stays.
    """
    return (k + 1) // 2 if k >= HALF_BLOCK_MIN_K and 2 * p <= n else p


def ritz_precise(kry: KrylovResult, dtype: torch.dtype, n: int, T: int, tol: float) -> bool:
    """Whether the Krylov Ritz values are already as good as an exact sweep would make them:
    they come from ``M K`` formed in the working precision, so the smallest of the top ``k``
    carries a relative error up to about ``eps sqrt(n) sigma_1 / sigma_k``; require that to
    be a tenth of ``tol`` (exponent units). False when a sweep met an exact zero direction
    (its ``-inf`` comes from the sweep's per-step rule, which the final sweep applies)."""
    if kry.spread is None or kry.values is None or kry.zero:
        return False
    if not bool(torch.isfinite(kry.spread).all()):
        return False
    eps = torch.finfo(dtype).eps
    worst = eps * math.sqrt(n) * float(kry.spread.max().clamp(max=700.0).exp()) / T
    return worst <= 0.1 * tol
