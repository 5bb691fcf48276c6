"""Ctrl-C during ``sadyn train`` saves a checkpoint, prints the resume command, and a later
``sadyn eval`` of the run says what it is (an interrupted run) instead of failing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sadyn.cli import main
from sadyn.training.checkpoint import read_checkpoint


def _train_records(log) -> int:
    if not log.is_file():
        return 0
    return sum('"train"' in line for line in log.read_text().splitlines())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_train_checkpoints_and_says_how_to_resume(tmp_path, capsys, sig):
    run = tmp_path / "run"
    env = {**os.environ, "SADYN_DATA_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "sadyn.cli", "train", "--preset", "tiny", "--out", str(run)]
    # 1,000 updates, no periodic checkpoint or evaluation: only the interrupt writes one
    argv += ["--epochs", "100", "--ckpt-every", "0", "--eval-every", "0", "--quiet"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _train_records(run / "log.jsonl") < 3 and proc.poll() is None:
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    out, err = out.decode(), err.decode()
    assert proc.returncode == 130, err
    assert f"resume with: sadyn train --out {run} --resume" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 3 <= summary["step"] < summary["total_steps"]
    saved = read_checkpoint(run, "latest")
    assert saved.meta["step"] == summary["step"]
    assert not os.path.isabs(summary["checkpoint"]) and summary["out_dir"] == "."
    # eval of the interrupted run: evaluated at its checkpoint, and says so
    capsys.readouterr()
    code = main(["eval", str(run), "--data", "id", "--n", "4", "--steps", "2", "-q"])
    text = capsys.readouterr().out
    assert code == 0 and "interrupted training run" in text and "--resume" in text


def test_eval_of_a_run_without_a_checkpoint_names_the_resume_command(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["eval", str(run), "--data", "id", "--n", "4", "--steps", "2", "-q"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint yet" in err and f"sadyn train --out {run} --resume" in err
