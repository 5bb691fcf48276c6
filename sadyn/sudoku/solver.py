"""Exact Sudoku solver for one puzzle: bitmasks, constraint propagation, MRV branching.

Each cell holds a 9-bit candidate mask (bit ``d-1`` for digit ``d``). Propagation applies the two
"singles" rules to a fixpoint:

* naked single: a cell with one candidate removes that digit from its 20 peers;
* hidden single: a digit with exactly one possible cell in a unit is placed there.

When propagation stalls, the solver branches on the blank cell with the fewest candidates
(minimum remaining values) and counts solutions depth-first, stopping at ``limit``. Counting to
2 is the uniqueness check. This is the plain-Python reference; :mod:`sadyn.sudoku.batch_solver`
does the same on many puzzles at once and is what generators and ``sadyn data stats`` use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sadyn.progress import progress as progress_bar
from sadyn.sudoku.board import CELLS, PEERS, UNITS

_ALL = 0x1FF
_PEERS = [tuple(int(p) for p in row) for row in PEERS]
_UNITS = [tuple(int(c) for c in unit) for unit in UNITS]


@dataclass(frozen=True)
class SolveResult:
    """count: solutions found, at most ``limit``; solution: (81,) uint8 the first one found (None
    when count is 0); nodes: search nodes visited (1 = solved by propagation alone)."""

    count: int
    solution: np.ndarray | None
    nodes: int


class _Contradiction(Exception):
    pass


def _assign(cand: list[int], cell: int, bit: int) -> None:
    """Place the digit ``bit`` in ``cell`` and propagate naked singles (in place)."""
    cand[cell] = bit
    stack = [cell]
    while stack:
        c = stack.pop()
        b = cand[c]
        for p in _PEERS[c]:
            m = cand[p]
            if m & b:
                m &= ~b
                if not m:
                    raise _Contradiction
                cand[p] = m
                if m & (m - 1) == 0:  # became a naked single
                    stack.append(p)


def _propagate(cand: list[int]) -> None:
    """Apply hidden singles (each followed by naked-single propagation) to a fixpoint."""
    changed = True
    while changed:
        changed = False
        for unit in _UNITS:
            once = twice = 0
            for c in unit:
                m = cand[c]
                twice |= once & m
                once |= m
            if once != _ALL:
                raise _Contradiction  # some digit has no place in this unit
            hidden = once & ~twice
            while hidden:
                bit = hidden & -hidden
                hidden ^= bit
                for c in unit:
                    if cand[c] & bit:
                        if cand[c] != bit:
                            _assign(cand, c, bit)
                            changed = True
                        break


def _initial(quiz: np.ndarray) -> list[int]:
    cand = [_ALL] * CELLS
    for cell, digit in enumerate(np.asarray(quiz).reshape(CELLS).tolist()):
        if digit:
            bit = 1 << (digit - 1)
            if not cand[cell] & bit:
                raise _Contradiction
            _assign(cand, cell, bit)
    return cand


def solve(quiz: np.ndarray, limit: int = 2) -> SolveResult:
    """Count the solutions of one puzzle, up to ``limit``.

    quiz: (81,) or (9, 9) ints in 0..9 (0 = blank). Returns a :class:`SolveResult`; the puzzle is
    proper (uniquely solvable) iff ``solve(quiz, 2).count == 1``.
    """
    if limit < 1:
        raise ValueError("limit must be >= 1")
    quiz = np.asarray(quiz)
    if quiz.size != CELLS or quiz.min(initial=0) < 0 or quiz.max(initial=0) > 9:
        raise ValueError("quiz must hold 81 digits in 0..9")
    solutions: list[list[int]] = []
    nodes = 0

    def search(cand: list[int]) -> None:
        nonlocal nodes
        nodes += 1
        try:
            _propagate(cand)
        except _Contradiction:
            return
        best, best_n = -1, 10
        for c, m in enumerate(cand):
            n = m.bit_count()
            if 1 < n < best_n:
                best, best_n = c, n
                if n == 2:
                    break
        if best < 0:  # every cell is a single: a solution (propagation checked every unit)
            solutions.append(cand)
            return
        m = cand[best]
        while m and len(solutions) < limit:
            bit = m & -m
            m ^= bit
            child = cand.copy()
            try:
                _assign(child, best, bit)
            except _Contradiction:
                continue
            search(child)

    try:
        root = _initial(quiz)
    except _Contradiction:
        return SolveResult(0, None, 1)
    search(root)
    if not solutions:
        return SolveResult(0, None, nodes)
    first = np.array([m.bit_length() for m in solutions[0]], dtype=np.uint8)
    return SolveResult(min(len(solutions), limit), first, nodes)


def solve_many(
    quizzes: np.ndarray, limit: int = 2, *, progress: bool = False, desc: str = "solving"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run :func:`solve` on each puzzle of a batch.

    quizzes: (n, 81) ints in 0..9. Returns counts (n,) int64 (at most ``limit``), solutions
    (n, 81) uint8 (the first solution found; zeros where there is none) and nodes (n,) int64.
    """
    quizzes = np.asarray(quizzes).reshape(-1, CELLS)
    counts = np.zeros(len(quizzes), dtype=np.int64)
    nodes = np.zeros(len(quizzes), dtype=np.int64)
    solutions = np.zeros((len(quizzes), CELLS), dtype=np.uint8)
    bar = progress_bar(quizzes, total=len(quizzes), desc=desc, unit="puzzle", enable=progress)
    for i, quiz in enumerate(bar):
        result = solve(quiz, limit)
        counts[i], nodes[i] = result.count, result.nodes
        if result.solution is not None:
            solutions[i] = result.solution
    return counts, solutions, nodes
