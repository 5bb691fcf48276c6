"""The full training state in size-limited pieces: pack, unpack elsewhere, resume exactly; and
the raw-vs-EMA choice on a validation split."""

import json

import pytest
import torch

from sadyn.errors import CheckpointError, SadynError
from sadyn.training import read_checkpoint, train
from sadyn.training.packing import MANIFEST, pack_run, run_files, unpack_run
from sadyn.training.weights import choose_weights, validation_set


def final_tensors(out):
    c = read_checkpoint(out)
    return c.model, c.ema, {k: v for k, v in c.state.items() if k.startswith(("optim/", "rng/"))}


def test_pack_unpack_resume_equals_the_uninterrupted_run(tiny_run, make_config, tmp_path):
    _config, reference, _ = tiny_run
    first = train(make_config(max_minutes=1e-9), tmp_path / "here", progress=False)
    assert first.status == "time_budget" and first.step == 1
    max_bytes = 64 * 1024  # the tiny model's state is a few hundred KiB: several pieces
    written = pack_run(tmp_path / "here", tmp_path / "trip", max_bytes=max_bytes)
    pieces = [p for p in written if p.name != MANIFEST]
    assert len(pieces) >= 3 and all(p.stat().st_size <= max_bytes for p in pieces)
    # nothing but the pieces and the manifest travels
    unpack_run(tmp_path / "trip", tmp_path / "there")
    assert sorted(map(str, run_files(tmp_path / "there"))) == sorted(
        map(str, run_files(tmp_path / "here"))
    )
    done = train(make_config(), tmp_path / "there", resume=True, progress=False)
    assert done.status == "completed" and done.step == 10
    # weights, EMA, optimizer moments and generator states equal the uninterrupted run's, bit
    # for bit (CPU, same thread count)
    for x, y in zip(final_tensors(tmp_path / "there"), final_tensors(reference), strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k


def test_unpack_checks_every_piece(tiny_run, tmp_path):
    _, run, _ = tiny_run
    pack_run(run, tmp_path / "trip", max_bytes=64 * 1024)
    piece = tmp_path / "trip" / "state.tar.001"
    data = bytearray(piece.read_bytes())
    data[100] ^= 1
    piece.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"state.tar.001: size or SHA-256"):
        unpack_run(tmp_path / "trip", tmp_path / "there")
    assert not (tmp_path / "there").exists()  # nothing written before the checks pass
    piece.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        unpack_run(tmp_path / "trip", tmp_path / "there")
    (tmp_path / "trip" / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        unpack_run(tmp_path / "trip", tmp_path / "there")


def test_pack_leaves_out_checkpoints_no_pointer_names(tiny_run, tmp_path):
    _, run, _ = tiny_run
    stale = run.parent / "copy"
    import shutil

    shutil.copytree(run, stale)
    (stale / "checkpoints" / "step-0000001").mkdir()
    (stale / "checkpoints" / "step-0000001" / "model.safetensors").write_bytes(b"old")
    files = {str(p) for p in run_files(stale)}
    assert not any(f.startswith("checkpoints/step-0000001") for f in files)
    pointed = json.loads((stale / "latest.json").read_text())["checkpoint"]
    assert any(f.startswith(pointed + "/") and f.endswith("state.safetensors") for f in files)


def test_weights_are_chosen_on_a_validation_split_never_a_test_set(tiny_run):
    _, run, _ = tiny_run
    for spec in ("id", "ood", "satnet:test", "rrn:test"):
        with pytest.raises(SadynError, match="test"):
            validation_set(spec, 10)
    choice = choose_weights(run, n=20, steps=8)
    assert choice["validation"] == "satnet:valid" and choice["n"] == 20
    acc = choice["board_accuracy"]
    cell = choice["cell_accuracy"]
    # the choice is the better of the two on the validation puzzles (EMA on a tie)
    better_raw = (acc["raw"], cell["raw"]) > (acc["ema"], cell["ema"])
    assert choice["weights"] == ("raw" if better_raw else "ema")
    assert choice["step"] == 10
