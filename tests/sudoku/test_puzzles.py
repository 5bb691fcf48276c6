import numpy as np
import pytest
import torch

from sadyn.errors import ShapeError
from sadyn.sudoku.puzzles import PuzzleSet


def test_views_and_subsets(satnet_chunk):
    ps = satnet_chunk.subset(np.arange(10))
    assert len(ps) == 10 and ps.source == satnet_chunk.source
    assert np.array_equal(ps.givens_mask, ps.quizzes != 0)
    assert np.array_equal(ps.num_givens, (ps.quizzes != 0).sum(axis=1))
    mask = ps.num_givens > np.median(ps.num_givens)
    assert len(ps.subset(mask)) == int(mask.sum())
    assert np.array_equal(ps.subset(slice(2, 4)).quizzes, ps.quizzes[2:4])
    q, s = ps.to_torch()
    assert q.dtype == s.dtype == torch.long and q.shape == (10, 81)
    assert torch.equal(q, torch.from_numpy(ps.quizzes).long())
    both = PuzzleSet.concat([ps, ps.subset([0])])
    assert len(both) == 11 and np.array_equal(both.solutions[10], ps.solutions[0])


def test_stats_and_digest(satnet_chunk):
    ps = satnet_chunk.subset(np.arange(50))
    st = ps.stats()
    assert st["count"] == 50 and sum(st["givens_histogram"].values()) == 50
    assert st["givens_min"] <= st["givens_mean"] <= st["givens_max"]
    assert ps.digest() == PuzzleSet(ps.quizzes.copy(), ps.solutions.copy()).digest()
    assert ps.digest() != ps.subset(np.arange(49)).digest()
    empty = ps.subset(np.zeros(50, dtype=bool))
    assert len(empty) == 0 and empty.stats()["givens_mean"] is None


def test_construction_checks():
    good = np.ones((2, 81), dtype=np.int64)
    with pytest.raises(ShapeError):
        PuzzleSet(good[:, :80], good[:, :80])
    with pytest.raises(ShapeError):
        PuzzleSet(good, good[:1])
    with pytest.raises(ValueError, match=r"digits 0\.\.9"):
        PuzzleSet(good * 10, good)
    with pytest.raises(ValueError, match=r"digits 1\.\.9"):
        PuzzleSet(good, good * 0)
    assert PuzzleSet(good, good).quizzes.dtype == np.uint8
    with pytest.raises(ValueError):
        PuzzleSet.concat([])
