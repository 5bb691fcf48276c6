import os

import numpy as np
import pytest
import torch

from sadyn.errors import SadynError
from sadyn.sudoku import datasets, rrn, satnet
from sadyn.sudoku.formats import write_csv


def test_get_dataset_caches_and_is_deterministic(tmp_path, monkeypatch):
    ps = datasets.get_dataset("satnet", "train", n=60, seed=2, progress=False)
    path = datasets.cache_file("satnet", "train", 60, 2)
    assert path.parent == tmp_path / "cache" and path.is_file()
    assert len(ps) == 60 and ps.meta["seed"] == 2

    def boom(*args, **kwargs):
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(satnet, "make_satnet", boom)
    again = datasets.get_dataset("satnet", "train", n=60, seed=2, progress=False)
    assert np.array_equal(again.quizzes, ps.quizzes) and again.source == ps.source
    # an explicit cache_dir wins over $SADYN_DATA_DIR
    monkeypatch.undo()
    other = datasets.get_dataset("satnet", "train", n=60, seed=2, cache_dir=tmp_path / "c2")
    assert np.array_equal(other.quizzes, ps.quizzes)
    assert (tmp_path / "c2" / path.name).is_file()


def test_smaller_sets_are_prefixes_and_splits_disjoint():
    big = datasets.get_dataset("satnet", "train", n=80, progress=False)
    small = datasets.get_dataset("satnet", "train", n=30, progress=False)
    assert np.array_equal(big.quizzes[:30], small.quizzes)
    test = datasets.get_dataset("satnet", "test", n=40, progress=False)
    valid = datasets.get_dataset("satnet", "valid", n=40, progress=False)
    seen = [set(map(bytes, s.solutions)) for s in (big, test, valid)]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_sets_larger_than_the_default(monkeypatch):
    # shrink SATNet's 9,000 / 1,000 layout so that "larger than the default" is cheap to test
    monkeypatch.setattr(satnet, "SATNET_TRAIN", 40)
    monkeypatch.setattr(satnet, "SATNET_TEST", 10)
    monkeypatch.setitem(satnet.DEFAULT_SIZES, "train", 40)
    monkeypatch.setitem(satnet.DEFAULT_SIZES, "test", 10)
    train = datasets.get_dataset("satnet", "train", n=70, progress=False)
    test = datasets.get_dataset("satnet", "test", n=25, progress=False)
    q, _ = satnet.stream(0, 0, 0, 100)
    assert np.array_equal(train.quizzes, np.concatenate([q[:40], q[50:80]]))
    assert np.array_equal(test.quizzes[:10], q[40:50])
    assert not set(map(bytes, train.quizzes)) & set(map(bytes, test.quizzes))


def test_rrn_dataset_with_the_royle_pool(royle_path):
    ps = datasets.get_dataset("rrn", "test", n=36, progress=False)
    assert ps.meta["pool"] == "royle" and "Royle" in ps.source
    assert "royle" in datasets.cache_file("rrn", "test", 36, 0, variant="royle").name
    assert datasets.cache_file("rrn", "test", 36, 0, variant="royle").is_file()
    assert sorted(set(ps.num_givens.tolist())) == list(range(17, 35))


def test_rrn_fallback_is_labelled(monkeypatch, tmp_path):
    monkeypatch.setattr(rrn, "_SHARED_DATA", tmp_path / "nowhere")
    with pytest.warns(datasets.PoolFallbackWarning, match="SADYN_SUDOKU17=/path"):
        ps = datasets.get_dataset("rrn", "valid", n=18, progress=False)
    assert "FALLBACK" in ps.source and ps.meta["pool"] == "fallback-minimal"
    assert datasets.cache_file("rrn", "valid", 18, 0, variant="fallback").is_file()


def test_damaged_cache_is_made_again(monkeypatch):
    ps = datasets.get_dataset("satnet", "test", n=20, progress=False)
    path = datasets.cache_file("satnet", "test", 20, 0)
    path.write_bytes(path.read_bytes()[:30])  # truncated gzip
    with pytest.warns(UserWarning, match="damaged cache"):
        again = datasets.get_dataset("satnet", "test", n=20, progress=False)
    assert np.array_equal(again.quizzes, ps.quizzes)
    # a cache file whose sidecar does not match is not trusted either
    write_csv(ps.subset(slice(0, 10)), path, sidecar=False)
    assert len(datasets.get_dataset("satnet", "test", n=20, progress=False)) == 20


def test_resolve_dataset(tmp_path, royle_path):
    ident = datasets.resolve_dataset("id", n=15)
    assert ident.meta["kind"] == "satnet" and ident.meta["split"] == "test" and len(ident) == 15
    ood = datasets.resolve_dataset("ood", n=18)
    assert ood.meta["kind"] == "rrn" and len(ood) == 18
    assert datasets.resolve_dataset("satnet:valid", n=5).meta["split"] == "valid"
    path = write_csv(ident, tmp_path / "f.csv")
    assert len(datasets.resolve_dataset(str(path), n=7)) == 7
    assert len(datasets.resolve_dataset(str(path))) == 15
    with pytest.raises(SadynError, match="fewer than"):
        datasets.resolve_dataset(str(path), n=16)
    with pytest.raises(SadynError, match="no such data set"):
        datasets.resolve_dataset("nonsense")


def test_bad_arguments():
    with pytest.raises(SadynError, match="kind"):
        datasets.get_dataset("kaggle", "train")
    with pytest.raises(SadynError, match="split"):
        datasets.get_dataset("satnet", "dev")
    with pytest.raises(SadynError, match="positive"):
        datasets.get_dataset("satnet", "train", n=0)
    assert datasets.default_size("rrn", "test") == 18_000
    assert datasets.default_size("satnet", "train") == 9_000


def test_data_dir_resolution(monkeypatch, tmp_path):
    assert datasets.data_dir() == tmp_path / "cache"
    monkeypatch.delenv("SADYN_DATA_DIR")
    assert datasets.data_dir() == datasets.Path(os.path.expanduser("~/.cache/sadyn/data"))
    assert datasets.data_dir(tmp_path) == tmp_path


def test_torch_dataset():
    ps = datasets.get_dataset("satnet", "test", n=10, progress=False)
    ds = datasets.SudokuDataset(ps)
    quiz, sol, given = ds[3]
    assert quiz.dtype == torch.long and sol.dtype == torch.long and given.dtype == torch.bool
    assert torch.equal(given, quiz != 0) and int(sol.min()) >= 1
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    q, s, g = next(iter(loader))
    assert q.shape == s.shape == g.shape == (4, 81)
    assert torch.equal(q, torch.from_numpy(ps.quizzes[:4]).long())
    assert len(ds) == 10
