"""``sadyn paper --out DIR --budget-min 9``: the paper preset end to end in one command, for the
minutes a GPU session gives, within a wall-clock budget.

Stages; each is cut at its share of the budget, and what was cut is written down:

1. data: the SATNet-style training split and test set (ID) and the RRN-style test set (OOD),
   read from the data cache (``$SADYN_DATA_DIR``) or generated;
2. training, in parallel processes sharing the device: the ``paper`` ItrSA (and the ``paper``
   AKOrN with N=4, ``--models itrsa,akorn``) with bf16 autocast, a compiled loop step and the
   fused attention kernel, plus any extra training jobs (``--jobs FILE``: a JSON list of
   ``{"name", "preset", "overrides"}`` or ``{"name", "config"}``) on ``--workers`` processes.
   Every run stops at the training deadline with a checkpoint (``max_minutes``) and is still
   evaluated;
3. evaluation of each main model on ID and OOD at T = 16, 32, 64, 128, without and with voting
   (``--votes`` restarts, confidence vote);
4. probes of the ItrSA (``sadyn analyze``): Jacobian spectrum and the Prop 5.1 bound,
   finite-time Lyapunov exponents at T=16 over 32 puzzles, pseudo-energy and contribution index;
5. ``DIR/report.html`` and ``DIR/paper.json`` (every number, the stage times, the device).

``--dry-run`` runs the same stages at the ``tiny`` preset on the CPU in about a minute (the test
suite does, so the command cannot rot). Nothing touches the network.
"""

from __future__ import annotations

import argparse
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

# shares of the budget (after the data stage) at which each stage must end
TRAIN_END, EVAL_END, ANALYZE_END = 0.58, 0.76, 0.94
JOB_MIN_S = 100  # an extra job is not started with less training time than this left
MAIN_OVERRIDES = {"precision": "bf16", "compile": True}
MAIN_MODELS = {"itrsa": {}, "akorn": {"model": {"model": "akorn"}}}
STEPS = (16, 32, 64, 128)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "paper",
        help="train, evaluate and probe the paper preset within a wall-clock budget (a GPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--budget-min", type=float, default=9.0, help="wall-clock budget in minutes (default 9)"
    )
    p.add_argument(
        "--models",
        default="itrsa",
        help="main models, comma-separated: itrsa, akorn (default itrsa)",
    )
    p.add_argument(
        "--jobs",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON list of extra training jobs to run beside the main models (repeatable)",
    )
    p.add_argument("--workers", type=int, default=3, help="parallel processes for --jobs")
    p.add_argument(
        "--compile-jobs",
        action="store_true",
        help="compile the loop step of the --jobs runs too (pays off past about a minute "
        "of training; the math is unchanged)",
    )
    p.add_argument("--votes", type=int, default=16, help="restarts of the voting evaluation")
    p.add_argument("--n-eval", type=int, default=1000, help="puzzles per evaluation set")
    p.add_argument("--n-probe", type=int, default=32, help="puzzles of the probes")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="the same stages at the tiny preset on the CPU (about a minute)",
    )
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------- jobs
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
        last = _last_train_record(self.out)
        total = self.config.get("epochs", 0) * (
            self.config.get("train_size", 0) // max(self.config.get("batch_size", 1), 1)
        )
        step = f"{last.get('step', 0)}/{total}" if last else "starting"
        if self.returncode is not None:
            return f"{step} done ({'ok' if self.returncode == 0 else f'exit {self.returncode}'})"
        return step


def _last_train_record(run: Path) -> dict[str, Any]:
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


def start_job(
    job: Job,
    logs: Path,
    *,
    device: str,
    deadline: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Launch ``job`` as ``python -m sadyn.cli.paper _train`` into ``job.out`` (a run folder
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
        [sys.executable, "-m", "sadyn.cli.paper", "_train", str(spec), str(job.out)],
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


def train_worker(spec: str, out: str) -> int:
    """The child process of one job: train ``spec`` (a TrainConfig JSON) into ``out``."""
    from sadyn.training import train
    from sadyn.training.config import TrainConfig

    config = TrainConfig.from_dict(json.loads(Path(spec).read_text(encoding="utf-8")))
    summary = train(config, out, resume=(Path(out) / "config.json").exists(), progress=False)
    print(json.dumps({"status": summary.status, "step": summary.step}))
    return 0


# ---------------------------------------------------------------------------- stages
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


def run(args: argparse.Namespace) -> int:
    if args.budget_min <= 0:
        raise SadynError(f"--budget-min must be positive, got {args.budget_min}")
    if args.workers < 1 or args.votes < 1 or args.n_eval < 1 or args.n_probe < 1:
        raise SadynError("--workers, --votes, --n-eval and --n-probe must be >= 1")
    clock = Clock(args.budget_min * 60)
    device = "cpu" if args.dry_run else _device(args.device)
    out = Path(args.out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    models = [m for m in args.models.split(",") if m]
    mains = _main_jobs(models, out / "runs", args.dry_run)
    extra = [j for f in args.jobs for j in read_jobs(f, out / "jobs")]
    if args.dry_run:
        extra = [_as_tiny(j) for j in extra]
    if args.compile_jobs and not args.dry_run:
        for job in extra:
            job.config["compile"] = True
    record: dict[str, Any] = {
        "command": "sadyn paper " + " ".join(sys.argv[2:]),
        "budget_s": clock.budget,
        "dry_run": args.dry_run,
        "environment": _environment(device),
        "stages": {},
    }
    print(
        f"{clock.stamp()} sadyn paper on {record['environment'].get('gpu', device)}: "
        f"{', '.join(models)} + {len(extra)} extra job(s); budget {args.budget_min:g} min",
        flush=True,
    )

    # 1. data
    t = time.time()
    data = _prepare_data(mains + extra, args.n_eval)
    record["data"] = data
    record["stages"]["data"] = {"seconds": time.time() - t}
    print(f"{clock.stamp()} data ready: {data}", flush=True)
    after_data = clock.now()

    # 2. training
    t = time.time()
    train_deadline = clock.at(TRAIN_END, after_data)
    record["stages"]["train"] = _train_all(
        mains, extra, train_deadline, device, args.workers, logs, clock
    )
    record["stages"]["train"]["seconds"] = time.time() - t
    record["runs"] = {j.name: _run_record(j) for j in mains + extra}

    # 3. evaluation: every model and vote count at once (processes: a crash or a hang costs
    # its own numbers only)
    eval_deadline = clock.at(EVAL_END, after_data)
    evals: dict[str, Any] = {}
    steps = "8,16" if args.dry_run else ",".join(map(str, STEPS))
    spawned = {}
    for job in mains:
        if not (job.out / "latest.json").exists():
            evals[job.name] = {"ok": False, "cut": "no checkpoint to evaluate"}
            continue
        for weights, votes in product(_weights(job), (1, args.votes)):
            name = f"{job.name}-{weights}-K{votes}"
            cmd = ["eval", str(job.out), "--data", "id,ood", "--steps", steps,
                   "--n", str(args.n_eval), "--device", device, "--quiet", "--weights", weights,
                   "--out", str(out / "eval" / name / "results.json")]  # fmt: skip
            if votes > 1:
                cmd += ["--votes", str(votes), "--vote", "confidence"]
            spawned[name] = _spawn(cmd, logs / f"eval-{name}.log")
    for name, (proc, t_start, log) in spawned.items():
        evals[name] = _wait(proc, t_start, log, eval_deadline, clock, f"eval {name}")
        results = out / "eval" / name / "results.json"
        if results.exists():
            data = json.loads(results.read_text(encoding="utf-8"))["data"]
            evals[name]["board_accuracy"] = {
                ds: dict(zip(v["steps"], v["board_accuracy"], strict=True))
                for ds, v in data.items()
            }
    record["stages"]["eval"] = evals

    # 4. probes of the first main model: one process per probe, on the device at once
    analyze_deadline = clock.at(ANALYZE_END, after_data)
    probes: dict[str, Any] = {}
    target = mains[0]
    if (target.out / "config.json").exists():
        weights = _weights(target)[-1]
        record["analysis_weights"] = weights
        common = ["--n", str(args.n_probe), "--device", device, "--quiet", "--weights", weights]
        if args.dry_run:
            # matrix-free eigenvalues (a dense 2592 x 2592 eig is slow on a loaded CPU)
            common += ["--horizon", "4", "--k", "2", "--qr-steps", "0"]
            common += ["--dense-max", "0", "--eig-k", "4"]
        else:  # the paper's definition: T=16, top 16 exponents, over n_probe puzzles
            common += ["--horizon", "16", "--k", "16", "--qr-steps", "128"]
        eig = "1" if args.dry_run else "4"
        parts = {
            "jacobian": ["--probes", "jacobian", "--eig-samples", eig],
            "lyapunov": ["--probes", "lyapunov"],
            "energy": ["--probes", "energy", "--ci-samples", "1", "--ci-every", "16"],
        }
        procs = {}
        for part, extra_args in parts.items():
            cmd = [
                "analyze",
                str(target.out),
                *extra_args,
                *common,
                "--out",
                str(out / "analysis" / f"{target.name}-{part}"),
            ]
            procs[part] = _spawn(cmd, logs / f"analyze-{part}.log")
        for part, (proc, t_start, log) in procs.items():
            probes[part] = _wait(proc, t_start, log, analyze_deadline, clock, f"analyze {part}")
    record["stages"]["analyze"] = probes

    # 5. report and summary
    report_deadline = clock.t0 + clock.budget
    record["stages"]["report"] = _run_stage(
        [
            "report",
            str(out),
            "--out",
            str(out / "report.html"),
            "--title",
            "sadyn: the paper preset on one device",
        ],
        report_deadline,
        logs / "report.log",
        clock,
    )
    record["wall_s"] = clock.now()
    (out / "paper.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    print(f"{clock.stamp()} done: {out / 'paper.json'}, {out / 'report.html'}", flush=True)
    for name, ev in evals.items():
        print(f"  {name}: {ev.get('board_accuracy', ev.get('cut', ev.get('error', '')[-200:]))}")
    return 0


def _weights(job: Job) -> tuple[str, ...]:
    """Weights a main run is evaluated with: its EMA, and its raw weights too when the budget
    cut its schedule short. (A cut run's EMA can lag far behind: the paper ItrSA stopped at
    3,187 of 9,000 steps scored 0% with its EMA and 93% with its raw weights, since the EMA's
    horizon of about 2,000 steps still averaged weights from before its loss fell.) The last
    entry is the one the probes use."""
    summary = job.out / "summary.json"
    status = (
        json.loads(summary.read_text(encoding="utf-8")).get("status") if summary.exists() else None
    )
    return ("ema", "raw") if status == "time_budget" else ("ema",)


def _as_tiny(job: Job) -> Job:
    """A dry-run copy of an extra job: its model kind at the tiny preset."""
    from sadyn.training.presets import get_preset

    kind = job.config.get("model", {}).get("model", "itrsa")
    config = get_preset("tiny", model={"model": kind})
    return Job(job.name, config.to_dict(), job.out)


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


def _train_all(
    mains: list[Job],
    extra: list[Job],
    deadline: float,
    device: str,
    workers: int,
    logs: Path,
    clock: Clock,
) -> dict[str, Any]:
    """Run the main jobs at once and the extra ones ``workers`` at a time until ``deadline``
    (a job not started 60 s before it is skipped); print progress every 15 s."""
    for job in mains:
        start_job(job, logs, device=device, deadline=deadline)
    queue, running, skipped = list(extra), [], []
    last_print = 0.0
    while True:
        for job in [*mains, *running]:
            if poll_job(job) and job.returncode != 0:
                _retry(job, deadline, device, logs, clock)
        running = [j for j in running if not poll_job(j)]
        while queue and len(running) < workers:
            job = queue.pop(0)
            if deadline - time.time() < JOB_MIN_S:
                skipped.append(job.name)
                job.notes.append(f"skipped: under {JOB_MIN_S} s of training time left")
                continue
            start_job(job, logs, device=device, deadline=deadline)
            running.append(job)
        mains_done = all(poll_job(j) for j in mains)
        if mains_done and not running and not queue:
            break
        if time.time() - last_print > 15:
            last_print = time.time()
            status = "; ".join(f"{j.name} {j.progress()}" for j in mains)
            done = sum(j.returncode is not None for j in extra)
            print(
                f"{clock.stamp()} train: {status}; jobs {done} done, {len(running)} running, "
                f"{len(queue)} queued",
                flush=True,
            )
        # a hard stop well past the deadline: the runs stop themselves at it (max_minutes)
        if time.time() > deadline + 120:
            for j in mains + running:
                if j.proc is not None and j.returncode is None:
                    j.proc.kill()
                    j.notes.append("killed 120 s past the training deadline")
            time.sleep(1)
            for j in mains + running:
                poll_job(j)
            break
        time.sleep(1)
    return {"skipped": skipped}


def _retry(job: Job, deadline: float, device: str, logs: Path, clock: Clock) -> None:
    """Start a failed job once more, uncompiled (it resumes from its last checkpoint), if a
    minute and a half of training time is left."""
    if job.attempts > 1 or deadline - time.time() < 90:
        return
    note = f"attempt 1 failed (exit {job.returncode}); retried with compile off"
    job.notes.append(note)
    print(f"{clock.stamp()} {job.name}: {note}", flush=True)
    job.config["compile"] = False
    start_job(job, logs, device=device, deadline=deadline)


def _run_record(job: Job) -> dict[str, Any]:
    summary_path = job.out / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    last = _last_train_record(job.out)
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


if __name__ == "__main__":  # the child process of a training job
    if len(sys.argv) == 4 and sys.argv[1] == "_train":
        sys.exit(train_worker(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m sadyn.cli.paper _train CONFIG.json OUT")
