"""The T-step propagator ``M = J(x_{T-1}) ... J(x_0)`` along a trajectory, matrix-free.

The trajectory (:func:`finite_trajectory`, non-finite rows frozen and reported) and its
one-step factors ``J(x_t) V`` / ``J(x_t)^T U``, which the product SVD of
:mod:`sadyn.dynamics.product_svd` sweeps through; the whole products ``M V`` / ``M^T U`` and a
scipy ``LinearOperator`` for ARPACK.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor
from torch.func import vjp, vmap

from sadyn.dynamics._common import (
    Map,
    OnNonFinite,
    as_batched,
    check_int,
    check_on_nonfinite,
    report_nonfinite,
    unbatch,
)
from sadyn.dynamics.attention import math_attention
from sadyn.dynamics.jacobian import push_forward
from sadyn.dynamics.tangent import TangentStep

#: The forward sweeps keep each step's VJP-of-VJP tape up to this horizon (the short-horizon,
#: many-sweep Krylov regime); beyond it they are rebuilt per call, holding memory to the
#: reverse tapes the backward sweeps keep anyway.
KEEP_VJP2_MAX_STEPS = 64


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
