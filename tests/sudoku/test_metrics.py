import numpy as np
import pytest
import torch

from sadyn.errors import ShapeError
from sadyn.sudoku import metrics
from sadyn.sudoku.grids import random_grids


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    sols = random_grids(6, rng)
    quizzes = np.where(rng.random(sols.shape) < 0.4, sols, 0).astype(np.uint8)
    return torch.from_numpy(quizzes).long(), torch.from_numpy(sols).long()


def reference_board_correct(pred, quizzes, solutions):
    return [
        all(p == s for p, q, s in zip(pr, qu, so, strict=True) if q == 0)
        for pr, qu, so in zip(pred.tolist(), quizzes.tolist(), solutions.tolist(), strict=True)
    ]


def test_board_and_cell_accuracy_against_a_loop(batch):
    quizzes, sols = batch
    pred = sols.clone()
    blank0 = int(torch.nonzero(quizzes[0] == 0)[0])
    pred[0, blank0] = pred[0, blank0] % 9 + 1  # one wrong blank cell: board 0 fails
    given1 = int(torch.nonzero(quizzes[1] != 0)[0])
    pred[1, given1] = pred[1, given1] % 9 + 1  # a wrong *given*: not checked, board 1 passes
    expected = reference_board_correct(pred, quizzes, sols)
    assert metrics.board_correct(pred, quizzes, sols).tolist() == expected
    assert expected[:2] == [False, True]
    assert metrics.board_accuracy(pred, quizzes, sols) == pytest.approx(5 / 6)
    blanks = int((quizzes == 0).sum())
    assert metrics.cell_accuracy(pred, quizzes, sols) == pytest.approx((blanks - 1) / blanks)


def test_logits_numpy_and_torch_agree(batch):
    quizzes, sols = batch
    pred = sols.clone()
    pred[2, :9] = 5
    logits = torch.randn(6, 81, 9)
    logits.scatter_(2, (pred - 1).unsqueeze(-1), 10.0)
    for p in (pred, logits, pred.numpy()):
        assert metrics.board_correct(p, quizzes.numpy(), sols).tolist() == (
            metrics.board_correct(pred, quizzes, sols).tolist()
        )
        assert metrics.violation_rate(p) == metrics.violation_rate(pred)


def test_violations_count_broken_units(batch):
    _, sols = batch
    assert metrics.unit_violations(sols).tolist() == [0] * 6
    pred = sols.clone()
    pred[0, [0, 1]] = pred[0, [1, 0]]  # same row and box: 2 columns break
    pred[1, [0, 3]] = pred[1, [3, 0]]  # same row, two boxes: 2 columns + 2 boxes break
    pred[2, 0] = 0  # a missing digit: its row, column and box break
    pred[3] = 1  # all ones: all 27 units
    assert metrics.unit_violations(pred).tolist() == [2, 4, 3, 27, 0, 0]
    assert metrics.violation_rate(pred) == pytest.approx(36 / (27 * 6))


def test_shapes_are_checked(batch):
    quizzes, sols = batch
    with pytest.raises(ShapeError):
        metrics.board_correct(sols[:, :80], quizzes, sols)
    with pytest.raises(ShapeError):
        metrics.board_correct(sols, quizzes[:5], sols)
    with pytest.raises(ShapeError):
        metrics.cell_accuracy(torch.zeros(6, 81, 10), quizzes, sols)
