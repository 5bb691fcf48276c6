"""Data sets by name, made once and cached; a torch Dataset for training.

``get_dataset("satnet", "train")`` makes SATNet-style puzzles (:mod:`sadyn.sudoku.satnet`),
``get_dataset("rrn", "test")`` RRN-style ones (:mod:`sadyn.sudoku.rrn`). A set is determined by
(kind, split, n, seed) (for RRN also by the base pool) and is cached as gzip CSV plus a
``.meta.json`` sidecar in ``$SADYN_DATA_DIR`` or ``~/.cache/sadyn/data``; writes are atomic, so
concurrent test processes may share the cache.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch

from sadyn.errors import DataFormatError, SadynError
from sadyn.sudoku import rrn, satnet
from sadyn.sudoku.formats import read_puzzles, sidecar_path, write_csv
from sadyn.sudoku.puzzles import PuzzleSet

KINDS = ("satnet", "rrn")
SPLITS = ("train", "valid", "test")
DATA_ENV = "SADYN_DATA_DIR"
#: bump to invalidate every cached set (the recipe or the file layout changed)
CACHE_VERSION = 1


def data_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$SADYN_DATA_DIR``, else ``~/.cache/sadyn/data``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path.home() / ".cache" / "sadyn" / "data"


def default_size(kind: str, split: str) -> int:
    """Puzzles in a split by default: SATNet 9,000 / 1,000 / 1,000 (train / valid / test), RRN
    180,000 / 18,000 / 18,000."""
    _check(kind, split)
    if kind == "satnet":
        return satnet.DEFAULT_SIZES[split]
    return rrn.PER_K[split] * (rrn.MAX_EXTRA + 1)


def _check(kind: str, split: str) -> None:
    if kind not in KINDS:
        raise SadynError(f"unknown data set kind {kind!r}; expected one of {', '.join(KINDS)}")
    if split not in SPLITS:
        raise SadynError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


@lru_cache(maxsize=4)
def _load_pool_cached(path: str, mtime_ns: int, size: int) -> rrn.Pool:
    # keyed by (path, mtime, size) so an edited file is read again; solved puzzles are reused
    return rrn.load_pool(path)


def find_and_load_pool(pool: str | Path | None = None, cache_dir=None) -> rrn.Pool | None:
    """Locate (see :func:`sadyn.sudoku.rrn.find_pool`, which also looks in the data folder) and
    load the 17-clue pool; None when there is none."""
    path = rrn.find_pool(pool, search_dirs=[data_dir(cache_dir)])
    if path is None:
        return None
    st = path.stat()
    return _load_pool_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


class PoolFallbackWarning(UserWarning):
    """The RRN-style set was made without Royle's 17-clue list (see :func:`warn_fallback`)."""


def warn_fallback(split: str) -> None:
    """Warn that Royle's list is missing, saying what happens and how to point
    ``$SADYN_SUDOKU17`` at the list (the CLI shows it as one line, without a source line)."""
    warnings.warn(
        f"Royle's 17-clue list not found, so the RRN-style {split} set is made from sadyn's own "
        "minimal puzzles (easier; results record the pool as 'fallback'). For the real "
        f"sudoku-hard set: export {rrn.ENV_POOL}=/path/to/sudoku17.txt.gz (README, 'Data')",
        PoolFallbackWarning,
        stacklevel=3,
    )


def pool_record(puzzles: PuzzleSet) -> str | None:
    """Which 17-clue pool made an RRN-style set: the pool file's SHA-256, ``"fallback"`` for
    sadyn's minimal puzzles, or None for a set not made from a pool (SATNet-style, a file
    without a sidecar)."""
    meta = puzzles.meta or {}
    pool = meta.get("pool")
    if pool is None:
        return None
    if str(pool).startswith("fallback"):
        return "fallback"
    return meta.get("pool_sha256")


#: how a results file, a summary and the report name the pool behind an RRN-style (OOD) set
POOL_LABELS = {
    "royle": "Royle 17-clue list",
    "fallback": "fallback: sadyn-made minimal puzzles (easier than Royle's list)",
}


def pool_label(record: str | None) -> str | None:
    """A reader's name for a :func:`pool_record` value: ``"Royle 17-clue list"``, the fallback
    (``"fallback: sadyn-made minimal puzzles ..."``), ``"custom 17-clue pool (sha256 ...)"``,
    or None for a set not made from a pool. OOD numbers are comparable only under one label."""
    if record is None:
        return None
    if record == "fallback":
        return POOL_LABELS["fallback"]
    if record == rrn.ROYLE_SHA256:
        return POOL_LABELS["royle"]
    return f"custom 17-clue pool (sha256 {str(record)[:12]}...)"


def with_pool_tag(name: str, record: str | None) -> str:
    """A data set's name for a figure legend, tagged with its pool: ``"ood [Royle 17-clue
    list]"``, ``"ood [fallback pool]"``, ``"ood [custom pool]"``; unchanged for other sets."""
    if record is None:
        return name
    tag = {"fallback": "fallback pool", rrn.ROYLE_SHA256: POOL_LABELS["royle"]}
    return f"{name} [{tag.get(record, 'custom pool')}]"


def pool_fields(puzzles: PuzzleSet) -> dict[str, str | None]:
    """What a results entry records about the pool behind ``puzzles``: ``pool_sha256``
    (:func:`pool_record`) and ``pool`` (:func:`pool_label`), both None for a set not made from
    a pool."""
    record = pool_record(puzzles)
    return {"pool_sha256": record, "pool": pool_label(record)}


def cache_file(
    kind: str,
    split: str,
    n: int,
    seed: int,
    cache_dir: str | Path | None = None,
    *,
    variant: str = "",
) -> Path:
    """Path of a cached set in the data folder:
    ``<kind>-v<version>[-<variant>]-<split>-n<n>-seed<seed>.csv.gz``."""
    tag = f"-{variant}" if variant else ""
    name = f"{kind}-v{CACHE_VERSION}{tag}-{split}-n{n}-seed{seed}.csv.gz"
    return data_dir(cache_dir) / name


def _read_cached(path: Path) -> PuzzleSet | None:
    """The cached set at ``path`` if it and its sidecar are intact, else None."""
    if not (path.is_file() and sidecar_path(path).is_file()):
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            puzzles: PuzzleSet | None = read_puzzles(path)
            problem = None
        except DataFormatError as exc:
            puzzles, problem = None, exc
    if problem is not None:
        warnings.warn(f"damaged cache file, making it again: {problem}", stacklevel=3)
    if caught:  # the sidecar does not match: regenerate rather than return an unlabelled set
        return None
    return puzzles


def load_or_make(
    kind: str,
    split: str,
    *,
    n: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    pool: str | Path | None = None,
    box_rule: satnet.BoxRule = "park",
    use_cache: bool = True,
) -> PuzzleSet:
    """:func:`get_dataset` with the knobs the CLI exposes: ``pool`` (path of the 17-clue list for
    RRN), ``box_rule`` (SATNet pluck rule) and ``use_cache``."""
    _check(kind, split)
    n = default_size(kind, split) if n is None else int(n)
    if n < 1:
        raise SadynError(f"n must be positive, got {n}")
    if kind == "satnet":
        variant = "" if box_rule == "park" else box_rule

        def make() -> PuzzleSet:
            return satnet.make_satnet(split, n, seed, box_rule=box_rule, progress=progress)

    else:
        base = find_and_load_pool(pool, cache_dir)
        if base is None:
            variant = "fallback"
            warn_fallback(split)
        else:
            variant = "royle" if base.kind == "royle" else f"custom{base.sha256[:12]}"

        def make() -> PuzzleSet:
            return rrn.make_rrn(split, n, seed, pool=base, progress=progress)

    path = cache_file(kind, split, n, seed, cache_dir, variant=variant)
    if use_cache:
        cached = _read_cached(path)
        if cached is not None:
            return cached
    puzzles = make()
    puzzles.meta["cache_version"] = CACHE_VERSION
    if use_cache:
        write_csv(puzzles, path)
        puzzles.meta["file"] = str(path)
    return puzzles


def get_dataset(
    kind: str,
    split: str,
    *,
    n: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> PuzzleSet:
    """A generated data set, made once and then read from the cache.

    kind: "satnet" (SATNet-style; splits train / test of one 10k set, plus an extra valid split)
    or "rrn" (RRN-style sudoku-hard on Royle's 17-clue list, or an easier fallback without it).
    n: number of puzzles (default :func:`default_size`); any n works, and for SATNet-style sets a
    smaller n is a prefix of a larger one. Same arguments, same puzzles.
    """
    return load_or_make(kind, split, n=n, seed=seed, cache_dir=cache_dir, progress=progress)


def resolve_dataset(spec: str, *, n: int | None = None, seed: int = 0) -> PuzzleSet:
    """A data set from a short spec: "id" = SATNet-style test, "ood" = RRN-style test,
    "<kind>:<split>" (e.g. "rrn:valid"), "-" (CSV on stdin), otherwise a file or SATNet folder
    path. ``n`` limits a file to its first n puzzles."""
    named = {"id": ("satnet", "test"), "ood": ("rrn", "test")}
    if spec in named:
        kind, split = named[spec]
        return get_dataset(kind, split, n=n, seed=seed)
    kind, sep, split = spec.partition(":")
    if sep and kind in KINDS and split in SPLITS:
        return get_dataset(kind, split, n=n, seed=seed)
    if spec != "-" and not Path(spec).exists():
        raise SadynError(
            f"no such data set or file: {spec!r} (use id, ood, <kind>:<split>, a path, or - "
            "for stdin)"
        )
    puzzles = read_puzzles(spec)
    if n is not None:
        if n > len(puzzles):
            raise SadynError(f"{spec} holds {len(puzzles)} puzzles, fewer than n={n}")
        puzzles = puzzles.subset(slice(0, n))
    return puzzles


class SudokuDataset(torch.utils.data.Dataset):
    """A PuzzleSet as a torch Dataset.

    Item i is ``(quiz, solution, given)``: quiz (81,) long 0..9 (0 = blank), solution (81,) long
    1..9, given (81,) bool. ``tensors`` holds the whole set as (n, 81) tensors for index batching
    without a DataLoader.
    """

    def __init__(self, puzzles: PuzzleSet):
        self.puzzles = puzzles
        quizzes, solutions = puzzles.to_torch()
        self.tensors = (quizzes, solutions, quizzes != 0)

    def __len__(self) -> int:
        return len(self.puzzles)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(t[i] for t in self.tensors)  # type: ignore[return-value]


__all__ = [
    "KINDS",
    "SPLITS",
    "SudokuDataset",
    "cache_file",
    "data_dir",
    "default_size",
    "find_and_load_pool",
    "get_dataset",
    "load_or_make",
    "pool_fields",
    "pool_label",
    "pool_record",
    "resolve_dataset",
    "warn_fallback",
    "with_pool_tag",
]
