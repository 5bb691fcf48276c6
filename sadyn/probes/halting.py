"""Adaptive halting, per board: stop a trajectory once more loops would not change its answer.

A rule (:class:`HaltRule`, parsed from ``"stable:4,valid,residual:1e-3"``) stops a row at the
first loop count ``t >= 1`` where any of its criteria holds:

- ``stable:m``: the decoded board (argmax of the readout) of ``X_t`` equals those of
  ``X_{t-1}, ..., X_{t-m}`` (unchanged for m steps);
- ``valid``: the decoded board of ``X_t`` is a valid Sudoku solution that keeps the givens
  (:func:`sadyn.probes.voting.board_conflicts` is 0);
- ``residual:tol``: the relative state residual ``||X_t - X_{t-1}|| / ||X_t||`` (Frobenius over
  the board's ``(S, D)`` state) is below ``tol``;
- ``any-valid``: one of the board's K restarts (a group of consecutive rows) decodes to a valid
  solution: every restart of that board stops at ``t``. For boards with a unique solution the
  verifier vote and the oracle are then decided (the valid restart is the solution and has no
  conflicts), so their accuracy equals that of running every restart to the budget, at a
  fraction of the loops; the other rules are scored on the shortened trajectories.
- ``confident:p``: a learned selector (:class:`sadyn.nn.selector.SelectorHead`) puts the
  probability that the decoded board of ``X_t`` is right at ``p`` or more: verifier-free.
- ``any-confident:p``: one of the board's K restarts is ``confident:p``: every restart of the
  board stops at ``t`` (the board-level, verifier-free form of ``any-valid``).

A halted row keeps ``X_t``: its answer at every larger loop budget is the answer at ``t``, and
its loop count is ``min(t, budget)``. :class:`HaltTracker` applies a rule step by step inside the
batched evaluation (:func:`sadyn.probes.accuracy.evaluate`); :func:`halting_steps` computes the
same halting steps from whole recorded trajectories (for tests and offline analysis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sadyn.errors import SadynError
from sadyn.probes.voting import board_conflicts


@dataclass(frozen=True)
class HaltRule:
    """Halting criteria (any of them stops a row); all None/False = never halt."""

    stable: int | None = None
    valid: bool = False
    residual: float | None = None
    any_valid: bool = False
    confident: float | None = None
    any_confident: float | None = None

    def __post_init__(self) -> None:
        for name in ("confident", "any_confident"):
            p = getattr(self, name)
            if p is not None and not 0 < p <= 1:
                raise SadynError(f"halting: {name.replace('_', '-')}:p needs 0 < p <= 1, got {p}")
        if self.stable is not None and self.stable < 1:
            raise SadynError(f"halting: stable:m needs m >= 1, got {self.stable}")
        if self.residual is not None and not (self.residual > 0 and math.isfinite(self.residual)):
            raise SadynError(f"halting: residual:tol needs a positive tol, got {self.residual}")

    @property
    def active(self) -> bool:
        return (
            self.stable is not None
            or self.valid
            or self.any_valid
            or self.residual is not None
            or self.needs_selector
        )

    @property
    def board_level(self) -> bool:
        """Whether one restart's halting stops the other restarts of its board."""
        return self.any_valid or self.any_confident is not None

    @property
    def needs_selector(self) -> bool:
        """Whether the rule reads a learned selector's score at every step."""
        return self.confident is not None or self.any_confident is not None

    @property
    def needs_decode(self) -> bool:
        """Whether the rule reads the decoded board at every step."""
        return self.stable is not None or self.valid or self.any_valid

    def __str__(self) -> str:
        parts = []
        if self.stable is not None:
            parts.append(f"stable:{self.stable}")
        if self.valid:
            parts.append("valid")
        if self.residual is not None:
            parts.append(f"residual:{self.residual:g}")
        if self.any_valid:
            parts.append("any-valid")
        if self.confident is not None:
            parts.append(f"confident:{self.confident:g}")
        if self.any_confident is not None:
            parts.append(f"any-confident:{self.any_confident:g}")
        return ",".join(parts) or "none"

    @classmethod
    def parse(cls, spec: str | HaltRule | None) -> HaltRule:
        """``None``/``"none"``, or comma-separated ``stable:M``, ``valid``, ``residual:TOL``,
        ``any-valid``, ``confident:P``, ``any-confident:P``."""
        if isinstance(spec, HaltRule):
            return spec
        if spec is None or spec.strip().lower() in ("", "none"):
            return cls()
        stable, valid, residual, any_valid = None, False, None, False
        confident = any_confident = None
        for item in (s.strip() for s in spec.split(",")):
            name, _, value = item.partition(":")
            try:
                if name == "stable":
                    stable = int(value)
                elif name == "valid" and not value:
                    valid = True
                elif name == "residual":
                    residual = float(value)
                elif name == "any-valid" and not value:
                    any_valid = True
                elif name == "confident":
                    confident = float(value)
                elif name == "any-confident":
                    any_confident = float(value)
                else:
                    raise ValueError(item)
            except ValueError:
                raise SadynError(
                    f"halting: cannot read {item!r} in {spec!r} "
                    "(expected stable:M, valid, residual:TOL, any-valid, confident:P, "
                    "any-confident:P, comma-separated, or none)"
                ) from None
        return cls(stable, valid, residual, any_valid, confident, any_confident)


class HaltTracker:
    """Step-by-step halting of ``rows`` trajectories under ``rule``.

    Call :meth:`update` once per loop count ``t = 0, 1, ...`` with the rows still running
    (``idx``), their decoded boards (when the rule needs them) and residuals; it returns the
    mask (over ``idx``) of rows that halt at ``t``. Rows never halt at ``t = 0``. group: the
    number of consecutive rows that are restarts of one board (``any-valid``).
    """

    def __init__(
        self, rule: HaltRule, rows: int, device: torch.device | str = "cpu", group: int = 1
    ):
        if group < 1:
            raise SadynError(f"halting: group must be >= 1, got {group}")
        self.rule = rule
        self.group = group
        self.prev: Tensor | None = None  # (rows, 81) decoded board at t-1
        self.same = torch.zeros(rows, dtype=torch.long, device=device)

    def update(
        self,
        t: int,
        idx: Tensor,
        *,
        pred: Tensor | None = None,
        quizzes: Tensor | None = None,
        residual: Tensor | None = None,
        norm: Tensor | None = None,
        log_prob: Tensor | None = None,
    ) -> Tensor:
        """idx: (A,) long rows still running; pred: (A, 81) decoded boards of X_t; quizzes:
        (A, 81); residual: (A,) ``||X_t - X_{t-1}||``; norm: (A,) ``||X_t||``; log_prob: (A,)
        a selector's log P(board right). -> (A,) bool."""
        rule = self.rule
        halt = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        if rule.needs_decode and pred is None:
            raise SadynError(f"halting rule {rule} needs the decoded boards")
        if rule.stable is not None:
            assert pred is not None
            if self.prev is None:
                self.prev = torch.zeros(self.same.shape[0], pred.shape[1], dtype=pred.dtype)
                self.prev = self.prev.to(pred.device)
            if t > 0:
                unchanged = (pred == self.prev[idx]).all(-1)
                self.same[idx] = torch.where(unchanged, self.same[idx] + 1, 0)
            self.prev[idx] = pred
            halt |= self.same[idx] >= rule.stable
        if t == 0:
            return torch.zeros_like(halt)
        if rule.valid or rule.any_valid:
            assert pred is not None and quizzes is not None
            valid = board_conflicts(pred, quizzes) == 0
            halt |= valid
            if rule.any_valid and bool(valid.any()):
                board = torch.div(idx, self.group, rounding_mode="floor")
                halt |= torch.isin(board, board[valid])
        if rule.residual is not None:
            if residual is None or norm is None:
                raise SadynError(f"halting rule {rule} needs the state residuals")
            halt |= residual <= rule.residual * norm
        if rule.needs_selector:
            if log_prob is None:
                raise SadynError(f"halting rule {rule} needs a learned selector's scores")
            if rule.confident is not None:
                halt |= log_prob >= math.log(rule.confident)
            if rule.any_confident is not None:
                sure = log_prob >= math.log(rule.any_confident)
                if bool(sure.any()):
                    board = torch.div(idx, self.group, rounding_mode="floor")
                    halt |= torch.isin(board, board[sure])
        return halt


def halting_steps(
    rule: HaltRule | str,
    *,
    preds: Tensor | None = None,
    quizzes: Tensor | None = None,
    states: Tensor | None = None,
    log_probs: Tensor | None = None,
    group: int = 1,
) -> Tensor:
    """The loop count at which each row halts, from whole trajectories.

    preds: (T+1, R, 81) decoded boards of X_0..X_T; quizzes: (R, 81); states: (T+1, R, S, D)
    (residual rule); log_probs: (T+1, R) a selector's log P(board right) (confident rules);
    group: consecutive rows per board (``any-valid``, ``any-confident``). Returns (R,) long:
    the first ``t`` in 1..T where the rule fires, else T.
    """
    rule = HaltRule.parse(rule)
    ref = next((a for a in (preds, states, log_probs) if a is not None), None)
    if ref is None:
        raise SadynError("halting_steps needs preds, states or log_probs")
    steps, rows = ref.shape[0] - 1, ref.shape[1]
    tracker = HaltTracker(rule, rows, ref.device, group=group)
    out = torch.full((rows,), steps, dtype=torch.long, device=ref.device)
    running = torch.ones(rows, dtype=torch.bool, device=ref.device)
    for t in range(steps + 1):
        idx = running.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        kw: dict[str, Tensor | None] = {}
        if preds is not None:
            kw["pred"] = preds[t, idx]
            kw["quizzes"] = None if quizzes is None else quizzes[idx]
        if states is not None and t > 0:
            kw["residual"] = (states[t, idx] - states[t - 1, idx]).flatten(1).norm(dim=1)
            kw["norm"] = states[t, idx].flatten(1).norm(dim=1)
        if log_probs is not None:
            kw["log_prob"] = log_probs[t, idx]
        stop = tracker.update(t, idx, **kw)
        out[idx[stop]] = t
        running[idx[stop]] = False
    return out
