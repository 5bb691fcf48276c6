"""The GPU training path, checked on the CPU: bf16 autocast against fp32, the device-resident /
fused / deferred-sync path against the plain one, divergence found at the right step when the
host checks only at log steps, and the compiled step against the eager one (slow)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sadyn.errors import DivergenceError
from sadyn.training import loop
from sadyn.training.checkpoint import read_checkpoint
from sadyn.training.loop import train
from sadyn.training.objective import Objective


def _losses(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "train"]


def _poison_loss(monkeypatch, at: int) -> None:
    """Make the loss of the ``at``-th objective call (1-based) NaN."""
    original = Objective.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        loss, parts = original(self, *args, **kwargs)
        calls["n"] += 1
        return (loss * math.nan if calls["n"] == at else loss), parts

    monkeypatch.setattr(Objective, "forward", poisoned)


def _run(make_config, out, **changes) -> list[float]:
    train(make_config(eval_every=0, **changes), out, progress=False)
    return _losses(out)


@pytest.fixture(scope="module")
def fp32_losses(make_config, tmp_path_factory):
    return _run(make_config, tmp_path_factory.mktemp("fp32") / "run")


def test_bf16_autocast_follows_the_fp32_loss_curve(make_config, tmp_path, fp32_losses):
    bf16 = _run(make_config, tmp_path / "run", precision="bf16")
    assert len(bf16) == len(fp32_losses) == 10
    # bfloat16 has 8 bits of mantissa: the matmuls differ at about 4e-3 relative
    for a, b in zip(fp32_losses, bf16, strict=True):
        assert abs(a - b) <= 2e-2 * abs(a)
    # and the runs do differ (autocast was on)
    assert max(abs(a - b) for a, b in zip(fp32_losses, bf16, strict=True)) > 1e-6


def test_async_path_equals_the_plain_path(make_config, tmp_path, monkeypatch, fp32_losses):
    """Device-resident data, fused attention, fused Adam and log-step syncs: the same run up
    to round-off (fused kernels reorder sums)."""
    monkeypatch.setattr(loop, "ASYNC_DEVICES", ("cuda", "cpu"))
    out = tmp_path / "run"
    fast = _run(make_config, out, log_every=4)
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [4, 8]
    assert fast == pytest.approx([fp32_losses[3], fp32_losses[7]], rel=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["final_loss"] == pytest.approx(fp32_losses[9], rel=1e-4)


def test_deferred_check_finds_the_step_and_keeps_checkpoints_finite(
    make_config, tmp_path, monkeypatch
):
    monkeypatch.setattr(loop, "ASYNC_DEVICES", ("cuda", "cpu"))
    _poison_loss(monkeypatch, at=5)
    out = tmp_path / "run"
    # log every 8 steps, checkpoint every 3: the check before the step-6 checkpoint finds it
    with pytest.raises(DivergenceError, match=r"diverged at step 5 .*loss is nan.*step 6"):
        train(make_config(eval_every=0, ckpt_every=3, log_every=8), out, progress=False)
    kept = read_checkpoint(out)
    assert kept.meta["step"] == 3 and all(torch.isfinite(v).all() for v in kept.model.values())


@pytest.mark.slow
def test_compiled_step_follows_the_eager_loss_curve(make_config, tmp_path, fp32_losses):
    compiled = _run(make_config, tmp_path / "run", compile=True)
    assert compiled == pytest.approx(fp32_losses, rel=1e-4)


def test_resume_on_another_device_type_reseeds_the_noise_stream(make_config, tmp_path, monkeypatch):
    """A run checkpointed on a GPU resumes on the CPU: the saved noise-generator state (CUDA's
    16-byte Philox state, here written by hand) cannot continue there, so the stream is
    reseeded from (seed, step) and the log says so; everything else resumes."""
    import hashlib

    from safetensors.torch import load_file, save_file

    out = tmp_path / "run"
    cfg = make_config(eval_every=0, ckpt_every=5)
    with monkeypatch.context() as patch, pytest.raises(DivergenceError):
        _poison_loss(patch, at=6)  # the first process stops after its step-5 checkpoint
        train(cfg, out, progress=False)
    ckpt = read_checkpoint(out).path
    state = load_file(str(ckpt / "state.safetensors"))
    state["rng/noise"] = torch.arange(16, dtype=torch.uint8)  # a CUDA generator's state size
    save_file(state, str(ckpt / "state.safetensors"))
    meta = json.loads((ckpt / "meta.json").read_text())
    digest = hashlib.sha256((ckpt / "state.safetensors").read_bytes()).hexdigest()
    meta["sha256"]["state.safetensors"] = digest
    (ckpt / "meta.json").write_text(json.dumps(meta))
    (out / "summary.json").unlink()
    summary = train(cfg, out, resume=True, progress=False)
    assert summary.status == "completed" and summary.step == 10
    events = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "noise_reseeded" for e in events)
