"""Export of the recipes' models as a prioritized job list and import of runs trained
elsewhere into the checkpoint cache (tiny preset)."""

from __future__ import annotations

import json
import shutil

import pytest

from sadyn.experiments.cache import CheckpointCache, config_hash
from sadyn.experiments.jobs import export_jobs, import_runs, write_jobs
from sadyn.training.config import TrainConfig
from sadyn.training.loop import train


@pytest.fixture(scope="module")
def tiny_jobs():
    return export_jobs("all", "tiny")


def test_export_lists_each_config_once_sorted_by_priority(tiny_jobs, tmp_path):
    names = [j["name"] for j in tiny_jobs]
    assert len(names) == len(set(names))
    pri = [j["priority"] for j in tiny_jobs]
    assert pri == sorted(pri)
    for j in tiny_jobs:
        config = TrainConfig.from_dict(j["config"])  # a full, valid TrainConfig
        assert j["name"] == f"{config.model['model']}-{config_hash(config)}"
        assert j["labels"]
    # a model several recipes use is one job carrying every recipe's label
    shared = [j for j in tiny_jobs if len({lab.split(":")[0] for lab in j["labels"]}) > 1]
    assert shared
    # Fig. 5's baseline and Spec sweep at the sweep seed come first
    first = [lab for j in tiny_jobs[:3] for lab in j["labels"]]
    assert any("fig5-regularization: ItrSA | seed 0" in lab for lab in first)
    assert any("Spec" in lab for lab in first)
    path = write_jobs(tmp_path / "jobs.json", tiny_jobs)
    assert json.loads(path.read_text()) == tiny_jobs


def test_import_installs_a_finished_run_and_refuses_a_tampered_one(tiny_jobs, tmp_path):
    # the cheapest job (1 epoch, 100 puzzles), trained "elsewhere" as runs/<name>
    job = next(j for j in tiny_jobs if j["config"]["epochs"] == 1)
    config = TrainConfig.from_dict(job["config"])
    runs = tmp_path / "runs"
    train(config.replace(tensorboard=False), runs / job["name"], progress=False)
    bad = runs / (job["name"][:-1] + ("0" if job["name"][-1] != "0" else "1"))
    shutil.copytree(runs / job["name"], bad)  # a folder whose name no longer matches
    unfinished = runs / "unfinished"
    shutil.copytree(runs / job["name"], unfinished)
    (unfinished / "summary.json").unlink()

    cache = CheckpointCache(tmp_path / "cache")
    results = {r.source.name: r for r in import_runs(runs, cache)}
    assert results[job["name"]].action == "installed"
    assert results[bad.name].action == "skipped" and "hashes to" in results[bad.name].reason
    assert results["unfinished"].action == "skipped"
    assert "summary.json" in results["unfinished"].reason
    assert cache.contains(config)
    entry = cache.get_or_train(config)  # reused: nothing is trained
    assert entry.reused and entry.status == "completed" and entry.has_checkpoint
    # importing again changes nothing
    again = {r.source.name: r for r in import_runs(runs / job["name"], cache)}
    assert again[job["name"]].action == "cached"
    # the CLI's export with --cache lists only the models the cache does not hold
    from sadyn.cli import main

    out = tmp_path / "left.json"
    assert main(["reproduce", "all", "--preset", "tiny", "--cache", str(cache.root),
                 "--export-jobs", str(out)]) == 0  # fmt: skip
    left = [j["name"] for j in json.loads(out.read_text())]
    assert job["name"] not in left and len(left) == len(tiny_jobs) - 1


def test_import_refuses_an_edited_config(tiny_jobs, tmp_path):
    job = next(j for j in tiny_jobs if j["config"]["epochs"] == 1)
    config = TrainConfig.from_dict(job["config"])
    run = tmp_path / "runs" / job["name"]
    train(config.replace(tensorboard=False), run, progress=False)
    saved = json.loads((run / "config.json").read_text())
    saved["lr"] = saved["lr"] * 2  # the weights no longer belong to the name
    (run / "config.json").write_text(json.dumps(saved))
    cache = CheckpointCache(tmp_path / "cache")
    (res,) = import_runs(tmp_path / "runs", cache)
    assert res.action == "skipped" and "hashes to" in res.reason
    assert not cache.contains(config)


def test_exported_weights_are_a_cache_that_loads_the_ema_weights(tiny_jobs, tmp_path):
    import torch

    from sadyn.experiments.jobs import export_weights
    from sadyn.training.checkpoint import load_checkpoint

    job = next(j for j in tiny_jobs if j["config"]["epochs"] == 1)
    config = TrainConfig.from_dict(job["config"])
    cache = CheckpointCache(tmp_path / "cache")
    cache.get_or_train(config.replace(tensorboard=False))
    (row,) = export_weights(cache, [cache.name(config)], tmp_path / "models")
    assert row["bytes"] < 200_000
    small = CheckpointCache(tmp_path / "models")
    assert small.contains(config)
    entry = small.get_or_train(config)  # reused: a weights-only entry is a finished run
    assert entry.reused and entry.status == "completed"
    full, _, _ = load_checkpoint(cache.path(config))  # EMA weights by default
    light, _, _ = load_checkpoint(entry.path)
    for (k, a), (_, b) in zip(full.state_dict().items(), light.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # and each exported folder is an importable run
    other = CheckpointCache(tmp_path / "other")
    (res,) = import_runs(tmp_path / "models", other)
    assert res.action == "installed" and other.contains(config)


def test_train_jobs_script_trains_skips_finished_and_names_unknown_jobs(tiny_jobs, tmp_path):
    """scripts/train-jobs.py: the CPU runner of a job list, whose output imports as is."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "train-jobs.py"
    job = next(j for j in tiny_jobs if j["config"]["epochs"] == 1)
    jobfile = write_jobs(tmp_path / "jobs.json", [job])
    runs = tmp_path / "runs"

    def call(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(script), str(jobfile), str(runs), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    first = call("--first", "1", "--compile")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (runs / job["name"] / "summary.json").is_file()
    # --compile reaches the job's config, which still installs under the job's name (below)
    spec = json.loads((runs / "logs" / f"{job['name']}.config.json").read_text())
    assert spec["compile"] is True and spec["threads"] == 1
    again = call(job["name"])
    assert again.returncode == 0 and "1 finished job(s) skipped" in again.stdout
    unknown = call("no-such-job")
    assert unknown.returncode != 0 and "no job named no-such-job" in unknown.stderr
    cache = CheckpointCache(tmp_path / "cache")
    assert [r.action for r in import_runs(runs, cache)] == ["installed"]
    assert cache.contains(TrainConfig.from_dict(job["config"]))
