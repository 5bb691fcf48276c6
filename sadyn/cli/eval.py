"""``sadyn eval``: accuracy of a trained checkpoint against the loop count, with voting.

    sadyn eval RUN_OR_CHECKPOINT_DIR [--data id,ood|FILE] [--steps 16,32,64,128,256]
               [--votes K --vote energy-sum|energy-last|confidence] [--n N] [--seed S]

Writes a results JSON (``sadyn.results`` schema) and a PNG of board accuracy against the loop
count, and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from sadyn.errors import SadynError
from sadyn.probes.accuracy import (
    DEFAULT_STEPS,
    accuracy_figure,
    evaluate,
    format_table,
    plot_accuracy,
)
from sadyn.probes.voting import VOTE_RULES
from sadyn.results import write_results
from sadyn.sudoku import resolve_dataset
from sadyn.training.checkpoint import load_checkpoint
from sadyn.training.distributed import resolve_device


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint: accuracy vs loop count, voting",
        description="Board and cell accuracy of a trained model (EMA weights by default) in and "
        "out of distribution, over a grid of loop counts from one run per batch; optional voting "
        "over K random initial states.",
    )
    p.add_argument(
        "checkpoint",
        help="a run directory (its latest checkpoint) or a checkpoint "
        "directory (checkpoints/step-NNNNNNN)",
    )
    p.add_argument(
        "--data",
        default="id,ood",
        help="comma-separated datasets: id (SATNet-style test), ood (RRN-style test) "
        "or puzzle files (default: id,ood)",
    )
    p.add_argument(
        "--steps",
        type=_int_list,
        default=list(DEFAULT_STEPS),
        help="loop counts, comma-separated (default: 16,32,64,128,256)",
    )
    p.add_argument("--votes", type=int, default=1, help="K random restarts per board")
    p.add_argument(
        "--vote",
        choices=VOTE_RULES[1:],
        default="energy-sum",
        help="vote rule when K > 1 (default: energy-sum, AKOrN's E-vote)",
    )
    p.add_argument("--n", type=int, default=None, help="evaluate on N puzzles of each set")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial-state noise")
    p.add_argument("--data-seed", type=int, default=0, help="seed of generated sets / subsets")
    p.add_argument(
        "--batch-size", type=int, default=1000, help="model rows (boards x votes) per forward"
    )
    p.add_argument(
        "--which",
        choices=("latest", "best"),
        default="latest",
        help="checkpoint of a run directory to load",
    )
    p.add_argument(
        "--weights",
        choices=("ema", "raw"),
        default="ema",
        help="EMA (default, as the reference) or online weights",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic initial state instead of random noise",
    )
    p.add_argument(
        "--out",
        default=None,
        help="results JSON path (default: "
        "<checkpoint>/eval/eval[_K<votes>_<vote>].json; the PNG goes beside it)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _subset(puzzles, n: int | None, seed: int):
    if n is None or len(puzzles) <= n:
        return puzzles
    rng = np.random.default_rng(seed)
    return puzzles.subset(np.sort(rng.permutation(len(puzzles))[:n]))


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.votes < 1:
        raise SadynError(f"--votes must be >= 1, got {args.votes}")
    if args.n is not None and args.n < 1:
        raise SadynError(f"--n must be >= 1, got {args.n}")
    device = resolve_device(args.device)
    model, model_config, meta = load_checkpoint(
        args.checkpoint, which=args.which, weights=args.weights, device=device
    )
    vote = args.vote if args.votes > 1 else "none"
    specs = [s for s in args.data.split(",") if s]
    start = time.perf_counter()
    results = {}
    for spec in specs:
        puzzles = _subset(
            resolve_dataset(spec, n=args.n, seed=args.data_seed), args.n, args.data_seed
        )
        name = spec if spec in ("id", "ood") else Path(spec).stem
        results[name] = evaluate(
            model,
            puzzles,
            args.steps,
            votes=args.votes,
            vote=vote,
            batch_size=args.batch_size,
            seed=args.seed,
            deterministic=args.deterministic,
            device=device,
            progress=not args.no_progress,
        )
        results[name]["source"] = puzzles.source
    wall = time.perf_counter() - start

    ckpt_dir = Path(meta["path"])
    if args.out:
        out = Path(args.out)
    else:
        run_dir = ckpt_dir.parent.parent if ckpt_dir.parent.name == "checkpoints" else ckpt_dir
        suffix = "" if args.votes == 1 else f"_K{args.votes}_{vote}"
        out = run_dir / "eval" / f"eval{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    png = plot_accuracy(
        results,
        out.with_suffix(".png"),
        title=f"{model_config.get('model', '')} step {meta['step']}",
    )
    write_results(
        out,
        {
            "name": "eval",
            "claim": "accuracy against the loop count (test-time scaling), with voting",
            "config": {
                "checkpoint": str(ckpt_dir),
                "step": meta["step"],
                "weights": args.weights,
                "model_config": model_config,
                "data": specs,
                "steps": args.steps,
                "votes": args.votes,
                "vote": vote,
                "n": args.n,
                "batch_size": args.batch_size,
                "deterministic": args.deterministic,
            },
            "seed": args.seed,
            "wall_time_s": wall,
            "data": results,
            "figures": {"accuracy_vs_loops": accuracy_figure(results)},
        },
    )
    print(format_table(results))
    print(f"results: {out}\nplot: {png}")
    return 0
