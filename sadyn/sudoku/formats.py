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
import io
import json
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from sadyn.errors import DataFormatError
from sadyn.io import atomic_write, atomic_write_json
from sadyn.sudoku.board import CELLS, cell_name, describe_invalid, duplicates, unit_digit_counts
from sadyn.sudoku.puzzles import PuzzleSet
from sadyn.sudoku.tensors import read_satnet, write_satnet

_GZIP_MAGIC = b"\x1f\x8b"


# ---------------------------------------------------------------------------------------------
# reading lines

#: ``-`` as a path means standard input
STDIN = "-"
#: longest line a puzzle file may hold (a quiz,solution row with quotes and CRLF is < 200
#: bytes); a longer one means the file is not a puzzle file, and is not read into memory
MAX_LINE_BYTES = 4096


def _is_stdin(path: str | Path) -> bool:
    return str(path) == STDIN


def _display(path: str | Path) -> str:
    return "<stdin>" if _is_stdin(path) else str(path)


def _check_readable(path: str | Path) -> None:
    """A precise error for a path that is not a readable puzzle file."""
    if _is_stdin(path):
        return
    p = Path(path)
    if not p.exists():
        raise DataFormatError("file not found", p)
    if p.is_dir():
        raise DataFormatError(
            "is a directory, not a puzzle file (a CSV file of quiz,solution rows, a quiz-only "
            "list, or a SATNet folder holding features.pt and labels.pt)",
            p,
        )


@contextmanager
def _open_binary(path: str | Path) -> Iterator[IO[bytes]]:
    """The file (or stdin for ``-``) as a binary stream, gzip-decompressed when it starts with
    the gzip magic bytes (detected without consuming them, so pipes work)."""
    _check_readable(path)
    if _is_stdin(path):
        raw: IO[bytes] = sys.stdin.buffer
        close = False
    else:
        raw = open(path, "rb")  # closed below
        close = True
    try:
        buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
        gz = buffered.peek(2)[:2] == _GZIP_MAGIC  # type: ignore[attr-defined]
        if not gz and str(path).endswith(".gz"):
            raise DataFormatError("file ends in .gz but is not gzip data", _display(path))
        yield gzip.GzipFile(fileobj=buffered, mode="rb") if gz else buffered
    finally:
        if close:
            raw.close()


def _raw_lines(
    path: str | Path, digest: hashlib._Hash | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw bytes) of a plain or gzip file (``-``: stdin), feeding
    ``digest`` with the (decompressed) bytes. Reads line by line with a bounded line length,
    so memory stays small whatever the input. A truncated or corrupt gzip stream, a NUL byte
    (binary data) or an over-long line is a DataFormatError."""
    name = _display(path)
    lineno = 0
    offset = 0
    with _open_binary(path) as fh:
        try:
            while True:
                raw = fh.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    break
                lineno += 1
                nul = raw.find(b"\0")
                if nul >= 0:
                    raise DataFormatError(
                        f"binary data (a NUL byte at byte offset {offset + nul}): not a text "
                        "puzzle file",
                        name,
                        lineno,
                    )
                if len(raw) > MAX_LINE_BYTES:
                    raise DataFormatError(
                        f"line longer than {MAX_LINE_BYTES} bytes: not a puzzle file (a puzzle "
                        "row is quiz,solution, 163 characters)",
                        name,
                        lineno,
                    )
                offset += len(raw)
                if digest is not None:
                    digest.update(raw)
                yield lineno, raw
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataFormatError(
                f"gzip data is truncated or corrupt ({exc}); {lineno} complete lines before it",
                name,
                lineno + 1,
            ) from None


@dataclass
class _Table:
    """Rows of a text file split into fields, with their line numbers.

    ``columns[k]`` holds field k of every row as 81 ASCII codes per row (a non-ASCII character
    as ``?``; the row's original text is then kept in ``odd`` for error messages)."""

    columns: list[bytearray]
    lines: list[int]
    header: str | None
    error: DataFormatError | None  # first structural problem; rows after it were not read
    sha256: str
    nfields: int
    odd: dict[int, list[str]]

    def __len__(self) -> int:
        return len(self.lines)

    def codes(self, k: int) -> np.ndarray:
        """Field k as (n, 81) uint8 ASCII codes."""
        return np.frombuffer(bytes(self.columns[k]), dtype=np.uint8).reshape(len(self), CELLS)

    def text(self, k: int) -> Callable[[int], str]:
        """Field k of a row as text (for messages)."""
        codes = self.codes(k)

        def get(row: int) -> str:
            if row in self.odd:
                return self.odd[row][k]
            return codes[row].tobytes().decode("ascii")

        return get


def _read_table(path: str | Path, nfields: int | None, names: tuple[str, ...]) -> _Table:
    """Split each non-blank line into ``nfields`` fields of 81 characters (whitespace and quotes
    around fields are removed); ``nfields=None`` takes the count (1 or 2) from the first row.
    Stops at the first structural problem and records it."""
    digest = hashlib.sha256()
    columns: list[bytearray] = [bytearray(), bytearray()]
    lines: list[int] = []
    odd: dict[int, list[str]] = {}
    header = None
    error = None
    first = True
    name = _display(path)
    for lineno, raw in _raw_lines(path, digest):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = DataFormatError(f"not UTF-8 text (byte {exc.start + 1})", name, lineno)
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
        if nfields is None:
            nfields = len(parts) if len(parts) in (1, 2) else 2
            names = ("quiz",) if nfields == 1 else ("quiz", "solution")
        if len(parts) != nfields:
            what = ",".join(names)
            hint = " (a quiz without its solution?)" if len(parts) == 1 and nfields == 2 else ""
            error = DataFormatError(
                f"expected {nfields} comma-separated field(s) ({what}), found {len(parts)}{hint}",
                name,
                lineno,
            )
            break
        bad = next((k for k, p in enumerate(parts) if len(p) != CELLS), None)
        if bad is not None:
            error = DataFormatError(
                f"{names[bad]} has {len(parts[bad])} characters, expected 81", name, lineno
            )
            break
        for k, part in enumerate(parts):
            encoded = part.encode("ascii", errors="replace")
            if len(encoded) != CELLS or encoded != part.encode("utf-8"):
                odd[len(lines)] = parts
            columns[k] += encoded
        lines.append(lineno)
    if error is None and not lines:
        problem = "no puzzles after the header line" if header else "empty file: no puzzles"
        error = DataFormatError(problem, name)
    return _Table(columns, lines, header, error, digest.hexdigest(), nfields or 0, odd)


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


def _char_check(codes: np.ndarray, text: Callable[[int], str], name: str, blank_ok: bool) -> _Check:
    lo = ord("0") if blank_ok else ord("1")
    ok = (codes >= lo) & (codes <= ord("9"))
    if blank_ok:
        ok |= codes == ord(".")
    allowed = "a digit 0-9 or '.'" if blank_ok else "a digit 1-9"

    def explain(row: int) -> str:
        pos = int(np.argmax(~ok[row]))
        return f"{name}: character {text(row)[pos]!r} at position {pos + 1} is not {allowed}"

    return _Check(~ok.all(axis=1), explain)


def _row_checks(table: _Table) -> tuple[list[_Check], np.ndarray, np.ndarray | None]:
    """The checks of a table's rows, in the order they are reported, with the parsed digits.

    Returns (checks, quizzes (n, 81) uint8, solutions (n, 81) uint8 or None)."""
    qb = table.codes(0)
    q = _digits(qb)
    checks = [_char_check(qb, table.text(0), "quiz", blank_ok=True)]
    if table.nfields != 2:
        counts = unit_digit_counts(q)

        def repeat(row: int) -> str:
            return f"quiz breaks the rules: {describe_invalid(q[row])}"

        checks.append(_Check((counts > 1).any(axis=(1, 2)), repeat))
        return checks, q, None
    sb = table.codes(1)
    s = _digits(sb)
    checks.append(_char_check(sb, table.text(1), "solution", blank_ok=False))

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


def _raise_first(checks: list[_Check], lines: np.ndarray, path: str | Path) -> None:
    """Raise a DataFormatError for the earliest row failing any check (its first failing check)."""
    bad = np.zeros(len(lines), dtype=bool)
    for check in checks:
        bad |= check.bad
    row = _first(bad)
    if row < len(lines):
        check = next(c for c in checks if c.bad[row])
        raise DataFormatError(check.explain(row), _display(path), int(lines[row]))


# ---------------------------------------------------------------------------------------------
# CSV


def read_csv(
    path: str | Path, *, check_duplicates: bool = False, return_lines: bool = False
) -> PuzzleSet | tuple[PuzzleSet, np.ndarray]:
    """Read a ``quiz,solution`` CSV file (plain or gzip; ``-`` reads stdin). See the module
    docstring.

    With ``return_lines`` also return the line number of each puzzle, (n,) int64."""
    path = Path(path)
    table = _read_table(path, 2, ("quiz", "solution"))
    return _csv_from_table(table, path, check_duplicates, return_lines)


def _csv_from_table(
    table: _Table, path: Path, check_duplicates: bool, return_lines: bool
) -> PuzzleSet | tuple[PuzzleSet, np.ndarray]:
    lines = np.asarray(table.lines, dtype=np.int64)
    checks, quizzes, solutions = _row_checks(table)
    if check_duplicates:
        dup, first = duplicates(quizzes)

        def duplicate(row: int) -> str:
            return f"duplicate puzzle: same quiz as line {lines[first[row]]}"

        checks.append(_Check(dup, duplicate))
    _raise_first(checks, lines, path)  # rows before a structural problem come first
    if table.error is not None:
        raise table.error
    assert solutions is not None
    name = _display(path)
    puzzles = PuzzleSet(quizzes, solutions, f"file {name}", {"file": name})
    if table.header is not None:
        puzzles.meta["header"] = table.header
    if not _is_stdin(path):
        puzzles = _apply_sidecar(puzzles, path)
    return (puzzles, lines) if return_lines else puzzles


def sniff_fields(path: str | Path) -> int:
    """Number of comma-separated fields on the first line with a digit (0 if none is found or
    the file cannot be read; the readers then report the actual problem). Not for stdin, which
    cannot be read twice: use :func:`read_any`."""
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
    return _quizzes_from_table(_read_table(path, 1, ("quiz",)), path)


def _quizzes_from_table(table: _Table, path: Path) -> QuizFile:
    lines = np.asarray(table.lines, dtype=np.int64)
    checks, quizzes, _ = _row_checks(table)
    _raise_first(checks, lines, path)
    if table.error is not None:
        raise table.error
    return QuizFile(quizzes, lines, table.sha256, path)


def read_any(
    path: str | Path, *, check_duplicates: bool = False
) -> tuple[PuzzleSet | None, QuizFile | None, np.ndarray]:
    """Read a text puzzle file in one pass (so ``-``, stdin, works), whichever its form:
    ``quiz,solution`` rows or a quiz-only list. Returns ``(puzzles, None, lines)`` for the
    first form, ``(None, quiz_file, lines)`` for the second."""
    path = Path(path)
    table = _read_table(path, None, ("quiz", "solution"))
    if table.nfields == 1:
        qf = _quizzes_from_table(table, path)
        return None, qf, qf.lines
    puzzles, lines = _csv_from_table(table, path, check_duplicates, True)  # type: ignore[misc]
    return puzzles, None, lines


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
    or the path of either; ``-`` reads CSV from stdin). Raises DataFormatError (file, line,
    problem) on any bad input, including binary data, over-long lines and a directory that is
    not a SATNet folder."""
    path = Path(path)
    if _is_stdin(path):
        return read_csv(path, check_duplicates=check_duplicates)  # type: ignore[return-value]
    if not path.exists():
        raise DataFormatError("file not found", path)
    if path.is_dir() and not (path / "features.pt").exists():
        _check_readable(path)  # a directory that is not a SATNet folder
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
    "read_any",
    "read_csv",
    "read_puzzles",
    "read_quizzes",
    "read_satnet",
    "sidecar_path",
    "sniff_fields",
    "write_csv",
    "write_satnet",
]
