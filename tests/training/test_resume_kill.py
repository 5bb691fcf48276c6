"""Kill a real ``sadyn train`` process mid-epoch (SIGKILL), resume it, and get the very weights
an uninterrupted run gets (torch.equal, CPU, one thread)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import torch

from sadyn.training import read_checkpoint, train

SETTINGS = {
    "seed": 3,
    "train_size": 400,
    "batch_size": 10,
    "epochs": 1,
    "ckpt_every": 4,
    "eval_every": 10,
    "eval_size": 20,
    "threads": 1,
}
TOTAL = 40  # 1 epoch of 40 steps


def _cmd(out, data_args, *extra):
    code = "import sys; from sadyn.cli import main; sys.exit(main(sys.argv[1:]))"
    flags = [x for k, v in SETTINGS.items() for x in (f"--{k}", str(v))]
    return [
        sys.executable,
        "-c",
        code,
        "train",
        "--preset",
        "tiny",
        "--out",
        str(out),
        *flags,
        "--tensorboard",
        "false",
        "--no-progress",
        *data_args,
        *extra,
    ]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _latest_step(out):
    try:
        return json.loads((out / "latest.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def _kill_when_checkpointed(proc, out, step):
    while _latest_step(out) < step and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)


def test_resume_after_sigkill_is_bit_identical(tmp_path, cli_data_args, make_config):
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    victim = subprocess.Popen(
        _cmd(run_dir, cli_data_args),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killer = threading.Thread(target=_kill_when_checkpointed, args=(victim, run_dir, 8))
    killer.start()
    # meanwhile, the uninterrupted reference run, in this process (same settings)
    train(make_config(**SETTINGS), ref_dir, progress=False)
    killer.join(timeout=300)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = _latest_step(run_dir)
    assert 8 <= killed_at < TOTAL

    resumed = subprocess.run(
        _cmd(run_dir, cli_data_args, "--resume"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr

    a, b = read_checkpoint(run_dir), read_checkpoint(ref_dir)
    assert a.meta["step"] == b.meta["step"] == TOTAL
    for got, want in [(a.model, b.model), (a.ema, b.ema), (a.state, b.state)]:
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), k
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["kind"] == "train"] == list(range(1, TOTAL + 1))
    assert any(r.get("event") == "resumed" for r in log)


def test_budget_minutes_counts_a_resumed_runs_training_time(tiny_run, tmp_path):
    """A deadline given to a resumed run (``sadyn paper`` retries, ``scripts/train-jobs.py
    --minutes``) adds the run's earlier training time: the loop's max_minutes is cumulative."""
    import time

    from sadyn.training.checkpoint import read_checkpoint
    from sadyn.training.jobs import budget_minutes

    _, out, _ = tiny_run
    before = read_checkpoint(out, "latest", files=()).meta["elapsed_s"]
    assert before > 0
    deadline = time.time() + 120.0
    t0 = time.time()
    fresh = budget_minutes(tmp_path / "none", deadline)
    resumed = budget_minutes(out, deadline)
    waited = (time.time() - t0) / 60.0
    assert 1.9 < fresh <= 2.0
    # Both read the clock: they differ by the wall time between the two calls (bounded by
    # `waited`, which a loaded machine can stretch), not by a fixed 0.01 min.
    gap = (fresh + before / 60.0) - resumed
    assert -1e-9 <= gap <= waited + 1e-9
