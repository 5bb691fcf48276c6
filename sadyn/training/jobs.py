"""Training jobs in their own processes: the job list format and the one scheduler that
``sadyn paper``, ``scripts/train-jobs.py`` and the lists of ``sadyn reproduce --export-jobs``
share.

A job list is a JSON list, most decisive first, of ``{"name", "config"}`` (a full
:class:`~sadyn.training.config.TrainConfig` dict; ``sadyn reproduce --export-jobs`` adds
``priority`` and ``labels``) or ``{"name", "preset", "overrides"}``. :func:`read_jobs` checks it
into :class:`Job` s; :func:`start_job` launches one as ``python -m sadyn.training.jobs _train``
into its run folder (a folder holding a run resumes it), optionally told to stop, checkpointed,
by a deadline; :func:`poll_job` records its exit; :func:`run_jobs` runs a list ``workers`` at a
time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sadyn.errors import SadynError
from sadyn.io import atomic_write_json

JOB_MIN_S = 100  # a job is not started with less training time than this left


@dataclass
class Job:
    """One training process: ``config`` is a full TrainConfig dict."""

    name: str
    config: dict[str, Any]
    out: Path
    main: bool = False
    proc: subprocess.Popen | None = None
    log: Any = None
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    attempts: int = 0
    notes: list[str] = field(default_factory=list)

    def progress(self) -> str:
        """``step/total`` from the run's log, or the state."""
        if self.started is None:
            return "queued"
        last = last_train_record(self.out)
        total = self.config.get("epochs", 0) * (
            self.config.get("train_size", 0) // max(self.config.get("batch_size", 1), 1)
        )
        step = f"{last.get('step', 0)}/{total}" if last else "starting"
        if self.returncode is not None:
            return f"{step} done ({'ok' if self.returncode == 0 else f'exit {self.returncode}'})"
        return step


def last_train_record(run: Path) -> dict[str, Any]:
    """The last ``train`` record of the run's log (``{}`` before the first)."""
    from sadyn.training.logging import LOG_NAME

    path = run / LOG_NAME
    if not path.exists():
        return {}
    last: dict[str, Any] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if rec.get("kind") == "train":
                last = rec
    return last


def read_jobs(path: str | Path, root: Path) -> list[Job]:
    """Jobs of a JSON job file: ``[{"name", "preset", "overrides"} | {"name", "config"}]``."""
    from sadyn.training.config import TrainConfig
    from sadyn.training.presets import get_preset

    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SadynError(f"{path}: not a readable JSON job list ({exc})") from exc
    if not isinstance(items, list):
        raise SadynError(f"{path}: expected a JSON list of jobs")
    jobs = []
    for i, item in enumerate(items):
        where = f"{path}: job {i}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise SadynError(f"{where}: each job needs a 'name' string")
        name = item["name"]
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise SadynError(f"{where}: bad name {name!r}")
        if "config" in item:
            config = TrainConfig.from_dict(item["config"])
        else:
            config = get_preset(item.get("preset", "small"), **dict(item.get("overrides", {})))
        jobs.append(Job(name, config.to_dict(), root / name))
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise SadynError(f"{path}: job names must be unique")
    return jobs


def write_jobs(path: str | Path, jobs: list[dict[str, Any]]) -> Path:
    """Write the job list as JSON (a list, most decisive first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, jobs)
    return path


def completed(run: Path) -> bool:
    """Whether ``run`` finished its schedule (a time-budget stop also writes a summary)."""
    try:
        return json.loads((run / "summary.json").read_text(encoding="utf-8"))["status"] == (
            "completed"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def start_job(
    job: Job,
    logs: Path,
    *,
    device: str,
    deadline: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Launch ``job`` as ``python -m sadyn.training.jobs _train`` into ``job.out`` (a run folder
    there resumes), its console appended to ``logs/<name>.log``; told to stop by ``deadline``
    (a ``time.time()``) if one is given; ``overrides`` replace config fields (e.g. threads)."""
    config = {**job.config, "device": device, "tensorboard": False, **(overrides or {})}
    if deadline is not None:
        config["max_minutes"] = budget_minutes(job.out, deadline)
    job.out.parent.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    spec = logs / f"{job.name}.config.json"
    spec.write_text(json.dumps(config), encoding="utf-8")
    job.attempts += 1
    job.returncode = job.ended = None
    job.log = (logs / f"{job.name}.log").open("a", encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if config.get("threads"):
        env["OMP_NUM_THREADS"] = str(config["threads"])
    job.proc = subprocess.Popen(
        [sys.executable, "-m", "sadyn.training.jobs", "_train", str(spec), str(job.out)],
        stdout=job.log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    job.started = time.time()


def budget_minutes(run: Path, deadline: float) -> float:
    """``max_minutes`` that stops a run in ``run`` by ``deadline`` (a ``time.time()``): the
    training loop counts the run's earlier training time (a resumed run) against it."""
    from sadyn.training.checkpoint import CheckpointError, read_checkpoint

    try:
        before = float(read_checkpoint(run, "latest", files=()).meta.get("elapsed_s", 0.0))
    except CheckpointError:
        before = 0.0  # a fresh run
    return before / 60.0 + max((deadline - time.time()) / 60.0, 0.05)


def poll_job(job: Job) -> bool:
    """Whether ``job`` has ended (recording its exit)."""
    if job.proc is None or job.returncode is not None:
        return job.returncode is not None
    code = job.proc.poll()
    if code is None:
        return False
    job.returncode, job.ended = code, time.time()
    job.log.close()
    return True


def run_jobs(
    todo: list[Job],
    logs: Path,
    *,
    workers: int,
    device: str,
    deadline: float | None = None,
    overrides: dict[str, Any] | None = None,
    poll_s: float = 5.0,
    say: Callable[[str], None] | None = None,
) -> int:
    """Run ``todo`` in order, ``workers`` at a time, until all have ended; none is started
    with under :data:`JOB_MIN_S` seconds left before ``deadline``. Each start and end is told
    to ``say`` (default: printed with the time). Returns the number of failed jobs."""
    say = say or (lambda text: print(text, flush=True))
    todo, running, failed = list(todo), [], 0
    while todo or running:
        while todo and len(running) < workers:
            job = todo.pop(0)
            if deadline is not None and deadline - time.time() < JOB_MIN_S:
                say(f"{len(todo) + 1} job(s) not started: under {JOB_MIN_S} s left")
                todo.clear()
                break
            start_job(job, logs, device=device, deadline=deadline, overrides=overrides)
            running.append(job)
            say(f"{time.strftime('%H:%M:%S')} start {job.name}")
        time.sleep(poll_s)
        for job in [j for j in running if poll_job(j)]:
            running.remove(job)
            failed += job.returncode != 0
            took = job.ended - job.started
            say(f"{time.strftime('%H:%M:%S')} {job.name} rc={job.returncode} {took:.0f}s")
    return failed


def train_worker(spec: str, out: str) -> int:
    """The child process of one job: train ``spec`` (a TrainConfig JSON) into ``out``."""
    from sadyn.training import train
    from sadyn.training.config import TrainConfig

    config = TrainConfig.from_dict(json.loads(Path(spec).read_text(encoding="utf-8")))
    summary = train(config, out, resume=(Path(out) / "config.json").exists(), progress=False)
    print(json.dumps({"status": summary.status, "step": summary.step}))
    return 0


if __name__ == "__main__":  # the child process of a training job
    if len(sys.argv) == 4 and sys.argv[1] == "_train":
        sys.exit(train_worker(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m sadyn.training.jobs _train CONFIG.json OUT")
