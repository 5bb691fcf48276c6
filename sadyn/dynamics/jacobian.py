"""Jacobians of a map: dense for small ``n``, matrix-free (JVP / VJP) for any ``n``.

Conventions: ``J = df/dx`` with rows = outputs, so ``J v`` is a JVP (forward mode) and
``J^T u`` a VJP (reverse mode). With ``batched=True`` the map acts on ``(B, n)`` with
independent rows and everything is per row: ``J`` is ``(B, n, n)`` (the diagonal blocks of the
batched map's block-diagonal Jacobian), vectors are ``(B, n)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor
from torch.func import jvp, vjp, vmap
from torch.func import linearize as func_linearize

from sadyn.dynamics._common import (
    Map,
    OnNonFinite,
    as_batched,
    check_int,
    check_on_nonfinite,
    check_output,
    report_nonfinite,
    unbatch,
)
from sadyn.dynamics.attention import attention_safe, math_attention
from sadyn.errors import ShapeError

JacobianMode = Literal["auto", "reverse", "forward"]


def push_forward(F: Map, x: Tensor, V: Tensor) -> tuple[Tensor, Tensor]:
    """``F(x)`` and ``J(x) V`` in one batched forward-mode pass.

    ``vmap`` over the ``k`` columns of ``jvp``: the primal is not batched, so ``F(x)`` runs
    once and the ``k`` tangents ride along as a batch (not ``k`` separate passes).

    Args:
        F: batched map ``(B, n) -> (B, n)``.
        x: ``(B, n)``; V: ``(B, n, k)`` tangent vectors (columns).
    Returns:
        ``(F(x): (B, n), J V: (B, n, k))``.
    """

    def one(v: Tensor) -> tuple[Tensor, Tensor]:
        return jvp(F, (x,), (v,))

    fx, jv = vmap(one, in_dims=-1, out_dims=(None, -1))(V)
    check_output(fx, x)
    return fx, jv


@attention_safe
@torch.no_grad()
def jacobian(
    f: Map,
    x: Tensor,
    *,
    mode: JacobianMode = "auto",
    batched: bool = False,
    chunk_size: int | None = 256,
    on_nonfinite: OnNonFinite = "warn",
) -> Tensor:
    """The dense Jacobian ``J[i, j] = d f_i / d x_j`` at ``x``.

    ``n`` VJPs (reverse mode, rows of ``J``) or ``n`` JVPs (forward mode, columns), vectorised
    with ``vmap`` in chunks of ``chunk_size`` basis vectors. The map is square, so both take
    ``n`` passes; "auto" takes reverse mode, measured as fast or faster on CPU (torch 2.13's
    forward-mode formulas of pointwise ops carry Python overhead: ~2x at n = 72), and falls
    back to forward mode if an operation has no reverse derivative.

    Args:
        f: ``(n,) -> (n,)``, or ``(B, n) -> (B, n)`` with ``batched``.
        x: ``(n,)`` or ``(B, n)``.
        mode: "auto", "reverse" (jacrev-like) or "forward" (jacfwd-like).
        chunk_size: basis vectors per vectorised pass (None: all ``n`` at once).
        on_nonfinite: NaN/inf entries are returned as they are, with one
            :class:`~sadyn.dynamics.NonFiniteStateWarning` ("warn"), or raise ("raise").
    Returns:
        ``(n, n)``, or ``(B, n, n)`` per-row Jacobians, in ``x``'s dtype.
    """
    check_on_nonfinite(on_nonfinite)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", 1)
    F, X = as_batched(f, x, batched)
    J = value_and_jacobian(F, X, mode=mode, chunk_size=chunk_size)[1]
    bad = ~torch.isfinite(J).flatten(1).all(-1)
    if bool(bad.any()):
        report_nonfinite("jacobian", bad.nonzero().flatten().tolist(), 0, batched, on_nonfinite)
    return unbatch(J, batched)


def value_and_jacobian(
    F: Map, X: Tensor, *, mode: JacobianMode = "auto", chunk_size: int | None = 256
) -> tuple[Tensor, Tensor]:
    """``F(X): (B, n)`` and the per-row Jacobians ``(B, n, n)`` of a batched map, one forward.

    See :func:`jacobian` for ``mode`` and ``chunk_size``.
    """
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    b, n = X.shape
    # Basis vector e_j placed in every row at once: one pass serves every J_b.
    eye = torch.eye(n, dtype=X.dtype, device=X.device)
    basis = eye[:, None, :].expand(n, b, n)
    if mode in ("auto", "reverse"):
        try:
            fx, pull = vjp(F, X)
            check_output(fx, X)
            rows = vmap(lambda u: pull(u)[0], chunk_size=chunk_size)(basis)  # (n_out, B, n_in)
            return fx, rows.permute(1, 0, 2)
        except NotImplementedError:
            if mode == "reverse":
                raise

    def col(e: Tensor) -> Tensor:
        return jvp(F, (X,), (e,))[1]

    # (chunked vmap cannot return the unbatched primal, hence the separate forward)
    fx = F(X)
    check_output(fx, X)
    cols = vmap(col, chunk_size=chunk_size)(basis)  # (n_in, B, n_out)
    return fx, cols.permute(1, 2, 0)


class JacobianOperator:
    """The Jacobian ``J(x)`` of ``f`` at a fixed ``x``, without materialising it.

    ``matvec`` is a JVP, ``rmatvec`` a VJP (the reverse tape is recorded once, at
    construction, and reused). ``matmat``/``rmatmat`` vectorise over columns with ``vmap``.

    With ``batched=True``, vectors carry a leading batch axis (``(B, n)`` and ``(B, n, k)``) and
    row ``b`` is multiplied by ``J_b``.

    Args:
        f: the map; x: the point, ``(n,)`` or ``(B, n)``.
        linearize: use ``torch.func.linearize`` for the JVPs: one trace up front, then each
            product is cheaper than a fresh ``jvp`` (pays off from ~100 products, e.g. Arnoldi);
            needs a map that ``make_fx`` can trace (no data-dependent Python control flow).
        on_nonfinite: ``f(x)`` NaN/inf gives one warning at construction ("warn"), raises
            ("raise"), or passes silently (None; for callers that report it themselves).

    Attributes:
        shape: ``(n, n)`` (per row); dtype: the state's dtype; value: ``f(x)``.
    """

    def __init__(
        self,
        f: Map,
        x: Tensor,
        *,
        batched: bool = False,
        linearize: bool = False,
        on_nonfinite: OnNonFinite | None = "warn",
    ):
        self.batched = batched
        self._F, self._x = as_batched(f, x, batched)
        self._x = self._x.detach()
        n = self._x.shape[-1]
        self.shape = (n, n)
        self.dtype = self._x.dtype
        self._pull_fn: Callable | None = None  # the reverse tape, recorded on first use
        self._lin = None
        with math_attention(), torch.no_grad():
            fx = self._F(self._x)
            check_output(fx, self._x)
            bad = ~torch.isfinite(fx).all(-1)
            if on_nonfinite is not None and bool(bad.any()):
                check_on_nonfinite(on_nonfinite)
                rows = bad.nonzero().flatten().tolist()
                report_nonfinite("JacobianOperator", rows, 0, batched, on_nonfinite)
            if linearize:
                with warnings.catch_warnings():
                    # torch's constant folding warns about an internal get_attr node.
                    warnings.filterwarnings("ignore", message=r".*get_attr Node.*")
                    _, self._lin = func_linearize(self._F, self._x)
        self.value = unbatch(fx, batched)

    def _pull(self, u: Tensor) -> tuple[Tensor]:
        if self._pull_fn is None:
            with math_attention():
                self._pull_fn = vjp(self._F, self._x)[1]
        return self._pull_fn(u)

    # -- shapes -------------------------------------------------------------------------------
    def _vec(self, v: Tensor, cols: bool) -> Tensor:
        """Validate a user vector/matrix and give it the internal leading batch axis."""
        v = torch.as_tensor(v, dtype=self.dtype, device=self._x.device)
        want = tuple(self._x.shape) if self.batched else tuple(self._x.shape[1:])
        got = tuple(v.shape[:-1]) if cols else tuple(v.shape)
        if got != want or (cols and v.ndim != len(want) + 1):
            kind = "(..., k) matrix" if cols else "vector"
            raise ShapeError(f"expected a {kind} with leading shape {want}, got {tuple(v.shape)}")
        return v if self.batched else v[None]

    # -- products -----------------------------------------------------------------------------
    def _jv(self, v: Tensor) -> Tensor:
        if self._lin is not None:
            return self._lin(v)
        return jvp(self._F, (self._x,), (v,))[1]

    @attention_safe
    @torch.no_grad()
    def matvec(self, v: Tensor) -> Tensor:
        """``J v``: ``(n,) -> (n,)`` (batched: ``(B, n) -> (B, n)``)."""
        return unbatch(self._jv(self._vec(v, cols=False)), self.batched)

    @attention_safe
    @torch.no_grad()
    def rmatvec(self, u: Tensor) -> Tensor:
        """``J^T u``: ``(n,) -> (n,)`` (batched: ``(B, n) -> (B, n)``)."""
        return unbatch(self._pull(self._vec(u, cols=False))[0], self.batched)

    @attention_safe
    @torch.no_grad()
    def matmat(self, V: Tensor) -> Tensor:
        """``J V`` for ``V: (n, k)`` (batched ``(B, n, k)``), one vectorised pass."""
        V = self._vec(V, cols=True)
        out = vmap(self._jv, in_dims=-1, out_dims=-1)(V)
        return unbatch(out, self.batched)

    @attention_safe
    @torch.no_grad()
    def rmatmat(self, U: Tensor) -> Tensor:
        """``J^T U`` for ``U: (n, k)`` (batched ``(B, n, k)``), one vectorised pass."""
        U = self._vec(U, cols=True)
        out = vmap(lambda u: self._pull(u)[0], in_dims=-1, out_dims=-1)(U)
        return unbatch(out, self.batched)

    # -- scipy --------------------------------------------------------------------------------
    def to_scipy(self, row: int | None = None) -> LinearOperator:
        """A float64 ``scipy.sparse.linalg.LinearOperator`` (for ARPACK ``eigs``/``svds``).

        Unbatched: the ``(n, n)`` operator. Batched: ``row=b`` gives ``J_b``; ``row=None``
        the block-diagonal ``(B n, B n)`` operator of the whole batch. Products are computed
        in the state's dtype and returned as float64.
        """
        b, n = self._x.shape
        if row is not None:
            if not self.batched:
                raise ShapeError("row= is only meaningful for a batched operator")
            if not -b <= row < b:
                raise ShapeError(f"row {row} out of range for a batch of {b}")
        size = n if (row is not None or not self.batched) else b * n

        def wrap(fn):  # numpy (size,) or (size, k) -> numpy, through the batched product
            def apply(v: np.ndarray) -> np.ndarray:
                v = np.asarray(v)
                cols = v.reshape(size, -1)
                t = torch.as_tensor(cols, dtype=self.dtype, device=self._x.device)
                if row is not None:
                    full = torch.zeros((b, n, t.shape[-1]), dtype=self.dtype, device=t.device)
                    full[row] = t
                    out = fn(full)[row]
                else:
                    out = fn(t.reshape(b, n, -1)).reshape(size, -1)
                return out.detach().cpu().to(torch.float64).numpy().reshape(v.shape)

            return apply

        fwd = wrap(self._batched_matmat)
        bwd = wrap(self._batched_rmatmat)
        return LinearOperator(
            (size, size), matvec=fwd, rmatvec=bwd, matmat=fwd, rmatmat=bwd, dtype=np.float64
        )

    @attention_safe
    @torch.no_grad()
    def _batched_matmat(self, V: Tensor) -> Tensor:
        return vmap(self._jv, in_dims=-1, out_dims=-1)(V)

    @attention_safe
    @torch.no_grad()
    def _batched_rmatmat(self, U: Tensor) -> Tensor:
        return vmap(lambda u: self._pull(u)[0], in_dims=-1, out_dims=-1)(U)

    def __repr__(self) -> str:
        batch = f"batch={self._x.shape[0]}, " if self.batched else ""
        return f"JacobianOperator({batch}shape={self.shape}, dtype={self.dtype})"
