"""``sadyn paper --dry-run``: every stage of the one-call GPU command, at the tiny preset on the
CPU, so the command cannot rot between the rare sessions that have a GPU."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sadyn.errors import SadynError
from sadyn.training.checkpoint import POINTERS
from sadyn.training.jobs import read_jobs


def test_dry_run_trains_evaluates_probes_and_reports(tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"name": "extra", "preset": "small", "overrides": {"seed": 1}}]))
    out = tmp_path / "paper"
    env = {**os.environ, "SADYN_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    # the budget is a cap (stages end when done): generous, so a loaded CI machine is not cut
    cmd = [sys.executable, "-m", "sadyn.cli", "paper", "--out", str(out), "--dry-run",
           "--budget-min", "8", "--n-eval", "20", "--n-probe", "2", "--votes", "2",
           "--jobs", str(jobs), "--workers", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((out / "paper.json").read_text())
    runs = record["runs"]
    assert runs["itrsa"]["status"] == "completed" and runs["itrsa"]["step"] == 10
    assert runs["extra"]["status"] == "completed" and not runs["extra"]["main"]
    evals = record["stages"]["eval"]
    # the reported weights, chosen on validation puzzles (never a test set), both scores kept
    choice = record["weights_choice"]["itrsa"]
    assert choice["validation"] == "satnet:valid" and choice["n"] == 32
    assert set(choice["board_accuracy"]) == set(choice["cell_accuracy"]) == {"raw", "ema"}
    board, cell = choice["board_accuracy"], choice["cell_accuracy"]
    raw_wins = (board["raw"], cell["raw"]) > (board["ema"], cell["ema"])  # ties: the EMA
    assert choice["weights"] == ("raw" if raw_wins else "ema")
    # completed: the EMA, and the raw weights only when the validation chose them
    names = {f"itrsa-{w}-K{k}" for w in dict.fromkeys(("ema", choice["weights"])) for k in (1, 2)}
    assert set(evals) == names
    for name in names:
        assert evals[name]["ok"], evals[name]
        acc = evals[name]["board_accuracy"]
        assert set(acc) == {"id", "ood"} and set(acc["id"]) == {"8", "16"}  # JSON keys
        assert all(0.0 <= v <= 1.0 for v in acc["ood"].values())
    probes = record["stages"]["analyze"]
    assert all(probes[p]["ok"] for p in ("jacobian", "lyapunov", "energy")), probes
    for part in ("jacobian", "lyapunov", "energy"):
        assert (out / "analysis" / f"itrsa-{part}" / "results.json").exists()
    assert record["stages"]["report"]["ok"]
    html = (out / "report.html").read_text()
    assert "itrsa-ema-K2" in html or "eval" in html
    assert record["environment"]["device"] == "cpu" and record["dry_run"] is True
    assert record["analysis_weights"] == choice["weights"]
    # the packer for the trip back: pieces that join to the same tree, superseded checkpoints out
    pack = tmp_path / "pack"
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, str(root / "scripts" / "pack_runs.py"), str(out), str(pack),
         "--max-mib", "0.2"], check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pieces = sorted(pack.glob("paper.tgz.*"))
    assert len(pieces) >= 2 and all(p.stat().st_size <= 0.2 * 2**20 for p in pieces)
    data = b"".join(p.read_bytes() for p in pieces)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert "paper/paper.json" in names
    kept = {n.split("/")[4] for n in names if n.startswith("paper/runs/itrsa/checkpoints/")}
    run = out / "runs" / "itrsa"
    named = {
        json.loads((run / f).read_text())["checkpoint"].split("/")[-1] for f in POINTERS.values()
    }
    on_disk = {p.name for p in (run / "checkpoints").iterdir()}
    assert kept == named and "step-0000010" in kept  # the latest, and the best if it differs
    assert on_disk >= kept


def test_job_files_are_checked(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(SadynError, match="expected a JSON list"):
        read_jobs(bad, tmp_path)
    bad.write_text('[{"name": "../x", "preset": "tiny"}]')
    with pytest.raises(SadynError, match="bad name"):
        read_jobs(bad, tmp_path)
    bad.write_text('[{"name": "a", "preset": "tiny"}, {"name": "a", "preset": "tiny"}]')
    with pytest.raises(SadynError, match="unique"):
        read_jobs(bad, tmp_path)
    bad.write_text('[{"name": "a", "preset": "tiny", "overrides": {"lr": -1}}]')
    with pytest.raises(SadynError, match="lr must be positive"):
        read_jobs(bad, tmp_path)
    good = tmp_path / "good.json"
    good.write_text('[{"name": "a", "preset": "small", "overrides": {"seed": 3}}]')
    (job,) = read_jobs(good, tmp_path)
    assert (
        job.config["seed"] == 3 and job.config["model"]["dim"] == 64 and job.out == tmp_path / "a"
    )
