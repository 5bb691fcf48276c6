import gzip
import io
import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sadyn.errors import DataFormatError
from sadyn.sudoku import board, rrn
from sadyn.sudoku.formats import (
    read_csv,
    read_puzzles,
    read_quizzes,
    sidecar_path,
    sniff_fields,
    write_csv,
    write_satnet,
)
from sadyn.sudoku.grids import random_grids
from sadyn.sudoku.puzzles import PuzzleSet

SHARED_SAMPLE = "kaggle-format-sample.csv"


def make_set(n: int, seed: int, p_given: float = 0.4) -> PuzzleSet:
    rng = np.random.default_rng(seed)
    sols = random_grids(n, rng)
    quizzes = np.where(rng.random(sols.shape) < p_given, sols, 0)
    return PuzzleSet(quizzes, sols, f"random set {seed}", {"seed": seed})


def rows_of(ps: PuzzleSet) -> list[str]:
    return [
        f"{board.to_string(q)},{board.to_string(s)}"
        for q, s in zip(ps.quizzes, ps.solutions, strict=True)
    ]


def write_lines(path, lines, *, newline="\n", bom=False, compress=False):
    data = ("\ufeff" if bom else "") + newline.join(lines) + newline
    raw = data.encode("utf-8")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ["set.csv", "set.csv.gz"])
@pytest.mark.parametrize("header", [False, True])
def test_csv_round_trip_with_meta(tmp_path, name, header):
    ps = make_set(25, 0)
    path = write_csv(ps, tmp_path / name, header=header)
    back = read_puzzles(path)
    assert np.array_equal(back.quizzes, ps.quizzes) and np.array_equal(back.solutions, ps.solutions)
    assert back.source == ps.source and back.meta["seed"] == 0
    assert sidecar_path(path) == tmp_path / "set.meta.json"
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        assert write_csv(ps, tmp_path / "again.csv.gz", header=header).read_bytes() == (
            path.read_bytes()
        )  # reproducible gzip (no timestamp)


def test_satnet_round_trip(tmp_path):
    ps = make_set(12, 1)
    folder = write_satnet(ps, tmp_path / "satnet")
    for where in (folder, folder / "features.pt", folder / "labels.pt"):
        back = read_puzzles(where)
        assert np.array_equal(back.quizzes, ps.quizzes)
        assert np.array_equal(back.solutions, ps.solutions)
    features = torch.load(folder / "features.pt", weights_only=True)
    assert features.shape == (12, 9, 9, 9) and features.dtype == torch.float32
    assert torch.equal(features.sum(-1).reshape(12, 81) > 0, torch.from_numpy(ps.givens_mask))


def test_shared_kaggle_sample_reads_as_is():
    path = rrn._SHARED_DATA / SHARED_SAMPLE
    if not path.is_file():
        pytest.skip("the shared Kaggle-format sample is not available")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM + header: the point of this fixture
    ps = read_puzzles(path)
    assert len(ps) == 30 and ps.meta["header"] == "quizzes,solutions"
    assert (
        board.valid_solutions(ps.solutions).all() and board.agrees(ps.quizzes, ps.solutions).all()
    )


def test_real_world_layout(tmp_path):
    ps = make_set(5, 2)
    lines = ["quiz,solution", *rows_of(ps)]
    lines[2] = lines[2].replace(",", " , ")  # spaces around the comma
    lines.insert(3, "   ")  # a blank line
    lines[4] = '"' + lines[4].replace(",", '","') + '"'  # quoted fields
    lines[1] = lines[1].replace("0", ".", 5)
    for compress in (False, True):
        path = write_lines(
            tmp_path / f"x{int(compress)}.csv", lines, newline="\r\n", bom=True, compress=compress
        )
        back, line_numbers = read_csv(path, return_lines=True)
        assert np.array_equal(back.quizzes, ps.quizzes)
        assert line_numbers.tolist() == [2, 3, 5, 6, 7]


def test_read_quizzes_and_sniff(tmp_path):
    ps = make_set(6, 3)
    path = write_lines(tmp_path / "q.txt", [board.to_string(q) for q in ps.quizzes])
    qf = read_quizzes(path)
    assert np.array_equal(qf.quizzes, ps.quizzes) and qf.lines.tolist() == list(range(1, 7))
    assert sniff_fields(path) == 1 and sniff_fields(write_csv(ps, tmp_path / "p.csv")) == 2
    with pytest.raises(DataFormatError, match="quiz without its solution"):
        read_puzzles(path)


# --------------------------------------------------------------------------- bad input


def corrupt(tmp_path, edit, n=8, **kw):
    lines = rows_of(make_set(n, 4))
    edit(lines)
    return write_lines(tmp_path / "bad.csv", lines, **kw)


def swap_in_solution(lines, i):
    q, s = lines[i].split(",")
    a = next(k for k in range(9) if s[k] != s[k + 1])
    s = s[:a] + s[a + 1] + s[a] + s[a + 2 :]
    lines[i] = f"{q},{s}"


CASES = {
    "short quiz": (lambda L: L.__setitem__(3, L[3][1:]), 4, "81"),
    "long solution": (lambda L: L.__setitem__(2, L[2] + "1"), 3, "82 characters"),
    "letter": (lambda L: L.__setitem__(5, L[5][:7] + "x" + L[5][8:]), 6, "'x' at position 8"),
    "blank in solution": (lambda L: L.__setitem__(1, L[1][:90] + "0" + L[1][91:]), 2, "1-9"),
    "disagree": (
        lambda L: L.__setitem__(
            4,
            "".join(
                str(int(c) % 9 + 1) if k == next(j for j in range(81) if L[4][j] != "0") else c
                for k, c in enumerate(L[4])
            ),
        ),
        5,
        "disagrees",
    ),
    "invalid solution": (lambda L: swap_in_solution(L, 6), 7, "not a valid Sudoku grid"),
    "three fields": (lambda L: L.__setitem__(0, L[0] + ",x"), 1, "found 3"),
    "one field": (lambda L: L.__setitem__(7, L[7].split(",")[0]), 8, "found 1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("compress", [False, True])
def test_bad_rows_name_file_and_line(tmp_path, case, compress):
    edit, line, words = CASES[case]
    path = corrupt(tmp_path, edit, compress=compress)
    with pytest.raises(DataFormatError, match=words) as err:
        read_puzzles(path)
    assert err.value.line == line and err.value.path == str(path)
    assert f"line {line}" in str(err.value) and str(path) in str(err.value)


def test_earliest_bad_line_wins(tmp_path):
    # a structural problem late in the file and a Sudoku problem early: the early one is named
    def edit(lines):
        swap_in_solution(lines, 1)
        lines[6] = lines[6][:40]

    with pytest.raises(DataFormatError) as err:
        read_puzzles(corrupt(tmp_path, edit))
    assert err.value.line == 2


def test_duplicates_only_when_asked(tmp_path):
    lines = rows_of(make_set(5, 5))
    path = write_lines(tmp_path / "d.csv", [*lines, lines[1]])
    assert len(read_puzzles(path)) == 6  # kept: nothing dropped silently either
    with pytest.raises(DataFormatError, match="same quiz as line 2") as err:
        read_puzzles(path, check_duplicates=True)
    assert err.value.line == 6
    folder = write_satnet(PuzzleSet.concat([make_set(3, 6), make_set(3, 6)]), tmp_path / "s")
    assert len(read_puzzles(folder)) == 6
    with pytest.raises(DataFormatError, match="duplicates puzzle 1"):
        read_puzzles(folder, check_duplicates=True)


@pytest.mark.parametrize(
    "content,words",
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (b"quizzes,solutions\n", "after the header"),
        (b"\xef\xbb\xbfquizzes,solutions\r\n", "after the header"),
    ],
)
def test_empty_files(tmp_path, content, words):
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=words):
        read_puzzles(path)
    gz = tmp_path / "e.csv.gz"
    gz.write_bytes(gzip.compress(content))
    with pytest.raises(DataFormatError, match=words):
        read_puzzles(gz)


def test_truncated_gzip_at_every_cut(tmp_path):
    path = write_csv(make_set(40, 7), tmp_path / "t.csv.gz", sidecar=False)
    raw = path.read_bytes()
    for cut in range(1, len(raw), max(1, len(raw) // 60)):
        bad = tmp_path / "cut.csv.gz"
        bad.write_bytes(raw[:cut])
        with pytest.raises(DataFormatError) as err:
            read_puzzles(bad)
        assert "cut.csv.gz" in str(err.value)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(raw[:-4])  # only the length field of the trailer is missing
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_puzzles(cut)


def test_not_gzip_and_not_utf8(tmp_path):
    fake = tmp_path / "f.csv.gz"
    fake.write_text("0" * 81 + "," + "1" * 81 + "\n")
    with pytest.raises(DataFormatError, match="not gzip"):
        read_puzzles(fake)
    lines = rows_of(make_set(3, 8))
    path = tmp_path / "u.csv"
    path.write_bytes(("\n".join(lines[:2]) + "\n").encode() + b"\xff\xfe" + lines[2].encode())
    with pytest.raises(DataFormatError, match="UTF-8") as err:
        read_puzzles(path)
    assert err.value.line == 3
    with pytest.raises(DataFormatError, match="not found"):
        read_puzzles(tmp_path / "missing.csv")


def test_quiz_only_rule_breaks(tmp_path):
    q = np.zeros(81, dtype=np.uint8)
    q[[0, 9]] = 4  # column 1 twice
    path = write_lines(
        tmp_path / "q.txt", [board.to_string(np.zeros(81, np.uint8)), board.to_string(q)]
    )
    with pytest.raises(DataFormatError, match="column 1 holds digit 4 twice") as err:
        read_quizzes(path)
    assert err.value.line == 2


def test_stale_sidecar_is_ignored_with_a_warning(tmp_path):
    path = write_csv(make_set(4, 9), tmp_path / "s.csv")
    other = make_set(4, 10)
    write_csv(other, tmp_path / "s.csv", sidecar=False)
    with pytest.warns(UserWarning, match="stale"):
        back = read_puzzles(path)
    assert back.source == f"file {path}"


# --------------------------------------------------------------------------- SATNet tensors


def save(path, obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    path.write_bytes(buf.getvalue())


def satnet_dir(tmp_path, ps=None):
    return write_satnet(ps or make_set(6, 11), tmp_path / "sn")


def test_satnet_bad_shapes_and_values(tmp_path):
    folder = satnet_dir(tmp_path)
    feats = torch.load(folder / "features.pt", weights_only=True)
    save(folder / "features.pt", feats.reshape(6, 729))
    with pytest.raises(DataFormatError, match=r"expected shape .* got \(6, 729\)") as err:
        read_puzzles(folder)
    assert err.value.path.endswith("features.pt")
    save(folder / "features.pt", feats.reshape(6, 81, 9))  # the flat layout is accepted
    assert len(read_puzzles(folder)) == 6
    save(folder / "features.pt", feats[:5])
    with pytest.raises(DataFormatError, match=r"5 puzzles in features.pt but 6"):
        read_puzzles(folder)
    bad = feats.clone()
    bad[2, 0, 0] = 0.5
    save(folder / "features.pt", bad)
    with pytest.raises(DataFormatError, match=r"puzzle 3 .* other than 0/1"):
        read_puzzles(folder)
    bad = feats.clone()
    bad[4, 1, 1, :2] = 1
    save(folder / "features.pt", bad)
    with pytest.raises(DataFormatError, match=r"puzzle 5 .* not one-hot"):
        read_puzzles(folder)


def test_satnet_bad_labels(tmp_path):
    ps = make_set(6, 12)
    folder = satnet_dir(tmp_path, ps)
    labels = torch.load(folder / "labels.pt", weights_only=True)
    blank = labels.clone()
    blank[1, 2, 3] = 0
    save(folder / "labels.pt", blank)
    with pytest.raises(DataFormatError, match=r"puzzle 2 .* not one-hot"):
        read_puzzles(folder)
    swapped = labels.clone()
    swapped[3, 0, [0, 1]] = swapped[3, 0, [1, 0]]
    save(folder / "labels.pt", swapped)
    with pytest.raises(DataFormatError, match=r"puzzle 4 .*not a valid Sudoku grid"):
        read_puzzles(folder)
    relabel = ps.solutions.copy()
    relabel[2] = 10 - relabel[2]  # still a valid grid, but the givens now disagree
    write_satnet(PuzzleSet(ps.quizzes * 0, relabel), tmp_path / "tmp")
    save(folder / "labels.pt", torch.load(tmp_path / "tmp" / "labels.pt", weights_only=True))
    with pytest.raises(DataFormatError, match=r"puzzle 3 .* disagrees"):
        read_puzzles(folder)


def test_satnet_refuses_pickles_and_non_tensors(tmp_path):
    folder = satnet_dir(tmp_path)
    (folder / "features.pt").write_bytes(pickle.dumps(Fraction(1, 3)))
    with pytest.raises(DataFormatError, match="cannot load tensor"):
        read_puzzles(folder)
    save(folder / "features.pt", {"features": 1})
    with pytest.raises(DataFormatError, match="expected a tensor, found dict"):
        read_puzzles(folder)
    write_satnet(make_set(6, 11), folder)
    (folder / "labels.pt").unlink()
    with pytest.raises(DataFormatError, match=r"labels.pt: file not found"):
        read_puzzles(folder)


# --------------------------------------------------------------------------- properties

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    n=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    p=st.floats(0.0, 1.0),
    header=st.booleans(),
    crlf=st.booleans(),
    bom=st.booleans(),
    compress=st.booleans(),
)
def test_property_round_trip(tmp_path, n, seed, p, header, crlf, bom, compress):
    ps = make_set(n, seed, p)
    lines = (["quizzes,solutions"] if header else []) + rows_of(ps)
    path = write_lines(
        tmp_path / "r.csv", lines, newline="\r\n" if crlf else "\n", bom=bom, compress=compress
    )
    back = read_puzzles(path)
    assert np.array_equal(back.quizzes, ps.quizzes)
    assert np.array_equal(back.solutions, ps.solutions)


def _edit_char(row: str, pos: int, ch: str) -> str:
    return row[:pos] + ch + row[pos + 1 :]


@SETTINGS
@given(
    n=st.integers(1, 10),
    seed=st.integers(0, 2**16),
    data=st.data(),
    header=st.booleans(),
    compress=st.booleans(),
)
def test_property_corruptions_name_their_line(tmp_path, n, seed, data, header, compress):
    ps = make_set(n, seed, 0.5)
    rows = rows_of(ps)
    i = data.draw(st.integers(0, n - 1), label="row")
    kind = data.draw(
        st.sampled_from(["drop", "add", "char", "sol_blank", "given", "swap", "field", "sep"]),
        label="kind",
    )
    pos = data.draw(st.integers(0, 80), label="pos")
    q, s = rows[i].split(",")
    if kind == "drop":
        q = q[:pos] + q[pos + 1 :]
    elif kind == "add":
        s = s[:pos] + data.draw(st.sampled_from("0123456789")) + s[pos:]
    elif kind == "char":
        q = _edit_char(q, pos, data.draw(st.sampled_from("x- ;é/")))
    elif kind == "sol_blank":
        s = _edit_char(s, pos, data.draw(st.sampled_from("0.")))
    elif kind == "given":
        givens = [k for k in range(81) if q[k] != "0"] or [pos]
        k = givens[pos % len(givens)]
        q = _edit_char(q, k, str(int(s[k]) % 9 + 1))  # a given that contradicts the solution
    elif kind == "swap":
        a = next(k for k in range(80) if s[k] != s[k + 1])
        s = s[:a] + s[a + 1] + s[a] + s[a + 2 :]
    elif kind == "field":
        s = s + ",1"
    else:
        q = q + ";"
    rows[i] = f"{q},{s}"
    lines = (["quizzes,solutions"] if header else []) + rows
    path = write_lines(tmp_path / "c.csv", lines, compress=compress)
    with pytest.raises(DataFormatError) as err:
        read_puzzles(path)
    assert err.value.line == i + 1 + int(header)


def test_property_sidecar_not_needed(tmp_path):
    ps = make_set(3, 13)
    path = write_csv(ps, tmp_path / "n.csv", sidecar=False)
    assert not sidecar_path(path).exists()
    assert read_puzzles(path).source == f"file {path}"


# ---------------------------------------------------------------------------------------------
# streaming: binary data, over-long lines, directories, stdin


class _Stdin:
    """A stand-in for sys.stdin with a binary ``buffer`` (as a pipe gives)."""

    def __init__(self, data: bytes):
        self.buffer = io.BufferedReader(io.BytesIO(data))


def test_nul_bytes_are_binary_data_found_at_once(tmp_path):
    path = tmp_path / "zeros.csv"
    with open(path, "wb") as fh:  # 64 MB of NUL bytes, no newline
        fh.truncate(64 << 20)
    with pytest.raises(DataFormatError, match=r"binary data \(a NUL byte at byte offset 0\)") as e:
        read_puzzles(path)
    assert e.value.line == 1 and e.value.path == str(path)
    # a NUL after good rows: the line and the byte offset of the NUL
    ps = make_set(3, 0)
    good = "\n".join(rows_of(ps)).encode() + b"\n"
    path.write_bytes(good + b"12\x00rest\n")
    with pytest.raises(DataFormatError, match=f"byte offset {len(good) + 2}") as e:
        read_puzzles(path)
    assert e.value.line == 4


def test_reading_is_line_bounded(tmp_path):
    import tracemalloc

    path = tmp_path / "one-line.csv"
    path.write_bytes(b"1" * (8 << 20))  # 8 MB without a newline
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match="line longer than 4096 bytes"):
            read_puzzles(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # the 8 MB line is never held in memory


def test_a_directory_is_named_as_such(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(DataFormatError, match="is a directory, not a puzzle file"):
        read_puzzles(tmp_path / "d")
    with pytest.raises(DataFormatError, match="is a directory"):
        read_quizzes(tmp_path / "d")


def test_dash_reads_stdin_plain_and_gzip(monkeypatch):
    from sadyn.sudoku.formats import read_any

    ps = make_set(5, 1)
    text = ("quizzes,solutions\n" + "\n".join(rows_of(ps)) + "\n").encode()
    monkeypatch.setattr("sys.stdin", _Stdin(text))
    back = read_puzzles("-")
    assert np.array_equal(back.quizzes, ps.quizzes) and back.source == "file <stdin>"
    monkeypatch.setattr("sys.stdin", _Stdin(gzip.compress(text)))
    assert np.array_equal(read_csv("-").solutions, ps.solutions)
    # a quiz-only list through a pipe, in one pass
    quiz_only = "\n".join(board.to_string(q) for q in ps.quizzes).encode()
    monkeypatch.setattr("sys.stdin", _Stdin(quiz_only))
    found, qf, lines = read_any("-")
    assert found is None and np.array_equal(qf.quizzes, ps.quizzes)
    assert lines.tolist() == [1, 2, 3, 4, 5]
    monkeypatch.setattr("sys.stdin", _Stdin(b"not a puzzle\n123\n"))
    with pytest.raises(DataFormatError, match=r"<stdin>, line 2: expected 2 comma-separated"):
        read_puzzles("-")


def test_non_ascii_characters_are_reported_as_written(tmp_path):
    ps = make_set(2, 2)
    rows = rows_of(ps)
    rows[1] = "é" + rows[1][1:]
    path = tmp_path / "accent.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2: quiz: character 'é' at position 1"):
        read_puzzles(path)
