"""``sadyn eval``: accuracy of a trained checkpoint against the loop count, with voting.

    sadyn eval RUN_DIR|CHECKPOINT_DIR|NAME [--data id,ood|FILE] [--steps 16,32,64,128,256]
               [--votes K --vote energy|energy-last|energy-sum|energy-final|confidence|
                                 verifier|stability|all (or a comma list)]
               [--halt stable:M,valid,residual:TOL,any-valid] [--anchor] [--restart-noise SIGMA]
               [--attention auto|fused|explicit] [--n N] [--seed S]

Writes a results JSON (``sadyn.results`` schema) and a PNG of board accuracy against the loop
count, and prints a table. The default output file is named by data set, K, vote rule and T
grid (``RUN/eval/eval_id+ood_K1_T16-32-64-128-256.json``), so evaluations do not overwrite
each other; the results record the data seed and, for RRN-style sets, the 17-clue pool's
SHA-256 (or "fallback").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from sadyn.cli._args import add_quiet, add_threads, int_list
from sadyn.errors import SadynError
from sadyn.pretrained import resolve_model
from sadyn.probes.accuracy import (
    DEFAULT_STEPS,
    accuracy_figure,
    evaluate,
    format_table,
    plot_accuracy,
)
from sadyn.probes.halting import HaltRule
from sadyn.probes.voting import VOTE_RULES, parse_rules
from sadyn.results import write_results
from sadyn.sudoku import resolve_dataset
from sadyn.sudoku.datasets import pool_record
from sadyn.training.distributed import resolve_device

_int_list = int_list  # the one list syntax of every command (sadyn.cli._args)


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
        metavar="MODEL",
        help="a run directory (its latest checkpoint), a checkpoint directory "
        "(checkpoints/step-NNNNNNN), or a pretrained name such as small-itrsa",
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
        type=_vote_rules,
        default="energy",
        help="vote rule when K > 1: "
        + ", ".join(VOTE_RULES[1:])
        + ", a comma list of them (all scored on the same restarts; the first is the "
        "headline) or all (default: energy, AKOrN's E-vote: sum of E(X_0..X_{T-1}))",
    )
    p.add_argument(
        "--halt",
        default="none",
        help="adaptive halting per board: comma list of stable:M (decoded board unchanged for "
        "M steps), valid (a valid solution keeping the givens), residual:TOL "
        "(||X_t - X_{t-1}|| / ||X_t|| <= TOL), any-valid (all K restarts of a board stop once "
        "one is a valid solution: the verifier vote and the oracle unchanged, fewer loops); "
        "each --steps value is then a budget (default: none)",
    )
    p.add_argument(
        "--anchor",
        action="store_true",
        help="restart 0 of every board starts from the deterministic initial state",
    )
    p.add_argument(
        "--restart-noise",
        type=float,
        default=None,
        help="test-time restart noise: the ItrSA init_noise sigma for this evaluation in place "
        "of the model's own (init='cond' models; default: the model's)",
    )
    p.add_argument(
        "--attention",
        choices=("auto", "fused", "explicit"),
        default="auto",
        help="attention kernel: fused (scaled_dot_product_attention), explicit softmax, or auto "
        "(default: fused on CUDA, explicit on CPU, where it measured faster; same math)",
    )
    p.add_argument("--n", type=int, default=None, help="evaluate on N puzzles of each set")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial-state noise")
    p.add_argument("--data-seed", type=int, default=0, help="seed of generated sets / subsets")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="model rows (boards x votes) per forward (default: the measured size for the "
        "device, sadyn.probes.accuracy.default_rows)",
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
    add_threads(p)
    add_quiet(p)
    p.set_defaults(func=run)


def _vote_rules(text: str) -> str:
    try:
        return ",".join(parse_rules(text))
    except SadynError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def output_name(names: list[str], votes: int, suffix: str, steps: list[int]) -> str:
    """``eval_<sets>_K<votes><suffix>_T<grid>.json`` (suffix: ``_<rule>`` and a halt rule),
    e.g. ``eval_id+ood_K1_T16-32-64.json``: one file per data set, K, rule and T grid."""
    grid = sorted(set(steps))
    ts = "-".join(map(str, grid)) if len(grid) <= 6 else f"{grid[0]}-{grid[-1]}x{len(grid)}"
    return f"eval_{'+'.join(names) or 'none'}_K{votes}{suffix}_T{ts}.json"


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
    model, model_config, meta = resolve_model(
        args.checkpoint, which=args.which, weights=args.weights, device=device
    )
    vote = args.vote if args.votes > 1 else "none"
    halt = HaltRule.parse(args.halt)
    fused = None if args.attention == "auto" else args.attention == "fused"
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
            progress=not args.quiet,
            halt=halt,
            fused=fused,
            anchor=args.anchor,
            restart_noise=args.restart_noise,
        )
        results[name]["source"] = puzzles.source
        results[name]["pool_sha256"] = pool_record(puzzles)  # None unless RRN-style
        results[name]["data_seed"] = args.data_seed
    wall = time.perf_counter() - start

    ckpt_dir = Path(meta["path"])
    if args.out:
        out = Path(args.out)
    else:
        run_dir = ckpt_dir.parent.parent if ckpt_dir.parent.name == "checkpoints" else ckpt_dir
        if meta.get("pretrained"):  # the package folder may be read-only
            run_dir = Path("out") / str(meta["pretrained"])
        suffix = "" if args.votes == 1 else f"_{vote.replace(',', '+')}"
        if halt.active:
            suffix += "_halt-" + str(halt).replace(":", "").replace(",", "+")
        out = run_dir / "eval" / output_name(list(results), args.votes, suffix, args.steps)
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
                "data_seed": args.data_seed,
                "batch_size": args.batch_size,
                "deterministic": args.deterministic,
                "halt": str(halt),
                "anchor": args.anchor,
                "restart_noise": args.restart_noise,
                "attention": args.attention,
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
