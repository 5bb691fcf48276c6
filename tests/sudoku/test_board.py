import numpy as np
import pytest

from sadyn.sudoku import board
from sadyn.sudoku.grids import apply_relabel, random_grids, random_relabel


def test_unit_tables_are_a_sudoku():
    # 27 units of 9 distinct cells; every cell in exactly one row, one column and one box
    assert board.UNITS.shape == (27, 9)
    assert all(len(set(u)) == 9 for u in board.UNITS.tolist())
    membership = np.zeros((81, 27), dtype=int)
    for u, cells in enumerate(board.UNITS):
        membership[cells, u] += 1
    assert (membership.sum(axis=1) == 3).all()
    for i in range(81):
        assert set(np.flatnonzero(membership[i])) == set(board.CELL_UNITS[i])
        peers = set(board.PEERS[i].tolist())
        assert len(peers) == 20 and i not in peers
        # peers are exactly the cells sharing a row, column or box
        r, c = divmod(i, 9)
        expect = {
            j
            for j in range(81)
            if j != i
            and (j // 9 == r or j % 9 == c or (j // 27 == i // 27 and j % 9 // 3 == c // 3))
        }
        assert peers == expect
        for k in range(3):
            assert set(board.UNIT_OTHERS[i, k]) == set(board.UNITS[board.CELL_UNITS[i, k]]) - {i}


def test_valid_solutions_accepts_grids_and_rejects_swaps():
    grids = random_grids(50, np.random.default_rng(0))
    assert board.valid_solutions(grids).all()
    broken = grids.copy()
    broken[:, [0, 1]] = broken[:, [1, 0]]  # swap two cells of row 1: the columns break
    assert not board.valid_solutions(broken).any()
    with_blank = grids.copy()
    with_blank[:, 40] = 0
    assert not board.valid_solutions(with_blank).any()
    assert board.consistent(with_blank).all()


def test_consistent_and_agrees():
    grids = random_grids(10, np.random.default_rng(1))
    quiz = np.where(np.random.default_rng(2).random(grids.shape) < 0.5, grids, 0)
    assert board.agrees(quiz, grids).all()
    assert board.consistent(quiz).all()
    bad = quiz.copy()
    given = int(np.flatnonzero(bad[0])[0])
    bad[0, given] = bad[0, given] % 9 + 1
    assert board.agrees(bad, grids).tolist() == [False] + [True] * 9
    dup = np.zeros((1, 81), dtype=np.uint8)
    dup[0, [0, 8]] = 5  # same row
    assert not board.consistent(dup)[0]


def test_string_round_trip_and_shapes():
    grid = random_grids(1, np.random.default_rng(3))[0]
    quiz = np.where(np.arange(81) % 3 == 0, grid, 0).astype(np.uint8)
    assert (board.from_string(board.to_string(quiz)) == quiz).all()
    assert (board.from_string(board.to_string(quiz).replace("0", ".")) == quiz).all()
    with pytest.raises(ValueError):
        board.from_string("12x" + "0" * 78)
    assert board.as_boards(quiz.reshape(9, 9)[None]).shape == (1, 81)
    with pytest.raises(ValueError):
        board.as_boards(np.zeros((2, 80)))
    assert board.pretty(quiz).count("\n") == 10


def test_givens_histogram_counts_every_puzzle():
    q = np.zeros((4, 81), dtype=np.uint8)
    q[0, :17] = 1
    q[1, :17] = 1
    q[2, :30] = 1
    assert board.givens_histogram(q) == {0: 1, 17: 2, 30: 1}


def test_relabel_is_a_per_board_bijection():
    rng = np.random.default_rng(4)
    grids = random_grids(20, rng)
    quiz = np.where(rng.random(grids.shape) < 0.4, grids, 0).astype(np.uint8)
    new, perms = random_relabel(quiz, rng)
    assert (perms[:, 0] == 0).all()
    assert (np.sort(perms[:, 1:], axis=1) == np.arange(1, 10)).all()
    assert ((new == 0) == (quiz == 0)).all()
    assert board.valid_solutions(apply_relabel(grids, perms)).all()
    assert board.agrees(new, apply_relabel(grids, perms)).all()
    assert len({tuple(p) for p in perms.tolist()}) > 15  # independent per board
