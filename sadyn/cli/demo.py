"""``sadyn demo --out DIR``: the whole pipeline on the built-in defaults, end to end.

1. make a small SATNet-style data set (generated, cached);
2. train a small ItrSA for a few minutes (the ``small`` training preset at D=64, time-capped);
3. analyze it: Jacobian eigenvalues and the Prop 5.1 bound, finite-time and QR Lyapunov
   exponents, pseudo-energy and contribution index, sensitivity, test-time scaling
   (``sadyn analyze``);
4. write the report (``DIR/report.html``) and print where it is.

``--fast`` shrinks everything (a D=32 model, a minute of training, few puzzles) to see the
pipeline work in a couple of minutes; the numbers then mean little.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sadyn.errors import SadynError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train a small ItrSA, analyze its dynamics and write the report",
        description="Make a small data set, train a small ItrSA for a few minutes, analyze "
        "it (eigenvalues, Lyapunov exponents, pseudo-energy, test-time scaling), write "
        "DIR/report.html and print where it is.",
    )
    p.add_argument("--out", metavar="DIR", default="out/demo", help="output folder")
    p.add_argument(
        "--minutes", type=float, default=None, help="training time cap (default 5; 1 with --fast)"
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="tiny model, few puzzles: the pipeline in a couple of minutes",
    )
    p.add_argument("--train-size", type=int, default=None, help="training puzzles")
    p.add_argument("--dim", type=int, default=None, help="model width D (default 64; 32 --fast)")
    p.add_argument("--n", type=int, default=None, help="puzzles to analyze")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def train_config(args: argparse.Namespace) -> Any:
    """The demo's TrainConfig: the ``small`` preset at D=64, time-capped (``tiny`` at D=32
    with ``--fast``)."""
    from sadyn.training.presets import get_preset

    if args.fast:
        over: dict[str, Any] = {
            "model": {"dim": args.dim or 32, "heads": 2},
            "train_size": args.train_size or 500,
            "eval_size": 100,
            "eval_every": 0,
            "epochs": 3,
            "train_steps": 16,
            "eval_steps": (16, 32),
        }
        minutes = 1.0 if args.minutes is None else args.minutes
        base = "tiny"
    else:
        # D=64 (the preset's width; --dim to change it): the analysis (top-2% eigenspaces
        # of an S*D matrix) stays cheap
        over = {"eval_every": 0, "model": {"dim": args.dim or 64}}
        if args.train_size:
            over["train_size"] = args.train_size
        minutes = 5.0 if args.minutes is None else args.minutes
        base = "small"
    if minutes <= 0:
        raise SadynError("--minutes must be positive")
    return get_preset(
        base, seed=args.seed, max_minutes=minutes, tensorboard=False, threads=args.threads, **over
    )


def analyze_args(run_dir: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """Command line of ``sadyn analyze`` for the demo (smaller than its defaults)."""
    n = args.n or (8 if args.fast else 16)
    argv = [
        "analyze",
        str(run_dir),
        "--out",
        str(out),
        "--n",
        str(n),
        "--seed",
        str(args.seed),
        "--eig-samples",
        "2",
        "--eig-k",
        "16" if args.fast else "48",
        "--k",
        "4" if args.fast else "8",
        "--qr-steps",
        "32" if args.fast else "128",
        "--transient",
        "8" if args.fast else "32",
        "--sens-n",
        "2" if args.fast else "4",
        "--sens-warmup",
        "16" if args.fast else "64",
        "--sens-steps",
        "100" if args.fast else "1000",
        "--ci-samples",
        "1",
        "--ci-every",
        "8" if args.fast else "16",
        "--scaling-steps",
        *(["8", "16", "32"] if args.fast else ["16", "32", "64", "128"]),
    ]
    if args.quiet:
        argv.append("--quiet")
    return argv


def training_record(run_dir: Path, summary: Any, config: Any, wall: float) -> dict[str, Any]:
    """A results record for the training run (curves as a referenced PNG, final metrics)."""
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
            "path": f"../run/{CURVE_NAME}",
            "caption": "Training curves.",
        }
    return {
        "name": "demo-training",
        "title": "Demo: training a small ItrSA",
        "order": -1,
        "claim": None,
        "preset": "demo",
        "config": config.to_dict(),
        "seed": config.seed,
        "wall_time_s": wall,
        "data": {
            "status": summary.status,
            "step": summary.step,
            "final_loss": summary.final_loss,
            "metrics": metrics,
        },
        "figures": figures,
        "tables": {
            "accuracy": {"columns": ["test set", "loops T", "board acc", "cell acc"], "rows": rows}
        },
        "notes": [
            f"Training stopped with status {summary.status!r} after {summary.step} steps "
            f"(time cap {config.max_minutes} min): a demonstration, not a result."
        ],
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from sadyn.cli import build_parser
    from sadyn.report import build_report
    from sadyn.results import write_results
    from sadyn.training.loop import train

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    run_dir = out / "run"
    config = train_config(args)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"demo: {msg}", flush=True))
    say(f"training {config.model} for at most {config.max_minutes:g} min -> {run_dir}")
    t0 = time.perf_counter()
    summary = train(config, run_dir, resume=run_dir.exists(), progress=not args.quiet)
    write_results(
        out / "training" / "results.json",
        training_record(run_dir, summary, config, time.perf_counter() - t0),
    )
    say("analyzing the trained model")
    analyze = build_parser().parse_args(analyze_args(run_dir, out / "analysis", args))
    analyze.func(analyze)
    report = build_report(out, out / "report.html", title="sadyn demo: a small ItrSA")
    for err in report.figure_errors:
        say(f"warning: {err}")
    print(f"report: {report.path.resolve()}")
    return 0
