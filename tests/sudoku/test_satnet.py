import numpy as np
import pytest

from sadyn.errors import SadynError
from sadyn.sudoku import board, satnet
from sadyn.sudoku.grids import random_grids
from sadyn.sudoku.solver import solve_many


def park_pluck_reference(solution: np.ndarray, order: np.ndarray, quirk: bool) -> np.ndarray:
    """Plain-Python statement of the pluck pass: blank a cell when its digit stays a hidden
    single in its row, its column or its box (with ``quirk``, the box Park's code looks at:
    same band, stack = row % 3; a box not holding the cell never passes)."""
    g = solution.reshape(9, 9).astype(int).copy()

    def could_hold(r: int, c: int, v: int) -> bool:  # blank (r, c) could take v
        if g[r, c]:
            return False
        br, bc = r // 3 * 3, c // 3 * 3
        seen = set(g[r]) | set(g[:, c]) | set(g[br : br + 3, bc : bc + 3].ravel())
        return v not in seen

    for cell in order.tolist():
        r, c = divmod(cell, 9)
        v = g[r, c]
        g[r, c] = 0  # tentatively
        row_ok = not any(could_hold(r, j, v) for j in range(9) if j != c)
        col_ok = not any(could_hold(i, c, v) for i in range(9) if i != r)
        stack = r % 3 if quirk else c // 3
        box_cells = [(r // 3 * 3 + k // 3, stack * 3 + k % 3) for k in range(9)]
        if (r, c) in box_cells:
            box_ok = not any(could_hold(i, j, v) for i, j in box_cells if (i, j) != (r, c))
        else:
            box_ok = False
        if not (row_ok or col_ok or box_ok):
            g[r, c] = v
    return g.reshape(81)


@pytest.mark.parametrize("box_rule", ["park", "exact"])
def test_vectorized_pluck_matches_reference(box_rule):
    rng = np.random.default_rng(11)
    sols = random_grids(40, rng)
    order = rng.permuted(np.tile(np.arange(81), (40, 1)), axis=1)
    fast = satnet.pluck(sols, order, box_rule=box_rule)
    for i in range(40):
        ref = park_pluck_reference(sols[i], order[i], quirk=box_rule == "park")
        assert (fast[i] == ref).all()


def test_puzzles_unique_singles_solvable_and_agree(satnet_chunk):
    sample = satnet_chunk.subset(slice(0, 400))
    counts, found, nodes = solve_many(sample.quizzes, 2)
    assert (counts == 1).all()
    assert (found == sample.solutions).all()
    assert (nodes == 1).all()  # naked + hidden singles solve every one, no search
    assert board.valid_solutions(sample.solutions).all()


def test_givens_statistics_like_satnet(satnet_chunk):
    # SATNet's test split: 36.2 givens on average; a clean-room Park simulation gives 36.0 +- 1.5
    g = satnet_chunk.num_givens
    assert 35.7 < g.mean() < 36.4  # 1,000 puzzles: standard error ~0.05
    assert 1.2 < g.std() < 1.8
    assert g.min() >= 29 and g.max() <= 44


def test_exact_box_rule_gives_fewer_givens():
    rng = np.random.default_rng(12)
    sols = random_grids(1000, rng)
    order = rng.permuted(np.tile(np.arange(81), (1000, 1)), axis=1)
    park = board.num_givens(satnet.pluck(sols, order, box_rule="park")).mean()
    exact = board.num_givens(satnet.pluck(sols, order, box_rule="exact")).mean()
    assert 0.15 < park - exact < 0.8  # ~0.4 expected (akorn.md §3.1)
    with pytest.raises(ValueError):
        satnet.pluck(sols, order, box_rule="other")


def test_stream_is_deterministic_and_sliceable(satnet_chunk):
    c = satnet.CHUNK
    q, s = satnet.stream(0, 0, c - 30, c + 20)  # across a chunk boundary
    assert (q[:30] == satnet_chunk.quizzes[c - 30 : c]).all()
    assert (s[:30] == satnet_chunk.solutions[c - 30 : c]).all()
    assert (q[30:] == satnet_chunk.quizzes[c : c + 20]).all()
    q2, _ = satnet.stream(0, 0, c + 5, c + 20)
    assert (q[35:] == q2).all()
    q_other, _ = satnet.stream(1, 0, 0, 50)
    assert not (q_other == satnet_chunk.quizzes[:50]).all(axis=1).any()
    assert satnet.stream(0, 0, 5, 5)[0].shape == (0, 81)


def test_split_layout_matches_satnet_and_is_disjoint():
    # SATNet: one 10k set, first 9,000 train, last 1,000 test
    assert satnet.split_slices("train", 9000) == [(0, 0, 9000)]
    assert satnet.split_slices("test", 1000) == [(0, 9000, 10000)]
    assert satnet.split_slices("train", 9500) == [(0, 0, 9000), (0, 10000, 10500)]
    assert satnet.split_slices("test", 1200) == [(0, 9000, 10000), (1, 0, 200)]
    assert satnet.split_slices("valid", 10) == [(2, 0, 10)]
    taken: dict[int, set[int]] = {}
    for split, n in (("train", 25000), ("test", 3000), ("valid", 3000)):
        for lane, a, b in satnet.split_slices(split, n):
            overlap = taken.setdefault(lane, set()) & set(range(a, b))
            assert not overlap
            taken[lane] |= set(range(a, b))
    with pytest.raises(ValueError):
        satnet.split_slices("dev", 3)


def test_make_satnet_test_is_the_tail_of_the_10k_set():
    test = satnet.make_satnet("test", 20, seed=3)
    q, s = satnet.stream(3, 0, 9000, 9020)
    assert (test.quizzes == q).all() and (test.solutions == s).all()
    train = satnet.make_satnet("train", 20, seed=3)
    assert not set(map(bytes, train.quizzes)) & set(map(bytes, test.quizzes))
    assert train.meta["split"] == "train" and "SATNet-style" in train.source
    with pytest.raises(SadynError):
        satnet.make_satnet("train", 0)
    with pytest.raises(SadynError):
        satnet.make_satnet("dev", 5)


@pytest.mark.slow
def test_full_10k_set():
    q, s = satnet.stream(0, 0, 0, 10_000)
    counts, found, nodes = solve_many(q, 2)
    assert (counts == 1).all() and (found == s).all() and (nodes == 1).all()
    g = board.num_givens(q)
    assert 35.8 < g.mean() < 36.3 and g.min() >= 29 and g.max() <= 44
    assert len(np.unique(q, axis=0)) == 10_000
