"""``sadyn demo --out DIR``: a trained model's dynamics in a few minutes, end to end.

1. evaluate the pretrained ``small-itrsa`` (shipped in ``sadyn/pretrained/``) in and out of
   distribution at several loop counts T (test-time scaling);
2. vote over K restarts out of distribution: with the shipped ``small-vote`` (trained with
   symmetry augmentation), restarts drawn at test time (restart noise 0.3 on the
   blank cells of Norm(C), restart 0 the deterministic run), the verifier vote (fewest Sudoku
   conflicts) and each board stopped once a restart solves it (``--halt any-valid``);
   otherwise with a pretrained model whose initial state draws noise (confidence vote). A
   model that starts from Norm(C) without restart noise gives K copies of one trajectory, and
   the demo says so instead of voting;
3. run the dynamics probes (Jacobian spectra and the Prop 5.1 bound, Lyapunov exponents,
   pseudo-energy, sensitivity) on a few puzzles with cheap settings (the contribution index,
   minutes of dense eigenproblems, is left to ``sadyn analyze``);
4. train the ``tiny`` preset now for a few seconds, to show training and its progress (a
   demonstration of the machinery: a model this small and this short is not accurate);
5. write ``DIR/report.html`` and print what was pretrained, what was trained now, and where the
   report is.

About 6 minutes on a 2-core machine shared with other jobs (measured 6 min 10 s at load 10-12;
results/demo/), less on a quiet one. ``--full-training``
instead trains the ``small`` preset here (30 epochs, about 40 minutes on one core; the time is
printed first) and evaluates and probes that model. Without the pretrained weights the demo
says so and falls back to the model it trains.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from sadyn.cli._args import add_quiet, add_threads
from sadyn.errors import SadynError
from sadyn.progress import format_seconds

#: expected wall time of --full-training (the small preset, 30 epochs, one core beside a job)
FULL_TRAINING_MINUTES = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="a trained model's accuracy and dynamics in a few minutes, with an HTML report",
        description=__doc__,
    )
    p.add_argument("--out", metavar="DIR", default="out/demo", help="output folder")
    p.add_argument(
        "--full-training",
        action="store_true",
        help=f"train the small preset here (about {FULL_TRAINING_MINUTES} min) instead of "
        "using the pretrained weights",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="boards per evaluated set (default 300; 100 with --fast)",
    )
    p.add_argument("--probe-n", type=int, default=4, help="puzzles the probes run on (default 4)")
    p.add_argument(
        "--votes", type=int, default=16, help="K restarts of the voting demo (default 16)"
    )
    p.add_argument(
        "--train-seconds",
        type=float,
        default=30.0,
        help="time cap of the tiny training demo (200 steps) in seconds (default 30)",
    )
    p.add_argument("--fast", action="store_true", help="smaller sets and cheaper probes (faster)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training and the probes")
    add_threads(p)
    add_quiet(p)
    p.set_defaults(func=run)


class Demo:
    """Runs the stages and keeps what the final summary needs."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.quiet = args.quiet
        self.started = time.perf_counter()
        self.lines: list[str] = []  # "what it did", for the end

    def say(self, msg: str) -> None:
        print(f"demo: {msg}", flush=True)

    def cli(self, argv: list[str]) -> int:
        from sadyn.cli import build_parser

        parsed = build_parser().parse_args(argv)
        return int(parsed.func(parsed) or 0)

    # ----------------------------------------------------------------------- stages
    def evaluate(
        self,
        model: str,
        label: str,
        *,
        data: str,
        n: int,
        steps: str,
        votes: int = 1,
        vote: str | None = None,
        title: str = "",
        extra: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        folder = self.out / f"eval-{label}"
        argv = [
            "eval",
            model,
            "--data",
            data,
            "--n",
            str(n),
            "--steps",
            steps,
            "--out",
            str(folder / "results.json"),
            "--batch-size",
            "500",
        ]
        if votes > 1:
            argv += ["--votes", str(votes)]
            if vote:
                argv += ["--vote", vote]
        argv += list(extra)
        if self.args.threads:
            argv += ["--threads", str(self.args.threads)]
        if self.quiet:
            argv.append("--quiet")
        self.cli(argv)
        return self._retitle(
            folder / "results.json",
            f"demo-eval-{label}",
            f"Demo: {title or label}: board accuracy against the loop count T",
        )

    def _retitle(self, path: Path, name: str, title: str) -> dict[str, Any]:
        from sadyn.results import read_results, write_results

        record = read_results(path)
        record.update(name=name, title=title, claim=None)
        write_results(path, record)
        return record

    def train_tiny(self, seconds: float) -> tuple[Path, Any, float | None]:
        from sadyn.training.presets import get_preset

        run_dir = self.out / "tiny-run"
        config = get_preset(
            "tiny",
            seed=self.args.seed,
            epochs=8,  # 200 steps: about 20 s on one idle core; the time cap stops it sooner
            train_size=500,
            eval_size=100,
            eval_every=0,
            ckpt_every=100,
            log_every=10,
            max_minutes=seconds / 60,
            tensorboard=False,
            threads=self.args.threads,
        )
        return self._train_or_reuse(config, run_dir)

    def _train_or_reuse(self, config: Any, run_dir: Path) -> tuple[Path, Any, float | None]:
        """Train ``config`` into ``run_dir``; a run an earlier demo finished there is reused,
        not trained again (the wall time returned is then None). An unfinished one resumes."""
        from sadyn.training.loop import train

        summary = finished_run(run_dir, config)
        if summary is not None:
            return run_dir, summary, None
        t0 = time.perf_counter()
        summary = train(
            config, run_dir, resume=(run_dir / "config.json").is_file(), progress=not self.quiet
        )
        return run_dir, summary, time.perf_counter() - t0

    def train_small(self) -> tuple[Path, Any, float | None]:
        from sadyn.training.presets import get_preset

        run_dir = self.out / "small-run"
        config = get_preset(
            "small",
            seed=self.args.seed,
            tensorboard=False,
            threads=self.args.threads,
            max_minutes=None,
        )
        return self._train_or_reuse(config, run_dir)

    def probes(self, model: str, n: int) -> None:
        fast = self.args.fast
        argv = [
            "analyze",
            model,
            "--out",
            str(self.out / "analysis"),
            "--n",
            str(n),
            "--seed",
            str(self.args.seed),
            "--eig-samples",
            "1",
            "--eig-k",
            "16" if fast else "24",
            "--k",
            "4" if fast else "8",
            "--qr-steps",
            "32",
            "--transient",
            "8",
            "--ci-samples",
            "0",  # the contribution index (dense eigenproblems, minutes when loaded): analyze
            "--ci-every",
            "16",
            "--sens-n",
            "2",
            "--sens-warmup",
            "32",
            "--sens-steps",
            "300" if fast else "500",
            "--scaling-steps",
            "16,32,64",
        ]
        if self.args.threads:
            argv += ["--threads", str(self.args.threads)]
        if self.quiet:
            argv.append("--quiet")
        self.cli(argv)


def restarts_differ(name: str) -> bool:
    """Whether K restarts of a pretrained model follow different trajectories: its initial
    state draws noise (init other than "cond", or init_noise > 0). Otherwise a vote over them
    equals a single run."""
    from sadyn.pretrained import manifest_path, read_manifest

    config = read_manifest(manifest_path(name))["model_config"]
    return config.get("init", "cond") != "cond" or float(config.get("init_noise") or 0) > 0


def _accuracy_line(record: dict[str, Any]) -> str:
    parts = []
    for name, res in record["data"].items():
        accs = " / ".join(f"{100 * a:.1f}%" for a in res["board_accuracy"])
        ts = "/".join(str(t) for t in res["steps"])
        pool = f"; pool: {res['pool']}" if res.get("pool") else ""
        parts.append(f"{name} {accs} (T={ts}, {res['n']} boards{pool})")
    return "; ".join(parts)


def finished_run(run_dir: Path, config: Any) -> Any:
    """The summary of a run of ``config`` an earlier demo finished in ``run_dir`` (completed or
    stopped by its time budget), or None (no run, another config, or unfinished)."""
    import json

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


def run(args: argparse.Namespace) -> int:
    import torch

    from sadyn.pretrained import available, load_pretrained
    from sadyn.probes.accuracy import DEFAULT_RESTART_NOISE
    from sadyn.report import build_report
    from sadyn.results import write_results

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.n is not None and args.n < 1:
        raise SadynError(f"--n must be >= 1, got {args.n}")
    if args.votes < 1 or args.probe_n < 1 or args.train_seconds <= 0:
        raise SadynError("--votes and --probe-n must be >= 1 and --train-seconds > 0")
    os.environ.setdefault("SADYN_PROGRESS_SECONDS", "10")  # progress lines every 10 s here
    demo = Demo(args)
    out = demo.out
    out.mkdir(parents=True, exist_ok=True)
    n = args.n or (100 if args.fast else 300)
    have = set(available())
    itrsa = "small-itrsa" if "small-itrsa" in have else None

    if args.full_training:
        demo.say(
            f"--full-training: training the small preset (30 epochs, 2,700 steps) here first; "
            f"expect about {FULL_TRAINING_MINUTES} minutes on one CPU core (progress below)"
        )
    else:
        demo.say(
            f"about 6 minutes on a loaded 2-core machine; writing to {out}/. "
            "Steps: pretrained ItrSA at several T, voting (where a pretrained model's restarts "
            "differ), dynamics probes, a short training run, the report"
        )
    if itrsa is None and not args.full_training:
        demo.say(
            "NOTE: the pretrained weights (sadyn/pretrained/small-itrsa.*) are missing from "
            "this installation; falling back to the tiny model trained below, whose accuracy "
            "is about 0: the numbers show the machinery, not a trained model"
        )

    training_text = ""
    main_model: str | None = itrsa
    main_label = "small-itrsa (pretrained)"
    if args.full_training:
        run_dir, summary, wall = demo.train_small()
        write_results(
            out / "training" / "results.json",
            training_record(run_dir, summary, wall, "the small preset"),
        )
        training_text = trained_line("the small preset", run_dir, summary, wall, "")
        main_model, main_label = str(run_dir), "small (trained now)"

    # small-vote with test-time restarts and the verifier, else any shipped model whose starts
    # draw noise (confidence vote)
    voter = None
    if not args.full_training:
        voter = "small-vote" if "small-vote" in have else None
        voter = voter or next((name for name in sorted(have) if restarts_differ(name)), None)
    stage = 0
    total = 3 + (voter is not None) + (not args.full_training)

    def header(text: str) -> float:
        nonlocal stage
        stage += 1
        demo.say(f"[{stage}/{total}] {text}")
        return time.perf_counter()

    def done(t0: float) -> None:
        demo.say(f"    took {format_seconds(time.perf_counter() - t0)}")

    if main_model is None:  # no pretrained model: train first, use that
        t0 = header("training the tiny preset (fallback model)")
        run_dir, summary, wall = demo.train_tiny(args.train_seconds)
        write_results(
            out / "training" / "results.json",
            training_record(run_dir, summary, wall, "the tiny preset"),
        )
        training_text = trained_line(
            "the tiny preset", run_dir, summary, wall, " (a demonstration, accuracy about 0)"
        )
        main_model, main_label = str(run_dir), "tiny (trained now, fallback)"
        done(t0)

    t0 = header(f"test-time scaling: {main_label}, {n} ID + {n} OOD boards, T=16,32,64,128")
    rec = demo.evaluate(
        main_model, "itrsa", data="id,ood", n=n, steps="16,32,64,128", title=main_label
    )
    scaling_line = f"{main_label}: board accuracy {_accuracy_line(rec)}"
    done(t0)

    vote_line = ""
    if voter is not None:
        noisy = restarts_differ(voter)
        nv = max(n // 3 if noisy else n // 5, 20)
        rule = "confidence" if noisy else "verifier"
        # a deterministic start gets test-time restarts; any-valid halting decides the verifier
        # vote exactly and stops a solved board's restarts (BENCHMARKS.md, "Voting")
        extra = (
            ()
            if noisy
            else ("--restart-noise", str(DEFAULT_RESTART_NOISE), "--anchor", "--halt", "any-valid")
        )
        steps = "16,64" if noisy else "16,64,128"
        t0 = header(
            f"voting: {voter} (pretrained), K={args.votes} restarts"
            + ("" if noisy else " drawn at test time")
            + f", {rule} vote, {nv} OOD boards, T={steps}"
        )
        rec = demo.evaluate(
            voter,
            "voting",
            data="ood",
            n=nv,
            steps=steps,
            votes=args.votes,
            vote=rule,
            title=f"{voter} (pretrained), {rule} vote over K={args.votes} restarts",
            extra=extra,
        )
        res = rec["data"]["ood"]

        def pct(values: list[float]) -> str:
            return " / ".join(f"{100 * a:.1f}%" for a in values)

        vote_line = f"{voter} OOD, K={args.votes} {rule} vote: {pct(res['board_accuracy'])}"
        if res.get("mean_board_accuracy") and noisy:  # (any-valid cuts the other restarts)
            vote_line += f" (one restart: {pct(res['mean_board_accuracy'])}"
            if res.get("oracle_board_accuracy"):
                vote_line += f"; any restart right: {pct(res['oracle_board_accuracy'])}"
            vote_line += ")"
        if not noisy:
            vote_line += " (= any restart right: a board a restart solves is the verifier's pick)"
        vote_line += f" at T={'/'.join(str(t) for t in res['steps'])}"
        if res.get("pool"):
            vote_line += f" ({res['n']} boards; pool: {res['pool']})"
        done(t0)
    elif not args.full_training:
        shipped = sorted(have)
        vote_line = (
            f"voting: not run. {' and '.join(shipped) or 'No pretrained model'} "
            f"{'start' if len(shipped) > 1 else 'starts'} every restart from Norm(C) (init "
            "'cond', no noise), so K restarts follow one trajectory and a vote equals a single "
            "run. Voting needs noisy starts (--model.init akorn or --model.init-noise S)."
        )
        demo.say(vote_line)

    t0 = header(
        f"dynamics probes of {main_label} on {args.probe_n} puzzles (cheap settings; "
        "`sadyn analyze --full` for the documented ones)"
    )
    demo.probes(main_model, args.probe_n)
    demo._retitle(
        out / "analysis" / "results.json",
        "demo-probes",
        f"Demo: dynamics probes of {main_label} on {args.probe_n} puzzles (cheap settings)",
    )
    done(t0)

    if not args.full_training and itrsa is not None:
        t0 = header(
            f"training the tiny preset now: 200 steps, at most {args.train_seconds:g} s "
            "(shows training and its progress; not an accurate model)"
        )
        run_dir, summary, wall = demo.train_tiny(args.train_seconds)
        write_results(
            out / "training" / "results.json",
            training_record(run_dir, summary, wall, "the tiny preset"),
        )
        training_text = trained_line(
            "the tiny preset (D=32)", run_dir, summary, wall, " (a demonstration, accuracy about 0)"
        )
        done(t0)

    report = build_report(out, out / "report.html", title="sadyn demo")
    for err in report.figure_errors:
        demo.say(f"warning: {err}")

    pretrained_lines = []
    for name in dict.fromkeys((itrsa, voter)):  # the pretrained models used, once each
        if name is None:
            continue
        _, _, meta = load_pretrained(name)
        pretrained_lines.append(
            f"pretrained: {name} ({meta.get('preset')} preset, seed {meta.get('seed')}, "
            f"{meta.get('steps')} steps, trained on {meta.get('trained_on')}; "
            f"sha256 {str(meta.get('sha256'))[:12]}...)"
        )
    print()
    print("sadyn demo: what it did")
    for line in [*pretrained_lines, training_text, scaling_line, vote_line]:
        if line:
            print(f"  {line}")
    print(f"  probes: {out / 'analysis' / 'results.json'}")
    print(f"report: {report.path.resolve()}")
    print(f"total time: {format_seconds(time.perf_counter() - demo.started)}")
    return 0
