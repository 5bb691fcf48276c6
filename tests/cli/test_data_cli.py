"""``sadyn data make`` / ``sadyn data stats`` through the real dispatcher (sadyn.cli.main)."""

import gzip
import json

import numpy as np
import pytest

import sadyn.cli
from sadyn.sudoku import rrn, satnet
from sadyn.sudoku.board import to_string
from sadyn.sudoku.formats import read_puzzles, write_csv
from sadyn.sudoku.puzzles import PuzzleSet


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SADYN_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(rrn.ENV_POOL, raising=False)
    # only this subcommand: the others are built independently and may not import yet
    monkeypatch.setattr(sadyn.cli, "SUBCOMMANDS", ("data",))


def sadyn_main(*argv) -> int:
    return sadyn.cli.main([str(a) for a in argv])


def test_make_satnet_and_stats(tmp_path, capsys):
    out = tmp_path / "sat"
    assert sadyn_main("data", "make", "satnet", "--out", out, "--n", 40, "--no-progress") == 0
    text = capsys.readouterr().out
    assert "40 puzzles" in text and "SATNet-style" in text
    train, test = read_puzzles(out / "satnet-train.csv"), read_puzzles(out / "satnet-test.csv")
    assert len(train) == len(test) == 40 and train.meta["split"] == "train"
    assert (
        sadyn_main(
            "data", "stats", out / "satnet-test.csv", "--json", tmp_path / "s.json", "--no-progress"
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "40/40 unique" in text and "singles-solvable (no search): 40/40" in text
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["count"] == 40 and stats["unique"] == 40 and stats["solver_agrees"]
    assert sum(stats["givens_histogram"].values()) == 40


def test_make_is_deterministic_without_cache(tmp_path):
    for name in ("a", "b"):
        assert (
            sadyn_main(
                "data",
                "make",
                "satnet",
                "--out",
                tmp_path / name,
                "--n",
                15,
                "--split",
                "valid",
                "--seed",
                4,
                "--gzip",
                "--no-cache",
                "--no-progress",
            )
            == 0
        )
    assert (tmp_path / "a" / "satnet-valid.csv.gz").read_bytes() == (
        tmp_path / "b" / "satnet-valid.csv.gz"
    ).read_bytes()
    assert not (tmp_path / "cache").exists()


def test_make_rrn_with_a_custom_pool(tmp_path, capsys, royle_path):
    opener = gzip.open if royle_path.suffix == ".gz" else open
    lines = opener(royle_path, "rt").read().split()[:40]
    small = tmp_path / "pool.txt"
    small.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="differs from Royle"):
        code = sadyn_main(
            "data",
            "make",
            "rrn",
            "--out",
            tmp_path / "r",
            "--n",
            36,
            "--pool",
            small,
            "--no-progress",
        )
    assert code == 0
    ps = read_puzzles(tmp_path / "r" / "rrn-test.csv")
    assert len(ps) == 36 and "custom pool" in ps.source
    assert sadyn_main("data", "stats", small, "--no-progress") == 0  # a quiz-only list
    assert "40/40 unique" in capsys.readouterr().out


def test_stats_reports_non_unique_puzzles(tmp_path, capsys):
    ps = satnet.make_satnet("test", 30)
    quizzes = ps.quizzes.copy()
    quizzes[2] = 0  # an empty quiz has many solutions
    path = write_csv(PuzzleSet(quizzes, ps.solutions), tmp_path / "n.csv")
    assert sadyn_main("data", "stats", path, "--no-progress") == 1
    captured = capsys.readouterr()
    assert "29/30 unique" in captured.out and "line 3" in captured.err


@pytest.mark.parametrize(
    "content,words",
    [
        ("1" * 80 + "," + "1" * 81 + "\n", "line 1: quiz has 80 characters"),
        ("", "empty file"),
    ],
)
def test_stats_bad_input_exits_2(tmp_path, capsys, content, words):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert sadyn_main("data", "stats", path) == 2
    err = capsys.readouterr().err
    assert words in err and str(path) in err


def test_stats_names_the_bad_line_of_a_gzip_file(tmp_path, capsys):
    rows = [f"{to_string(np.zeros(81, np.uint8))},{'1' * 81}"]
    path = tmp_path / "b.csv.gz"
    path.write_bytes(gzip.compress(("quizzes,solutions\n" + "\n".join(rows) + "\n").encode()))
    assert sadyn_main("data", "stats", path) == 2
    assert "line 2: solution is not a valid Sudoku grid" in capsys.readouterr().err


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert sadyn_main("data", "make", "satnet", "--out", tmp_path, "--split", "dev") == 2
    assert "unknown split" in capsys.readouterr().err
    assert sadyn_main("data", "stats", tmp_path / "missing.csv") == 2
    assert (
        sadyn_main("data", "make", "rrn", "--out", tmp_path, "--pool", tmp_path / "none.txt") == 2
    )
    assert "not found" in capsys.readouterr().err
