"""SATNet-style puzzles: Park's single "pluck" pass, vectorized over a batch of boards.

Recipe (``reference/akorn.md`` §3.1; the generator SATNet used for its 10k set):

1. a random complete grid (:func:`sadyn.sudoku.grids.random_grids`);
2. one pass over the 81 cells in random order: blank the cell if its digit ``v`` stays a
   *hidden single*, i.e. in at least one of its units no other cell could still hold ``v`` given
   the visible digits; otherwise keep it. Each cell is tried once.

Every removal is undone by one hidden-single step (applied in reverse order), so each puzzle has
exactly one solution and is solvable by singles alone. With ``box_rule="park"`` the box route is
only open to the cells where Park's code happens to look at the right box (row % 3 == column // 3,
a third of the cells); elsewhere his test inspects a box in the same band that never passes. That
quirk makes puzzles slightly clue-heavier and reproduces SATNet's measured mean of 36.2 givens;
``box_rule="exact"`` uses the cell's own box (about 0.4 fewer givens).

Puzzles come from an endless stream fixed by the seed: chunk ``c`` of :data:`CHUNK` puzzles is
drawn from its own generator ``SeedSequence(seed, spawn_key=(lane, c))``, so any slice of the
stream can be made without the puzzles before it, and the same slice is the same every time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from sadyn.errors import SadynError
from sadyn.progress import progress as progress_bar
from sadyn.sudoku.board import (
    CELL_BOX,
    CELL_COL,
    CELL_ROW,
    CELLS,
    UNIT_OTHERS,
    agrees,
    valid_solutions,
)
from sadyn.sudoku.grids import random_grids
from sadyn.sudoku.puzzles import PuzzleSet

BoxRule = Literal["park", "exact"]
#: bump when the recipe changes, so that cached sets are regenerated
GENERATOR_VERSION = 1
#: puzzles per independently seeded chunk of the stream
CHUNK = 250
#: cells whose box Park's box test examines correctly (row % 3 == column // 3)
_PARK_BOX_OK = (CELL_ROW % 3) == (CELL_COL // 3)


def pluck(solutions: np.ndarray, order: np.ndarray, *, box_rule: BoxRule = "park") -> np.ndarray:
    """One hidden-single pluck pass over each grid, all grids at once.

    solutions: (B, 81) complete grids, digits 1..9. order: (B, 81) the order in which each
    board's cells are tried (a permutation of 0..80 per row).
    Returns quizzes: (B, 81) uint8 with 0 = blank.
    """
    if box_rule not in ("park", "exact"):
        raise ValueError(f"box_rule must be 'park' or 'exact', got {box_rule!r}")
    sol = np.asarray(solutions, dtype=np.int64)
    batch = len(sol)
    rows = np.arange(batch)
    visible = np.ones((batch, CELLS), dtype=bool)
    # has_*[b, unit, d] = digit d+1 is visible in that row / column / box of board b
    has_row = np.ones((batch, 9, 9), dtype=bool)
    has_col = np.ones((batch, 9, 9), dtype=bool)
    has_box = np.ones((batch, 9, 9), dtype=bool)
    b3 = rows[:, None, None]
    for step in range(CELLS):
        cell = order[:, step]
        v = sol[rows, cell] - 1
        r, c, x = CELL_ROW[cell], CELL_COL[cell], CELL_BOX[cell]
        # tentatively blank the cell, then ask each of its units whether another cell could take v
        has_row[rows, r, v] = False
        has_col[rows, c, v] = False
        has_box[rows, x, v] = False
        others = UNIT_OTHERS[cell]  # (B, 3, 8)
        v3 = v[:, None, None]
        could_hold = ~(
            visible[b3, others]
            | has_row[b3, CELL_ROW[others], v3]
            | has_col[b3, CELL_COL[others], v3]
            | has_box[b3, CELL_BOX[others], v3]
        )
        route = ~could_hold.any(axis=2)  # (B, 3): row, column, box route works
        if box_rule == "park":
            route[:, 2] &= _PARK_BOX_OK[cell]
        plucked = route.any(axis=1)
        has_row[rows, r, v] = ~plucked
        has_col[rows, c, v] = ~plucked
        has_box[rows, x, v] = ~plucked
        visible[rows, cell] = ~plucked
    return np.where(visible, sol, 0).astype(np.uint8)


def _chunk(seed: int, lane: int, index: int, box_rule: BoxRule) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(lane, index)))
    solutions = random_grids(CHUNK, rng)
    order = rng.permuted(np.tile(np.arange(CELLS), (CHUNK, 1)), axis=1)
    return pluck(solutions, order, box_rule=box_rule), solutions


def iter_chunks(
    seed: int, lane: int, start: int, stop: int, *, box_rule: BoxRule = "park"
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (quizzes, solutions) pieces covering stream positions ``start:stop`` of a lane, one
    chunk at a time (each (m, 81) uint8)."""
    if not 0 <= start <= stop:
        raise ValueError(f"bad stream slice {start}:{stop}")
    for index in range(start // CHUNK, -(-stop // CHUNK)):
        quizzes, solutions = _chunk(seed, lane, index, box_rule)
        lo = max(start - index * CHUNK, 0)
        hi = min(stop - index * CHUNK, CHUNK)
        yield quizzes[lo:hi], solutions[lo:hi]


def stream(
    seed: int, lane: int, start: int, stop: int, *, box_rule: BoxRule = "park"
) -> tuple[np.ndarray, np.ndarray]:
    """Puzzles ``start:stop`` of the stream (seed, lane): (quizzes, solutions), each (m, 81)."""
    parts = list(iter_chunks(seed, lane, start, stop, box_rule=box_rule))
    if not parts:
        empty = np.zeros((0, CELLS), dtype=np.uint8)
        return empty, empty.copy()
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


#: SATNet's split of one 10k set: the first 9,000 train, the last 1,000 test
SATNET_TRAIN, SATNET_TEST = 9_000, 1_000
DEFAULT_SIZES = {"train": SATNET_TRAIN, "valid": 1_000, "test": SATNET_TEST}
# lanes: 0 = the main stream (train, then test, then train's overflow), 1 = test overflow,
# 2 = valid (SATNet has no valid split; sadyn adds one from an independent stream)
_LANE_MAIN, _LANE_TEST_EXTRA, _LANE_VALID = 0, 1, 2


def split_slices(split: str, n: int) -> list[tuple[int, int, int]]:
    """Where a split's ``n`` puzzles sit in the streams: a list of (lane, start, stop).

    The main lane's positions 0:10000 are SATNet's 10k set (train 0:9000, test 9000:10000);
    larger train sets continue at 10000, larger test sets in lane 1, valid is lane 2. So every
    split is disjoint from the others and a smaller set is a prefix of a larger one.
    """
    if split == "valid":
        return [(_LANE_VALID, 0, n)]
    if split == "train":
        head = min(n, SATNET_TRAIN)
        first = (_LANE_MAIN, 0, head)
        overflow = (_LANE_MAIN, SATNET_TRAIN + SATNET_TEST, SATNET_TRAIN + SATNET_TEST + n - head)
    elif split == "test":
        head = min(n, SATNET_TEST)
        first = (_LANE_MAIN, SATNET_TRAIN, SATNET_TRAIN + head)
        overflow = (_LANE_TEST_EXTRA, 0, n - head)
    else:
        raise ValueError(f"unknown split {split!r}; expected train, valid or test")
    return [first, overflow] if n > head else [first]


def make_satnet(
    split: str,
    n: int | None = None,
    seed: int = 0,
    *,
    box_rule: BoxRule = "park",
    progress: bool = False,
) -> PuzzleSet:
    """SATNet-style puzzles for one split (default 9,000 train / 1,000 test / 1,000 valid).

    Returns a :class:`~sadyn.sudoku.puzzles.PuzzleSet`; every puzzle is uniquely solvable by
    singles alone and agrees with its solution.
    """
    if split not in DEFAULT_SIZES:
        raise SadynError(f"unknown split {split!r}; expected train, valid or test")
    n = DEFAULT_SIZES[split] if n is None else int(n)
    if n < 1:
        raise SadynError(f"n must be positive, got {n}")
    slices = split_slices(split, n)
    pieces = []
    total = sum(-(-stop // CHUNK) - start // CHUNK for _, start, stop in slices)
    with progress_bar(total=total, desc=f"satnet {split}", unit="chunk", enable=progress) as bar:
        for lane, start, stop in slices:
            for piece in iter_chunks(seed, lane, start, stop, box_rule=box_rule):
                pieces.append(piece)
                bar.update()
    quizzes = np.concatenate([p[0] for p in pieces])
    solutions = np.concatenate([p[1] for p in pieces])
    assert valid_solutions(solutions).all() and agrees(quizzes, solutions).all()
    source = (
        f"SATNet-style, {split} split: random grids + one hidden-single pluck pass "
        f"(Park's generator, box rule {box_rule!r}); unique and singles-solvable"
    )
    meta = {
        "kind": "satnet",
        "split": split,
        "n": int(n),
        "seed": seed,
        "box_rule": box_rule,
        "stream": [list(s) for s in slices],
        "generator_version": GENERATOR_VERSION,
    }
    return PuzzleSet(quizzes, solutions, source, meta)
