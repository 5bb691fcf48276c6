"""Puzzle files: CSV ``quiz,solution`` rows (plain or gzip) and SATNet's one-hot tensors.

CSV (the RRN / Kaggle form): one puzzle per line, ``quiz,solution``, 81 characters each in
row-major order, ``0`` (or ``.``) for a blank in the quiz. Real-world files are read as they
come: a UTF-8 byte-order mark, a header line (a first line without digits, e.g.
``quizzes,solutions``), CRLF line ends, blank lines, gzip (detected by its magic bytes). Every
row is checked and the first bad one is reported as a :class:`DataFormatError` naming the file,
the line and the problem; nothing is skipped except blank lines and the header.

SATNet (``features.pt`` / ``labels.pt``, :mod:`sadyn.sudoku.tensors`): one-hot tensors, read with
``torch.load(weights_only=True)``.

A generated set written by :func:`write_csv` gets a sidecar ``<name>.meta.json`` holding its
source line and recipe; :func:`read_puzzles` restores them when the sidecar matches the content.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sadyn.errors import DataFormatError
from sadyn.io import atomic_write, atomic_write_json
from sadyn.sudoku.board import CELLS, cell_name, describe_invalid, duplicates, unit_digit_counts
from sadyn.sudoku.puzzles import PuzzleSet
from sadyn.sudoku.tensors import read_satnet, write_satnet

_GZIP_MAGIC = b"\x1f\x8b"


# ---------------------------------------------------------------------------------------------
# reading lines


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _raw_lines(path: Path, digest: hashlib._Hash | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw bytes) of a plain or gzip file, feeding ``digest`` with
    the (decompressed) bytes. A truncated or corrupt gzip stream is a DataFormatError."""
    gz = _is_gzip(path)
    if not gz and path.suffix == ".gz":
        raise DataFormatError("file ends in .gz but is not gzip data", path)
    lineno = 0
    with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
        try:
            for raw in fh:
                lineno += 1
                if digest is not None:
                    digest.update(raw)
                yield lineno, raw
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataFormatError(
                f"gzip data is truncated or corrupt ({exc}); {lineno} complete lines before it",
                path,
                lineno + 1,
            ) from None


@dataclass
class _Table:
    """Rows of a text file split into fields, with their line numbers."""

    fields: list[list[str]]
    lines: list[int]
    header: str | None
    error: DataFormatError | None  # first structural problem; rows after it were not read
    sha256: str


def _read_table(path: Path, nfields: int, names: tuple[str, ...]) -> _Table:
    """Split each non-blank line into ``nfields`` fields of 81 characters (whitespace and quotes
    around fields are removed). Stops at the first structural problem and records it."""
    digest = hashlib.sha256()
    rows: list[list[str]] = []
    lines: list[int] = []
    header = None
    error = None
    first = True
    for lineno, raw in _raw_lines(path, digest):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = DataFormatError(f"not UTF-8 text (byte {exc.start + 1})", path, lineno)
            break
        if lineno == 1:
            text = text.removeprefix("\ufeff")
        text = text.strip()
        if not text:
            continue
        if first:
            first = False
            if not any(ch.isdigit() for ch in text):  # a header such as "quizzes,solutions"
                header = text
                continue
        parts = [p.strip().strip('"').strip() for p in text.split(",")]
        if len(parts) != nfields:
            what = ",".join(names)
            hint = " (a quiz without its solution?)" if len(parts) == 1 and nfields == 2 else ""
            error = DataFormatError(
                f"expected {nfields} comma-separated field(s) ({what}), found {len(parts)}{hint}",
                path,
                lineno,
            )
            break
        bad = next((k for k, p in enumerate(parts) if len(p) != CELLS), None)
        if bad is not None:
            error = DataFormatError(
                f"{names[bad]} has {len(parts[bad])} characters, expected 81", path, lineno
            )
            break
        rows.append(parts)
        lines.append(lineno)
    if error is None and not rows:
        problem = "no puzzles after the header line" if header else "empty file: no puzzles"
        error = DataFormatError(problem, path)
    return _Table(rows, lines, header, error, digest.hexdigest())


def _as_bytes(strings: list[str]) -> np.ndarray:
    """81-character strings -> (n, 81) uint8 ASCII codes (non-ASCII characters become '?')."""
    buf = "".join(strings).encode("ascii", errors="replace")
    return np.frombuffer(buf, dtype=np.uint8).reshape(len(strings), CELLS)


def _digits(codes: np.ndarray) -> np.ndarray:
    """(n, 81) ASCII codes of '0'-'9' / '.' -> (n, 81) uint8 digits ('.' = 0; others clipped)."""
    return (
        np.where(codes == ord("."), 0, codes.astype(np.int16) - ord("0"))
        .clip(0, 9)
        .astype(np.uint8)
    )


def _first(mask: np.ndarray) -> int:
    """Index of the first True in a (n,) mask, or n when there is none."""
    return int(np.argmax(mask)) if mask.any() else len(mask)


@dataclass
class _Check:
    """One vectorized row check: bad (n,) marks failing rows, explain(row) says why."""

    bad: np.ndarray
    explain: Callable[[int], str]


def _char_check(codes: np.ndarray, strings: list[str], name: str, blank_ok: bool) -> _Check:
    lo = ord("0") if blank_ok else ord("1")
    ok = (codes >= lo) & (codes <= ord("9"))
    if blank_ok:
        ok |= codes == ord(".")
    allowed = "a digit 0-9 or '.'" if blank_ok else "a digit 1-9"

    def explain(row: int) -> str:
        pos = int(np.argmax(~ok[row]))
        return f"{name}: character {strings[row][pos]!r} at position {pos + 1} is not {allowed}"

    return _Check(~ok.all(axis=1), explain)


def _row_checks(
    quiz_strings: list[str], solution_strings: list[str] | None
) -> tuple[list[_Check], np.ndarray, np.ndarray | None]:
    """The checks of a table's rows, in the order they are reported, with the parsed digits.

    Returns (checks, quizzes (n, 81) uint8, solutions (n, 81) uint8 or None)."""
    qb = _as_bytes(quiz_strings)
    q = _digits(qb)
    checks = [_char_check(qb, quiz_strings, "quiz", blank_ok=True)]
    if solution_strings is None:
        counts = unit_digit_counts(q)

        def repeat(row: int) -> str:
            return f"quiz breaks the rules: {describe_invalid(q[row])}"

        checks.append(_Check((counts > 1).any(axis=(1, 2)), repeat))
        return checks, q, None
    sb = _as_bytes(solution_strings)
    s = _digits(sb)
    checks.append(_char_check(sb, solution_strings, "solution", blank_ok=False))

    def invalid(row: int) -> str:
        return f"solution is not a valid Sudoku grid: {describe_invalid(s[row])}"

    checks.append(_Check((unit_digit_counts(s) != 1).any(axis=(1, 2)), invalid))
    differ = (q != 0) & (q != s)

    def disagree(row: int) -> str:
        pos = int(np.argmax(differ[row]))
        return (
            f"quiz disagrees with its solution at {cell_name(pos)}: quiz has {q[row, pos]}, "
            f"solution has {s[row, pos]}"
        )

    checks.append(_Check(differ.any(axis=1), disagree))
    return checks, q, s


def _raise_first(checks: list[_Check], lines: np.ndarray, path: Path) -> None:
    """Raise a DataFormatError for the earliest row failing any check (its first failing check)."""
    bad = np.zeros(len(lines), dtype=bool)
    for check in checks:
        bad |= check.bad
    row = _first(bad)
    if row < len(lines):
        check = next(c for c in checks if c.bad[row])
        raise DataFormatError(check.explain(row), path, int(lines[row]))


# ---------------------------------------------------------------------------------------------
# CSV


def read_csv(
    path: str | Path, *, check_duplicates: bool = False, return_lines: bool = False
) -> PuzzleSet | tuple[PuzzleSet, np.ndarray]:
    """Read a ``quiz,solution`` CSV file (plain or gzip). See the module docstring.

    With ``return_lines`` also return the line number of each puzzle, (n,) int64."""
    path = Path(path)
    table = _read_table(path, 2, ("quiz", "solution"))
    lines = np.asarray(table.lines, dtype=np.int64)
    checks, quizzes, solutions = _row_checks(
        [r[0] for r in table.fields], [r[1] for r in table.fields]
    )
    if check_duplicates:
        dup, first = duplicates(quizzes)

        def duplicate(row: int) -> str:
            return f"duplicate puzzle: same quiz as line {lines[first[row]]}"

        checks.append(_Check(dup, duplicate))
    _raise_first(checks, lines, path)  # rows before a structural problem come first
    if table.error is not None:
        raise table.error
    assert solutions is not None
    puzzles = PuzzleSet(quizzes, solutions, f"file {path}", {"file": str(path)})
    if table.header is not None:
        puzzles.meta["header"] = table.header
    puzzles = _apply_sidecar(puzzles, path)
    return (puzzles, lines) if return_lines else puzzles


def sniff_fields(path: str | Path) -> int:
    """Number of comma-separated fields on the first line with a digit (0 if none is found or
    the file cannot be read; the readers then report the actual problem)."""
    try:
        for _, raw in _raw_lines(Path(path)):
            text = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
            if any(ch.isdigit() for ch in text):
                return len(text.split(","))
    except (OSError, DataFormatError):
        return 0
    return 0


@dataclass
class QuizFile:
    """A quiz-only file: quizzes (n, 81) uint8 (0 = blank), lines (n,) their line numbers,
    sha256 of the (decompressed) text."""

    quizzes: np.ndarray
    lines: np.ndarray
    sha256: str
    path: Path


def read_quizzes(path: str | Path) -> QuizFile:
    """Read a file of quizzes without solutions, one 81-character quiz per line (Royle's 17-clue
    list has this form). Checks characters and that no unit repeats a given digit."""
    path = Path(path)
    table = _read_table(path, 1, ("quiz",))
    lines = np.asarray(table.lines, dtype=np.int64)
    checks, quizzes, _ = _row_checks([r[0] for r in table.fields], None)
    _raise_first(checks, lines, path)
    if table.error is not None:
        raise table.error
    return QuizFile(quizzes, lines, table.sha256, path)


def sidecar_path(path: str | Path) -> Path:
    """``dir/name.csv(.gz)`` -> ``dir/name.meta.json``."""
    path = Path(path)
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return path.with_name(name + ".meta.json")


def _apply_sidecar(puzzles: PuzzleSet, path: Path) -> PuzzleSet:
    side = sidecar_path(path)
    if not side.exists():
        return puzzles
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
        matches = info.get("digest") == puzzles.digest()
    except (OSError, ValueError, AttributeError):
        matches = False
        info = {}
    if matches:
        puzzles.source = str(info.get("source", puzzles.source))
        puzzles.meta = {**dict(info.get("meta", {})), "file": str(path)}
    else:
        warnings.warn(f"{side} does not describe {path} (stale or damaged); ignored", stacklevel=3)
    return puzzles


def write_csv(
    puzzles: PuzzleSet, path: str | Path, *, header: bool = False, sidecar: bool = True
) -> Path:
    """Write ``quiz,solution`` rows (no header unless asked; gzip when the name ends in .gz,
    reproducibly: no timestamp in the gzip header). Atomic. With ``sidecar`` the source and meta
    go to :func:`sidecar_path` so that :func:`read_puzzles` can restore them."""
    path = Path(path)
    q = (puzzles.quizzes + 48).astype(np.uint8)
    s = (puzzles.solutions + 48).astype(np.uint8)
    comma = np.full((len(puzzles), 1), ord(","), dtype=np.uint8)
    newline = np.full((len(puzzles), 1), ord("\n"), dtype=np.uint8)
    body = np.concatenate([q, comma, s, newline], axis=1).tobytes()
    data = (b"quizzes,solutions\n" if header else b"") + body

    def write(tmp: Path) -> None:
        if path.suffix == ".gz":
            with (
                open(tmp, "wb") as raw,
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
            ):
                gz.write(data)
        else:
            tmp.write_bytes(data)

    atomic_write(path, write)
    if sidecar:
        info = {
            "source": puzzles.source,
            "count": len(puzzles),
            "digest": puzzles.digest(),
            "meta": {k: v for k, v in puzzles.meta.items() if k != "file"},
        }
        atomic_write_json(sidecar_path(path), info)
    return path


# ---------------------------------------------------------------------------------------------


def read_puzzles(path: str | Path, *, check_duplicates: bool = False) -> PuzzleSet:
    """Read puzzles with their solutions: a ``quiz,solution`` CSV (``.csv`` / ``.csv.gz``, header,
    BOM and CRLF tolerated) or SATNet's ``features.pt``/``labels.pt`` (a directory holding them,
    or the path of either). Raises DataFormatError (file, line, problem) on any bad input."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError("file not found", path)
    if path.is_dir() or path.suffix == ".pt":
        puzzles = read_satnet(path)
        if check_duplicates:
            dup, first = duplicates(puzzles.quizzes)
            if dup.any():
                row = int(np.argmax(dup))
                raise DataFormatError(
                    f"puzzle {row + 1} (index {row}) duplicates puzzle {first[row] + 1}",
                    path,
                )
        return puzzles
    return read_csv(path, check_duplicates=check_duplicates)  # type: ignore[return-value]


__all__ = [
    "QuizFile",
    "read_csv",
    "read_puzzles",
    "read_quizzes",
    "read_satnet",
    "sidecar_path",
    "sniff_fields",
    "write_csv",
    "write_satnet",
]
