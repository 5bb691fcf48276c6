"""Sudoku metrics, as in the AKOrN reference evaluation (``reference/akorn.md`` §1.6).

All functions take ``pred`` as predicted digits (B, 81) long in 1..9, or logits (B, 81, 9) (the
argmax class c is digit c + 1), and ``quizzes`` / ``solutions`` as (B, 81) digits (quiz 0 =
blank). torch tensors (any device) and numpy arrays are accepted; results are torch tensors or
Python floats.
"""

from __future__ import annotations

import numpy as np
import torch

from sadyn.errors import ShapeError
from sadyn.sudoku.board import UNITS

_UNITS = torch.from_numpy(UNITS)


def _tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def as_digits(pred: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Predicted digits (B, 81) long: ``pred`` itself, or argmax + 1 of logits (B, 81, 9)."""
    p = _tensor(pred)
    if p.ndim == 3 and p.shape[1:] == (81, 9):
        return p.argmax(dim=-1) + 1
    if p.ndim != 2 or p.shape[1] != 81:
        raise ShapeError(
            f"pred: expected digits (B, 81) or logits (B, 81, 9), got {tuple(p.shape)}"
        )
    return p.long()


def _boards(
    x: torch.Tensor | np.ndarray, name: str, batch: int, device: torch.device
) -> torch.Tensor:
    t = _tensor(x)
    if tuple(t.shape) != (batch, 81):
        raise ShapeError(f"{name}: expected shape ({batch}, 81), got {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.long)


def board_correct(pred, quizzes, solutions) -> torch.Tensor:
    """(B,) bool: every *blank* cell of the quiz is predicted right. Given cells are not checked
    (a model that overwrites a given still counts), exactly as AKOrN's compute_board_accuracy."""
    p = as_digits(pred)
    q = _boards(quizzes, "quizzes", len(p), p.device)
    s = _boards(solutions, "solutions", len(p), p.device)
    return ((p == s) | (q != 0)).all(dim=1)


def board_accuracy(pred, quizzes, solutions) -> float:
    """Fraction of boards with every blank cell right (see :func:`board_correct`)."""
    correct = board_correct(pred, quizzes, solutions)
    return float(correct.float().mean()) if len(correct) else float("nan")


def cell_accuracy(pred, quizzes, solutions) -> float:
    """Fraction of blank cells predicted right, pooled over the batch (givens excluded)."""
    p = as_digits(pred)
    q = _boards(quizzes, "quizzes", len(p), p.device)
    s = _boards(solutions, "solutions", len(p), p.device)
    blank = q == 0
    total = int(blank.sum())
    return float(((p == s) & blank).sum()) / total if total else float("nan")


def unit_violations(pred) -> torch.Tensor:
    """(B,) long: the number of the 27 units (9 rows, 9 columns, 9 boxes) of each predicted grid
    that are not a permutation of 1..9, i.e. that repeat some digit. 0 iff the grid is a valid
    Sudoku solution (whatever the quiz)."""
    p = as_digits(pred)
    cells = p[:, _UNITS.to(p.device)]  # (B, 27, 9)
    onehot = torch.nn.functional.one_hot(cells.clamp(0, 9), 10)[..., 1:]  # (B, 27, 9, 9)
    counts = onehot.sum(dim=2)  # (B, 27, 9): occurrences of digits 1..9 in each unit
    return (counts != 1).any(dim=2).sum(dim=1)


def violation_rate(pred) -> float:
    """Constraint-violation rate of the predicted grids: violated units / (27 B).

    A unit (row, column or box) is violated when its 9 predicted digits are not all different.
    The predicted grid includes the given cells as predicted (no copying of the givens), so the
    rate is 0 exactly when every prediction is a valid Sudoku grid.
    """
    v = unit_violations(pred)
    return float(v.sum()) / (27 * len(v)) if len(v) else float("nan")
