"""Minimal puzzles by removal: the fallback hard pool when Royle's 17-clue list is absent.

A random complete grid loses its cells one at a time in random order; a removal is kept only if
the puzzle stays uniquely solvable (exact solver, counting to 2). A removal that fails once fails
for good (fewer clues never remove solutions), so one pass yields a *minimal* puzzle: no given can
be dropped without losing uniqueness. These have about 22-27 givens (mean ~24), so an RRN-style
set built on them is easier than the real one (whose base puzzles have 17).
"""

from __future__ import annotations

import numpy as np

from sadyn.progress import progress as progress_bar
from sadyn.sudoku.board import CELLS
from sadyn.sudoku.grids import random_grids
from sadyn.sudoku.solver import solve


def minimize(solution: np.ndarray, order: np.ndarray) -> np.ndarray:
    """One removal pass over ``order`` (a permutation of the 81 cells) keeping uniqueness.

    solution: (81,) complete grid. Returns the minimal quiz (81,) uint8, 0 = blank.
    """
    quiz = np.array(solution, dtype=np.uint8).reshape(CELLS)
    for cell in order:
        digit = quiz[cell]
        quiz[cell] = 0
        if solve(quiz, 2).count != 1:
            quiz[cell] = digit
    return quiz


def minimal_puzzles(
    n: int, rng: np.random.Generator, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Make ``n`` random minimal puzzles. Returns (quizzes, solutions), each (n, 81) uint8."""
    solutions = random_grids(n, rng)
    orders = rng.permuted(np.tile(np.arange(CELLS), (n, 1)), axis=1)
    bar = progress_bar(range(n), desc="minimal puzzles", unit="puzzle", enable=progress)
    quizzes = np.stack([minimize(solutions[i], orders[i]) for i in bar]) if n else solutions.copy()
    return quizzes, solutions
