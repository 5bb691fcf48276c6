"""The demo: the shipped models' accuracy and dynamics in a few minutes, end to end
(``sadyn demo``'s pipeline; a script or a notebook runs it as ``run_demo(DemoSettings())``).

:func:`run_demo` runs these stages, each a library call, and announces each on the terminal:

1. scaling: :func:`sadyn.probes.evaluation.run_evaluation` of the pretrained ``small-itrsa`` in
   and out of distribution at T = 16, 32, 64, 128 (``OUT/eval-itrsa/``);
2. voting: the same over K restarts out of distribution, with ``small-vote`` (restarts drawn at
   test time, the verifier vote, each board stopped at its first valid restart), else a shipped
   model whose initial state draws noise (confidence vote); none such: said, not run
   (``OUT/eval-voting/``);
3. probes: :func:`sadyn.probes.analysis.run_analysis` on a few puzzles with cheap settings
   (``OUT/analysis/``);
4. training: :func:`sadyn.training.loop.train` of the ``tiny`` preset for a few seconds
   (``OUT/tiny-run/``, reused by a later demo; ``OUT/training/``);
5. report: :func:`sadyn.report.build_report` (``OUT/report.html``).

``full_training`` trains the ``small`` preset first and evaluates and probes that model instead;
without the pretrained weights the tiny model trained first stands in. :func:`summary_lines`
says what it did. It lives in ``sadyn.pretrained``, the one layer that may import all it calls
(the shipped models, training, the probes and the report).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sadyn.errors import SadynError
from sadyn.probes.analysis import AnalysisSettings
from sadyn.probes.evaluation import EvalSettings
from sadyn.progress import format_seconds

#: expected wall time of ``full_training`` (the small preset, 30 epochs, one core beside a job)
FULL_TRAINING_MINUTES = 40
#: the loop counts of the test-time scaling stage
SCALING_STEPS = [16, 32, 64, 128]


@dataclass
class DemoSettings:
    """The demo's settings (``sadyn demo``'s options, one field each, same names and order)."""

    out: str = "out/demo"
    full_training: bool = False
    n: int | None = None  # boards per evaluated set (None: 300; 100 when fast)
    probe_n: int = 4
    votes: int = 16
    train_seconds: float = 30.0
    fast: bool = False
    seed: int = 0
    threads: int | None = None
    quiet: bool = False

    def check(self) -> None:
        if self.n is not None and self.n < 1:
            raise SadynError(f"--n must be >= 1, got {self.n}")
        if self.votes < 1 or self.probe_n < 1 or self.train_seconds <= 0:
            raise SadynError("--votes and --probe-n must be >= 1 and --train-seconds > 0")

    def boards(self) -> int:
        return self.n or (100 if self.fast else 300)


@dataclass
class DemoRun:
    """What :func:`run_demo` did: the pretrained models it used, one line per stage (empty:
    the stage did not run or said its line already) and where it wrote."""

    out: Path
    report: Path
    pretrained: list[str] = field(default_factory=list)
    training: str = ""
    scaling: str = ""
    voting: str = ""
    started: float = 0.0  # time.perf_counter() at the start


def run_demo(settings: DemoSettings) -> DemoRun:
    """Run the stages of ``settings`` (checked here) into ``settings.out``."""
    from sadyn.pretrained import available

    settings.check()
    os.environ.setdefault("SADYN_PROGRESS_SECONDS", "10")  # progress lines every 10 s here
    demo = Demo(settings, set(available()))
    demo.announce()
    if settings.full_training:
        demo.train_small()
    if demo.model is None:  # no pretrained model: train first, use that
        demo.train_fallback()
    demo.scaling()
    if demo.voter is not None:
        demo.voting()
    elif not settings.full_training:
        demo.no_voting()
    demo.probes()
    if not settings.full_training and demo.itrsa is not None:
        demo.train_tiny()
    return demo.finish()


def summary_lines(run: DemoRun) -> list[str]:
    """The terminal's summary of a demo (the command prints it after a blank line)."""
    lines = ["sadyn demo: what it did"]
    for line in [*run.pretrained, run.training, run.scaling, run.voting]:
        if line:
            lines.append(f"  {line}")
    lines.append(f"  probes: {run.out / 'analysis' / 'results.json'}")
    lines.append(f"report: {run.report.resolve()}")
    lines.append(f"total time: {format_seconds(time.perf_counter() - run.started)}")
    return lines


class Demo:
    """The stages of one demo, numbered as they run, and what the summary needs."""

    def __init__(self, settings: DemoSettings, have: set[str]) -> None:
        self.s = settings
        self.out = Path(settings.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.run = DemoRun(self.out, self.out / "report.html", started=time.perf_counter())
        self.itrsa = "small-itrsa" if "small-itrsa" in have else None
        self.model: str | None = self.itrsa  # the model evaluated and probed
        self.label = "small-itrsa (pretrained)"
        # small-vote with test-time restarts and the verifier, else any shipped model whose
        # starts draw noise (confidence vote)
        self.voter = None
        if not settings.full_training:
            self.voter = "small-vote" if "small-vote" in have else None
            self.voter = self.voter or next(
                (name for name in sorted(have) if restarts_differ(name)), None
            )
        self.have = have
        self.stage = 0
        self.total = 3 + (self.voter is not None) + (not settings.full_training)

    def say(self, msg: str) -> None:
        print(f"demo: {msg}", flush=True)

    def header(self, text: str) -> float:
        self.stage += 1
        self.say(f"[{self.stage}/{self.total}] {text}")
        return time.perf_counter()

    def done(self, t0: float) -> None:
        self.say(f"    took {format_seconds(time.perf_counter() - t0)}")

    # ----------------------------------------------------------------------- stages
    def announce(self) -> None:
        if self.s.full_training:
            self.say(
                f"--full-training: training the small preset (30 epochs, 2,700 steps) here "
                f"first; expect about {FULL_TRAINING_MINUTES} minutes on one CPU core (progress "
                "below)"
            )
        else:
            self.say(
                f"about 6 minutes on a loaded 2-core machine; writing to {self.out}/. "
                "Steps: pretrained ItrSA at several T, voting (where a pretrained model's "
                "restarts differ), dynamics probes, a short training run, the report"
            )
        if self.itrsa is None and not self.s.full_training:
            self.say(
                "NOTE: the pretrained weights (sadyn/pretrained/small-itrsa.*) are missing from "
                "this installation; falling back to the tiny model trained below, whose "
                "accuracy is about 0: the numbers show the machinery, not a trained model"
            )

    def train_small(self) -> None:
        """Train the small preset (``full_training``, before the numbered stages)."""
        from sadyn.training.presets import get_preset

        run_dir = self.out / "small-run"
        config = get_preset(
            "small", seed=self.s.seed, tensorboard=False, threads=self.s.threads, max_minutes=None
        )
        run_dir, summary, wall = self._train_or_reuse(config, run_dir)
        self._record_training(run_dir, summary, wall, "the small preset")
        self.run.training = trained_line("the small preset", run_dir, summary, wall, "")
        self.model, self.label = str(run_dir), "small (trained now)"

    def train_fallback(self) -> None:
        t0 = self.header("training the tiny preset (fallback model)")
        run_dir, summary, wall = self._train_tiny()
        self._record_training(run_dir, summary, wall, "the tiny preset")
        self.run.training = trained_line(
            "the tiny preset", run_dir, summary, wall, " (a demonstration, accuracy about 0)"
        )
        self.model, self.label = str(run_dir), "tiny (trained now, fallback)"
        self.done(t0)

    def scaling(self) -> None:
        n = self.s.boards()
        ts = ",".join(map(str, SCALING_STEPS))
        t0 = self.header(f"test-time scaling: {self.label}, {n} ID + {n} OOD boards, T={ts}")
        record = self.evaluate(self.scaling_settings(self.model), "itrsa", self.label)
        self.run.scaling = f"{self.label}: board accuracy {accuracy_line(record)}"
        self.done(t0)

    def voting(self) -> None:
        voter, k = self.voter, self.s.votes
        noisy = restarts_differ(voter)
        rule = "confidence" if noisy else "verifier"
        settings = self.vote_settings(voter, noisy)
        t0 = self.header(
            f"voting: {voter} (pretrained), K={k} restarts"
            + ("" if noisy else " drawn at test time")
            + f", {rule} vote, {settings.n} OOD boards, T={','.join(map(str, settings.steps))}"
        )
        record = self.evaluate(
            settings, "voting", f"{voter} (pretrained), {rule} vote over K={k} restarts"
        )
        self.run.voting = vote_line(voter, k, rule, noisy, record["data"]["ood"])
        self.done(t0)

    def no_voting(self) -> None:
        shipped = sorted(self.have)
        self.run.voting = (
            f"voting: not run. {' and '.join(shipped) or 'No pretrained model'} "
            f"{'start' if len(shipped) > 1 else 'starts'} every restart from Norm(C) (init "
            "'cond', no noise), so K restarts follow one trajectory and a vote equals a single "
            "run. Voting needs noisy starts (--model.init akorn or --model.init-noise S)."
        )
        self.say(self.run.voting)

    def probes(self) -> None:
        n = self.s.probe_n
        t0 = self.header(
            f"dynamics probes of {self.label} on {n} puzzles (cheap settings; "
            "`sadyn analyze --full` for the documented ones)"
        )
        analyze(self.probe_settings(self.model))
        retitle(
            self.out / "analysis" / "results.json",
            "demo-probes",
            f"Demo: dynamics probes of {self.label} on {n} puzzles (cheap settings)",
        )
        self.done(t0)

    def train_tiny(self) -> None:
        t0 = self.header(
            f"training the tiny preset now: 200 steps, at most {self.s.train_seconds:g} s "
            "(shows training and its progress; not an accurate model)"
        )
        run_dir, summary, wall = self._train_tiny()
        self._record_training(run_dir, summary, wall, "the tiny preset")
        self.run.training = trained_line(
            "the tiny preset (D=32)", run_dir, summary, wall, " (a demonstration, accuracy about 0)"
        )
        self.done(t0)

    def finish(self) -> DemoRun:
        """Write the report; the pretrained models used, once each, for the summary."""
        from sadyn.pretrained import load_pretrained
        from sadyn.report import build_report

        report = build_report(self.out, self.run.report, title="sadyn demo")
        for err in report.figure_errors:
            self.say(f"warning: {err}")
        self.run.report = report.path
        for name in dict.fromkeys((self.itrsa, self.voter)):
            if name is not None:
                self.run.pretrained.append(pretrained_line(name, load_pretrained(name)[2]))
        return self.run

    # ----------------------------------------------------------------------- settings
    def eval_settings(
        self, model: str, label: str, *, data: str, n: int, steps: list[int], votes: int = 1
    ) -> EvalSettings:
        """An evaluation as ``sadyn eval MODEL --data DATA --n N --steps T,... --votes K
        --out OUT/eval-LABEL/results.json --batch-size 500`` runs it."""
        return EvalSettings(
            checkpoint=model,
            data=data,
            steps=list(steps),
            votes=votes,
            n=n,
            batch_size=500,
            out=str(self.out / f"eval-{label}" / "results.json"),
            threads=self.s.threads or None,
            quiet=self.s.quiet,
        )

    def scaling_settings(self, model: str) -> EvalSettings:
        """The test-time scaling stage's evaluation: ID and OOD at each of SCALING_STEPS."""
        n = self.s.boards()
        return self.eval_settings(model, "itrsa", data="id,ood", n=n, steps=SCALING_STEPS)

    def vote_settings(self, voter: str, noisy: bool) -> EvalSettings:
        """The voting stage's evaluation: a model whose starts draw noise (``noisy``) votes by
        confidence over its own restarts; a deterministic start gets test-time restarts and the
        verifier vote, and any-valid halting decides that vote exactly and stops a solved
        board's restarts (BENCHMARKS.md, "Voting")."""
        from sadyn.probes.accuracy import DEFAULT_RESTART_NOISE

        n = max(self.s.boards() // 3 if noisy else self.s.boards() // 5, 20)
        steps = [16, 64] if noisy else [16, 64, 128]
        settings = self.eval_settings(
            voter, "voting", data="ood", n=n, steps=steps, votes=self.s.votes
        )
        if self.s.votes > 1:
            settings.vote = "confidence" if noisy else "verifier"  # (K = 1: the default rule)
        if not noisy:
            settings.restart_noise, settings.anchor = DEFAULT_RESTART_NOISE, True
            settings.halt = "any-valid"
        return settings

    def probe_settings(self, model: str) -> AnalysisSettings:
        """The probes' cheap settings (resolved): ``sadyn analyze MODEL`` with these options.
        The contribution index (dense eigenproblems, minutes when loaded) is left to
        ``sadyn analyze``."""
        fast = self.s.fast
        return AnalysisSettings(
            checkpoint=model,
            n=self.s.probe_n,
            out=str(self.out / "analysis"),
            seed=self.s.seed,
            eig_samples=1,
            eig_k=16 if fast else 24,
            k=4 if fast else 8,
            qr_steps=32,
            transient=8,
            ci_samples=0,
            ci_every=16,
            sens_n=2,
            sens_warmup=32,
            sens_steps=300 if fast else 500,
            scaling_steps=[16, 32, 64],
            threads=self.s.threads or None,
            quiet=self.s.quiet,
        ).resolved()

    # ----------------------------------------------------------------------- helpers
    def evaluate(self, settings: EvalSettings, label: str, title: str) -> dict[str, Any]:
        evaluate(settings)
        return retitle(
            Path(settings.out),
            f"demo-eval-{label}",
            f"Demo: {title}: board accuracy against the loop count T",
        )

    def _train_tiny(self) -> tuple[Path, Any, float | None]:
        from sadyn.training.presets import get_preset

        config = get_preset(
            "tiny",
            seed=self.s.seed,
            epochs=8,  # 200 steps: about 20 s on one idle core; the time cap stops it sooner
            train_size=500,
            eval_size=100,
            eval_every=0,
            ckpt_every=100,
            log_every=10,
            max_minutes=self.s.train_seconds / 60,
            tensorboard=False,
            threads=self.s.threads,
        )
        return self._train_or_reuse(config, self.out / "tiny-run")

    def _train_or_reuse(self, config: Any, run_dir: Path) -> tuple[Path, Any, float | None]:
        """Train ``config`` into ``run_dir``; a run an earlier demo finished there is reused,
        not trained again (the wall time returned is then None). An unfinished one resumes."""
        from sadyn.training.loop import train

        summary = finished_run(run_dir, config)
        if summary is not None:
            return run_dir, summary, None
        t0 = time.perf_counter()
        resume = (run_dir / "config.json").is_file()
        summary = train(config, run_dir, resume=resume, progress=not self.s.quiet)
        return run_dir, summary, time.perf_counter() - t0

    def _record_training(self, run_dir: Path, summary: Any, wall: float | None, what: str) -> None:
        from sadyn.results import write_results

        record = training_record(run_dir, summary, wall, what)
        write_results(self.out / "training" / "results.json", record)


# --------------------------------------------------------------------------- library calls
def evaluate(settings: EvalSettings) -> Any:
    """An evaluation as ``sadyn eval`` runs it (:func:`sadyn.pretrained.pipelines
    .evaluate_model`), its table printed."""
    from sadyn.pretrained.pipelines import evaluate_model
    from sadyn.probes.evaluation import summary_text

    result = evaluate_model(settings)
    print(summary_text(result))
    return result


def analyze(settings: AnalysisSettings) -> Any:
    """The probes as ``sadyn analyze`` runs them (:func:`sadyn.pretrained.pipelines
    .analyze_model`), the summary printed."""
    from sadyn.pretrained.pipelines import analyze_model
    from sadyn.probes.analysis import summary_text

    result = analyze_model(settings)
    if result is not None:
        print(summary_text(result.probes, result.out))
    return result


def retitle(path: Path, name: str, title: str) -> dict[str, Any]:
    """Rename the results file at ``path`` as a demo section (not a claim); returns it."""
    from sadyn.results import read_results, write_results

    record = read_results(path)
    record.update(name=name, title=title, claim=None)
    write_results(path, record)
    return record


# --------------------------------------------------------------------------- lines, records
def restarts_differ(name: str) -> bool:
    """Whether K restarts of a pretrained model follow different trajectories: its initial
    state draws noise (init other than "cond", or init_noise > 0). Otherwise a vote over them
    equals a single run."""
    from sadyn.pretrained import manifest_path, read_manifest

    config = read_manifest(manifest_path(name))["model_config"]
    return config.get("init", "cond") != "cond" or float(config.get("init_noise") or 0) > 0


def accuracy_line(record: dict[str, Any]) -> str:
    """Board accuracy of each set of an evaluation record at each T, with its pool."""
    parts = []
    for name, res in record["data"].items():
        accs = " / ".join(f"{100 * a:.1f}%" for a in res["board_accuracy"])
        ts = "/".join(str(t) for t in res["steps"])
        pool = f"; pool: {res['pool']}" if res.get("pool") else ""
        parts.append(f"{name} {accs} (T={ts}, {res['n']} boards{pool})")
    return "; ".join(parts)


def vote_line(voter: str, k: int, rule: str, noisy: bool, res: dict[str, Any]) -> str:
    """The voting stage's summary line from the OOD set's results ``res``."""

    def pct(values: list[float]) -> str:
        return " / ".join(f"{100 * a:.1f}%" for a in values)

    line = f"{voter} OOD, K={k} {rule} vote: {pct(res['board_accuracy'])}"
    if res.get("mean_board_accuracy") and noisy:  # (any-valid cuts the other restarts)
        line += f" (one restart: {pct(res['mean_board_accuracy'])}"
        if res.get("oracle_board_accuracy"):
            line += f"; any restart right: {pct(res['oracle_board_accuracy'])}"
        line += ")"
    if not noisy:
        line += " (= any restart right: a board a restart solves is the verifier's pick)"
    line += f" at T={'/'.join(str(t) for t in res['steps'])}"
    if res.get("pool"):
        line += f" ({res['n']} boards; pool: {res['pool']})"
    return line


def pretrained_line(name: str, meta: dict[str, Any]) -> str:
    """A pretrained model's provenance line (``meta``: its manifest)."""
    return (
        f"pretrained: {name} ({meta.get('preset')} preset, seed {meta.get('seed')}, "
        f"{meta.get('steps')} steps, trained on {meta.get('trained_on')}; "
        f"sha256 {str(meta.get('sha256'))[:12]}...)"
    )


def finished_run(run_dir: Path, config: Any) -> Any:
    """The summary of a run of ``config`` an earlier demo finished in ``run_dir`` (completed or
    stopped by its time budget), or None (no run, another config, or unfinished)."""
    from sadyn.training.config import RESUMABLE_FIELDS, TrainConfig
    from sadyn.training.loop import CONFIG_NAME, SUMMARY_NAME, TrainSummary

    try:
        stored = json.loads((run_dir / SUMMARY_NAME).read_text(encoding="utf-8"))
        saved = TrainConfig.from_dict(
            json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        )
    except (OSError, ValueError):
        return None
    if stored.get("status") not in ("completed", "time_budget"):
        return None
    if any(k not in RESUMABLE_FIELDS for k in saved.differences(config)):
        return None
    fields = TrainSummary.__dataclass_fields__
    summary = TrainSummary(**{k: v for k, v in stored.items() if k in fields})
    summary.out_dir = str(run_dir)
    return summary


def trained_line(what: str, run_dir: Path, summary: Any, wall: float | None, tail: str) -> str:
    """The summary line of a training stage: trained now, or reused from an earlier demo."""
    if wall is None:
        return (
            f"reused: {what}, {summary.step} steps trained by an earlier demo in "
            f"{format_seconds(summary.wall_time_s or 0)} -> {run_dir} (delete it to train "
            f"again){tail}"
        )
    return f"trained now: {what}, {summary.step} steps in {format_seconds(wall)} -> {run_dir}{tail}"


def training_record(run_dir: Path, summary: Any, wall: float | None, what: str) -> dict[str, Any]:
    """A results record for a training run (curves as a referenced PNG, final metrics);
    ``wall`` None: a run reused from an earlier demo, said so."""
    from sadyn.training.logging import CURVE_NAME

    metrics = summary.metrics or {}
    rows = []
    for dataset, m in metrics.items():
        for t, acc in (m.get("board_accuracy") or {}).items():
            rows.append([dataset, t, acc, (m.get("cell_accuracy") or {}).get(t)])
    figures = {}
    if (run_dir / CURVE_NAME).is_file():
        figures["curves"] = {
            "kind": "png",
            "path": f"../{run_dir.name}/{CURVE_NAME}",
            "caption": "Training curves.",
        }
    return {
        "name": "demo-training",
        "title": f"Demo: training {what} now"
        if wall is not None
        else f"Demo: {what}, reused from an earlier demo",
        "order": -1,
        "claim": None,
        "preset": what,
        "seed": None,
        "wall_time_s": wall if wall is not None else summary.wall_time_s,
        "data": {
            "reused": wall is None,
            "status": summary.status,
            "step": summary.step,
            "total_steps": summary.total_steps,
            "final_loss": summary.final_loss,
            "metrics": metrics,
        },
        "figures": figures,
        "tables": {
            "accuracy": {"columns": ["test set", "loops T", "board acc", "cell acc"], "rows": rows}
        },
        "notes": [
            (
                f"Trained now for {wall:.0f} s"
                if wall is not None
                else f"Reused: trained by an earlier demo in {summary.wall_time_s or 0:.0f} s"
            )
            + f": {summary.step} of {summary.total_steps} steps (status {summary.status!r}). "
            "A demonstration of training, not a result."
        ],
    }
