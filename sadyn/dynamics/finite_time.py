"""Finite-time Lyapunov exponents: the singular values of the T-step propagator.

The paper's definition (Tomihari & Karakida, Sec. 5.3, T = 16)::

    lambda_i(T) = (1/T) log sigma_i(M),   M = J(x_{T-1}) ... J(x_1) J(x_0).

At short horizons this differs a lot from the QR sum of :func:`~sadyn.dynamics.lyapunov_spectrum`
started from random tangents (dynamics.md TL;DR 4).

How (a product SVD that never forms ``M``). The singular values of ``M`` span
``exp(T (lambda_1 - lambda_k))``, past ``1/eps`` from T ~ 30 on an ordinary map, so any method
that multiplies the Jacobians together (or pushes vectors through ``M`` and renormalises only
their overall size) loses the smaller ones. Instead a block of ``p = k + oversample`` tangents
is swept forward through the ``T`` Jacobians with a QR at every step (``M V = Q R_T...R_1``),
then backward through their transposes from the end basis (``M^T U = P S_1...S_T``), and so
on: block subspace iteration on ``M^T M`` in which every product is kept as a chain of
triangular factors. ``log sigma_i`` is read from the chain in logs: the diagonal of a product of
triangular matrices is the product of their diagonals, and the diagonal block of a cluster of
close singular values is the product of the diagonal blocks, whose SVD (a Rayleigh-Ritz step
within the cluster, :func:`_ritz`) separates values the plain iteration cannot (a complex
pair of eigenvalues gives two singular values whose ratio stays O(1) at every T). Values that
differ by more than ``exp(GAP)`` separate by themselves, by that factor per sweep.

Each sweep gives an estimate; the iteration stops when the estimated error is at most ``tol``
(exponent units) for every exponent: ``result.converged`` says whether it was. Subspace
iteration estimates it from the last change times ``rho / (1 - rho)`` (``rho`` the observed
contraction per sweep); the block Krylov phase (short horizons) from each Ritz value's
residual, which the backward sweep of the same iteration gives (:func:`_residual_error`).
Methods: "dense" materialises the Jacobians (float64) and starts from the right singular
vectors of the rescaled product (exact at short T, a warm start at long T); "subspace" is
matrix-free (one batched JVP pass forward, one VJP pass back per sweep) from a random block;
"svds" starts from ARPACK's vectors on :class:`Propagator` (a cross-check). Exact zero
directions give ``-inf`` by the per-step rule of the QR method (``result.zero_tol``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, svds
from torch import Tensor
from torch.func import vjp, vmap

from sadyn.dynamics._common import (
    DENSE_MAX,
    Map,
    OnNonFinite,
    as_batched,
    check_int,
    check_on_nonfinite,
    check_positive,
    default_generator,
    default_zero_tol,
    randn_like_on,
    random_orthonormal,
    report_nonfinite,
    unbatch,
)
from sadyn.dynamics.attention import attention_safe, math_attention
from sadyn.dynamics.jacobian import push_forward, value_and_jacobian
from sadyn.dynamics.lyapunov import LyapunovResult
from sadyn.dynamics.tangent import TangentStep
from sadyn.errors import ArgumentError, ShapeError

FTLEMethod = Literal["auto", "dense", "subspace", "svds"]

#: Singular values closer than ``exp(GAP)`` (in ratio) are resolved together by Rayleigh-Ritz.
GAP = math.log(1e3)
#: A Rayleigh-Ritz cluster spans at most ``exp(SPAN)``, so its SVD keeps ~1e-10 relative
#: accuracy on its smallest value even in the worst case of LAPACK's absolute error bound.
SPAN = math.log(1e6)
#: The block Krylov acceleration forms ``M K`` explicitly: only while the top-k singular
#: values span less than this (in log), so that it loses nothing of them.
KRYLOV_SPAN = math.log(1e4)
#: At most this many blocks in the Krylov space (memory: blocks * p vectors of size n); past
#: it the iteration goes on as subspace iteration from the Ritz vectors.
KRYLOV_MAX_BLOCKS = 12
#: The forward sweeps keep each step's VJP-of-VJP tape up to this horizon (the short-horizon,
#: many-sweep Krylov regime); beyond it they are rebuilt per call, holding memory to the
#: reverse tapes the backward sweeps keep anyway.
KEEP_VJP2_MAX_STEPS = 64
#: The settings of each method (``options=``), with their defaults.
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "dense": {"tol": 1e-12, "max_iter": 50, "oversample": 8},
    "subspace": {
        "tol": 1e-4,
        "max_iter": 50,
        "oversample": None,
        "krylov": "auto",
        "stop": "residual",
        "block": None,
    },
    "svds": {"tol": 1e-12, "max_iter": 1, "oversample": 0},
}


def finite_trajectory(
    F: Map,
    X: Tensor,
    steps: int,
    transient: int,
    on_nonfinite: OnNonFinite,
    name: str,
    batched: bool,
) -> tuple[list[Tensor], Tensor]:
    """States ``x_0 .. x_T`` after ``transient`` steps, each ``(B, n)``.

    A row that turns non-finite is reported (once) and frozen at its last finite state (so
    the Jacobians along it stay finite where the map allows); the returned ``(B,)`` mask marks
    it.
    """
    bad = ~torch.isfinite(X).all(-1)
    if bool(bad.any()):
        report_nonfinite(name, bad.nonzero().flatten().tolist(), 0, batched, on_nonfinite)
        X = torch.where(bad[:, None], torch.zeros_like(X), X)
    x = X
    states = [x] if transient == 0 else []
    for t in range(transient + steps):
        nx = F(x).detach()
        new_bad = ~torch.isfinite(nx).all(-1) & ~bad
        if bool(new_bad.any()):
            rows = new_bad.nonzero().flatten().tolist()
            report_nonfinite(name, rows, t + 1, batched, on_nonfinite)
            bad |= new_bad
        x = torch.where(bad[:, None], x, nx)
        if t + 1 >= transient:
            states.append(x)
    return states, bad


class Propagator:
    """The T-step propagator ``M = J(x_{T-1}) ... J(x_0)`` along a trajectory, matrix-free.

    ``M v`` is a JVP pass forward through the stored states, ``M^T u`` a VJP pass back (the
    reverse tapes of the ``T`` steps are recorded once, on first use). Batched: per row, like
    :class:`~sadyn.dynamics.JacobianOperator`. :meth:`step` and :meth:`step_t` are the
    one-step factors ``J(x_t) V`` and ``J(x_t)^T U`` the product SVD sweeps through.

    Args:
        f, x0: the map and the initial state ``(n,)`` (batched ``(B, n)``).
        steps: T. transient: steps taken before ``x_0``.
    Attributes:
        states: ``x_0 .. x_T``, each ``(B, n)`` (internal batched form).
        nonfinite: ``(B,)`` rows whose trajectory left the finite numbers (frozen there).
    """

    def __init__(
        self,
        f: Map,
        x0: Tensor,
        steps: int,
        *,
        batched: bool = False,
        transient: int = 0,
        on_nonfinite: OnNonFinite = "warn",
    ):
        steps = check_int(steps, "steps", 1)
        transient = check_int(transient, "transient", 0)
        check_on_nonfinite(on_nonfinite)
        self.batched = batched
        self._F, X = as_batched(f, x0, batched, "x0")
        X = X.detach()
        self.steps = steps
        self.dtype = X.dtype
        n = X.shape[-1]
        self.shape = (n, n)
        with math_attention(), torch.no_grad():
            self.states, self.nonfinite = finite_trajectory(
                self._F, X, steps, transient, on_nonfinite, "finite_time_lyapunov", batched
            )
        self._pulls: list[Callable] | None = None
        self._pulls2: dict[int, Callable] = {}
        F = self._F
        self._jvp = lambda t, V: push_forward(F, self.states[t], V)[1]
        #: "vjp2" (the stored tapes, below) unless the map has no double backward: "jvp"
        self.push_mode = "vjp2"

    # -- one step ------------------------------------------------------------------------------
    def step(self, t: int, V: Tensor) -> Tensor:
        """``J(x_t) V`` for ``V: (B, n, p)``: VJP-of-VJP on tapes recorded once per step and
        kept (later sweeps run only the double backward; faster than forward mode on the
        ItrSA step, BENCHMARKS.md "dynamics"), or forward mode for a map without a double
        backward formula."""
        with math_attention(), torch.no_grad():
            if self.push_mode == "vjp2":
                try:
                    return self._vjp2(t, V)
                except (RuntimeError, NotImplementedError):
                    self.push_mode = "jvp"
            return self._jvp(t, V)

    def _vjp2(self, t: int, V: Tensor) -> Tensor:
        """``J(x_t) V`` as the VJP of ``u -> J(x_t)^T u``
        (:func:`~sadyn.dynamics.tangent.push_forward_vjp2`) on the stored reverse tape; its
        own tape is kept for horizons up to :data:`KEEP_VJP2_MAX_STEPS` (later sweeps then
        run only the double backward), rebuilt per call beyond (memory)."""
        pull2 = self._pulls2.get(t)
        if pull2 is None:
            pull = self._tapes()[t]
            zero = torch.zeros_like(self.states[t + 1])
            pull2 = vjp(lambda u: pull(u)[0], zero)[1]
            if self.steps <= KEEP_VJP2_MAX_STEPS:
                self._pulls2[t] = pull2
        return vmap(lambda v: pull2(v)[0], in_dims=-1, out_dims=-1)(V)

    def step_t(self, t: int, U: Tensor) -> Tensor:
        """``J(x_t)^T U`` for ``U: (B, n, p)``."""
        pull = self._tapes()[t]
        with math_attention(), torch.no_grad():
            return vmap(lambda u: pull(u)[0], in_dims=-1, out_dims=-1)(U)

    # -- batched internals: V (B, n, p) -------------------------------------------------------
    def forward(self, V: Tensor, *, rescale: bool = False) -> tuple[Tensor, Tensor]:
        """``M V`` for ``V: (B, n, p)``; with ``rescale`` the block is renormalised every step.

        Returns:
            ``(W, log_scale)``: ``M V = W * exp(log_scale)``, ``log_scale: (B,)`` float64.
        """
        log_scale = torch.zeros(V.shape[0], dtype=torch.float64, device=V.device)
        for t in range(self.steps):
            V = self.step(t, V)
            if rescale:
                V, log_scale = _renormalise(V, log_scale)
        return V, log_scale

    def backward(self, U: Tensor, *, rescale: bool = False) -> tuple[Tensor, Tensor]:
        """``M^T U`` for ``U: (B, n, p)``; returns ``(W, log_scale)`` as :meth:`forward`."""
        log_scale = torch.zeros(U.shape[0], dtype=torch.float64, device=U.device)
        for t in reversed(range(self.steps)):
            U = self.step_t(t, U)
            if rescale:
                U, log_scale = _renormalise(U, log_scale)
        return U, log_scale

    def _tapes(self) -> list[Callable]:
        if self._pulls is None:
            with math_attention(), torch.no_grad():
                self._pulls = [vjp(self._F, x)[1] for x in self.states[:-1]]
        return self._pulls

    # -- user-facing products ------------------------------------------------------------------
    def matmat(self, V: Tensor) -> Tensor:
        """``M V``: ``(n, k) -> (n, k)`` (batched ``(B, n, k)``)."""
        V = V if self.batched else V[None]
        return unbatch(self.forward(V.to(self.dtype))[0], self.batched)

    def rmatmat(self, U: Tensor) -> Tensor:
        """``M^T U``: ``(n, k) -> (n, k)`` (batched ``(B, n, k)``)."""
        U = U if self.batched else U[None]
        return unbatch(self.backward(U.to(self.dtype))[0], self.batched)

    def matvec(self, v: Tensor) -> Tensor:
        """``M v``: ``(n,) -> (n,)`` (batched ``(B, n)``)."""
        return self.matmat(v[..., None])[..., 0]

    def rmatvec(self, u: Tensor) -> Tensor:
        """``M^T u``: ``(n,) -> (n,)`` (batched ``(B, n)``)."""
        return self.rmatmat(u[..., None])[..., 0]

    def to_scipy(self, row: int = 0) -> LinearOperator:
        """A float64 scipy ``LinearOperator`` for the propagator of row ``row``."""
        b, n = self.states[0].shape
        like = self.states[0]

        def embed(fn):
            def apply(v: np.ndarray) -> np.ndarray:
                v = np.asarray(v)
                t = torch.as_tensor(v.reshape(n, -1), dtype=self.dtype, device=like.device)
                full = torch.zeros((b, n, t.shape[-1]), dtype=self.dtype, device=like.device)
                full[row] = t
                out = fn(full)[0][row]
                return out.detach().cpu().to(torch.float64).numpy().reshape(v.shape)

            return apply

        fwd, bwd = embed(self.forward), embed(self.backward)
        return LinearOperator(
            (n, n), matvec=fwd, rmatvec=bwd, matmat=fwd, rmatmat=bwd, dtype=np.float64
        )

    def replay(self) -> TangentStep:
        """A tangent step that follows the stored trajectory (for :func:`benettin`)."""
        t = iter(range(self.steps))

        def step(x: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
            i = next(t)
            return self.states[i + 1], self.step(i, Q)

        return step


def _renormalise(V: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    """Divide each row's block by its Frobenius norm, adding the log to ``log_scale``."""
    norm = V.flatten(1).norm(dim=-1)
    safe = norm.clamp_min(torch.finfo(V.dtype).tiny)
    return V / safe[:, None, None], log_scale + safe.to(torch.float64).log()


class _DenseChain:
    """The Jacobians ``J(x_t): (B, n, n)`` along the trajectory, float64, as sweep factors."""

    def __init__(self, prop: Propagator, bad: Tensor, on_nonfinite: OnNonFinite, batched: bool):
        self.J: list[Tensor] = []
        self.bad = bad.clone()
        for t, x in enumerate(prop.states[:-1]):
            J = value_and_jacobian(prop._F, x)[1].to(torch.float64)
            ok = torch.isfinite(J).flatten(1).all(-1)
            new_bad = ~ok & ~self.bad
            if bool(new_bad.any()):
                rows = new_bad.nonzero().flatten().tolist()
                report_nonfinite("finite_time_lyapunov", rows, t + 1, batched, on_nonfinite)
                self.bad |= new_bad
            if bool(self.bad.any()):  # frozen rows: a harmless identity, results set to NaN
                eye = torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
                J = torch.where(self.bad[:, None, None], eye, J)
            self.J.append(J)

    def step(self, t: int, V: Tensor) -> Tensor:
        return self.J[t] @ V

    def step_t(self, t: int, U: Tensor) -> Tensor:
        return self.J[t].mT @ U

    def start_vectors(self, p: int) -> Tensor:
        """Right singular vectors ``(B, n, p)`` of the rescaled product (exact for short T)."""
        b, n, _ = self.J[0].shape
        M = torch.eye(n, dtype=torch.float64, device=self.J[0].device).expand(b, n, n).clone()
        for J in self.J:
            M = J @ M
            M = M / M.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
        M = torch.where(torch.isfinite(M), M, 0.0)
        _, _, vh = torch.linalg.svd(M)
        return vh[:, :p, :].mT


# -- the product SVD ------------------------------------------------------------------------------
@dataclass
class _Sweep:
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


def _sweep(
    apply: Callable[[int, Tensor], Tensor],
    order: range,
    A: Tensor,
    zero_tol: float,
    bad: Tensor,
) -> _Sweep:
    """Push the block ``A: (B, n, p)`` through ``apply(t, .)`` for ``t`` in ``order``, QR each step.

    Rows in ``bad`` are frozen (their tangents stay as they are), and rows whose tangents turn
    non-finite are added to ``bad`` (in place); the caller reports them.
    """
    b, _, p = A.shape
    f64 = torch.float64
    logd = torch.zeros(b, p, dtype=f64, device=A.device)
    scale = torch.zeros(b, p, dtype=f64, device=A.device)
    unit = torch.eye(p, dtype=f64, device=A.device).expand(b, p, p).clone()
    upper = torch.ones(p, p, dtype=torch.bool, device=A.device).triu()
    local = []
    Q = A
    for t in order:
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
    return _Sweep(end=Q, logd=logd, scale=scale, unit=unit, local=torch.stack(local, dim=1))


def _clusters(logd: list[float]) -> list[tuple[int, int]]:
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


def _ritz(sw: _Sweep) -> tuple[Tensor, Tensor, Tensor]:
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
        for i, j in _clusters(row):
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


def _sorted(logs: Tensor) -> tuple[Tensor, Tensor]:
    """Values sorted largest first (``-inf`` last, NaN rows untouched) and the permutation."""
    key = torch.where(torch.isnan(logs), float("-inf"), logs)
    order = torch.argsort(key, dim=-1, descending=True, stable=True)
    return logs.gather(-1, order), order


def _permute_cols(A: Tensor, order: Tensor) -> Tensor:
    return A.gather(-1, order[:, None, :].expand(-1, A.shape[1], -1))


@dataclass
class _SVDResult:
    exponents: Tensor  # (B, k) sorted
    right: Tensor  # (B, n, k) right singular vectors at x_0
    end: Tensor  # (B, n, k) the forward sweep's end basis (left vectors at x_T)
    local: Tensor  # (B, T, k) per-step logs of the last forward sweep
    sweeps: int
    converged: Tensor  # (B,)
    error: Tensor  # (B,)
    bad: Tensor  # (B,)


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
) -> _SVDResult:
    """Top-``k`` singular values of ``J_{T-1} ... J_0`` by alternating QR sweeps.

    Args:
        chain: has ``step(t, V) = J_t V`` and ``step_t(t, U) = J_t^T U`` on ``(B, n, p)``.
        V: ``(B, n, p)`` orthonormal start block at ``x_0`` (``p >= k``).
        tol: stop when every row's estimated error of its top-``k`` exponents is ``<= tol``.
        max_sweeps: sweeps at most (forward and backward alternate; the first is forward).
        warm: ``V`` is already close (the dense start): one change suffices to judge.
        bad: ``(B,)`` rows to freeze (updated in place with rows whose tangents blew up).
    """
    b = V.shape[0]
    dev = V.device
    prev: Tensor | None = None
    last_change: Tensor | None = None
    error = torch.full((b,), float("inf"), dtype=torch.float64, device=dev)
    converged = torch.zeros(b, dtype=torch.bool, device=dev)
    start = V
    right = V
    fwd: tuple[Tensor, Tensor] | None = None
    sweeps = 0
    for s in range(1, max_sweeps + 1):
        forward = s % 2 == 1
        if forward:
            sw = _sweep(chain.step, range(T), start, zero_tol, bad)
        else:
            sw = _sweep(chain.step_t, range(T - 1, -1, -1), start, zero_tol, bad)
        logs, Yr, Wr = _ritz(sw)
        vals, order = _sorted(logs)
        end = _permute_cols(sw.end @ Yr.to(sw.end.dtype), order)
        if forward:
            right = _permute_cols(start @ Wr.to(start.dtype), order)
            fwd = (end, _permute_cols(sw.local, order))
        else:
            right = end
        start = end
        sweeps = s
        est = vals[:, :k] / T
        if prev is not None:
            change = _change(est, prev)
            error = change if warm else _error_estimate(change, last_change)
            last_change = change
            converged = error <= tol
        prev = est
        if bool((converged | bad).all()):
            break
    assert prev is not None and fwd is not None
    exps = prev.clone()
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=dev)
    exps = torch.where(bad[:, None], nan, exps)
    return _SVDResult(
        exponents=exps,
        right=right[..., :k],
        end=fwd[0][..., :k],
        local=fwd[1][..., :k],
        sweeps=sweeps,
        converged=converged & ~bad,
        error=torch.where(bad, nan, error),
        bad=bad,
    )


@dataclass
class _KrylovResult:
    vectors: Tensor  # (B, n, p) Ritz vectors at x_0, best first
    used: bool  # False: the spread was too wide, vectors is the start block
    converged: Tensor  # (B,)
    error: Tensor  # (B,)
    sweeps: int
    values: Tensor | None = None  # (B, k) Ritz exponents (float64), sorted
    left: Tensor | None = None  # (B, n, k) left Ritz vectors at x_T (M ritz, normalised)
    spread: Tensor | None = None  # (B,) log(sigma_1 / sigma_k) of the Ritz values


def _residual_error(
    K: Tensor,
    fwd: _Sweep,
    bwd: _Sweep,
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
) -> _KrylovResult:
    """Ritz vectors of ``M^T M`` on the block Krylov space ``[V, (M^T M) V, ...]``.

    For a densely packed spectrum (the attention maps at T = 16: sixteen exponents within
    0.1) subspace iteration gains ``exp(-T gap)`` per sweep, which is next to nothing; a
    Krylov space of the same sweeps converges much faster. Each iteration is one forward
    sweep of the newest block (QR every step), a Rayleigh-Ritz step (the SVD of ``M K``
    formed explicitly from the sweeps' triangular factors), one backward sweep from the
    forward sweep's end basis and a block Gram-Schmidt of its end block against the earlier
    blocks. The error estimate extrapolates the last two changes of the Ritz values
    (:func:`_error_estimate`, superlinear form). Forming ``M K`` is exact only while the
    top-``k`` values span less than ``exp(KRYLOV_SPAN)``;
    wider spectra (long horizons) separate by themselves under subspace iteration, so then
    (unless ``force``) nothing is done and ``used`` is False.

    Stopping (``stop``): "residual" (default) bounds each Ritz value's error by its residual
    after the backward sweep of the same iteration (:func:`_residual_error`), so an iteration
    can stop as soon as its values are good, with no extra sweep to observe a change;
    "change" extrapolates the last two changes of the Ritz values (the old rule: two more
    forward sweeps). Either way the values, the Ritz vectors at ``x_0`` and the left vectors
    at ``x_T`` are returned (``values``, ``vectors``, ``left``).
    """
    f64 = torch.float64
    blocks = [V]
    images: list[Tensor] = []
    prev: Tensor | None = None
    last_change: Tensor | None = None
    b = V.shape[0]
    error = torch.full((b,), float("inf"), dtype=f64, device=V.device)
    converged = torch.zeros(b, dtype=torch.bool, device=V.device)
    ref: Tensor | None = None
    sweeps = 0
    ritz = V
    for it in range(max_iter):
        sw = _sweep(chain.step, range(T), blocks[-1], zero_tol, bad)
        sweeps += 1
        if ref is None:
            top = torch.sort(sw.logd, dim=-1, descending=True).values[:, :k]
            fin = torch.isfinite(top)
            hi = torch.where(fin, top, float("-inf")).amax(-1)
            lo = torch.where(fin, top, float("inf")).amin(-1)
            spread = torch.where(fin.any(-1), hi - lo, 0.0)
            if not force and bool((spread > KRYLOV_SPAN).any()):
                return _KrylovResult(V, False, converged, error, sweeps)
            ref = sw.scale.amax(-1)
        R = (sw.scale - ref[:, None]).clamp(min=-700.0).exp()[..., None] * sw.unit
        images.append(sw.end.to(f64) @ R)
        W = torch.cat(images, dim=-1)  # M K / exp(ref): (B, n, m)
        K = torch.cat(blocks, dim=-1)
        Qw, Rw = torch.linalg.qr(W)
        uw, sv, vh = torch.linalg.svd(Rw)
        logs = sv.clamp_min(1e-300).log() + ref[:, None]  # log sigma, (B, m)
        m = K.shape[-1]
        if m < k:  # a block narrower than k: the space is too small to estimate yet
            if m + V.shape[-1] > K.shape[1]:
                break
            back = _sweep(chain.step_t, range(T - 1, -1, -1), sw.end, zero_tol, bad)
            sweeps += 1
            blocks.append(_extend(K, back.end, generator))
            continue
        est = logs[:, :k] / T
        ritz = K @ vh[:, : max(V.shape[-1], k)].mT.to(K.dtype)
        left = (Qw @ uw[:, :, :k]).to(K.dtype)
        if K.shape[-1] >= K.shape[1]:  # K is the whole space: Rayleigh-Ritz is exact
            error = torch.zeros_like(error)
            converged = torch.ones_like(converged)
            break
        if prev is not None and stop == "change":
            change = _change(est, prev)
            error = _error_estimate(change, last_change, linear=False)
            last_change = change
            converged = error <= tol
            if bool((converged | bad).all()):
                break
        prev = est
        if it == max_iter - 1 or K.shape[-1] + V.shape[-1] > K.shape[1]:
            if stop == "change" or it == max_iter - 1:
                break  # out of iterations, or the space cannot grow by a block (n reached)
        back = _sweep(chain.step_t, range(T - 1, -1, -1), sw.end, zero_tol, bad)
        sweeps += 1
        if stop == "residual":
            error = _residual_error(K, sw, back, vh, logs, k, T)
            converged = error <= tol
            if bool((converged | bad).all()) or K.shape[-1] + V.shape[-1] > K.shape[1]:
                break
        blocks.append(_extend(K, back.end, generator))
    if prev is None and not bool(converged.all()):  # too few blocks to hold k values
        return _KrylovResult(V, False, converged, error, sweeps)
    fin = torch.isfinite(est)
    hi = torch.where(fin, est, float("-inf")).amax(-1)
    lo = torch.where(fin, est, float("inf")).amin(-1)
    spread = torch.where(fin.any(-1), (hi - lo) * T, 0.0)
    return _KrylovResult(
        ritz, True, converged & ~bad, error, sweeps, values=est, left=left, spread=spread
    )


def _svds_vectors(prop: Propagator, k: int, generator: torch.Generator) -> Tensor:
    """Top-``k`` right singular vectors by ARPACK ``svds`` on each row's propagator."""
    x0 = prop.states[0]
    b, n = x0.shape
    if k >= n:
        raise ShapeError(f"svds needs k < n = {n}; use method='dense'")
    v0 = torch.randn(n, generator=generator, dtype=torch.float64, device=generator.device)
    rows = []
    for r in range(b):
        _, s, vt = svds(prop.to_scipy(row=r), k=k, which="LM", v0=v0.cpu().numpy(), tol=0.0)
        order = np.argsort(-s)
        rows.append(torch.as_tensor(vt[order].T.copy()))
    return torch.stack(rows).to(device=x0.device, dtype=x0.dtype)


def _options(method: str, options: dict[str, Any] | None, legacy: dict[str, Any]) -> dict[str, Any]:
    """Merge ``options`` (and the deprecated flat keywords) over the method's defaults."""
    opts = dict(DEFAULT_OPTIONS[method])
    given = dict(options or {})
    old = {key: v for key, v in legacy.items() if v is not None}
    if old:
        warnings.warn(
            f"finite_time_lyapunov({', '.join(f'{key}=' for key in old)}...) is deprecated: "
            f"pass options={{{', '.join(repr(key) + ': ...' for key in old)}}}",
            DeprecationWarning,
            stacklevel=4,
        )
        given = {**old, **given}
    unknown = set(given) - set(opts)
    if unknown:
        raise ArgumentError(
            f"unknown option(s) {sorted(unknown)} for method {method!r}; known: {sorted(opts)}"
        )
    opts.update(given)
    opts["tol"] = check_positive(opts["tol"], "options['tol']", allow_zero=True)
    opts["max_iter"] = check_int(opts["max_iter"], "options['max_iter']", 1)
    if opts["oversample"] is not None:
        opts["oversample"] = check_int(opts["oversample"], "options['oversample']", 0)
    if opts.get("krylov", False) not in (True, False, "auto"):
        got = opts["krylov"]
        raise ArgumentError(f"options['krylov'] must be True, False or 'auto', got {got!r}")
    if opts.get("block") is not None:
        opts["block"] = check_int(opts["block"], "options['block']", 1)
    if opts.get("stop", "residual") not in ("residual", "change"):
        got = opts["stop"]
        raise ArgumentError(f"options['stop'] must be 'residual' or 'change', got {got!r}")
    return opts


#: Krylov blocks of ``ceil(k / 2)`` columns from this ``k`` on (below: ``k + oversample``).
HALF_BLOCK_MIN_K = 8


def _default_block(k: int, p: int, n: int) -> int:
    """Columns per Krylov block: ``ceil(k / 2)`` for ``k >= HALF_BLOCK_MIN_K`` (and room for
    the space to grow: ``2 p <= n``), else ``p``.

    A sweep costs about its column count (a batched tangent product), and a Krylov space
    gains a polynomial degree per iteration whatever its block width, so narrower blocks
    reach the same accuracy in fewer column-sweeps: on the ItrSA step at T = 16, k = 16,
    blocks of 8 reached tol 1e-4 in about 60% of the time of blocks of 20 (BENCHMARKS.md,
    "dynamics"). Below ``k = 8`` the per-sweep overhead dominates and the old rule stays.
    """
    return (k + 1) // 2 if k >= HALF_BLOCK_MIN_K and 2 * p <= n else p


def _ritz_precise(kry: _KrylovResult, dtype: torch.dtype, n: int, T: int, tol: float) -> bool:
    """Whether the Krylov Ritz values are already as good as an exact sweep would make them:
    they come from ``M K`` formed in the working precision, so the smallest of the top ``k``
    carries a relative error up to about ``eps sqrt(n) sigma_1 / sigma_k``; require that to
    be a tenth of ``tol`` (exponent units). False when a value is an exact zero (its ``-inf``
    comes from the sweep's per-step rule)."""
    if kry.spread is None or kry.values is None or not bool(torch.isfinite(kry.spread).all()):
        return False
    eps = torch.finfo(dtype).eps
    worst = eps * math.sqrt(n) * float(kry.spread.max().clamp(max=700.0).exp()) / T
    return worst <= 0.1 * tol


@attention_safe
@torch.no_grad()
def finite_time_lyapunov(
    f: Map,
    x0: Tensor,
    steps: int,
    k: int | None = None,
    *,
    method: FTLEMethod = "auto",
    options: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    batched: bool = False,
    transient: int = 0,
    zero_tol: float | None = None,
    keep_local: bool = False,
    on_nonfinite: OnNonFinite = "warn",
    tol: float | None = None,
    max_iter: int | None = None,
    oversample: int | None = None,
) -> LyapunovResult:
    """Finite-time exponents ``(1/T) log sigma_i(J_{T-1} ... J_0)``, the paper's definition.

    Exact at any horizon (a product SVD in logs, never the product itself: see the module
    docstring), sorted largest first.

    Args:
        f, x0: the map and the initial state ``(n,)`` (batched ``(B, n)``; NumPy converted).
        steps: the horizon T (the paper: 16).
        k: number of exponents, largest first (None: all ``n``; dense only).
        method: "dense" (materialised Jacobians; default for ``n <= DENSE_MAX``), "subspace"
            (matrix-free alternating QR sweeps: one batched JVP pass forward, one VJP pass
            back; default above), "svds" (ARPACK on :class:`Propagator`, then the same sweeps
            from its vectors; a cross-check).
        options: the method's settings (torchdiffeq-style), defaults in
            :data:`DEFAULT_OPTIONS`: ``tol`` (stop when the estimated error of every exponent
            is below it; exponent units), ``max_iter`` (forward-backward iterations at most),
            ``oversample`` (extra columns in the block; subspace default ``max(4, k // 4)``
            with Krylov, ``max(8, k // 4)`` without), ``krylov`` (subspace only: "auto"
            accelerates with a block Krylov space when the top-``k`` values span less than
            ``exp(KRYLOV_SPAN)``, i.e. short horizons; True forces it; False never),
            ``stop`` (Krylov phase: "residual", the default, or "change", the older
            extrapolation of the last two changes), ``block`` (columns per Krylov block;
            default ``ceil(k / 2)`` for ``k >= 8`` when ``2 (k + oversample) <= n``, else
            ``k + oversample``).
        generator: seeds the random start block of the subspace method.
        transient: steps taken before ``x_0``.
        zero_tol: per-step threshold of exact zero directions (see
            :func:`~sadyn.dynamics.lyapunov_spectrum`); returned in ``result.zero_tol``.
        keep_local: keep the per-step stretches of the last forward sweep, ``(T, k)``.
        on_nonfinite: "warn" (NaN + one :class:`NonFiniteStateWarning`) or "raise".
        tol, max_iter, oversample: deprecated spellings of ``options`` entries.
    Returns:
        a :class:`LyapunovResult` (``exponents (k,)`` / ``(B, k)`` float64, ``-inf`` for exact
        zero directions); ``converged`` and ``info["error_estimate"]`` say how far the
        iteration got; ``info["right_vectors"]`` holds the finite-time Lyapunov vectors at
        ``x_0``, ``tangents`` the matching directions at ``x_T``.
    """
    if method not in ("auto", "dense", "subspace", "svds"):
        raise ArgumentError(f"method must be auto, dense, subspace or svds, got {method!r}")
    if zero_tol is not None:
        zero_tol = check_positive(zero_tol, "zero_tol", allow_zero=True)
    prop = Propagator(f, x0, steps, batched=batched, transient=transient, on_nonfinite=on_nonfinite)
    X0 = prop.states[0]
    n = X0.shape[-1]
    if k is None:
        if method not in ("auto", "dense") or (method == "auto" and n > DENSE_MAX):
            raise ShapeError(
                f"k=None asks for all n = {n} exponents, which needs method='dense'; pass k"
            )
        method, k = "dense", n
    k = check_int(k, "k")
    if not 1 <= k <= n:
        raise ShapeError(f"k must lie in 1..n = {n}, got {k}")
    if method == "auto":
        method = "dense" if n <= DENSE_MAX else "subspace"
    opts = _options(method, options, {"tol": tol, "max_iter": max_iter, "oversample": oversample})
    ztol = default_zero_tol(X0.dtype, n) if zero_tol is None else zero_tol
    gen = default_generator(generator)
    extra = opts["oversample"]
    if extra is None:  # Krylov spaces grow by themselves; plain subspace iteration needs more
        extra = max(4, k // 4) if opts.get("krylov", False) is not False else max(8, k // 4)
    p = min(n, k + extra)
    block = p  # columns per Krylov block
    if method == "subspace" and opts["krylov"] is not False:
        block = opts["block"] if opts["block"] is not None else _default_block(k, p, n)
        block = min(n, block)
    bad = prop.nonfinite.clone()
    max_sweeps = 2 * opts["max_iter"] + 1
    if method == "dense":
        chain: Any = _DenseChain(prop, bad, on_nonfinite, batched)
        bad = chain.bad
        V = chain.start_vectors(p)
        warm = True
    elif method == "svds":
        chain, warm = prop, True
        V = torch.linalg.qr(_svds_vectors(prop, k, gen))[0]
    else:
        chain, warm = prop, False
        V = random_orthonormal(X0.shape[0], n, block, X0, gen)
    reported = bad.clone()
    kry = None
    if method == "subspace" and opts["krylov"] is not False:
        kry = block_krylov(
            chain,
            prop.steps,
            V,
            k,
            tol=opts["tol"],
            max_iter=min(opts["max_iter"], KRYLOV_MAX_BLOCKS),
            zero_tol=ztol,
            bad=bad,
            generator=gen,
            force=opts["krylov"] is True,
            stop=opts["stop"],
        )
        if kry.used and bool((kry.converged | bad).all()):
            V, warm, max_sweeps = kry.vectors, True, 1  # values: one exact sweep
        elif not kry.used and block < k:  # plain subspace iteration needs p >= k columns
            V = random_orthonormal(X0.shape[0], n, p, X0, gen)
        elif kry.used:  # the memory cap was reached: go on by subspace iteration
            V = kry.vectors
            max_sweeps = max(3, max_sweeps - kry.sweeps)
            kry = dataclasses.replace(kry, used=False)
    skip = (
        kry is not None
        and kry.used
        and not keep_local
        and bool((kry.converged | bad).all())
        and _ritz_precise(kry, X0.dtype, n, prop.steps, opts["tol"])
    )
    if skip:  # the Ritz values are final: no sweep to re-read them
        assert kry is not None and kry.values is not None and kry.left is not None
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=X0.device)
        out = _SVDResult(
            exponents=torch.where(bad[:, None], nan, kry.values),
            right=kry.vectors[..., :k],
            end=kry.left,
            local=torch.empty(0),
            sweeps=0,
            converged=kry.converged & ~bad,
            error=torch.where(bad, nan, kry.error),
            bad=bad,
        )
    else:
        out = product_svd(
            chain,
            prop.steps,
            V,
            k,
            tol=opts["tol"],
            max_sweeps=max_sweeps,
            zero_tol=ztol,
            bad=bad,
            warm=warm,
        )
    if kry is not None:
        out.sweeps += kry.sweeps
        if kry.used:
            out.converged, out.error = kry.converged & ~out.bad, kry.error
    late = out.bad & ~reported
    if bool(late.any()):
        rows = late.nonzero().flatten().tolist()
        report_nonfinite("finite_time_lyapunov", rows, prop.steps, batched, on_nonfinite)
    bad_rows = out.bad.nonzero().flatten().tolist()
    info: dict[str, Any] = {
        "iterations": (out.sweeps + 1) // 2,
        "sweeps": out.sweeps,
        "converged": bool(out.converged[~out.bad].all()) if not bool(out.bad.all()) else False,
        "converged_rows": unbatch(out.converged, batched),
        "error_estimate": unbatch(out.error, batched),
        "right_vectors": unbatch(out.right.to(X0.dtype), batched),
        "nonfinite_rows": bad_rows,
        "options": opts,
    }
    local = None
    if keep_local:
        local = torch.where(out.bad[:, None, None], float("nan"), out.local)
    return LyapunovResult(
        exponents=unbatch(out.exponents, batched),
        local=unbatch(local, batched),
        final_state=unbatch(prop.states[-1], batched),
        steps=prop.steps,
        tangents=unbatch(out.end.to(X0.dtype), batched),
        method=f"ftle-{method}",
        info=info,
        zero_tol=ztol,
        converged=info["converged"],
    )
