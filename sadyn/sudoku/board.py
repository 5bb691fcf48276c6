"""Sudoku boards: index tables of the 27 units and vectorized validity checks.

A board is a row of 81 digits in row-major order (cell ``i`` sits in row ``i // 9`` and column
``i % 9``); ``0`` is a blank. Batches are ``(n, 81)`` integer arrays. Every check here works on a
whole batch at once (numpy), so that data sets of 10^5 puzzles are checked in well under a second.
"""

from __future__ import annotations

import numpy as np

DIGITS = 9
CELLS = 81

CELL_ROW = np.arange(CELLS) // 9
CELL_COL = np.arange(CELLS) % 9
CELL_BOX = (CELL_ROW // 3) * 3 + CELL_COL // 3

#: UNITS[u]: the 9 cells of unit u; units 0-8 are rows, 9-17 columns, 18-26 boxes.  (27, 9)
UNITS = np.concatenate(
    [
        np.arange(CELLS).reshape(9, 9),
        np.arange(CELLS).reshape(9, 9).T,
        np.stack([np.flatnonzero(CELL_BOX == b) for b in range(9)]),
    ]
)
#: CELL_UNITS[i]: the row, column and box unit indices of cell i.  (81, 3)
CELL_UNITS = np.stack([CELL_ROW, 9 + CELL_COL, 18 + CELL_BOX], axis=1)
#: UNIT_OTHERS[i, k]: the 8 cells other than i in the k-th unit of cell i.  (81, 3, 8)
UNIT_OTHERS = np.stack(
    [np.stack([UNITS[u][UNITS[u] != i] for u in CELL_UNITS[i]]) for i in range(CELLS)]
)
#: PEERS[i]: the 20 cells sharing a unit with cell i.  (81, 20)
PEERS = np.stack([np.unique(UNIT_OTHERS[i]) for i in range(CELLS)])


def as_boards(x: np.ndarray, name: str = "boards") -> np.ndarray:
    """Return ``x`` as an ``(n, 81)`` array (a single board ``(81,)`` or ``(n, 9, 9)`` batches are
    reshaped). Raises ValueError on any other shape."""
    x = np.asarray(x)
    if x.shape == (CELLS,):
        x = x[None]
    elif x.ndim == 3 and x.shape[1:] == (9, 9):
        x = x.reshape(len(x), CELLS)
    if x.ndim != 2 or x.shape[1] != CELLS:
        raise ValueError(f"{name}: expected shape (n, 81), got {tuple(x.shape)}")
    return x


def unit_digit_counts(boards: np.ndarray) -> np.ndarray:
    """How often each digit occurs in each unit.

    boards: (n, 81) ints in 0..9 -> counts: (n, 27, 9) uint8, counts[b, u, d-1] = number of cells
    of unit u holding digit d (blanks are not counted).
    """
    boards = as_boards(boards)
    n = len(boards)
    cells = boards[:, UNITS].reshape(n * 27, 9).astype(np.int64)  # digits of each unit
    # one bincount over (board, unit, digit) bins instead of a (n, 27, 9, 9) one-hot
    bins = (np.arange(n * 27)[:, None] * 10 + cells.clip(0, 9)).ravel()
    counts = np.bincount(bins, minlength=n * 27 * 10).reshape(n, 27, 10)
    return counts[:, :, 1:].astype(np.uint8)


def valid_solutions(grids: np.ndarray) -> np.ndarray:
    """grids: (n, 81) -> (n,) bool: True where the grid is a complete, valid Sudoku solution
    (every unit holds each digit 1..9 exactly once)."""
    return (unit_digit_counts(grids) == 1).all(axis=(1, 2))


def consistent(quizzes: np.ndarray) -> np.ndarray:
    """quizzes: (n, 81) with 0 = blank -> (n,) bool: True where no unit repeats a given digit."""
    return (unit_digit_counts(quizzes) <= 1).all(axis=(1, 2))


def agrees(quizzes: np.ndarray, solutions: np.ndarray) -> np.ndarray:
    """(n, 81), (n, 81) -> (n,) bool: True where every given of the quiz equals the solution."""
    q, s = as_boards(quizzes, "quizzes"), as_boards(solutions, "solutions")
    return ((q == 0) | (q == s)).all(axis=1)


def num_givens(quizzes: np.ndarray) -> np.ndarray:
    """(n, 81) -> (n,) int64 number of non-blank cells."""
    return (as_boards(quizzes) != 0).sum(axis=1)


def givens_histogram(quizzes: np.ndarray) -> dict[int, int]:
    """Number of puzzles per givens count, for the counts that occur (sorted)."""
    values, counts = np.unique(num_givens(quizzes), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


#: names of the 27 units in the order of UNITS
UNIT_NAMES = [f"{kind} {i + 1}" for kind in ("row", "column", "box") for i in range(9)]


def cell_name(pos: int) -> str:
    """'cell 12 (row 2, column 3)' for a 0-based cell index."""
    return f"cell {pos + 1} (row {CELL_ROW[pos] + 1}, column {CELL_COL[pos] + 1})"


def describe_invalid(grid: np.ndarray) -> str:
    """Say why a grid (81,) is not a valid solution, e.g. 'row 3 holds digit 5 twice'."""
    counts = unit_digit_counts(np.asarray(grid).reshape(1, CELLS))[0]  # (27, 9)
    repeated = np.argwhere(counts > 1)
    if len(repeated):
        unit, digit = repeated[0]
        times = {2: "twice", 3: "three times"}.get(int(counts[unit, digit]), "repeatedly")
        return f"{UNIT_NAMES[unit]} holds digit {digit + 1} {times}"
    unit, digit = np.argwhere(counts == 0)[0]
    return f"{UNIT_NAMES[unit]} lacks digit {digit + 1}"


def duplicates(quizzes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 81) -> (dup (n,) bool: an earlier row has the same quiz, first (n,) its index)."""
    _, first_idx, inverse = np.unique(quizzes, axis=0, return_index=True, return_inverse=True)
    first = first_idx[inverse.reshape(-1)]
    return first != np.arange(len(quizzes)), first


def to_string(board: np.ndarray) -> str:
    """One board (81,) -> its 81-character digit string (0 = blank)."""
    return "".join(map(str, np.asarray(board).reshape(CELLS).tolist()))


def from_string(text: str) -> np.ndarray:
    """An 81-character string of digits ('0' or '.' = blank) -> (81,) uint8."""
    text = text.strip().replace(".", "0")
    if len(text) != CELLS or not text.isdigit() or not text.isascii():
        raise ValueError(f"not an 81-digit board: {text!r}")
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) - ord("0")


def pretty(board: np.ndarray) -> str:
    """A 9-line human-readable rendering of one board (blanks as '.')."""
    b = np.asarray(board).reshape(9, 9)
    lines = []
    for r in range(9):
        if r in (3, 6):
            lines.append("------+-------+------")
        cells = [str(d) if d else "." for d in b[r].tolist()]
        lines.append(" | ".join(" ".join(cells[k : k + 3]) for k in (0, 3, 6)))
    return "\n".join(lines)
