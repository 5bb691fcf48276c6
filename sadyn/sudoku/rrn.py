"""RRN-style "sudoku-hard" puzzles (Palm et al. 2018; ``reference/akorn.md`` §3.2).

Recipe: shuffle a pool of hard base puzzles with the seed and cut it into disjoint pools (the
first 10,000 for test, the next 1,000 for valid, the rest for train). For each output puzzle draw
a base puzzle at random (with replacement) from its split's pool, solve it, relabel its digits
with a random permutation, and reveal ``k`` extra givens from the solution at random blank cells,
with ``k`` spread evenly over 0..17 (``i % 18`` before a final shuffle). Revealing givens of a
uniquely solvable puzzle keeps it uniquely solvable.

The base pool is Gordon Royle's list of 49,151 17-clue puzzles, the one RRN used, so givens are
uniform over 17..34. It is read from a file, never copied: the path given, else
``$SADYN_SUDOKU17``, else ``sudoku17.txt(.gz)`` (the name it is published under) or
``sudoku17-royle.txt(.gz)`` in the data directory or the project's ``shared/data`` folder.
Without it the pool is made of sadyn's own minimal puzzles (:mod:`sadyn.sudoku.minimal`, ~24
givens), which gives an *easier* set; the PuzzleSet's source and meta say so.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sadyn.errors import DataFormatError, SadynError
from sadyn.sudoku.board import CELLS, agrees, valid_solutions
from sadyn.sudoku.formats import read_quizzes
from sadyn.sudoku.grids import apply_relabel, random_relabel
from sadyn.sudoku.minimal import minimal_puzzles
from sadyn.sudoku.puzzles import PuzzleSet
from sadyn.sudoku.solver import solve_many

#: sha256 of the uncompressed text of Royle's list (as in shared/data/README.md)
ROYLE_SHA256 = "71755fa5646701ae543b1435012492ec5b99f3d42b08da847e6d48d8b87676d7"
ROYLE_COUNT = 49_151
#: names the list is looked for under in a data folder: as published, and as the project keeps it
POOL_FILENAMES = ("sudoku17.txt.gz", "sudoku17.txt", "sudoku17-royle.txt.gz", "sudoku17-royle.txt")
ENV_POOL = "SADYN_SUDOKU17"
#: sizes of the test and valid pools cut from a full-size pool (the rest is train)
POOL_SIZES = {"test": 10_000, "valid": 1_000}
MAX_EXTRA = 17
#: puzzles per extra-givens count k in RRN's sets (18 values of k: 180k / 18k / 18k)
PER_K = {"train": 10_000, "valid": 1_000, "test": 1_000}
#: cap on the size of each split's fallback pool (minimal puzzles cost ~35 ms each)
FALLBACK_POOL_MAX = 2_000
SPLITS = ("train", "valid", "test")
# spawn keys of the independent random streams (see numpy SeedSequence)
_POOL_SHUFFLE_KEY = (100,)
_DRAW_KEY = {"train": (101,), "valid": (102,), "test": (103,)}
_FALLBACK_KEY = {"train": (111,), "valid": (112,), "test": (113,)}
_SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass
class Pool:
    """Base puzzles to draw from.

    quizzes: (N, 81) uint8; lines: (N,) line numbers in ``path`` (for error messages) or None;
    kind: "royle" (checksum matches), "custom" (another file) or "fallback-minimal".
    Solutions are found on demand and kept in ``solutions`` (zeros until solved).
    """

    quizzes: np.ndarray
    kind: str
    path: Path | None = None
    sha256: str | None = None
    lines: np.ndarray | None = None
    solutions: np.ndarray = field(init=False)
    _solved: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.solutions = np.zeros_like(self.quizzes)
        self._solved = np.zeros(len(self.quizzes), dtype=bool)

    def __len__(self) -> int:
        return len(self.quizzes)

    def set_solutions(self, solutions: np.ndarray) -> None:
        """Record known solutions (n, 81) of every pool puzzle (e.g. from the generator)."""
        self.solutions[:] = solutions
        self._solved[:] = True

    def solve(self, idx: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """Solutions (m, 81) of the pool puzzles ``idx``, checking each is uniquely solvable."""
        idx = np.asarray(idx, dtype=np.int64)
        todo = np.unique(idx[~self._solved[idx]])
        if len(todo):
            counts, sols, _ = solve_many(
                self.quizzes[todo], 2, progress=progress, desc="solving pool puzzles"
            )
            if (counts != 1).any():
                i = int(np.argmax(counts != 1))
                what = "has no solution" if counts[i] == 0 else "has more than one solution"
                line = None if self.lines is None else int(self.lines[todo[i]])
                raise DataFormatError(f"pool puzzle {what}", self.path, line)
            self.solutions[todo] = sols
            self._solved[todo] = True
        return self.solutions[idx]


def find_pool(path: str | Path | None = None, search_dirs: Sequence[Path] = ()) -> Path | None:
    """Locate the 17-clue list: ``path`` if given, else ``$SADYN_SUDOKU17``, else the first of
    :data:`POOL_FILENAMES` in ``search_dirs`` and the project's shared data folder. A path that
    was asked for but does not exist is an error (never a silent fallback); None if none found."""
    if path is None and os.environ.get(ENV_POOL):
        path = os.environ[ENV_POOL]
        if not Path(path).is_file():
            raise SadynError(f"${ENV_POOL} names {path}, which is not a file")
    if path is not None:
        if not Path(path).is_file():
            raise SadynError(f"17-clue pool file not found: {path}")
        return Path(path)
    for folder in (*search_dirs, _SHARED_DATA):
        for name in POOL_FILENAMES:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    return None


def load_pool(path: str | Path) -> Pool:
    """Read a pool file (one quiz per line) and compare its checksum with Royle's list; a
    different file is used as a custom pool, with a warning."""
    qf = read_quizzes(path)
    kind = "royle" if qf.sha256 == ROYLE_SHA256 else "custom"
    if kind == "custom":
        warnings.warn(
            f"{path}: sha256 {qf.sha256[:16]}... differs from Royle's 17-clue list "
            f"({ROYLE_SHA256[:16]}...); using it as a custom pool",
            stacklevel=2,
        )
    return Pool(qf.quizzes, kind, Path(path), qf.sha256, qf.lines)


def split_pool(size: int, seed: int) -> dict[str, np.ndarray]:
    """Shuffle pool indices with the seed and cut them into disjoint train / valid / test pools
    (10,000 test and 1,000 valid for a full-size pool; the same fractions for a smaller one)."""
    if size < 3:
        raise SadynError(f"a pool needs at least 3 puzzles to split, got {size}")
    perm = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_POOL_SHUFFLE_KEY))
    order = perm.permutation(size)
    if size > POOL_SIZES["test"] + POOL_SIZES["valid"]:
        n_test, n_valid = POOL_SIZES["test"], POOL_SIZES["valid"]
    else:
        n_test = max(1, round(size * POOL_SIZES["test"] / ROYLE_COUNT))
        n_valid = max(1, round(size * POOL_SIZES["valid"] / ROYLE_COUNT))
    return {
        "test": order[:n_test],
        "valid": order[n_test : n_test + n_valid],
        "train": order[n_test + n_valid :],
    }


@dataclass
class RRNDraw:
    """Generated puzzles with their provenance: quizzes, solutions (n, 81) uint8; base (n,) the
    pool index of each puzzle's base puzzle; extra (n,) the number k of revealed givens."""

    quizzes: np.ndarray
    solutions: np.ndarray
    base: np.ndarray
    extra: np.ndarray


def draw(
    pool: Pool, indices: np.ndarray, n: int, rng: np.random.Generator, *, progress: bool = False
) -> RRNDraw:
    """Make ``n`` puzzles from the pool puzzles ``indices`` (relabel, reveal k extra givens).

    k runs through 0..17 evenly (``i % 18``); the output order is shuffled at the end.
    """
    if len(indices) == 0:
        raise SadynError("empty pool split")
    extra = np.arange(n) % (MAX_EXTRA + 1)
    base = np.asarray(indices)[rng.integers(0, len(indices), n)]
    quizzes, perms = random_relabel(pool.quizzes[base], rng)
    solutions = apply_relabel(pool.solve(base, progress=progress), perms)
    # reveal k random blank cells: rank the blanks by a random key (givens ranked last)
    keys = np.where(quizzes == 0, rng.random((n, CELLS)), 2.0)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    reveal = (rank < extra[:, None]) & (quizzes == 0)
    if (reveal.sum(axis=1) != extra).any():
        raise SadynError("a pool puzzle has too few blanks to reveal 17 extra givens")
    quizzes = np.where(reveal, solutions, quizzes).astype(np.uint8)
    order = rng.permutation(n)
    out = RRNDraw(quizzes[order], solutions[order], base[order], extra[order])
    # cheap guard against a generator bug (uniqueness is inherited from the base puzzle)
    assert valid_solutions(out.solutions).all() and agrees(out.quizzes, out.solutions).all()
    return out


def fallback_pool(split: str, size: int, seed: int, *, progress: bool = False) -> Pool:
    """A split's pool of sadyn-made minimal puzzles (independent streams per split)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_FALLBACK_KEY[split]))
    quizzes, solutions = minimal_puzzles(size, rng, progress=progress)
    pool = Pool(quizzes, "fallback-minimal")
    pool.set_solutions(solutions)  # unique by construction
    return pool


def make_rrn(
    split: str,
    n: int | None = None,
    seed: int = 0,
    *,
    pool: Pool | None = None,
    progress: bool = False,
) -> PuzzleSet:
    """RRN-style puzzles for one split (default size 18 x 10,000 / 1,000 / 1,000 for train /
    valid / test). ``pool=None`` means no 17-clue list: fall back to minimal puzzles."""
    if split not in SPLITS:
        raise SadynError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    n = PER_K[split] * (MAX_EXTRA + 1) if n is None else int(n)
    if n < 1:
        raise SadynError(f"n must be positive, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_DRAW_KEY[split]))
    meta: dict = {"kind": "rrn", "split": split, "n": n, "seed": seed, "extra_givens": "0..17"}
    if pool is not None:
        indices = split_pool(len(pool), seed)[split]
        result = draw(pool, indices, n, rng, progress=progress)
        meta.update(
            pool=pool.kind,
            pool_path=str(pool.path),
            pool_sha256=pool.sha256,
            pool_size=len(pool),
            split_pool_size=len(indices),
        )
        what = (
            f"Royle's {len(pool):,} 17-clue puzzles"
            if pool.kind == "royle"
            else f"a custom pool of {len(pool):,} puzzles from {pool.path} (not Royle's list)"
        )
        source = (
            f"RRN-style sudoku-hard, {split} split: {what} (a {len(indices):,}-puzzle {split} "
            f"pool), random digit relabelling, 0-17 extra givens revealed"
        )
    else:
        size = min(POOL_SIZES.get(split, FALLBACK_POOL_MAX), FALLBACK_POOL_MAX, n)
        base_pool = fallback_pool(split, size, seed, progress=progress)
        result = draw(base_pool, np.arange(size), n, rng, progress=progress)
        base_givens = (base_pool.quizzes != 0).sum(axis=1)
        meta.update(
            pool="fallback-minimal",
            pool_size=size,
            base_givens=f"{base_givens.min()}..{base_givens.max()}",
        )
        source = (
            f"RRN-style FALLBACK, {split} split: Royle's 17-clue list was not found (set "
            f"${ENV_POOL}), so the base pool is {size:,} sadyn-made minimal puzzles with "
            f"{base_givens.min()}-{base_givens.max()} givens (not 17) plus 0-17 revealed: "
            f"EASIER than the real sudoku-hard"
        )
    givens = (result.quizzes != 0).sum(axis=1)
    meta["givens_range"] = f"{givens.min()}..{givens.max()}"
    return PuzzleSet(result.quizzes, result.solutions, source, meta)
