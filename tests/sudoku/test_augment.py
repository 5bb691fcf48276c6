"""Symmetry augmentation: validity, consistency with the solver, bijection, coverage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadyn.errors import SadynError, ShapeError
from sadyn.sudoku.augment import (
    AUGMENT_KINDS,
    apply_symmetries,
    augment,
    identity_symmetries,
    invert_symmetries,
    random_symmetries,
)
from sadyn.sudoku.board import agrees, consistent, valid_solutions
from sadyn.sudoku.solver import solve


@pytest.fixture(scope="module")
def boards(request):
    from sadyn.sudoku import satnet

    q, s = satnet.stream(0, 0, 0, 64)
    return torch.as_tensor(np.asarray(q), dtype=torch.long), torch.as_tensor(
        np.asarray(s), dtype=torch.long
    )


@pytest.mark.parametrize("kind", AUGMENT_KINDS)
def test_augmented_puzzles_stay_valid_and_consistent(boards, kind):
    q, s = boards
    gen = torch.Generator().manual_seed(1)
    aq, as_ = augment(q, s, kind=kind, generator=gen)
    aqn, asn = aq.numpy(), as_.numpy()
    assert valid_solutions(asn).all()
    assert consistent(aqn).all()
    assert agrees(aqn, asn).all()  # givens of the quiz match the solution
    assert ((aq > 0).sum(1) == (q > 0).sum(1)).all()  # same number of givens
    if kind != "none":
        assert (aq != q).any(1).float().mean() > 0.9  # it does change the boards


def test_solver_solves_augmented_quiz_to_augmented_solution(boards):
    """The solver finds the augmented solution, uniquely, and the puzzle is as constrained."""
    q, s = boards
    gen = torch.Generator().manual_seed(7)
    aq, as_ = augment(q[:8], s[:8], kind="full", generator=gen)
    for i in range(8):
        res = solve(aq[i].numpy().astype(np.uint8), limit=2)
        assert res.count == 1
        assert np.array_equal(res.solution.astype(np.int64), as_[i].numpy())


def test_inverse_undoes_and_maps_are_bijections(boards):
    q, s = boards
    gen = torch.Generator().manual_seed(3)
    cells, digits = random_symmetries(len(q), kind="full", generator=gen)
    # each map is a permutation: cells of 0..80, digits of 0..9 fixing 0
    assert torch.equal(cells.sort(1).values, identity_symmetries(len(q))[0])
    assert torch.equal(digits.sort(1).values, identity_symmetries(len(q))[1])
    assert (digits[:, 0] == 0).all()
    inv = invert_symmetries(cells, digits)
    assert torch.equal(apply_symmetries(apply_symmetries(q, cells, digits), *inv), q)
    assert torch.equal(apply_symmetries(apply_symmetries(s, cells, digits), *inv), s)


def test_geometry_keeps_rows_columns_boxes_as_units():
    """A geometric symmetry maps every unit (row, column, box) onto a unit."""
    from sadyn.sudoku.board import UNITS

    units = {frozenset(int(c) for c in u) for u in np.asarray(UNITS)}
    cells, _ = random_symmetries(200, kind="geometry", generator=torch.Generator().manual_seed(0))
    for b in range(200):
        for u in units:
            assert frozenset(int(cells[b, c]) for c in u) in units


def test_draws_cover_the_group():
    """Transposition half the time; every band order and relabelling appears."""
    gen = torch.Generator().manual_seed(5)
    cells, digits = random_symmetries(4000, kind="full", generator=gen)
    grid = cells.view(-1, 9, 9)
    transposed = (grid[:, 0, 1] // 9) != (grid[:, 0, 0] // 9)  # row 0 takes a source column
    assert 0.45 < transposed.float().mean() < 0.55
    bands = set(tuple(int(v) for v in (cells[b, [0, 27, 54]] // 27)) for b in range(4000))
    # without transposition the source band of target row 0/3/6 is a permutation of 0..2
    assert len(bands) >= 6
    assert len({int(d) for d in digits[:, 1]}) == 9


def test_seeded_and_errors(boards):
    q, s = boards
    a = augment(q, s, generator=torch.Generator().manual_seed(11))
    b = augment(q, s, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(SadynError, match="augmentation kind"):
        random_symmetries(2, kind="mirror")
    with pytest.raises(ShapeError):
        augment(q[:, :80], s[:, :80])
    with pytest.raises(ShapeError):
        augment(q, s[:3])
