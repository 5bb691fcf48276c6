import numpy as np
import pytest

from sadyn.sudoku import board
from sadyn.sudoku.grids import random_grids
from sadyn.sudoku.solver import solve, solve_many


def naive_count(quiz: np.ndarray, limit: int) -> int:
    """Reference: plain backtracking, no propagation (slow, obviously correct)."""
    g = [int(d) for d in quiz]
    peers = [set(p.tolist()) for p in board.PEERS]

    def rec(start: int) -> int:
        i = next((k for k in range(start, 81) if g[k] == 0), None)
        if i is None:
            return 1
        total = 0
        used = {g[p] for p in peers[i]}
        for d in range(1, 10):
            if d not in used:
                g[i] = d
                total += rec(i + 1)
                g[i] = 0
                if total >= limit:
                    break
        return total

    if not board.consistent(np.asarray(quiz)[None])[0]:
        return 0
    return min(rec(0), limit)


@pytest.mark.parametrize("seed", range(8))
def test_counts_match_naive_backtracking(seed):
    rng = np.random.default_rng(seed)
    grid = random_grids(1, rng)[0]
    quiz = np.where(rng.random(81) < 0.45, grid, 0).astype(np.uint8)
    expected = naive_count(quiz, 6)
    result = solve(quiz, limit=6)
    assert result.count == expected
    assert result.count >= 1  # the grid we blanked is a solution
    assert board.valid_solutions(result.solution[None])[0]
    assert board.agrees(quiz, result.solution)[0]


def test_unique_rectangle_has_exactly_two_solutions():
    # find a "deadly rectangle" a b / b a spanning two boxes: blanking it leaves 2 solutions
    rng = np.random.default_rng(5)
    for grid in random_grids(200, rng):
        g = grid.reshape(9, 9)
        hits = [
            (r1, r2, c1, c2)
            for r1 in range(9)
            for r2 in range(r1 + 1, 9)
            if r1 // 3 == r2 // 3
            for c1 in range(9)
            for c2 in range(c1 + 1, 9)
            if c1 // 3 != c2 // 3 and g[r1, c1] == g[r2, c2] and g[r1, c2] == g[r2, c1]
        ]
        if hits:
            r1, r2, c1, c2 = hits[0]
            quiz = g.copy()
            quiz[[r1, r1, r2, r2], [c1, c2, c1, c2]] = 0
            assert solve(quiz, 2).count == 2
            assert solve(quiz, 1).count == 1
            assert solve(quiz, 10).count == 2
            return
    pytest.fail("no deadly rectangle in 200 grids")


def test_contradictions_and_empty_grid():
    quiz = np.zeros(81, dtype=np.uint8)
    assert solve(quiz, 2).count == 2
    quiz[[0, 1]] = 7  # two 7s in row 1
    result = solve(quiz, 2)
    assert result.count == 0 and result.solution is None
    with pytest.raises(ValueError):
        solve(np.zeros(80), 2)
    with pytest.raises(ValueError):
        solve(np.zeros(81), 0)


def test_17_clue_puzzles_are_unique(royle_pool):
    quizzes = royle_pool.quizzes[:40]
    counts, sols, _ = solve_many(quizzes, 2)
    assert (counts == 1).all()
    assert board.valid_solutions(sols).all() and board.agrees(quizzes, sols).all()
    assert ((quizzes != 0).sum(axis=1) == 17).all()
    # removing a clue from a 17-clue puzzle always loses uniqueness (no 16-clue puzzle exists)
    q = quizzes[0].copy()
    q[np.flatnonzero(q)[0]] = 0
    assert solve(q, 2).count == 2


def test_singles_solvable_means_one_node(satnet_chunk):
    # a full grid with one blank needs no search
    q = satnet_chunk.solutions[0].copy()
    q[10] = 0
    r = solve(q)
    assert r.count == 1 and r.nodes == 1 and r.solution[10] == satnet_chunk.solutions[0][10]
