"""The training loop, in process: a tiny end-to-end run, the objective against the model's own
forward, schedules, resume after a clean stop, divergence handling, regularizers in training."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from sadyn.errors import DivergenceError, SadynError
from sadyn.models import build_model
from sadyn.probes.accuracy import evaluate
from sadyn.sudoku import read_puzzles
from sadyn.training import load_checkpoint, read_checkpoint, train
from sadyn.training.config import TrainConfig
from sadyn.training.logging import read_log
from sadyn.training.loop import epoch_order, learning_rate
from sadyn.training.objective import Objective


def _final_tensors(out):
    c = read_checkpoint(out)
    return c.model, c.ema, {k: v for k, v in c.state.items() if k.startswith("optim/")}


def _assert_same_run(a, b):
    for x, y in zip(_final_tensors(a), _final_tensors(b), strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k


def test_tiny_end_to_end(tiny_run, puzzle_files):
    config, out, summary = tiny_run
    assert summary.status == "completed" and summary.step == summary.total_steps == 10
    for name in (
        "config.json",
        "latest.json",
        "best.json",
        "log.jsonl",
        "curve.png",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    train_records = [r for r in read_log(out / "log.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in train_records] == list(range(1, 11))
    assert train_records[-1]["ce"] < train_records[0]["ce"]  # it learns something
    evals = [r for r in read_log(out / "log.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [5, 10] and "ood/board_acc@16" in evals[0]
    assert set(summary.metrics) == {"id", "ood"}

    # the saved EMA weights, reloaded, give the logged final evaluation
    model, model_config, meta = load_checkpoint(out)
    assert meta["step"] == 10 and model_config["dim"] == 32
    res = evaluate(
        model,
        read_puzzles(puzzle_files["ood"]),
        config.eval_steps,
        batch_size=config.eval_batch_size,
        seed=_eval_seed(config),
    )
    assert res["cell_accuracy"] == pytest.approx(
        [summary.metrics["ood"]["cell_accuracy"][str(t)] for t in config.eval_steps]
    )


def _eval_seed(config):
    from sadyn.training.loop import derive_seed

    return derive_seed(config.seed, 3)


def test_objective_matches_the_models_own_forward(make_config):
    """The training unroll (encode, init_state, step, readout) is the model's forward."""
    torch.manual_seed(0)
    model = build_model({"model": "itrsa", "dim": 16, "heads": 2})
    quizzes, solutions = read_puzzles(make_config().train_data).subset(range(6)).to_torch()
    steps = 5
    out = model(
        quizzes, steps, generator=torch.Generator().manual_seed(3), readout_at=range(1, steps + 1)
    )
    ce = [
        F.cross_entropy(out.logits_at[t].reshape(-1, 9), (solutions - 1).reshape(-1))
        for t in range(1, steps + 1)
    ]
    for m, expected in [(1, ce[-1]), (3, sum(ce[-3:]) / 3), (0, sum(ce) / steps)]:
        obj = Objective(model, TrainConfig(loss_steps=m))
        loss, _parts = obj(quizzes, solutions, slice(0, 6), steps, torch.Generator().manual_seed(3))
        torch.testing.assert_close(loss, expected)
    # a shard of the global batch sees the same initial states as the full batch
    obj = Objective(model, TrainConfig(loss_steps=1))
    part, _ = obj(quizzes, solutions, slice(2, 4), steps, torch.Generator().manual_seed(3))
    ref = F.cross_entropy(out.logits[2:4].reshape(-1, 9), (solutions[2:4] - 1).reshape(-1))
    torch.testing.assert_close(part, ref)


def test_learning_rate_schedules():
    cfg = TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 110) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 110) == pytest.approx(1.0)
    assert learning_rate(cfg, 10, 110) == pytest.approx(1.0)
    assert learning_rate(cfg, 109, 110) == pytest.approx(0.1)
    mid = learning_rate(cfg, 10 + 99 // 2, 110)
    assert 0.1 < mid < 1.0 and mid == pytest.approx(0.55, abs=0.01)
    const = TrainConfig(lr=0.5)
    assert {learning_rate(const, s, 100) for s in range(100)} == {0.5}


def test_epoch_order_is_a_pure_permutation():
    a = epoch_order(1, 3, 50)
    assert torch.equal(a, epoch_order(1, 3, 50))
    assert torch.equal(a.sort().values, torch.arange(50))
    assert not torch.equal(a, epoch_order(1, 4, 50))


def test_clean_stop_then_resume_equals_uninterrupted(tiny_run, make_config, tmp_path):
    """max_minutes stops after the first step (checkpoint + final eval); resuming finishes the
    run with weights, EMA and optimizer state identical to the uninterrupted run."""
    _config, reference, _ = tiny_run
    out = tmp_path / "run"
    first = train(make_config(max_minutes=1e-9), out, progress=False)
    assert first.status == "time_budget" and first.step == 1
    assert read_checkpoint(out).meta["step"] == 1
    first_s = read_checkpoint(out).meta["elapsed_s"]
    assert first_s > 0
    done = train(make_config(), out, resume=True, progress=False)
    assert done.status == "completed" and done.step == 10
    # the time budget and the wall time count both processes
    assert read_checkpoint(out).meta["elapsed_s"] > first_s
    assert done.wall_time_s >= read_checkpoint(out).meta["elapsed_s"]
    _assert_same_run(out, reference)
    steps = [r["step"] for r in read_log(out / "log.jsonl") if r["kind"] == "train"]
    assert steps == list(range(1, 11))  # the log reads as one run
    # resuming a finished run does nothing
    again = train(make_config(), out, resume=True, progress=False)
    assert again.step == 10 and again.status == "completed"


def test_existing_run_needs_resume_and_the_same_config(tiny_run, make_config):
    _, out, _ = tiny_run
    with pytest.raises(SadynError, match="already holds a run"):
        train(make_config(tensorboard=True), out, progress=False)
    with pytest.raises(SadynError, match=r"lr: run has 0\.001, given 0\.5"):
        train(make_config(lr=0.5), out, resume=True, progress=False)


def test_divergence_stops_with_step_and_keeps_last_good_checkpoint(
    make_config, tmp_path, monkeypatch
):
    original = Objective.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        loss, parts = original(self, *args, **kwargs)
        calls["n"] += 1
        return (loss * math.nan if calls["n"] == 5 else loss), parts

    monkeypatch.setattr(Objective, "forward", poisoned)
    out = tmp_path / "run"
    with pytest.raises(DivergenceError, match=r"diverged at step 5 .*loss is nan"):
        train(make_config(eval_every=0, ckpt_every=3), out, progress=False)
    kept = read_checkpoint(out)
    assert kept.meta["step"] == 3 and all(torch.isfinite(v).all() for v in kept.model.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and "step-0000003" in summary["message"]


def test_unnormalized_model_diverges_cleanly(make_config, tmp_path):
    """norm 'none' with a huge step size overflows: reported as divergence at step 1."""
    cfg = make_config(model={"norm": "none", "eta0": 1e30})
    with pytest.raises(DivergenceError, match="step 1"):
        train(cfg, tmp_path / "run", progress=False)


def test_regularizers_and_random_loop_counts_in_training(make_config, tmp_path):
    cfg = make_config(
        train_size=40,
        reg_spec=1e-4,
        reg_e_multi=1e-4,
        reg_jacobian=1e-3,
        reg_lyapunov=1e-3,
        reg_boards=2,
        lyapunov_k=2,
        lyapunov_steps=2,
        jacobian_iters=1,
        train_steps_random=(2, 5),
        loss_steps=0,
        eval_every=0,
        eval_steps=(4,),
        eval_size=10,
    )
    summary = train(cfg, tmp_path / "run", progress=False)
    records = [r for r in read_log(tmp_path / "run" / "log.jsonl") if r["kind"] == "train"]
    assert summary.step == 2 and len(records) == 2
    for r in records:
        assert 2 <= r["loop_steps"] <= 5
        for key in (
            "reg_spec",
            "reg_e_multi",
            "reg_jacobian",
            "reg_lyapunov",
            "jacobian_sigma",
            "lyapunov_top",
        ):
            assert math.isfinite(r[key]), key
        assert r["loss"] > r["ce"]
    # the Spec power-iteration vectors are part of the training state
    assert any(k.startswith("reg/spec/") for k in read_checkpoint(tmp_path / "run").state)


@pytest.mark.parametrize(
    "kind", ["itrsa", "symsa", "gensym-single", "gensym-multi", "akorn", "preln-itrsa"]
)
def test_every_model_trains_with_every_applicable_regularizer(kind, make_config):
    """One objective evaluation per model kind: finite loss, a gradient for every weight."""
    heads = 1 if kind in ("symsa", "gensym-single") else 2
    torch.manual_seed(0)
    model = build_model({"model": kind, "dim": 16, "heads": heads})
    free = bool(model.attention_modules())  # Spec / E-* need unconstrained attention weights
    cfg = TrainConfig(
        loss_steps=2,
        reg_spec=1e-3 * free,
        reg_e_multi=1e-3 * free,
        reg_jacobian=1e-3,
        reg_lyapunov=1e-3,
        reg_boards=2,
        lyapunov_k=2,
        lyapunov_steps=2,
        jacobian_iters=1,
    )
    q, s = read_puzzles(make_config().train_data).subset(range(4)).to_torch()
    loss, parts = Objective(model, cfg)(q, s, slice(0, 4), 3, torch.Generator().manual_seed(0))
    loss.backward()
    assert math.isfinite(loss.item()) and parts["loss"] > parts["ce"]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
