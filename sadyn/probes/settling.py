"""Does the loop settle? The relative state change of every loop step.

A loop ``X_t = step(X_{t-1}, C)`` that converges has ``||X_t - X_{t-1}|| / ||X_{t-1}||`` going
to 0; one that keeps a steady change is on a cycle or a drift. Either can be read correctly:
a drift the readout does not see (AKOrN's rotating oscillators) changes nothing, one it does
see makes the answer depend on the depth (the paper's "more loops help" then fails).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sadyn.errors import DivergenceError
from sadyn.probes.stepmap import analysis_mode, rollout

__all__ = ["step_changes"]


def step_changes(
    model: nn.Module,
    puzzles: Any,
    steps: int,
    *,
    seed: int = 0,
    deterministic: bool = False,
) -> Tensor:
    """``||X_t - X_{t-1}||_F / ||X_{t-1}||_F`` for every loop step ``t = 1..steps`` and puzzle,
    keeping one state rather than the trajectory (memory O(B S D) at any horizon).

    Args:
        model: any LoopedModel.
        puzzles: ``(B, 81)`` digits (or a ``PuzzleSet``).
        steps: T >= 1.
        seed, deterministic: the initial state, as :func:`sadyn.probes.stepmap.rollout` (the
            same seed gives the same ``X_0``).

    Returns:
        ``(steps, B)``: row ``t - 1`` is step ``t``.

    Raises:
        DivergenceError: the trajectory became non-finite (the message names the step).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    start = rollout(model, puzzles, 0, seed=seed, deterministic=deterministic)
    cond, x = start.cond, start.state(0)
    out = x.new_empty(steps, start.batch)
    with torch.no_grad(), analysis_mode(model):
        for t in range(steps):
            nxt = model.step(x, cond)
            if not torch.isfinite(nxt).all():
                raise DivergenceError(f"the loop produced non-finite states at step {t + 1}")
            out[t] = (nxt - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
            x = nxt
    return out
