"""SATNet's Sudoku tensors: ``features.pt`` (quizzes) and ``labels.pt`` (solutions).

Float tensors (n, 9, 9, 9): the last axis is a one-hot digit, all zeros for a blank in
``features``; (n, 81, 9) is accepted too. Loaded with ``torch.load(weights_only=True)``, so no
pickled code ever runs; any problem is a DataFormatError naming the file and the puzzle.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from sadyn.errors import DataFormatError
from sadyn.io import atomic_write
from sadyn.sudoku.board import CELLS, cell_name, describe_invalid, unit_digit_counts
from sadyn.sudoku.puzzles import PuzzleSet


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask)) if mask.any() else len(mask)


def _load_tensor(path: Path) -> torch.Tensor:
    if not path.exists():
        raise DataFormatError("file not found", path)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; we refuse
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to unpickle safely is a bad file
        raise DataFormatError(f"cannot load tensor ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(obj, torch.Tensor):
        raise DataFormatError(f"expected a tensor, found {type(obj).__name__}", path)
    return obj


def _onehot_to_digits(t: torch.Tensor, path: Path, *, blanks: bool) -> np.ndarray:
    """(n, 9, 9, 9) or (n, 81, 9) one-hot -> (n, 81) uint8 digits (0 where all zeros)."""
    shape = tuple(t.shape)
    if not (len(shape) == 4 and shape[1:] == (9, 9, 9)) and not (
        len(shape) == 3 and shape[1:] == (81, 9)
    ):
        raise DataFormatError(f"expected shape (n, 9, 9, 9) or (n, 81, 9), got {shape}", path)
    if t.is_complex():
        raise DataFormatError(f"unsupported dtype {t.dtype}", path)
    x = t.reshape(len(t), CELLS, 9).to(torch.float64).numpy()
    if len(x) == 0:
        raise DataFormatError("no puzzles (first dimension is 0)", path)
    binary = (x == 0) | (x == 1)
    hot = x.sum(axis=2)
    bad_val = ~binary.all(axis=(1, 2))
    bad_hot = ~((hot == 1) | ((hot == 0) & blanks)).all(axis=1)
    row = _first(bad_val | bad_hot)
    if row < len(x):
        if bad_val[row]:
            cell = int(np.argmax(~binary[row].all(axis=1)))
            problem = f"{cell_name(cell)} holds values other than 0/1"
        else:
            cell = int(np.argmax(~((hot[row] == 1) | ((hot[row] == 0) & blanks))))
            problem = f"{cell_name(cell)} is not one-hot (sum {hot[row, cell]:g})"
        raise DataFormatError(f"puzzle {row + 1} (index {row}): {problem}", path)
    return ((x.argmax(axis=2) + 1) * (hot == 1)).astype(np.uint8)


def read_satnet(path: str | Path) -> PuzzleSet:
    """Read SATNet's ``features.pt`` (quizzes) and ``labels.pt`` (solutions) from a directory (or
    given the path of either file)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    fpath, lpath = folder / "features.pt", folder / "labels.pt"
    quizzes = _onehot_to_digits(_load_tensor(fpath), fpath, blanks=True)
    solutions = _onehot_to_digits(_load_tensor(lpath), lpath, blanks=False)
    if len(quizzes) != len(solutions):
        raise DataFormatError(
            f"{len(quizzes)} puzzles in features.pt but {len(solutions)} in labels.pt", lpath
        )
    bad_grid = (unit_digit_counts(solutions) != 1).any(axis=(1, 2))
    disagree = ((quizzes != 0) & (quizzes != solutions)).any(axis=1)
    row = _first(bad_grid | disagree)
    if row < len(quizzes):
        if bad_grid[row]:
            where, problem = lpath, f"not a valid Sudoku grid: {describe_invalid(solutions[row])}"
        else:
            pos = int(np.argmax((quizzes[row] != 0) & (quizzes[row] != solutions[row])))
            where = fpath
            problem = (
                f"quiz disagrees with labels.pt at {cell_name(pos)}: {quizzes[row, pos]} vs "
                f"{solutions[row, pos]}"
            )
        raise DataFormatError(f"puzzle {row + 1} (index {row}): {problem}", where)
    return PuzzleSet(quizzes, solutions, f"SATNet tensors {folder}", {"file": str(folder)})


def _onehot(digits: np.ndarray) -> torch.Tensor:
    """(n, 81) digits 0..9 -> (n, 9, 9, 9) float32 one-hot (blank = all zeros)."""
    eye = np.eye(10, dtype=np.float32)[:, 1:]
    return torch.from_numpy(eye[digits.astype(np.int64)].reshape(len(digits), 9, 9, 9).copy())


def write_satnet(puzzles: PuzzleSet, folder: str | Path) -> Path:
    """Write ``features.pt`` and ``labels.pt`` in SATNet's layout (atomic). Returns the folder."""
    folder = Path(folder)
    for name, digits in (("features.pt", puzzles.quizzes), ("labels.pt", puzzles.solutions)):
        tensor = _onehot(digits)

        def save(tmp: Path, tensor: torch.Tensor = tensor) -> None:
            buf = io.BytesIO()
            torch.save(tensor, buf)
            tmp.write_bytes(buf.getvalue())

        atomic_write(folder / name, save)
    return folder
