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

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sadyn.dynamics._common import (
    ExactZeroWarning,
    Map,
    OnNonFinite,
    as_batched,
    as_vectors,
    check_int,
    check_on_nonfinite,
    check_positive,
    default_generator,
    progress_bar,
    random_orthonormal,
    report_nonfinite,
    rounding_zero_tol,
    unbatch,
)
from sadyn.dynamics.attention import attention_safe
from sadyn.dynamics.tangent import (
    COMPILED_DEFAULT,
    SMALL_DENSE,
    AutoSwitch,
    CompileMode,
    TangentMode,
    TangentStep,
    compiled_call,
    dense_tangent_step,
    eager_tangent_step,
    jvp_tangent_step,
    make_tangent_step,
    pick_tangent,
)
from sadyn.errors import ShapeError

__all__ = [
    "SMALL_DENSE",
    "LyapunovResult",
    "NonFiniteGuard",
    "TangentStep",
    "benettin",
    "dense_tangent_step",
    "initial_tangents",
    "jvp_tangent_step",
    "lyapunov_spectrum",
    "qr_log",
    "whole_qr_step",
]

#: ``(x, Q, bad) -> (F(x), x_next, Q_next, log |R_ii|, ok)``: one whole QR step (see
#: :func:`whole_qr_step`).
WholeStep = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]

#: Floor of ``|R_ii|`` in the differentiable loop (a log of 0 has no gradient).
DIFFERENTIABLE_FLOOR = 1e-30


@dataclass
class LyapunovResult:
    """Lyapunov exponents of one trajectory (or of each row of a batch).

    Attributes:
        exponents: ``(k,)`` or ``(B, k)`` float64, per step, natural log, largest first
            (sorted, also at short horizons); ``-inf`` for exact zero directions, NaN for a
            trajectory that became non-finite.
        local: per-QR local exponents ``log |R_ii| / interval``, ``(R, k)`` or ``(B, R, k)``
            with ``R = ceil(steps / reortho_every)``; None unless ``keep_local``.
        final_state: the state after the last step, ``(n,)`` or ``(B, n)``.
        steps: the number of steps the exponents average over (the transient excluded).
        tangents: the final orthonormal tangent vectors, ``(n, k)`` or ``(B, n, k)``.
        method: how they were computed ("qr-jvp", "qr-vjp2", "qr-dense", "ftle-dense",
            "ftle-subspace", "ftle-svds").
        zero_tol: the threshold of exact zero directions that was applied: a stretch
            ``|R_ii| <= zero_tol * max_j |(J Q)_j|`` in one step is reported as ``-inf``.
        converged: for iterative methods, whether the error estimate met the tolerance (None
            for the QR method, which has no stopping rule).
        info: extras (``nonfinite_rows``, ``nonfinite_step``, ``iterations``,
            ``error_estimate``, ``right_vectors``, ``compiled``).
    """

    exponents: Tensor
    local: Tensor | None
    final_state: Tensor
    steps: int
    tangents: Tensor | None = None
    method: str = "qr-jvp"
    info: dict[str, Any] = field(default_factory=dict)
    zero_tol: float | None = None
    converged: bool | None = None

    @property
    def maximal(self) -> Tensor:
        """The largest exponent: a 0-d tensor, or ``(B,)``."""
        return self.exponents[..., 0]

    def unbatch(self, batched: bool) -> LyapunovResult:
        """Drop the internal leading batch axis of every tensor (identity when ``batched``)."""
        if batched:
            return self
        return dataclasses.replace(
            self,
            exponents=unbatch(self.exponents, False),
            local=unbatch(self.local, False),
            final_state=unbatch(self.final_state, False),
            tangents=unbatch(self.tangents, False),
        )


def qr_log(Y: Tensor, zero_tol: float, *, differentiable: bool = False) -> tuple[Tensor, Tensor]:
    """Orthonormalise tangents and measure their stretches.

    Args:
        Y: ``(B, n, k)`` tangent vectors after some steps.
        zero_tol: relative threshold under which ``|R_ii|`` counts as an exact zero.
        differentiable: keep the graph and floor ``|R_ii|`` at :data:`DIFFERENTIABLE_FLOOR`
            instead of returning ``-inf`` (whose gradient is NaN).
    Returns:
        ``Q: (B, n, k)`` with ``diag R > 0`` (sign-fixed so tangents evolve continuously) and
        ``log |R_ii|: (B, k)`` in float64, ``-inf`` for zero directions.
    """
    Q, R = torch.linalg.qr(Y)
    d = R.diagonal(dim1=-2, dim2=-1)
    sign = torch.where(d < 0, -1.0, 1.0).to(Q.dtype).detach()
    Q = Q * sign[..., None, :]
    a = d.abs().to(torch.float64)
    if differentiable:
        return Q, a.clamp_min(DIFFERENTIABLE_FLOOR).log()
    scale = Y.norm(dim=-2).amax(dim=-1, keepdim=True).to(torch.float64)
    logr = torch.where(a <= zero_tol * scale, float("-inf"), a.log())
    return Q, logr


class NonFiniteGuard:
    """NaN bookkeeping of a loop over a batch of trajectories.

    A row whose state or tangents leave the finite numbers is reported once (warning or
    :class:`~sadyn.errors.DivergenceError`) and frozen at its last finite values, so the linear
    algebra of the other rows (and of this one) never sees NaN; its results are NaN.
    """

    def __init__(self, x: Tensor, name: str, batched: bool, on_nonfinite: OnNonFinite):
        self.bad = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.first: dict[int, int] = {}
        self.bad_state = x.clone()
        self.name, self.batched, self.on_nonfinite = name, batched, on_nonfinite

    def admit(
        self, t: int, x: Tensor, Q: Tensor, x_next: Tensor, Y: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Check step ``t``'s outputs; return them with the frozen rows' old values."""
        ok = torch.isfinite(x_next).all(-1) & torch.isfinite(Y).flatten(1).all(-1)
        self.note(t, ok, x_next)
        if bool(self.bad.any()):
            x_next = torch.where(self.bad[:, None], x, x_next)
            Y = torch.where(self.bad[:, None, None], Q, Y)
        return x_next, Y

    def note(self, t: int, ok: Tensor, x_next: Tensor) -> None:
        """Record step ``t``'s finiteness ``ok: (B,)`` computed elsewhere (the whole-step path,
        which freezes the rows itself); ``x_next`` is the step's raw output."""
        new_bad = ~ok & ~self.bad
        if bool(new_bad.any()):
            rows = new_bad.nonzero().flatten().tolist()
            report_nonfinite(self.name, rows, t + 1, self.batched, self.on_nonfinite)
            for r in rows:
                self.first[r] = t + 1
            self.bad_state[new_bad] = x_next[new_bad].detach()
            self.bad = self.bad | new_bad

    @property
    def all_bad(self) -> bool:
        return bool(self.bad.all())

    def final_state(self, x: Tensor) -> Tensor:
        return torch.where(self.bad[:, None], self.bad_state, x)


def whole_qr_step(step: TangentStep, zero_tol: float) -> WholeStep:
    """One whole QR step as a single function, the unit the compiled path compiles.

    ``(x: (B, n), Q: (B, n, k), bad: (B,) bool) -> (F(x), x_next, Q_next, logr, ok)``: the
    tangent product, the finiteness check ``ok: (B,)``, the freeze of rows in ``bad`` or not
    ``ok`` (state and tangents kept, as :class:`NonFiniteGuard` does), the QR with sign fix
    and ``log |R_ii|: (B, k)`` float64 (:func:`qr_log`). Compiled as one graph, the QR and
    the bookkeeping cost no eager dispatch per step (BENCHMARKS.md, "dynamics").
    """

    def whole(x: Tensor, Q: Tensor, bad: Tensor):
        fx, Y = step(x, Q)
        ok = torch.isfinite(fx).all(-1) & torch.isfinite(Y).flatten(1).all(-1)
        frozen = bad | ~ok
        x_next = torch.where(frozen[:, None], x, fx)
        Y = torch.where(frozen[:, None, None], Q, Y)
        Qn, logr = qr_log(Y, zero_tol)
        return fx, x_next, Qn, logr, ok

    return whole


def make_whole_step(
    F: Map, tangent: str, compile: CompileMode, total_steps: int, zero_tol: float, owner: Any
) -> WholeStep:
    """The compiled whole QR step (``compile=True``) or its auto switch (``"auto"``), cached
    per ``owner``, mode, ``zero_tol`` and shapes; ``tangent`` is "jvp", "vjp2" or "fastest"
    (compiled: :data:`~sadyn.dynamics.tangent.COMPILED_DEFAULT`)."""
    mode = COMPILED_DEFAULT if tangent == "fastest" else tangent
    if compile is True:
        eager = whole_qr_step(eager_tangent_step(F, mode), zero_tol)
        fn: Any = compiled_call(eager, ("qr", mode, float(zero_tol)), owner)
        fn.compiled = True  # type: ignore[attr-defined]
        fn.product = None  # type: ignore[attr-defined]
    else:  # "auto": eager ("fastest" measures jvp against vjp2) until the run proves long
        product = eager_tangent_step(F, tangent)
        whole = whole_qr_step(eager_tangent_step(F, mode), zero_tol)
        fn = AutoSwitch(
            whole_qr_step(product, zero_tol),
            lambda: compiled_call(whole, ("qr", mode, float(zero_tol)), owner),
            total_steps,
        )
        fn.product = product  # type: ignore[attr-defined]
    fn.mode = mode  # type: ignore[attr-defined]
    return fn


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
    differentiable: bool = False,
    whole: WholeStep | None = None,
) -> LyapunovResult:
    """The QR loop, on batched tensors (``x: (B, n)``, ``Q: (B, n, k)``).

    With ``whole`` (:func:`whole_qr_step`, possibly compiled; only for ``reortho_every=1``
    and not ``differentiable``) each step is that one call instead of ``step`` + QR.

    First the transient loop: ``transient`` steps evolve and re-orthonormalise the tangents
    without accumulating (ChaosTools' ``Ttr``), ending with a QR. Then the accumulating loop:
    ``steps`` steps, a QR every ``reortho_every`` steps and at the last one, so the stretches
    cover exactly ``steps`` steps.

    Returns:
        a batched :class:`LyapunovResult` (``exponents (B, k)``, ``local (B, R, k) | None``,
        ``final_state (B, n)``, ``tangents (B, n, k)``; ``info`` holds ``nonfinite_rows`` and
        ``nonfinite_step``); ``method`` is left for the caller to set.
    """
    guard = NonFiniteGuard(x, name, batched, on_nonfinite)
    bar = iter(progress_bar(range(transient + steps), transient + steps, show_progress, name))

    def advance(t: int, x: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        next(bar, None)
        x_next, Y = step(x, Q)
        return guard.admit(t, x, Q, x_next, Y)

    if whole is not None:
        if reortho_every != 1 or differentiable:
            raise ValueError("the whole-step path needs reortho_every=1, not differentiable")
        return _benettin_whole(whole, x, Q, steps, transient, keep_local, zero_tol, guard, bar)

    # -- transient: evolve, orthonormalise, accumulate nothing
    for t in range(transient):
        x, Y = advance(t, x, Q)
        qr_now = (t + 1) % reortho_every == 0 or t == transient - 1
        Q = qr_log(Y, zero_tol, differentiable=differentiable)[0] if qr_now else Y
        if guard.all_bad:
            break

    # -- accumulation: the exponents are the mean of log |R_ii| over `steps` steps
    acc = torch.zeros(Q.shape[0], Q.shape[-1], dtype=torch.float64, device=x.device)
    local: list[Tensor] = []
    since_qr = 0
    for t in range(steps):
        if guard.all_bad:
            break
        x, Y = advance(transient + t, x, Q)
        since_qr += 1
        if since_qr == reortho_every or t == steps - 1:
            Q, logr = qr_log(Y, zero_tol, differentiable=differentiable)
            acc = acc + logr
            if keep_local:
                local.append(logr / since_qr)
            since_qr = 0
        else:
            Q = Y

    return _result(acc, local, x, Q, steps, zero_tol, guard)


def _benettin_whole(
    whole: WholeStep,
    x: Tensor,
    Q: Tensor,
    steps: int,
    transient: int,
    keep_local: bool,
    zero_tol: float,
    guard: NonFiniteGuard,
    bar: Any,
) -> LyapunovResult:
    """:func:`benettin` with one whole step per call (QR every step)."""
    acc = torch.zeros(Q.shape[0], Q.shape[-1], dtype=torch.float64, device=x.device)
    local: list[Tensor] = []
    for t in range(transient + steps):
        if guard.all_bad:
            break
        next(bar, None)
        fx, x, Q, logr, ok = whole(x, Q, guard.bad)
        guard.note(t, ok, fx)
        if t >= transient:
            acc = acc + logr
            if keep_local:
                local.append(logr)
    return _result(acc, local, x, Q, steps, zero_tol, guard)


def _result(
    acc: Tensor,
    local: list[Tensor],
    x: Tensor,
    Q: Tensor,
    steps: int,
    zero_tol: float,
    guard: NonFiniteGuard,
) -> LyapunovResult:
    """The exponents ``acc / steps`` (and the local ones kept, if any) as a result, NaN in the
    rows that went non-finite."""
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=x.device)
    return LyapunovResult(
        exponents=torch.where(guard.bad[:, None], nan, acc / steps),
        local=torch.where(guard.bad[:, None, None], nan, torch.stack(local, dim=1))
        if local
        else None,
        final_state=guard.final_state(x),
        steps=steps,
        tangents=Q,
        zero_tol=zero_tol,
        info={"nonfinite_rows": sorted(guard.first), "nonfinite_step": dict(guard.first)},
    )


def _sort_largest_first(res: LyapunovResult) -> None:
    """Order the exponents largest first (``-inf`` last), permuting ``local`` and ``tangents``
    alike. At short horizons the QR sums from arbitrary start tangents need not come out
    ordered; asymptotically they do, and the sort is then the identity."""
    key = torch.where(torch.isnan(res.exponents), float("-inf"), res.exponents).detach()
    order = torch.argsort(key, dim=-1, descending=True, stable=True)
    res.exponents = res.exponents.gather(-1, order)
    if res.local is not None:
        res.local = res.local.gather(-1, order[:, None, :].expand_as(res.local))
    if res.tangents is not None:
        res.tangents = res.tangents.gather(-1, order[:, None, :].expand_as(res.tangents))


def _compiled_mode(tangent: str, compile: CompileMode) -> str:
    if tangent == "fastest":
        return COMPILED_DEFAULT if compile is not False else "jvp"
    return tangent


def initial_tangents(
    X: Tensor, k: int | None, q0: Tensor | None, generator: torch.Generator | None, batched: bool
) -> Tensor:
    """Orthonormal ``(B, n, k)`` start tangents: ``q0`` orthonormalised, or random."""
    b, n = X.shape
    if q0 is not None:
        q = as_vectors(q0, X, "q0")
        q = q if batched else q[None]
        if q.ndim != 3 or q.shape[:2] != (b, n) or (k is not None and q.shape[-1] != k):
            raise ShapeError(f"q0 must be (n, k) (batched: (B, n, k)), got {tuple(q.shape)}")
        if not bool(torch.isfinite(q).all()):
            raise ShapeError("q0 has NaN/inf entries")
        return torch.linalg.qr(q)[0]
    k = n if k is None else check_int(k, "k")
    if not 1 <= k <= n:
        raise ShapeError(f"k must lie in 1..n = {n}, got {k}")
    return random_orthonormal(b, n, k, X, default_generator(generator))


@attention_safe
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
    tangent: TangentMode = "auto",
    zero_tol: float | None = None,
    on_nonfinite: OnNonFinite = "warn",
    progress: bool = True,
    compile: CompileMode = False,
    differentiable: bool = False,
) -> LyapunovResult:
    """The ``k`` largest Lyapunov exponents by the QR (Benettin) method.

    ``lambda_i = (1/steps) sum_t log |R_t[i, i]|`` over the steps after the transient, where
    ``Q_{t+1} R_{t+1} = J(x_t) Q_t``. Converges (slowly, ~1/steps) to the asymptotic
    exponents; at short horizons it is *not* the paper's finite-time exponent, which is
    :func:`~sadyn.dynamics.finite_time_lyapunov`.

    Args:
        f, x0: the map and the initial state ``(n,)`` (batched: ``(B, n)``; a NumPy array
            is converted).
        steps: steps averaged over (after the transient).
        k: number of exponents (None: all ``n``).
        transient: steps run first (state and tangents evolve, nothing accumulates).
        reortho_every: steps between QR decompositions (ChaosTools' ``dt``); larger is cheaper
            but lets the tangents collapse onto the top direction (and overflow in float32).
        generator: seeds the random initial tangents.
        keep_local: keep the per-QR local exponents in ``result.local``.
        q0: explicit initial tangents ``(n, k)`` / ``(B, n, k)`` (orthonormalised).
        tangent: "jvp" (matrix-free: one batched forward-mode pass per step), "vjp2" (the same
            product as a vmapped VJP-of-VJP), "dense" (``J`` materialised by reverse mode:
            O(n^2); the Jacobians of up to 256 coming steps in one vmapped call,
            :class:`~sadyn.dynamics.tangent.DenseLookahead`), "fastest" (jvp or vjp2, timed
            on the first steps), or
            "auto": dense for ``n <= 64``, or ``n <= 96`` with ``k >= n/2`` (measured
            crossover, BENCHMARKS.md), else "fastest" (compiled: vjp2).
        zero_tol: ``|R_ii| <= zero_tol * max_j ||(JQ)_j||`` counts as an exact zero (-inf);
            default ``16 sqrt(n) eps(dtype)``; 0 keeps every finite stretch. Returned in
            ``result.zero_tol``.
        on_nonfinite: "warn" (NaN exponents + :class:`NonFiniteStateWarning`) or "raise"
            (:class:`~sadyn.errors.DivergenceError`).
        progress: show a progress bar (on a terminal).
        compile: ``torch.compile`` the step (jvp/vjp2 only): True, False, or "auto"
            (compile when the eager run is projected to last over ~2 minutes: compilation
            costs seconds to a minute per shape on CPU; see BENCHMARKS.md for the
            break-even). With ``reortho_every=1`` and not ``differentiable`` the whole QR
            step is one graph (:func:`whole_qr_step`: product, QR, sign fix, logs, NaN
            freeze); otherwise the tangent product alone. Compiled code is cached per map
            object, mode, ``zero_tol`` and shape.
        differentiable: keep the autograd graph through the trajectory and the tangents (for
            training penalties, "gradient flossing"); stretches are floored at 1e-30 instead of
            giving ``-inf``.
    Returns:
        a :class:`LyapunovResult`.
    """
    steps = check_int(steps, "steps", 1)
    transient = check_int(transient, "transient", 0)
    reortho_every = check_int(reortho_every, "reortho_every", 1)
    check_on_nonfinite(on_nonfinite)
    if zero_tol is not None:
        zero_tol = check_positive(zero_tol, "zero_tol", allow_zero=True)
    F, X = as_batched(f, x0, batched, "x0")
    X = X.detach()
    Q = initial_tangents(X, k, q0, generator, batched)
    tangent = pick_tangent(tangent, X.shape[-1], Q.shape[-1])
    # the rounding level of one step's product J q, the same rule as finite_time_lyapunov's
    ztol = rounding_zero_tol(X.dtype, X.shape[-1]) if zero_tol is None else zero_tol
    total = transient + steps
    step, whole = _qr_step(F, f, tangent, compile, total, ztol, reortho_every, differentiable)
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        res = benettin(
            step,
            X,
            Q,
            steps,
            transient=transient,
            reortho_every=reortho_every,
            keep_local=keep_local,
            zero_tol=ztol,
            on_nonfinite=on_nonfinite,
            show_progress=progress,
            batched=batched,
            differentiable=differentiable,
            whole=whole,
        )
    _sort_largest_first(res)
    _label(res, step, whole, tangent, compile)
    _warn_exact_zeros(res, ztol)
    return res.unbatch(batched)


def _warn_exact_zeros(res: LyapunovResult, ztol: float) -> None:
    """One :class:`ExactZeroWarning` when directions were declared exact zeros (-inf)."""
    zeros = int(torch.isneginf(res.exponents).sum())
    if zeros:
        warnings.warn(
            f"lyapunov_spectrum: {zeros} exponent(s) are -inf: directions with a one-step "
            f"stretch at or below zero_tol = {ztol:.2e} times that step's largest were "
            "declared exact zeros (pass zero_tol=0 to keep every stretch)",
            ExactZeroWarning,
            stacklevel=3,
        )


def _qr_step(
    F: Map,
    owner: Any,
    tangent: str,
    compile: CompileMode,
    total_steps: int,
    zero_tol: float,
    reortho_every: int,
    differentiable: bool,
) -> tuple[Any, WholeStep | None]:
    """The step :func:`benettin` runs: ``(step, whole)``, where ``whole`` (the compiled whole
    QR step, also returned as ``step``) is None unless compiling a QR-every-step run."""
    if compile is not False and tangent != "dense" and reortho_every == 1 and not differentiable:
        if compile not in (True, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        whole = make_whole_step(F, tangent, compile, total_steps, zero_tol, owner=owner)
        return whole, whole
    step = make_tangent_step(
        F, tangent, compile, total_steps, owner=owner, lookahead=not differentiable
    )
    return step, None


def _label(res: LyapunovResult, step: Any, whole: Any, tangent: str, compile: CompileMode) -> None:
    """Record in ``res`` the tangent product that ran (``method``) and whether compiled."""
    mode = getattr(step, "mode", None)
    if whole is not None and not whole.compiled:
        mode = getattr(whole.product, "mode", mode)
    res.method = f"qr-{mode or _compiled_mode(tangent, compile)}"
    res.info["compiled"] = bool(getattr(step, "compiled", compile is True and tangent != "dense"))
