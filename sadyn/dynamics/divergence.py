"""Nearby trajectories: the two-trajectory largest exponent and the divergence curve.

Both use the map only (no derivatives), so they are independent checks of the tangent-based
methods. The two-trajectory method is ChaosTools.jl's ``lyapunov`` (Benettin 1976): a test
state at distance ``d0`` follows the reference, and is pulled back to distance ``d0`` (along
the current separation) only when the separation leaves ``[d0_lower, d0_upper]``; the
logarithms of the rescaling factors add up to ``lambda_1 * steps``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sadyn.dynamics._common import (
    Map,
    OnNonFinite,
    as_batched,
    as_vectors,
    check_int,
    check_on_nonfinite,
    check_positive,
    default_generator,
    progress_bar,
    randn_like_on,
    report_nonfinite,
    unbatch,
)
from sadyn.dynamics._common import (
    eps as machine_eps,
)
from sadyn.dynamics.attention import attention_safe
from sadyn.errors import ArgumentError, SadynError, ShapeError


def _advance(F: Map, X: Tensor, steps: int) -> Tensor:
    for _ in range(steps):
        X = F(X).detach()
    return X


@attention_safe
@torch.no_grad()
def max_lyapunov_two_trajectory(
    f: Map,
    x0: Tensor,
    steps: int,
    *,
    d0: float = 1e-9,
    transient: int = 0,
    generator: torch.Generator | None = None,
    align: int = 0,
    d0_lower: float | None = None,
    d0_upper: float | None = None,
    batched: bool = False,
    on_nonfinite: OnNonFinite = "warn",
    progress: bool = True,
) -> float | Tensor:
    """The largest Lyapunov exponent from two nearby trajectories (no derivatives).

    Args:
        f, x0: the map and the initial state ``(n,)`` (batched ``(B, n)``).
        steps: steps averaged over (after ``transient``).
        d0: initial separation, along a random unit direction drawn from ``generator``.
        transient: steps of the reference state alone before the test state is placed.
        align: steps the pair runs (with rescaling) before accumulating, so the separation
            turns toward the most expanding direction first; without it the estimate carries
            an O(1/steps) bias from the random initial direction (like the QR transient).
        d0_lower, d0_upper: rescaling band (default ``1e-3 d0`` and ``1e3 d0``, ChaosTools').
        on_nonfinite: "warn" (NaN + :class:`NonFiniteStateWarning`) or "raise".
    Returns:
        a float (batched: ``(B,)`` float64); ``-inf`` if the separation becomes exactly 0
        (the perturbation fell into an exact zero direction), NaN if a state became
        non-finite.
    Raises:
        SadynError: the separation cannot be resolved in the state's dtype: ``d0_lower``
            below ``100 eps ||x0||`` (1% error at the band edge); use float64 or a larger d0.
    """
    steps = check_int(steps, "steps", 1)
    transient = check_int(transient, "transient", 0)
    align = check_int(align, "align", 0)
    d0 = check_positive(d0, "d0")
    check_on_nonfinite(on_nonfinite)
    F, X = as_batched(f, x0, batched, "x0")
    X = X.detach()
    lower = 1e-3 * d0 if d0_lower is None else check_positive(d0_lower, "d0_lower")
    upper = 1e3 * d0 if d0_upper is None else check_positive(d0_upper, "d0_upper")
    if not 0 < lower <= d0 <= upper:
        raise ArgumentError(f"need 0 < d0_lower <= d0 <= d0_upper, got {lower}, {d0}, {upper}")
    X = _advance(F, X, transient)
    scale = float(X.norm(dim=-1).nan_to_num(0.0).max())
    floor = 100 * machine_eps(X.dtype) * max(1.0, scale)
    if lower < floor:
        raise SadynError(
            f"d0_lower = {lower:.3g} is below what {X.dtype} resolves at |x| = {scale:.3g} "
            f"(~{floor:.3g}): run the map in float64 or raise d0"
        )
    b = X.shape[0]
    u = randn_like_on(tuple(X.shape), X, default_generator(generator))
    u = u / u.norm(dim=-1, keepdim=True)
    Y = X + d0 * u
    acc = torch.zeros(b, dtype=torch.float64, device=X.device)
    bad = torch.zeros(b, dtype=torch.bool, device=X.device)
    total = align + steps
    for t in progress_bar(range(total), total, progress, "two-trajectory"):
        if t == align and align:
            acc.zero_()
            d = (Y - X).norm(dim=-1).to(torch.float64)
            live = d > 0
            factor = torch.where(live, d0 / d.clamp_min(1e-300), 1.0).to(X.dtype)
            Y = torch.where(live[:, None], X + (Y - X) * factor[:, None], Y)
        X, Y = F(X).detach(), F(Y).detach()
        new_bad = ~(torch.isfinite(X).all(-1) & torch.isfinite(Y).all(-1)) & ~bad
        if bool(new_bad.any()):
            rows = new_bad.nonzero().flatten().tolist()
            report_nonfinite("max_lyapunov_two_trajectory", rows, t + 1, batched, on_nonfinite)
            bad |= new_bad
            if bool(bad.all()):
                break
        diff = Y - X
        d = diff.norm(dim=-1).to(torch.float64)
        # d == 0 stays 0 (deterministic map): no rescaling, it ends as log 0 = -inf.
        out = ((d < lower) | (d > upper)) & ~bad & (d > 0)
        if bool(out.any()):
            acc = acc + torch.where(out, (d / d0).log(), 0.0)
            factor = torch.where(out, d0 / d, 1.0).to(X.dtype)
            Y = torch.where(out[:, None], X + diff * factor[:, None], Y)
    d = (Y - X).norm(dim=-1).to(torch.float64)
    lam = (acc + (d / d0).log()) / steps
    lam[bad] = float("nan")
    return lam if batched else float(lam[0])


@dataclass
class DivergenceResult:
    """Separation of a trajectory and a perturbed copy over time.

    Attributes:
        times: ``(R,)`` int64 steps at which the distance was recorded (0 included).
        distances: ``(R,)`` float64 (batched ``(B, R)``); NaN after a state turned non-finite.
        ord: the vector norm used (2: Euclidean, 1: the paper's L1).
    """

    times: Tensor
    distances: Tensor
    ord: float

    def growth_rate(self, start: int | None = None, stop: int | None = None) -> Tensor:
        """Least-squares slope of ``log distance`` against time over ``[start, stop]`` steps.

        Before saturation this estimates the largest Lyapunov exponent. Returns a 0-d tensor
        (batched ``(B,)``).
        """
        t = self.times.to(torch.float64)
        keep = torch.ones_like(t, dtype=torch.bool)
        if start is not None:
            keep &= t >= start
        if stop is not None:
            keep &= t <= stop
        if int(keep.sum()) < 2:
            raise ValueError("growth_rate needs at least two recorded times in the window")
        t = t[keep]
        y = self.distances[..., keep].log()
        tc = t - t.mean()
        return ((y - y.mean(-1, keepdim=True)) * tc).sum(-1) / (tc * tc).sum()


@attention_safe
@torch.no_grad()
def divergence(
    f: Map,
    x0: Tensor,
    eps: float,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    record_every: int = 1,
    ord: float = 2,
    batched: bool = False,
    direction: Tensor | None = None,
    on_nonfinite: OnNonFinite = "warn",
    progress: bool = True,
) -> DivergenceResult:
    """Distance between the trajectory of ``x0`` and that of ``x0 + eps * z`` over time.

    The paper's sensitivity test (App. B.5.4): ``z ~ N(0, I)`` (so ``eps`` is the standard
    deviation per coordinate), both copies iterated ``steps`` times without rescaling, the
    distance recorded every ``record_every`` steps (and at the last step). Exponential growth
    at rate ``lambda_1`` until saturation signals sensitivity to initial conditions.

    Args:
        f, x0: the map and the initial state ``(n,)`` (batched ``(B, n)``).
        eps: perturbation size (per-coordinate standard deviation, or the norm of
            ``direction``'s multiple when ``direction`` is given).
        steps: number of steps.
        record_every: recording stride.
        ord: vector norm of the distance (2 Euclidean; 1 as in the paper's Fig. S.5a).
        direction: a fixed perturbation direction ``(n,)``/``(B, n)`` instead of noise; it is
            normalised to unit norm and scaled by ``eps``.
        on_nonfinite: "warn" (NaN distances + :class:`NonFiniteStateWarning`) or "raise".
    """
    steps = check_int(steps, "steps", 0)
    record_every = check_int(record_every, "record_every", 1)
    eps = check_positive(eps, "eps", allow_zero=True)
    check_on_nonfinite(on_nonfinite)
    F, X = as_batched(f, x0, batched, "x0")
    X = X.detach()
    if direction is None:
        z = randn_like_on(tuple(X.shape), X, default_generator(generator))
    else:
        z = as_vectors(direction, X, "direction")
        if z.numel() != X.numel():
            raise ShapeError(f"direction must have shape {tuple(x0.shape)}, got {tuple(z.shape)}")
        z = z.reshape(X.shape)
        norm = z.norm(dim=-1, keepdim=True)
        if not bool((norm > 0).all() and torch.isfinite(norm).all()):
            raise ArgumentError("direction must be finite and nonzero")
        z = z / norm
    Y = X + eps * z
    b = X.shape[0]
    bad = torch.zeros(b, dtype=torch.bool, device=X.device)
    times, dists = [0], [_distance(X, Y, ord)]
    for t in progress_bar(range(1, steps + 1), steps, progress, "divergence"):
        X, Y = F(X).detach(), F(Y).detach()
        new_bad = ~(torch.isfinite(X).all(-1) & torch.isfinite(Y).all(-1)) & ~bad
        if bool(new_bad.any()):
            rows = new_bad.nonzero().flatten().tolist()
            report_nonfinite("divergence", rows, t, batched, on_nonfinite)
            bad |= new_bad
        if t % record_every == 0 or t == steps:
            d = _distance(X, Y, ord)
            d[bad] = float("nan")
            times.append(t)
            dists.append(d)
    distances = torch.stack(dists, dim=-1)
    return DivergenceResult(
        times=torch.tensor(times, dtype=torch.int64),
        distances=unbatch(distances, batched),
        ord=float(ord),
    )


def _distance(X: Tensor, Y: Tensor, ord: float) -> Tensor:
    return torch.linalg.vector_norm((Y - X).to(torch.float64), ord=ord, dim=-1)
