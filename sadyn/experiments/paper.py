"""The paper preset end to end within a wall-clock budget (``sadyn paper``): the pipeline.

Stages; each is cut at its share of the budget, and what was cut is written down:

1. data: the SATNet-style training split and test set (ID) and the RRN-style test set (OOD),
   read from the data cache (``$SADYN_DATA_DIR``) or generated;
2. training, in parallel processes sharing the device (:mod:`sadyn.training.jobs`): the
   ``paper`` ItrSA (and the ``paper`` AKOrN with N=4) with bf16 autocast, a compiled loop step
   and the fused attention kernel, plus any extra training jobs (job lists) ``workers`` at a
   time. Every run stops at the training deadline with a checkpoint (``max_minutes``) and is
   still evaluated;
3. evaluation of each main model on ID and OOD at T = 16, 32, 64, 128, without and with voting;
4. probes of the first main model: Jacobian spectrum and the Prop 5.1 bound, finite-time
   Lyapunov exponents at T=16, pseudo-energy and contribution index;
5. ``OUT/report.html`` and ``OUT/paper.json`` (every number, the stage times, the device).

Stages 3-5 run the ``sadyn`` command (``eval``, ``analyze``, ``report``) in child processes, one
per model and vote count or probe, all on the device at once: a crash or a hang costs its own
numbers only, and the stage deadline can stop it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from sadyn.errors import SadynError
from sadyn.training.jobs import JOB_MIN_S, Job, last_train_record, poll_job, read_jobs, start_job

# shares of the budget (after the data stage) at which each stage must end
TRAIN_END, EVAL_END, ANALYZE_END = 0.58, 0.76, 0.94
MAIN_OVERRIDES = {"precision": "bf16", "compile": True}
MAIN_MODELS = {"itrsa": {}, "akorn": {"model": {"model": "akorn"}}}
STEPS = (16, 32, 64, 128)


@dataclass
class PaperSettings:
    """What ``sadyn paper`` runs: ``models`` and ``jobs`` (job list files) train, ``votes``
    restarts vote, ``n_eval`` puzzles per evaluation set, ``n_probe`` per probe; ``dry_run``
    runs the same stages at the tiny preset on the CPU. ``command`` is recorded as given."""

    out: str | Path
    budget_min: float = 9.0
    models: str = "itrsa"
    jobs: list[str] = field(default_factory=list)
    workers: int = 3
    compile_jobs: bool = False
    votes: int = 16
    n_eval: int = 1000
    n_probe: int = 32
    device: str = "auto"
    dry_run: bool = False
    command: str = "sadyn paper"

    def check(self) -> None:
        if self.budget_min <= 0:
            raise SadynError(f"--budget-min must be positive, got {self.budget_min}")
        if self.workers < 1 or self.votes < 1 or self.n_eval < 1 or self.n_probe < 1:
            raise SadynError("--workers, --votes, --n-eval and --n-probe must be >= 1")


class Clock:
    """Seconds since the start and the stage deadlines of a budget."""

    def __init__(self, budget_s: float) -> None:
        self.t0 = time.time()
        self.budget = budget_s

    def now(self) -> float:
        return time.time() - self.t0

    def at(self, share: float, after: float) -> float:
        """Absolute time at which a stage ending at ``share`` of the budget after ``after``
        seconds must end."""
        return self.t0 + after + share * (self.budget - after)

    def stamp(self) -> str:
        return f"[{self.now():5.0f}s/{self.budget:.0f}s]"


@dataclass
class PaperRun:
    """One call's state: its settings, clock, device, folders and jobs, and the record that
    becomes ``paper.json``."""

    settings: PaperSettings
    clock: Clock
    device: str
    out: Path
    mains: list[Job]
    extra: list[Job]
    record: dict[str, Any]

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    def say(self, text: str) -> None:
        print(f"{self.clock.stamp()} {text}", flush=True)


def run_paper(settings: PaperSettings) -> dict[str, Any]:
    """Run every stage within ``settings.budget_min`` minutes; returns the record written to
    ``OUT/paper.json``."""
    settings.check()
    run = _set_up(settings)
    run.say(
        f"sadyn paper on {run.record['environment'].get('gpu', run.device)}: "
        f"{', '.join(j.name for j in run.mains)} + {len(run.extra)} extra job(s); "
        f"budget {settings.budget_min:g} min"
    )
    after_data = _data_stage(run)
    _train_stage(run, run.clock.at(TRAIN_END, after_data))
    _eval_stage(run, run.clock.at(EVAL_END, after_data))
    _analyze_stage(run, run.clock.at(ANALYZE_END, after_data))
    _report_stage(run)
    return run.record


def summary_lines(record: dict[str, Any]) -> list[str]:
    """One line per evaluation: its board accuracies, or why it has none."""
    return [
        f"  {name}: {ev.get('board_accuracy', ev.get('cut', ev.get('error', '')[-200:]))}"
        for name, ev in record["stages"]["eval"].items()
    ]


# ---------------------------------------------------------------------------- set up
def _set_up(settings: PaperSettings) -> PaperRun:
    clock = Clock(settings.budget_min * 60)
    device = "cpu" if settings.dry_run else _device(settings.device)
    out = Path(settings.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    models = [m for m in settings.models.split(",") if m]
    mains = _main_jobs(models, out / "runs", settings.dry_run)
    extra = [j for f in settings.jobs for j in read_jobs(f, out / "jobs")]
    if settings.dry_run:
        extra = [_as_tiny(j) for j in extra]
    if settings.compile_jobs and not settings.dry_run:
        for job in extra:
            job.config["compile"] = True
    record: dict[str, Any] = {
        "command": settings.command,
        "budget_s": clock.budget,
        "dry_run": settings.dry_run,
        "environment": _environment(device),
        "stages": {},
    }
    return PaperRun(settings, clock, device, out, mains, extra, record)


def _device(spec: str) -> str:
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise SadynError(f"--device {spec}: no CUDA device is visible")
    if spec != "cpu" and not spec.startswith("cuda"):
        raise SadynError(f"--device must be auto, cpu or cuda[:i], got {spec!r}")
    return spec


def _environment(device: str) -> dict[str, Any]:
    import platform

    import torch

    import sadyn

    env = {
        "sadyn": sadyn.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
    }
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _main_jobs(models: list[str], root: Path, dry_run: bool) -> list[Job]:
    from sadyn.training.presets import get_preset

    jobs = []
    for name in models:
        if name not in MAIN_MODELS:
            raise SadynError(f"--models: unknown model {name!r} (known: {', '.join(MAIN_MODELS)})")
        overrides: dict[str, Any] = {**MAIN_OVERRIDES, **MAIN_MODELS[name]}
        if dry_run:
            overrides = {**overrides, "compile": False, "eval_steps": (8, 16)}
            config = get_preset("tiny", **_tiny_model(overrides))
        else:
            config = get_preset("paper", **overrides)
        jobs.append(Job(name, config.to_dict(), root / name, main=True))
    return jobs


def _tiny_model(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with the model kind kept and the tiny preset's width."""
    if "model" in overrides:
        return {**overrides, "model": {**overrides["model"], "dim": 32, "heads": 2}}
    return overrides


def _as_tiny(job: Job) -> Job:
    """A dry-run copy of an extra job: its model kind at the tiny preset."""
    from sadyn.training.presets import get_preset

    kind = job.config.get("model", {}).get("model", "itrsa")
    config = get_preset("tiny", model={"model": kind})
    return Job(job.name, config.to_dict(), job.out)


# ---------------------------------------------------------------------------- 1. data
def _data_stage(run: PaperRun) -> float:
    """Make every data set; returns the seconds since the start when it was done."""
    t = time.time()
    data = _prepare_data(run.mains + run.extra, run.settings.n_eval)
    run.record["data"] = data
    run.record["stages"]["data"] = {"seconds": time.time() - t}
    run.say(f"data ready: {data}")
    return run.clock.now()


def _prepare_data(jobs: list[Job], n_eval: int) -> dict[str, Any]:
    """Make (or find in the cache) every data set the jobs and the evaluation read."""
    from sadyn.sudoku import resolve_dataset
    from sadyn.training.config import TrainConfig
    from sadyn.training.loop import load_eval_sets, load_train_set

    seen: dict[str, Any] = {}
    for job in jobs:
        config = TrainConfig.from_dict(job.config)
        key = json.dumps(
            [
                config.train_data,
                config.train_size,
                config.data_seed,
                config.eval_data,
                config.eval_size,
            ]
        )
        if key in seen:
            continue
        train = load_train_set(config, progress=False)
        evals = load_eval_sets(config)
        seen[key] = {"train": len(train), **{k: len(v) for k, v in evals.items()}}
    for spec in ("id", "ood"):
        puzzles = resolve_dataset(spec, n=n_eval, seed=0)
        seen[f"eval-{spec}"] = {"n": len(puzzles), "source": puzzles.source}
    return seen


# ---------------------------------------------------------------------------- 2. training
def _train_stage(run: PaperRun, deadline: float) -> None:
    t = time.time()
    stage = _train_all(run, deadline)
    stage["seconds"] = time.time() - t
    run.record["stages"]["train"] = stage
    run.record["runs"] = {j.name: _run_record(j) for j in run.mains + run.extra}


def _train_all(run: PaperRun, deadline: float) -> dict[str, Any]:
    """Run the main jobs at once and the extra ones ``workers`` at a time until ``deadline``
    (a job not started :data:`JOB_MIN_S` before it is skipped); print progress every 15 s."""
    mains, workers = run.mains, run.settings.workers
    for job in mains:
        start_job(job, run.logs, device=run.device, deadline=deadline)
    queue, running, skipped = list(run.extra), [], []
    last_print = 0.0
    while True:
        for job in [*mains, *running]:
            if poll_job(job) and job.returncode != 0:
                _retry(run, job, deadline)
        running = [j for j in running if not poll_job(j)]
        while queue and len(running) < workers:
            job = queue.pop(0)
            if deadline - time.time() < JOB_MIN_S:
                skipped.append(job.name)
                job.notes.append(f"skipped: under {JOB_MIN_S} s of training time left")
                continue
            start_job(job, run.logs, device=run.device, deadline=deadline)
            running.append(job)
        mains_done = all(poll_job(j) for j in mains)
        if mains_done and not running and not queue:
            break
        if time.time() - last_print > 15:
            last_print = time.time()
            status = "; ".join(f"{j.name} {j.progress()}" for j in mains)
            done = sum(j.returncode is not None for j in run.extra)
            run.say(
                f"train: {status}; jobs {done} done, {len(running)} running, {len(queue)} queued"
            )
        # a hard stop well past the deadline: the runs stop themselves at it (max_minutes)
        if time.time() > deadline + 120:
            _kill_all(mains + running)
            break
        time.sleep(1)
    return {"skipped": skipped}


def _kill_all(jobs: list[Job]) -> None:
    for j in jobs:
        if j.proc is not None and j.returncode is None:
            j.proc.kill()
            j.notes.append("killed 120 s past the training deadline")
    time.sleep(1)
    for j in jobs:
        poll_job(j)


def _retry(run: PaperRun, job: Job, deadline: float) -> None:
    """Start a failed job once more, uncompiled (it resumes from its last checkpoint), if a
    minute and a half of training time is left."""
    if job.attempts > 1 or deadline - time.time() < 90:
        return
    note = f"attempt 1 failed (exit {job.returncode}); retried with compile off"
    job.notes.append(note)
    run.say(f"{job.name}: {note}")
    job.config["compile"] = False
    start_job(job, run.logs, device=run.device, deadline=deadline)


def _run_record(job: Job) -> dict[str, Any]:
    summary_path = job.out / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    last = last_train_record(job.out)
    return {
        "main": job.main,
        "returncode": job.returncode,
        "attempts": job.attempts,
        "compile": job.config.get("compile"),
        "precision": job.config.get("precision"),
        "seconds": None if job.started is None else (job.ended or time.time()) - job.started,
        "status": summary.get("status"),
        "step": summary.get("step"),
        "total_steps": summary.get("total_steps"),
        "final_loss": summary.get("final_loss"),
        "boards_per_s": last.get("boards_per_s"),
        "metrics": summary.get("metrics"),
        "notes": job.notes,
    }


def _weights(job: Job) -> tuple[str, ...]:
    """Weights a main run is evaluated with: its EMA, and its raw weights too when the budget
    cut its schedule short. (A cut run's EMA can lag far behind: the paper ItrSA stopped at
    3,187 of 9,000 steps scored 0% with its EMA and 93% with its raw weights, since the EMA's
    horizon of about 2,000 steps still averaged weights from before its loss fell.) Which of
    them a run reports is chosen on validation puzzles (:func:`_chosen_weights`)."""
    summary = job.out / "summary.json"
    status = (
        json.loads(summary.read_text(encoding="utf-8")).get("status") if summary.exists() else None
    )
    return ("ema", "raw") if status == "time_budget" else ("ema",)


#: validation puzzles on which a main run's raw and EMA weights are compared (dry run: 32)
N_VALIDATION = 500


def _chosen_weights(run: PaperRun, job: Job) -> str:
    """The weights a main run reports and the probes use: raw or EMA, whichever scores higher
    on the validation split (:func:`sadyn.training.weights.choose_weights`; never a test set),
    recorded with both scores under ``weights_choice``. EMA, with the reason, when no
    checkpoint can be compared."""
    from sadyn.training.weights import choose_weights

    choices = run.record.setdefault("weights_choice", {})
    if job.name not in choices:
        n = 32 if run.settings.dry_run else N_VALIDATION
        try:
            choices[job.name] = choose_weights(job.out, n=n, device=run.device)
        except SadynError as err:
            choices[job.name] = {"weights": "ema", "error": str(err)}
    return choices[job.name]["weights"]


def _eval_weights(run: PaperRun, job: Job) -> tuple[str, ...]:
    """The weights evaluated on the test sets: those of :func:`_weights` and the validated
    choice (so the reported weights are always among them)."""
    return tuple(dict.fromkeys((*_weights(job), _chosen_weights(run, job))))


# ---------------------------------------------------------------------------- 3. evaluation
def _eval_stage(run: PaperRun, deadline: float) -> None:
    """Every main model and vote count at once (processes: a crash or a hang costs its own
    numbers only)."""
    s, out = run.settings, run.out
    evals: dict[str, Any] = {}
    steps = "8,16" if s.dry_run else ",".join(map(str, STEPS))
    spawned = {}
    for job in run.mains:
        if not (job.out / "latest.json").exists():
            evals[job.name] = {"ok": False, "cut": "no checkpoint to evaluate"}
            continue
        for weights, votes in product(_eval_weights(run, job), (1, s.votes)):
            name = f"{job.name}-{weights}-K{votes}"
            cmd = ["eval", str(job.out), "--data", "id,ood", "--steps", steps,
                   "--n", str(s.n_eval), "--device", run.device, "--quiet", "--weights", weights,
                   "--out", str(out / "eval" / name / "results.json")]  # fmt: skip
            if votes > 1:
                cmd += ["--votes", str(votes), "--vote", "confidence"]
            spawned[name] = _spawn(cmd, run.logs / f"eval-{name}.log")
    for name, (proc, t_start, log) in spawned.items():
        evals[name] = _wait(proc, t_start, log, deadline, run.clock, f"eval {name}")
        results = out / "eval" / name / "results.json"
        if results.exists():
            data = json.loads(results.read_text(encoding="utf-8"))["data"]
            evals[name]["board_accuracy"] = {
                ds: dict(zip(v["steps"], v["board_accuracy"], strict=True))
                for ds, v in data.items()
            }
    run.record["stages"]["eval"] = evals


# ---------------------------------------------------------------------------- 4. probes
def _analyze_stage(run: PaperRun, deadline: float) -> None:
    """Probes of the first main model: one process per probe, on the device at once."""
    s = run.settings
    probes: dict[str, Any] = {}
    target = run.mains[0]
    if (target.out / "config.json").exists():
        weights = _chosen_weights(run, target)
        run.record["analysis_weights"] = weights
        common = ["--n", str(s.n_probe), "--device", run.device, "--quiet", "--weights", weights]
        if s.dry_run:
            # matrix-free eigenvalues (a dense 2592 x 2592 eig is slow on a loaded CPU)
            common += ["--horizon", "4", "--k", "2", "--qr-steps", "0"]
            common += ["--dense-max", "0", "--eig-k", "4"]
        else:  # the paper's definition: T=16, top 16 exponents, over n_probe puzzles
            common += ["--horizon", "16", "--k", "16", "--qr-steps", "128"]
        eig = "1" if s.dry_run else "4"
        parts = {
            "jacobian": ["--probes", "jacobian", "--eig-samples", eig],
            "lyapunov": ["--probes", "lyapunov"],
            "energy": ["--probes", "energy", "--ci-samples", "1", "--ci-every", "16"],
        }
        procs = {}
        for part, extra_args in parts.items():
            folder = run.out / "analysis" / f"{target.name}-{part}"
            cmd = ["analyze", str(target.out), *extra_args, *common, "--out", str(folder)]
            procs[part] = _spawn(cmd, run.logs / f"analyze-{part}.log")
        for part, (proc, t_start, log) in procs.items():
            probes[part] = _wait(proc, t_start, log, deadline, run.clock, f"analyze {part}")
    run.record["stages"]["analyze"] = probes


# ---------------------------------------------------------------------------- 5. report
def _report_stage(run: PaperRun) -> None:
    out, clock = run.out, run.clock
    run.record["stages"]["report"] = _run_stage(
        [
            "report",
            str(out),
            "--out",
            str(out / "report.html"),
            "--title",
            "sadyn: the paper preset on one device",
        ],
        clock.t0 + clock.budget,
        run.logs / "report.log",
        clock,
    )
    run.record["wall_s"] = clock.now()
    (out / "paper.json").write_text(json.dumps(run.record, indent=2, default=str), encoding="utf-8")
    run.say(f"done: {out / 'paper.json'}, {out / 'report.html'}")


# ---------------------------------------------------------------------------- child commands
def _run_stage(cmd: list[str], deadline: float, log: Path, clock: Clock) -> dict[str, Any]:
    """Run a ``sadyn`` subcommand until ``deadline``; ``{"ok", "seconds", "cut"?}``."""
    t0 = time.time()
    timeout = deadline - t0
    if timeout < 5:
        return {"ok": False, "seconds": 0.0, "cut": "no time left in the budget"}
    with log.open("w", encoding="utf-8") as fh:
        try:
            code = subprocess.run(
                [sys.executable, "-m", "sadyn.cli", *cmd],
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            ).returncode
        except subprocess.TimeoutExpired:
            return {"ok": False, "seconds": time.time() - t0, "cut": f"stopped at {timeout:.0f} s"}
    ok = code == 0
    record = {"ok": ok, "seconds": time.time() - t0}
    if not ok:
        record["error"] = log.read_text(encoding="utf-8")[-2000:]
    print(
        f"{clock.stamp()} {' '.join(cmd[:2])}: {'ok' if ok else 'FAILED'} "
        f"in {record['seconds']:.0f} s",
        flush=True,
    )
    return record


def _spawn(cmd: list[str], log: Path) -> tuple[subprocess.Popen, float, Path]:
    fh = log.open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sadyn.cli", *cmd],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    fh.close()
    return proc, time.time(), log


def _wait(
    proc: subprocess.Popen, t_start: float, log: Path, deadline: float, clock: Clock, what: str
) -> dict[str, Any]:
    try:
        code = proc.wait(timeout=max(deadline - time.time(), 1.0))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        print(f"{clock.stamp()} {what}: cut at the stage deadline", flush=True)
        return {"ok": False, "seconds": time.time() - t_start, "cut": "stage deadline"}
    record: dict[str, Any] = {"ok": code == 0, "seconds": time.time() - t_start}
    if code != 0:
        record["error"] = log.read_text(encoding="utf-8")[-2000:]
    print(
        f"{clock.stamp()} {what}: {'ok' if code == 0 else 'FAILED'} in {record['seconds']:.0f} s",
        flush=True,
    )
    return record
