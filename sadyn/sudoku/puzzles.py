"""PuzzleSet: a batch of Sudoku puzzles with their solutions, where they came from, and stats."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sadyn.errors import ShapeError
from sadyn.sudoku.board import CELLS, givens_histogram


@dataclass
class PuzzleSet:
    """Puzzles and solutions.

    quizzes: (n, 81) uint8 digits 0..9, 0 = blank (row-major cells).
    solutions: (n, 81) uint8 digits 1..9.
    source: one line saying what the set is and where it came from (generator and recipe, or file).
    meta: JSON-able details of the recipe (kind, split, seed, pool used, ...); statistics of the
        puzzles themselves come from :meth:`stats`, so a subset never carries stale ones.

    Construction checks shapes and digit ranges only; Sudoku rules are checked by the readers
    (which can name the offending line) and guaranteed by the generators.
    """

    quizzes: np.ndarray
    solutions: np.ndarray
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        q, s = np.asarray(self.quizzes), np.asarray(self.solutions)
        if q.ndim != 2 or q.shape[1] != CELLS or s.shape != q.shape:
            raise ShapeError(
                f"PuzzleSet needs quizzes and solutions of shape (n, 81); got {q.shape} and "
                f"{s.shape}"
            )
        if q.size and (q.min() < 0 or q.max() > 9):
            raise ValueError("quizzes must hold digits 0..9")
        if s.size and (s.min() < 1 or s.max() > 9):
            raise ValueError("solutions must hold digits 1..9")
        self.quizzes = np.ascontiguousarray(q, dtype=np.uint8)
        self.solutions = np.ascontiguousarray(s, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.quizzes)

    def __repr__(self) -> str:
        return f"PuzzleSet(n={len(self)}, source={self.source!r})"

    @property
    def givens_mask(self) -> np.ndarray:
        """(n, 81) bool, True at given cells."""
        return self.quizzes != 0

    @property
    def num_givens(self) -> np.ndarray:
        """(n,) int64 number of givens per puzzle."""
        return self.givens_mask.sum(axis=1)

    def subset(self, idx: Sequence[int] | np.ndarray | slice) -> PuzzleSet:
        """The puzzles at ``idx`` (indices, a boolean mask or a slice), same source and meta."""
        if not isinstance(idx, slice):
            idx = np.asarray(idx)
            if idx.dtype != bool:
                idx = idx.astype(np.int64)
        return PuzzleSet(self.quizzes[idx], self.solutions[idx], self.source, dict(self.meta))

    def to_torch(
        self, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(quizzes, solutions) as LongTensors (n, 81): quizzes 0..9, solutions 1..9."""
        q = torch.from_numpy(self.quizzes.astype(np.int64))
        s = torch.from_numpy(self.solutions.astype(np.int64))
        return q.to(device), s.to(device)

    def stats(self) -> dict[str, Any]:
        """Count and givens statistics: {"count", "givens_mean", "givens_std", "givens_min",
        "givens_max", "givens_histogram": {givens: puzzles}}."""
        g = self.num_givens
        empty = len(g) == 0
        return {
            "count": len(self),
            "givens_mean": None if empty else float(g.mean()),
            "givens_std": None if empty else float(g.std()),
            "givens_min": None if empty else int(g.min()),
            "givens_max": None if empty else int(g.max()),
            "givens_histogram": givens_histogram(self.quizzes) if not empty else {},
        }

    def digest(self) -> str:
        """sha256 of the puzzles and solutions (identifies the content, not source/meta)."""
        h = hashlib.sha256()
        h.update(len(self).to_bytes(8, "little"))
        h.update(self.quizzes.tobytes())
        h.update(self.solutions.tobytes())
        return h.hexdigest()

    @classmethod
    def concat(
        cls, sets: Sequence[PuzzleSet], source: str = "", meta: dict | None = None
    ) -> PuzzleSet:
        """Concatenate puzzle sets (source/meta from the arguments, or the first set's)."""
        if not sets:
            raise ValueError("concat needs at least one PuzzleSet")
        return cls(
            np.concatenate([s.quizzes for s in sets]),
            np.concatenate([s.solutions for s in sets]),
            source or sets[0].source,
            dict(meta) if meta is not None else dict(sets[0].meta),
        )
