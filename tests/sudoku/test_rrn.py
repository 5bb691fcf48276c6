import gzip

import numpy as np
import pytest
from scipy import stats

from sadyn.errors import DataFormatError, SadynError
from sadyn.sudoku import board, rrn
from sadyn.sudoku.grids import apply_relabel, random_relabel
from sadyn.sudoku.minimal import minimal_puzzles
from sadyn.sudoku.solver import solve, solve_many


def test_royle_pool_checksum_and_shape(royle_pool):
    assert royle_pool.kind == "royle"
    assert royle_pool.sha256 == rrn.ROYLE_SHA256
    assert len(royle_pool) == rrn.ROYLE_COUNT
    assert ((royle_pool.quizzes != 0).sum(axis=1) == 17).all()
    assert royle_pool.lines[0] == 1 and royle_pool.lines[-1] == rrn.ROYLE_COUNT


def test_pools_are_disjoint_and_cover_the_list():
    parts = rrn.split_pool(rrn.ROYLE_COUNT, seed=0)
    assert [len(parts[s]) for s in ("test", "valid", "train")] == [10_000, 1_000, 38_151]
    joined = np.concatenate([parts["test"], parts["valid"], parts["train"]])
    assert np.array_equal(np.sort(joined), np.arange(rrn.ROYLE_COUNT))
    assert not np.array_equal(rrn.split_pool(rrn.ROYLE_COUNT, 1)["test"], parts["test"])
    small = rrn.split_pool(100, seed=0)
    assert sorted(len(v) for v in small.values()) == [2, 20, 78]
    with pytest.raises(SadynError):
        rrn.split_pool(2, 0)


def test_draws_come_from_their_split_pool(royle_pool):
    parts = rrn.split_pool(len(royle_pool), seed=0)
    for split in ("test", "valid", "train"):
        rng = np.random.default_rng(0)
        d = rrn.draw(royle_pool, parts[split], 54, rng)
        assert set(d.base.tolist()) <= set(parts[split].tolist())


def test_relabelled_and_revealed_puzzles_keep_their_base(royle_pool):
    parts = rrn.split_pool(len(royle_pool), seed=0)
    d = rrn.draw(royle_pool, parts["test"], 180, np.random.default_rng(1))
    assert np.array_equal(np.bincount(d.extra), np.full(18, 10))
    assert ((d.quizzes != 0).sum(axis=1) == 17 + d.extra).all()
    for quiz, base, sol in zip(d.quizzes, d.base, d.solutions, strict=True):
        b = royle_pool.quizzes[base]
        # the base's 17 givens are still given, under one consistent digit bijection
        assert (quiz[b != 0] != 0).all()
        pairs = set(zip(b[b != 0].tolist(), quiz[b != 0].tolist(), strict=True))
        assert len({p[0] for p in pairs}) == len(pairs) == len({p[1] for p in pairs})
        assert board.agrees(quiz, sol)[0]
    counts, found, _ = solve_many(d.quizzes[:120], 2)
    assert (counts == 1).all() and (found == d.solutions[:120]).all()


def test_relabelling_preserves_uniqueness(royle_pool):
    quizzes = royle_pool.quizzes[100:130]
    sols = royle_pool.solve(np.arange(100, 130))
    new, perms = random_relabel(quizzes, np.random.default_rng(2))
    counts, found, _ = solve_many(new, 2)
    assert (counts == 1).all()
    assert (found == apply_relabel(sols, perms)).all()


def test_make_rrn_test_split(royle_pool):
    pool = royle_pool
    ps = rrn.make_rrn("test", 1800, seed=0, pool=pool)
    hist = board.givens_histogram(ps.quizzes)
    assert hist == {g: 100 for g in range(17, 35)}  # exactly uniform over 17..34
    # chi-square against uniform on a random half (a test of the sampling, not just the layout)
    half = np.random.default_rng(0).choice(len(ps), 900, replace=False)
    counts = np.bincount(ps.num_givens[half] - 17, minlength=18)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert "Royle" in ps.source and ps.meta["pool"] == "royle"
    again = rrn.make_rrn("test", 1800, seed=0, pool=pool)
    assert np.array_equal(ps.quizzes, again.quizzes)
    other = rrn.make_rrn("test", 36, seed=1, pool=pool)
    assert not np.array_equal(other.quizzes, ps.quizzes[:36])
    with pytest.raises(SadynError):
        rrn.make_rrn("dev", 10, pool=pool)


def test_minimal_puzzles_are_minimal_and_unique():
    quizzes, sols = minimal_puzzles(4, np.random.default_rng(3))
    for quiz, sol in zip(quizzes, sols, strict=True):
        r = solve(quiz, 2)
        assert r.count == 1 and (r.solution == sol).all()
        for cell in np.flatnonzero(quiz):
            q = quiz.copy()
            q[cell] = 0
            assert solve(q, 2).count == 2  # every given is needed
    assert 18 <= board.num_givens(quizzes).min() and board.num_givens(quizzes).max() <= 32


def test_fallback_says_so_and_is_unique():
    ps = rrn.make_rrn("test", 36, seed=0, pool=None)
    assert "FALLBACK" in ps.source and ps.meta["pool"] == "fallback-minimal"
    counts, found, _ = solve_many(ps.quizzes, 2)
    assert (counts == 1).all() and (found == ps.solutions).all()
    valid = rrn.make_rrn("valid", 18, seed=0, pool=None)
    assert not set(map(bytes, valid.solutions)) & set(map(bytes, ps.solutions))


def test_custom_pool_is_flagged_and_checked(tmp_path, royle_pool):
    lines = [board.to_string(q) for q in royle_pool.quizzes[:30]]
    good = tmp_path / "pool.txt.gz"
    good.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.warns(UserWarning, match="differs from Royle"):
        pool = rrn.load_pool(good)
    assert pool.kind == "custom"
    ps = rrn.make_rrn("train", 18, pool=pool)
    assert "custom pool" in ps.source
    # a 16-clue line is not uniquely solvable: the error names its line
    q = royle_pool.quizzes[5].copy()
    q[np.flatnonzero(q)[0]] = 0
    lines[5] = board.to_string(q)
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning):
        pool = rrn.load_pool(bad)
    with pytest.raises(DataFormatError, match="more than one solution") as err:
        pool.solve(np.arange(30))
    assert err.value.line == 6


def test_find_pool(tmp_path, monkeypatch, royle_path):
    monkeypatch.setattr(rrn, "_SHARED_DATA", tmp_path / "nowhere")
    assert rrn.find_pool(None) is None
    assert rrn.find_pool(royle_path) == royle_path
    with pytest.raises(SadynError, match="not found"):
        rrn.find_pool(tmp_path / "missing.txt")
    monkeypatch.setenv(rrn.ENV_POOL, str(tmp_path / "missing.txt"))
    with pytest.raises(SadynError, match=rrn.ENV_POOL):
        rrn.find_pool(None)
    monkeypatch.setenv(rrn.ENV_POOL, str(royle_path))
    assert rrn.find_pool(None) == royle_path
    monkeypatch.delenv(rrn.ENV_POOL)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sudoku17-royle.txt").write_text("x")
    assert rrn.find_pool(None, [tmp_path / "data"]) == tmp_path / "data" / "sudoku17-royle.txt"


@pytest.mark.parametrize("name", ["sudoku17.txt", "sudoku17.txt.gz"])
def test_find_pool_accepts_the_published_name(tmp_path, monkeypatch, name):
    """The README tells users to fetch ``sudoku17.txt(.gz)``: the data folder search finds it
    under that name (not only under the project's own ``sudoku17-royle`` name)."""
    monkeypatch.setattr(rrn, "_SHARED_DATA", tmp_path / "nowhere")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_text("x")
    assert rrn.find_pool(None, [tmp_path / "data"]) == tmp_path / "data" / name


def test_the_tests_use_the_list_sadyn_sudoku17_names(tmp_path):
    """Tests that need Royle's list take it from $SADYN_SUDOKU17 when that is set (they used to
    look only in the shared folder and skip elsewhere)."""
    from royle import find_royle_list

    listed = tmp_path / "elsewhere" / "my-copy.txt.gz"
    listed.parent.mkdir()
    listed.write_bytes(b"")
    assert find_royle_list(str(listed)) == listed
    assert find_royle_list(str(tmp_path / "missing.txt")) is None


@pytest.mark.slow
def test_full_test_split(royle_pool):
    ps = rrn.make_rrn("test", seed=0, pool=royle_pool)
    assert len(ps) == 18_000
    counts = np.bincount(ps.num_givens - 17, minlength=18)
    assert stats.chisquare(counts).pvalue > 1e-3 and counts.min() == 1000
    sample = np.random.default_rng(0).choice(len(ps), 2000, replace=False)
    n_sol, found, _ = solve_many(ps.quizzes[sample], 2)
    assert (n_sol == 1).all() and (found == ps.solutions[sample]).all()
