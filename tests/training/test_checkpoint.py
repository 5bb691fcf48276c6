"""Checkpoints: round trip, pointers, and clear errors on corrupt, truncated or foreign files."""

import json
import pickle
import shutil

import pytest
import torch

from sadyn.errors import CheckpointError
from sadyn.training import load_checkpoint, read_checkpoint
from sadyn.training.checkpoint import POINTERS, resolve_checkpoint


@pytest.fixture
def ckpt_copy(tiny_run, tmp_path):
    """A private copy of the tiny run's latest checkpoint directory."""
    _, out, _ = tiny_run
    src = resolve_checkpoint(out)
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_round_trip_ema_and_raw_weights(tiny_run):
    _, out, _ = tiny_run
    c = read_checkpoint(out)
    ema_model, cfg, meta = load_checkpoint(out)
    raw_model, _, _ = load_checkpoint(out, weights="raw")
    for k, v in ema_model.state_dict().items():
        assert torch.equal(v, c.ema[k])
        assert torch.equal(raw_model.state_dict()[k], c.model[k])
    assert not ema_model.training
    assert meta["train_config"]["model"]["dim"] == cfg["dim"] == 32
    best = json.loads((out / POINTERS["best"]).read_text())
    assert resolve_checkpoint(out, "best") == out / best["checkpoint"]
    # only the checkpoints some pointer names are kept
    kept = {p.name for p in (out / "checkpoints").iterdir()}
    names = {
        json.loads((out / p).read_text())["checkpoint"].split("/")[-1] for p in POINTERS.values()
    }
    assert kept == names


def test_truncated_tensor_file(ckpt_copy):
    f = ckpt_copy / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*corrupt or truncated"):
        load_checkpoint(ckpt_copy, weights="raw")
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*corrupt or truncated"):
        read_checkpoint(ckpt_copy)  # resuming reads every file


def test_weights_load_without_the_training_state(ckpt_copy):
    """Evaluation reads only the weights it needs: a checkpoint shipped without its optimizer
    state (or with a damaged one) still loads for evaluation, and resuming still refuses it."""
    full, _, _ = load_checkpoint(ckpt_copy)
    (ckpt_copy / "state.safetensors").unlink()
    (ckpt_copy / "model.safetensors").write_bytes(b"junk")
    ema, _, _ = load_checkpoint(ckpt_copy)
    for k, v in full.state_dict().items():
        assert torch.equal(v, ema.state_dict()[k])
    with pytest.raises(CheckpointError, match=r"state\.safetensors: missing"):
        read_checkpoint(ckpt_copy, files=("state.safetensors",))


def test_flipped_byte(ckpt_copy):
    f = ckpt_copy / "ema.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ema\.safetensors"):
        load_checkpoint(ckpt_copy)


def test_garbage_meta_and_foreign_format(ckpt_copy):
    meta = ckpt_copy / "meta.json"
    good = meta.read_text()
    meta.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"meta\.json: not valid JSON"):
        load_checkpoint(ckpt_copy)
    meta.write_text(json.dumps({**json.loads(good), "format": "someone-else/7"}))
    with pytest.raises(CheckpointError, match="not a sadyn checkpoint"):
        load_checkpoint(ckpt_copy)


def test_config_of_another_model(ckpt_copy):
    meta = ckpt_copy / "meta.json"
    record = json.loads(meta.read_text())
    record["model_config"]["dim"] = 64
    meta.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"ema\.safetensors: weights do not fit.*shape"):
        load_checkpoint(ckpt_copy)
    record["model_config"]["model"] = "no-such-model"
    meta.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="cannot build the model"):
        load_checkpoint(ckpt_copy)


def test_a_pickle_is_never_unpickled(ckpt_copy, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (marker.write_text, ("x",))

    payload = pickle.dumps({"weight": Evil()})
    f = ckpt_copy / "model.safetensors"
    f.write_bytes(payload)
    record = json.loads((ckpt_copy / "meta.json").read_text())
    import hashlib

    record["sha256"]["model.safetensors"] = hashlib.sha256(payload).hexdigest()
    (ckpt_copy / "meta.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors"):
        read_checkpoint(ckpt_copy)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a sadyn checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "latest.json").write_text(json.dumps({"checkpoint": "checkpoints/nope"}))
    with pytest.raises(CheckpointError, match=r"holds no meta\.json"):
        load_checkpoint(tmp_path)


def test_orthogonal_parametrization_survives_training_and_loading(make_config, tmp_path):
    from sadyn.training import train

    config = make_config(model={"orthogonal_vo": True}, reg_e_multi=1e-2)
    train(config, tmp_path / "run", progress=False)
    for which in ("ema", "raw"):
        model, _, _ = load_checkpoint(tmp_path / "run", weights=which)
        att = model.attention
        d = att.dim
        eye = torch.eye(d)
        for w in (att.qkv.weight[2 * d :], att.out.weight):
            torch.testing.assert_close(w @ w.T, eye, atol=1e-5, rtol=0)
