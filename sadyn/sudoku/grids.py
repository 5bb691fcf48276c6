"""Random complete Sudoku grids and digit relabelling, vectorized over a batch.

The grid sampler is the one behind the SATNet and Kaggle sets (Kyubyong Park's generator, see
``reference/akorn.md`` §3.1): fill the cells in row-major order, each with a uniformly random digit
still allowed by its row, column and box; on a dead end, start the whole grid again. Only about
1 attempt in 300 completes, so many attempts run side by side as numpy arrays and dead ones are
dropped after every cell (about 32 cell steps per attempt on average).
"""

from __future__ import annotations

import numpy as np

from sadyn.sudoku.board import CELL_BOX, CELL_COL, CELL_ROW, CELLS

#: _POPCOUNT[m]: number of set bits of a 9-bit mask.  (512,)
_POPCOUNT = np.array([bin(m).count("1") for m in range(512)], dtype=np.int64)
#: _NTH_BIT[m, j]: the index of the j-th set bit of mask m (0 where m has fewer bits).  (512, 9)
_NTH_BIT = np.zeros((512, 9), dtype=np.int64)
for _m in range(512):
    _bits = [d for d in range(9) if _m >> d & 1]
    _NTH_BIT[_m, : len(_bits)] = _bits


def _fill_attempts(batch: int, rng: np.random.Generator) -> np.ndarray:
    """Run ``batch`` independent row-major fill attempts; return the grids that completed.

    Returns (m, 81) uint8 digits 1..9, m <= batch, in attempt order.
    """
    row = np.zeros((batch, 9), dtype=np.int32)  # used-digit bitmasks per row / column / box
    col = np.zeros((batch, 9), dtype=np.int32)
    box = np.zeros((batch, 9), dtype=np.int32)
    grid = np.zeros((batch, CELLS), dtype=np.uint8)
    for cell in range(CELLS):
        r, c, b = CELL_ROW[cell], CELL_COL[cell], CELL_BOX[cell]
        allowed = ~(row[:, r] | col[:, c] | box[:, b]) & 0x1FF
        k = _POPCOUNT[allowed]
        pick = (rng.random(len(k)) * k).astype(np.int64)  # uniform among the k allowed digits
        digit = _NTH_BIT[allowed, np.minimum(pick, 8)]
        bit = (1 << digit).astype(np.int32)
        row[:, r] |= bit
        col[:, c] |= bit
        box[:, b] |= bit
        grid[:, cell] = digit + 1
        alive = k > 0
        if not alive.all():  # dead ends restart from scratch, i.e. are dropped here
            row, col, box, grid = row[alive], col[alive], box[alive], grid[alive]
            if len(grid) == 0:
                break
    return grid


def random_grids(
    n: int, rng: np.random.Generator, *, attempts_per_round: int = 65536
) -> np.ndarray:
    """Sample ``n`` complete grids with Park's restart sampler.

    rng: the numpy Generator that drives every draw (same state, same grids).
    Returns (n, 81) uint8 digits 1..9, each a valid solution grid.
    """
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        # ~0.3% of attempts complete; size the round to finish in one go most of the time
        batch = min(attempts_per_round, max(1024, int((n - have) * 400)))
        grids = _fill_attempts(batch, rng)
        out.append(grids)
        have += len(grids)
    return np.concatenate(out)[:n]


def random_relabel(boards: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply an independent uniformly random digit permutation to each board.

    boards: (n, 81) digits 0..9 (0 stays 0). Returns (relabelled (n, 81) uint8, perms (n, 10)
    where perms[i, d] is the new digit for old digit d and perms[i, 0] = 0), so the same ``perms``
    can be applied to the solutions with :func:`apply_relabel`.
    """
    n = len(boards)
    perms = np.zeros((n, 10), dtype=np.uint8)
    perms[:, 1:] = rng.permuted(np.tile(np.arange(1, 10, dtype=np.uint8), (n, 1)), axis=1)
    return apply_relabel(boards, perms), perms


def apply_relabel(boards: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """boards: (n, 81) digits 0..9; perms: (n, 10) digit maps -> (n, 81) uint8 relabelled."""
    return np.take_along_axis(perms, boards.astype(np.int64), axis=1).astype(np.uint8)
