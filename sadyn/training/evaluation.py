"""Board and cell accuracy of a model at several loop counts, for evaluation during training.

The layer rules keep :mod:`sadyn.training` from importing :mod:`sadyn.probes`, so this is the
plain (no voting) core of :func:`sadyn.probes.accuracy.evaluate`: one run per batch up to the
largest loop count, reading out at each requested count (``forward(readout_at=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sadyn.sudoku import PuzzleSet
from sadyn.sudoku.metrics import board_correct


@torch.no_grad()
def accuracy_at_steps(
    model: nn.Module,
    puzzles: PuzzleSet,
    steps: Sequence[int],
    *,
    batch_size: int = 500,
    seed: int = 0,
    deterministic: bool = False,
    device: torch.device | str = "cpu",
) -> dict[str, dict[int, float]]:
    """``{"board_accuracy": {T: acc}, "cell_accuracy": {T: acc}}`` over ``puzzles``.

    Board accuracy: every blank cell right (givens not checked, as the reference). Cell
    accuracy: fraction of blank cells right, pooled over boards. The initial-state noise comes
    from a generator seeded with ``seed`` (same seed, same numbers).
    """
    grid = sorted(set(int(t) for t in steps))
    quizzes, solutions = (t.to(device) for t in puzzles.to_torch())
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    boards = dict.fromkeys(grid, 0)
    cells = dict.fromkeys(grid, 0)
    blanks = int((quizzes == 0).sum())
    for lo in range(0, len(quizzes), batch_size):
        q, s = quizzes[lo : lo + batch_size], solutions[lo : lo + batch_size]
        out = model(q, grid[-1], generator=gen, deterministic=deterministic, readout_at=grid)
        for t in grid:
            pred = out.logits_at[t].argmax(-1) + 1
            boards[t] += int(board_correct(pred, q, s).sum())
            cells[t] += int(((pred == s) & (q == 0)).sum())
    model.train(was_training)
    n = len(quizzes)
    return {
        "board_accuracy": {t: boards[t] / n for t in grid},
        "cell_accuracy": {t: cells[t] / max(blanks, 1) for t in grid},
    }
