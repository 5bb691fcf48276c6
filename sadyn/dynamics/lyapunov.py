"""Asymptotic Lyapunov spectrum by the QR (Benettin / Geist "H2") method.

The algorithm of ChaosTools.jl's ``lyapunovspectrum``: ``k`` orthonormal tangent vectors
``Q`` ride along the trajectory, pushed by the tangent map (``J(x_t) Q``, one batched JVP per
step), and are re-orthonormalised by a QR decomposition every ``reortho_every`` steps; the
exponents are the time averages of ``log |R_ii|``. The finite-time exponents of the paper
(singular values of the propagator) are a different quantity: see
:mod:`sadyn.dynamics.finite_time`.

Numerics:

* ``log |R_ii|`` is accumulated in float64 whatever the working precision.
* Exact zero directions (a normalization layer maps each token's radial direction to 0) give
  ``R_ii`` at the roundoff floor, not exactly 0; entries below ``zero_tol`` times the largest
  tangent norm of that step are treated as exact zeros and give ``-inf``, never NaN.
* A state or tangent that becomes NaN/inf makes that trajectory's exponents NaN, with a
  :class:`~sadyn.dynamics.NonFiniteStateWarning` (or a ``DivergenceError``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from sadyn.dynamics._common import (
    Map,
    OnNonFinite,
    as_batched,
    check_on_nonfinite,
    default_generator,
    default_zero_tol,
    progress_bar,
    random_orthonormal,
    report_nonfinite,
    unbatch,
)
from sadyn.dynamics.attention import attention_safe
from sadyn.dynamics.jacobian import push_forward, value_and_jacobian
from sadyn.errors import ShapeError

TangentStep = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]

#: Up to this state dimension "auto" propagates tangents with a dense reverse-mode Jacobian.
SMALL_DENSE = 32


@dataclass
class LyapunovResult:
    """Lyapunov exponents of one trajectory (or of each row of a batch).

    Attributes:
        exponents: ``(k,)`` or ``(B, k)`` float64, per step, natural log, largest first;
            ``-inf`` for exact zero directions, NaN for a trajectory that became non-finite.
        local: per-QR local exponents ``log |R_ii| / interval``, ``(R, k)`` or ``(B, R, k)``
            with ``R = ceil(steps / reortho_every)``; None unless ``keep_local``.
        final_state: the state after the last step, ``(n,)`` or ``(B, n)``.
        steps: the number of steps the exponents average over (the transient excluded).
        tangents: the final orthonormal tangent vectors, ``(n, k)`` or ``(B, n, k)``.
        method: how they were computed ("qr-jvp", "qr-dense", "ftle-dense", "ftle-subspace",
            "ftle-svds").
        info: extras (e.g. ``nonfinite_rows``, ``iterations``, ``converged``).
    """

    exponents: Tensor
    local: Tensor | None
    final_state: Tensor
    steps: int
    tangents: Tensor | None = None
    method: str = "qr-jvp"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def maximal(self) -> Tensor:
        """The largest exponent: a 0-d tensor, or ``(B,)``."""
        return self.exponents[..., 0]


def qr_log(Y: Tensor, zero_tol: float) -> tuple[Tensor, Tensor]:
    """Orthonormalise tangents and measure their stretches.

    Args:
        Y: ``(B, n, k)`` tangent vectors after some steps.
        zero_tol: relative threshold under which ``|R_ii|`` counts as an exact zero.
    Returns:
        ``Q: (B, n, k)`` with ``diag R > 0`` (sign-fixed so tangents evolve continuously) and
        ``log |R_ii|: (B, k)`` in float64, ``-inf`` for zero directions.
    """
    Q, R = torch.linalg.qr(Y)
    d = R.diagonal(dim1=-2, dim2=-1)
    sign = torch.where(d < 0, -1.0, 1.0).to(Q.dtype)
    Q = Q * sign[..., None, :]
    a = d.abs().to(torch.float64)
    scale = Y.norm(dim=-2).amax(dim=-1, keepdim=True).to(torch.float64)
    logr = torch.where(a <= zero_tol * scale, float("-inf"), a.log())
    return Q, logr


def jvp_tangent_step(F: Map) -> TangentStep:
    """``(x, Q) -> (F(x), J(x) Q)`` by one vectorised forward-mode pass."""
    return lambda x, Q: push_forward(F, x, Q)


def dense_tangent_step(F: Map) -> TangentStep:
    """``(x, Q) -> (F(x), J(x) Q)`` with ``J`` materialised by reverse mode (O(n^2) memory).

    The fast choice for tiny maps, where a step is all framework overhead, and an independent
    reference (reverse vs forward mode) for the JVP step.
    """

    def step(x: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        fx, J = value_and_jacobian(F, x, mode="reverse")
        return fx, J @ Q

    return step


def benettin(
    step: TangentStep,
    x: Tensor,
    Q: Tensor,
    steps: int,
    *,
    transient: int = 0,
    reortho_every: int = 1,
    keep_local: bool = False,
    zero_tol: float,
    on_nonfinite: OnNonFinite = "warn",
    show_progress: bool = True,
    batched: bool = True,
    name: str = "lyapunov_spectrum",
) -> dict[str, Any]:
    """The QR loop, on batched tensors (``x: (B, n)``, ``Q: (B, n, k)``).

    The first ``transient`` steps evolve and re-orthonormalise the tangents without
    accumulating (ChaosTools' ``Ttr``); a QR is forced at the end of the transient and of the
    run, so the accumulated stretches cover exactly ``steps`` steps.

    Returns:
        a dict with ``exponents (B, k)``, ``local (B, R, k) | None``, ``state (B, n)``,
        ``tangents (B, n, k)``, ``nonfinite_rows`` (list) and ``nonfinite_step`` (dict).
    """
    b = x.shape[0]
    acc = torch.zeros(Q.shape[0], Q.shape[-1], dtype=torch.float64, device=x.device)
    local: list[Tensor] = []
    bad = torch.zeros(b, dtype=torch.bool, device=x.device)
    bad_state = x.clone()
    first_bad: dict[int, int] = {}
    since_qr = 0
    total = transient + steps
    for t in progress_bar(range(total), total, show_progress, name):
        x_next, Y = step(x, Q)
        # A row whose state or tangents left the finite numbers is frozen (state and tangents
        # kept at their last finite values, so the linear algebra stays finite) and its
        # exponents reported as NaN.
        ok = torch.isfinite(x_next).all(-1) & torch.isfinite(Y).flatten(1).all(-1)
        new_bad = ~ok & ~bad
        if bool(new_bad.any()):
            rows = new_bad.nonzero().flatten().tolist()
            report_nonfinite(name, rows, t + 1, batched, on_nonfinite)
            for r in rows:
                first_bad[r] = t + 1
            bad_state[new_bad] = x_next[new_bad]
            bad |= new_bad
            if bool(bad.all()):
                break
        if bool(bad.any()):
            x_next = torch.where(bad[:, None], x, x_next)
            Y = torch.where(bad[:, None, None], Q, Y)
        since_qr += 1
        accumulating = t >= transient
        if since_qr == reortho_every or t == transient - 1 or t == total - 1:
            Q, logr = qr_log(Y, zero_tol)
            if accumulating:
                acc += logr
                if keep_local:
                    local.append(logr / since_qr)
            since_qr = 0
        else:
            Q = Y
        x = x_next
    exponents = acc / max(steps, 1)
    exponents[bad] = float("nan")
    state = torch.where(bad[:, None], bad_state, x)
    loc = torch.stack(local, dim=1) if (keep_local and local) else None
    if loc is not None:
        loc[bad] = float("nan")
    return {
        "exponents": exponents,
        "local": loc,
        "state": state,
        "tangents": Q,
        "nonfinite_rows": sorted(first_bad),
        "nonfinite_step": first_bad,
    }


def _check_steps(steps: int, transient: int, reortho_every: int) -> None:
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if int(transient) < 0:
        raise ValueError(f"transient must be >= 0, got {transient}")
    if int(reortho_every) < 1:
        raise ValueError(f"reortho_every must be >= 1, got {reortho_every}")


def initial_tangents(
    X: Tensor, k: int | None, q0: Tensor | None, generator: torch.Generator | None, batched: bool
) -> Tensor:
    """Orthonormal ``(B, n, k)`` start tangents: ``q0`` orthonormalised, or random."""
    b, n = X.shape
    if q0 is not None:
        q = torch.as_tensor(q0, dtype=X.dtype, device=X.device)
        q = q if batched else q[None]
        if q.ndim != 3 or q.shape[:2] != (b, n) or (k is not None and q.shape[-1] != k):
            raise ShapeError(f"q0 must be (n, k) (batched: (B, n, k)), got {tuple(q0.shape)}")
        return torch.linalg.qr(q)[0]
    k = n if k is None else int(k)
    if not 1 <= k <= n:
        raise ShapeError(f"k must lie in 1..n = {n}, got {k}")
    return random_orthonormal(b, n, k, X, default_generator(generator))


@attention_safe
@torch.no_grad()
def lyapunov_spectrum(
    f: Map,
    x0: Tensor,
    steps: int,
    k: int | None = None,
    *,
    transient: int = 0,
    reortho_every: int = 1,
    generator: torch.Generator | None = None,
    keep_local: bool = False,
    batched: bool = False,
    q0: Tensor | None = None,
    tangent: Literal["auto", "jvp", "dense"] = "auto",
    zero_tol: float | None = None,
    on_nonfinite: OnNonFinite = "warn",
    progress: bool = True,
) -> LyapunovResult:
    """The ``k`` largest Lyapunov exponents by the QR (Benettin) method.

    ``lambda_i = (1/steps) sum_t log |R_t[i, i]|`` over the steps after the transient, where
    ``Q_{t+1} R_{t+1} = J(x_t) Q_t``. Converges (slowly, ~1/steps) to the asymptotic
    exponents; at short horizons it is *not* the paper's finite-time exponent, which is
    :func:`finite_time_lyapunov`.

    Args:
        f, x0: the map and the initial state ``(n,)`` (batched: ``(B, n)``).
        steps: steps averaged over (after the transient).
        k: number of exponents (None: all ``n``).
        transient: steps run first (state and tangents evolve, nothing accumulates).
        reortho_every: steps between QR decompositions (ChaosTools' ``dt``); larger is cheaper
            but lets the tangents collapse onto the top direction (and overflow in float32).
        generator: seeds the random initial tangents.
        keep_local: keep the per-QR local exponents in ``result.local``.
        q0: explicit initial tangents ``(n, k)`` / ``(B, n, k)`` (orthonormalised).
        tangent: "jvp" (matrix-free: one batched JVP pass per step), "dense" (``J``
            materialised by reverse mode each step: O(n^2), a reference), or "auto": dense for
            ``n <= SMALL_DENSE`` (32), where a step is framework overhead and one reverse pass
            beats forward mode ~5x, else jvp.
        zero_tol: ``|R_ii| <= zero_tol * max_j ||(JQ)_j||`` counts as an exact zero (-inf);
            default ``16 sqrt(n) eps(dtype)``; 0 keeps every finite stretch.
        on_nonfinite: "warn" (NaN exponents + :class:`NonFiniteStateWarning`) or "raise"
            (:class:`~sadyn.errors.DivergenceError`).
        progress: show a progress bar (on a terminal).
    """
    _check_steps(steps, transient, reortho_every)
    check_on_nonfinite(on_nonfinite)
    if tangent not in ("auto", "jvp", "dense"):
        raise ValueError(f"tangent must be 'auto', 'jvp' or 'dense', got {tangent!r}")
    F, X = as_batched(f, x0.detach(), batched, "x0")
    if tangent == "auto":
        tangent = "dense" if X.shape[-1] <= SMALL_DENSE else "jvp"
    Q = initial_tangents(X, k, q0, generator, batched)
    step = jvp_tangent_step(F) if tangent == "jvp" else dense_tangent_step(F)
    out = benettin(
        step,
        X,
        Q,
        int(steps),
        transient=int(transient),
        reortho_every=int(reortho_every),
        keep_local=keep_local,
        zero_tol=default_zero_tol(X.dtype, X.shape[-1]) if zero_tol is None else zero_tol,
        on_nonfinite=on_nonfinite,
        show_progress=progress,
        batched=batched,
    )
    return LyapunovResult(
        exponents=unbatch(out["exponents"], batched),
        local=unbatch(out["local"], batched),
        final_state=unbatch(out["state"], batched),
        steps=int(steps),
        tangents=unbatch(out["tangents"], batched),
        method=f"qr-{tangent}",
        info={"nonfinite_rows": out["nonfinite_rows"], "nonfinite_step": out["nonfinite_step"]},
    )
