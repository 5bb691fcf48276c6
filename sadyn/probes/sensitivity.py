"""Sensitivity to initial conditions (paper B.5.4, Fig. S.5).

Protocol: run the loop ``warmup`` steps from ``X_0`` (paper: 128) to get ``x_{t=0}``, perturb a
copy by ``ε ~ N(0, eps^2 I)`` (the paper writes ``N(0, 10^-3)`` without saying whether 1e-3 is
the variance or the std; ``eps_is`` picks, default std), run both ``steps`` more steps (paper:
10,000) and record the distance at ``records`` equally spaced times (paper: 300) in L1 (the
paper's) and L2. A few coordinates of both trajectories are kept for the Fig. S.5b/c traces.

The slope of ``ln ||X_t - X'_t||_2`` over the exponential phase (before the distance reaches a
tenth of its maximum, and above the floating-point floor) estimates the maximal Lyapunov
exponent per step: a cross-check of the Jacobian-based exponents that needs no derivatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sadyn.probes.stepmap import Rollout, analysis_mode, progress, to_numpy

__all__ = ["SensitivityProbe", "growth_rate", "sensitivity_probe"]


@dataclass
class SensitivityProbe:
    """Distance between a trajectory and a perturbed copy over time.

    Attributes:
        times: ``(R,)`` steps after the warm-up at which distances were recorded.
        l1: ``(R, B)`` ``||X_t - X'_t||_1``; l2: ``(R, B)`` ``||X_t - X'_t||_2``.
        traces: ``(R, 2, B, C)`` the first C coordinates of both trajectories.
        growth: ``(B,)`` fitted exponential rate per step (NaN if no usable phase).
        warmup, eps, eps_is, seed: the protocol's settings.
    """

    times: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    traces: np.ndarray
    growth: np.ndarray
    warmup: int
    eps: float
    eps_is: str
    seed: int

    def summary(self) -> dict[str, Any]:
        g = self.growth[np.isfinite(self.growth)]
        return {
            "l1_initial_median": float(np.median(self.l1[0])),
            "l1_final_median": float(np.median(self.l1[-1])),
            "growth_rate_median": float(np.median(g)) if g.size else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "warmup": self.warmup,
            "eps": self.eps,
            "eps_is": self.eps_is,
            "seed": self.seed,
            "times": self.times.tolist(),
            "l1": self.l1.tolist(),
            "l2": self.l2.tolist(),
            "traces": self.traces.tolist(),
            "growth": [None if not np.isfinite(g) else float(g) for g in self.growth],
            "summary": self.summary(),
        }


def growth_rate(times: np.ndarray, dist: np.ndarray, floor: float | np.ndarray) -> np.ndarray:
    """Per-column slope of ``ln dist`` against ``times`` over the exponential phase.

    Args:
        times: ``(R,)``; dist: ``(R, B)``; floor: distances at or below it are numerical
            noise and are left out (scalar or ``(B,)``).

    The phase runs from the start to the first record at or above a tenth of the column's
    maximum when that maximum comes later (growth), or over every record above the floor
    when it does not (decay). NaN where fewer than 3 records qualify.
    """
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), dist.shape[1:])
    out = np.full(dist.shape[1], np.nan)
    for b in range(dist.shape[1]):
        d = dist[:, b]
        peak = int(np.argmax(d))
        end = len(d)
        if peak > 0:
            end = int(np.argmax(d >= 0.1 * d[peak])) + 1
        use = np.arange(end)
        use = use[(d[use] > floor[b]) & np.isfinite(d[use])]
        if use.size >= 3:
            out[b] = np.polyfit(times[use].astype(np.float64), np.log(d[use]), 1)[0]
    return out


def sensitivity_probe(
    model: nn.Module,
    run: Rollout,
    *,
    warmup: int = 128,
    steps: int = 10_000,
    records: int = 300,
    eps: float = 1e-3,
    eps_is: str = "std",
    coords: int = 8,
    seed: int = 0,
    show_progress: bool = True,
) -> SensitivityProbe:
    """Run every puzzle's loop and a perturbed copy, recording their distance.

    Args:
        model: any LoopedModel.
        run: a :class:`Rollout`; its ``X_0`` and ``C`` start the warm-up.
        warmup: steps before the perturbation.
        steps: steps after it.
        records: number of equally spaced record times over ``0..steps`` (duplicates merged).
        eps: perturbation size; ``eps_is`` is ``"std"`` or ``"variance"``.
        coords: coordinates of each trajectory kept as traces.
        seed: seeds the perturbation.
    """
    if eps_is not in ("std", "variance"):
        raise ValueError(f"eps_is must be 'std' or 'variance', got {eps_is!r}")
    if steps < 1 or records < 2 or warmup < 0:
        raise ValueError("need steps >= 1, records >= 2, warmup >= 0")
    std = eps if eps_is == "std" else float(np.sqrt(eps))
    times = np.unique(np.linspace(0, steps, records).round().astype(np.int64))
    cond = run.cond
    b = run.batch
    cond2 = torch.cat([cond, cond])
    x = run.state(0)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    l1, l2, traces = [], [], []
    with torch.no_grad(), analysis_mode(model):
        for _ in progress(range(warmup), enable=show_progress, desc="warm-up"):
            x = model.step(x, cond)
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * std
        pair = torch.cat([x, x + noise])
        floor = to_numpy(100 * torch.finfo(x.dtype).eps * x.flatten(1).norm(dim=1))
        nxt = 0
        for t in progress(range(steps + 1), enable=show_progress, desc="sensitivity"):
            if t == times[nxt]:
                diff = (pair[:b] - pair[b:]).flatten(1)
                l1.append(to_numpy(diff.abs().sum(1)))
                l2.append(to_numpy(diff.norm(dim=1)))
                traces.append(to_numpy(pair.flatten(1)[:, :coords]).reshape(2, b, -1))
                nxt += 1
            if t < steps:
                pair = model.step(pair, cond2)
    l1_arr, l2_arr = np.stack(l1), np.stack(l2)
    return SensitivityProbe(
        times=times,
        l1=l1_arr,
        l2=l2_arr,
        traces=np.stack(traces),
        growth=growth_rate(times, l2_arr, floor),
        warmup=int(warmup),
        eps=float(eps),
        eps_is=eps_is,
        seed=int(seed),
    )
