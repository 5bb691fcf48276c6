"""``sadyn eval``: accuracy of a trained checkpoint against the loop count, with voting.

    sadyn eval RUN_DIR|CHECKPOINT_DIR|NAME [--data id,ood|FILE] [--steps 16,32,64,128,256]
               [--votes K --vote energy|energy-last|energy-sum|energy-final|confidence|
                                 verifier|stability|all (or a comma list)]
               [--halt stable:M,valid,residual:TOL,any-valid,confident:P,any-confident:P]
               [--selector NAME] [--anchor] [--restart-noise SIGMA]
               [--attention auto|fused|explicit] [--n N] [--seed S]

Writes a results JSON (``sadyn.results`` schema) and a PNG of board accuracy against the loop
count, and prints a table and the pool of each RRN-style set. The default output file is named
by everything that changes the numbers: the sets (an RRN-style one tagged with its pool), n, K,
the vote and halting rules, the T grid, and seeds, weights or starts other than the defaults
(``RUN/eval/eval_id+ood-royle_n1000_K1_T16-32-64-128-256.json``); a file holding an evaluation
with other settings is not overwritten without ``--force``. The results record the data seed
and, for RRN-style sets, the 17-clue pool (``pool_sha256``: its SHA-256 or "fallback"; ``pool``:
its name). A run folder interrupted during training is evaluated at its last checkpoint, and
the command says so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sadyn.cli._args import add_quiet, add_threads, int_list
from sadyn.errors import SadynError
from sadyn.paths import portable_path
from sadyn.pretrained import is_pretrained_spec, resolve_model
from sadyn.probes.accuracy import (
    DEFAULT_STEPS,
    accuracy_figure,
    evaluate,
    format_table,
    plot_accuracy,
)
from sadyn.probes.halting import HaltRule
from sadyn.probes.voting import VOTE_RULES, parse_rules
from sadyn.results import read_results, write_results
from sadyn.sudoku import resolve_dataset
from sadyn.sudoku.datasets import pool_fields, pool_label, pool_record, with_pool_tag
from sadyn.sudoku.rrn import ROYLE_SHA256
from sadyn.training.checkpoint import POINTERS
from sadyn.training.distributed import resolve_device
from sadyn.training.loop import CONFIG_NAME, SUMMARY_NAME

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
        "one is a valid solution: the verifier vote and the oracle unchanged, fewer loops), "
        "confident:P / any-confident:P (a selector head, --selector, puts a restart's board at "
        "P(right) >= P: that restart / all K stop; verifier-free); each --steps value is then "
        "a budget (default: none)",
    )
    p.add_argument(
        "--selector",
        default=None,
        help="selector head for the learned vote and confident:P / any-confident:P halting: a "
        "pretrained model name (its NAME.selector.json) or a manifest path (default: the "
        "pretrained MODEL's own head, when the vote or the halting needs one)",
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
        help="results JSON path (default: <run>/eval/eval_<sets>_n<N>_K<votes>[_<rule>]"
        "_T<grid>[_<settings>].json, for a pretrained name out/<name>/eval/...; an RRN-style "
        "set is tagged with its pool, e.g. eval_id+ood-royle_n1000_K1_T16-32-64-128-256.json; "
        "the PNG goes beside it)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing results file that holds an evaluation with other settings",
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


#: config fields that change the numbers of an evaluation: an existing results file with other
#: values for any of them is not overwritten without --force
NUMBER_FIELDS = (
    "checkpoint", "step", "weights", "data", "pools", "steps", "votes", "vote", "n",
    "data_seed", "seed", "deterministic", "halt", "anchor", "restart_noise",
)  # fmt: skip


def output_name(
    names: list[str],
    votes: int,
    suffix: str,
    steps: list[int],
    *,
    n: int | None = None,
    pools: dict[str, str | None] | None = None,
    extras: list[str] = (),  # type: ignore[assignment]
) -> str:
    """``eval_<sets>_n<N>_K<votes><suffix>_T<grid>[_<extras>].json`` (suffix: ``_<rule>`` and a
    halt rule; an RRN-style set tagged with its pool: ``ood-royle``, ``ood-fallback``,
    ``ood-custom<sha>``; extras: seeds, weights, starts that differ from the defaults), e.g.
    ``eval_id+ood-royle_n1000_K1_T16-32-64.json``: everything that changes the numbers is in
    the name, so two evaluations that differ never share a file."""
    grid = sorted(set(steps))
    ts = "-".join(map(str, grid)) if len(grid) <= 6 else f"{grid[0]}-{grid[-1]}x{len(grid)}"
    pools = pools or {}
    sets = "+".join(f"{name}{_pool_slug(pools.get(name))}" for name in names) or "none"
    size = f"_n{n}" if n is not None else "_nall"
    tail = "".join(f"_{e}" for e in extras)
    return f"eval_{sets}{size}_K{votes}{suffix}_T{ts}{tail}.json"


def _pool_slug(record: str | None) -> str:
    if record is None:
        return ""
    if record == "fallback":
        return "-fallback"
    return "-royle" if record == ROYLE_SHA256 else f"-custom{record[:8]}"


def _extras(args: argparse.Namespace) -> list[str]:
    """Name parts for the settings that change the numbers, where they differ from defaults."""
    parts = []
    if args.seed != 0:
        parts.append(f"seed{args.seed}")
    if args.data_seed != 0:
        parts.append(f"dataseed{args.data_seed}")
    if args.weights != "ema":
        parts.append(args.weights)
    if args.which != "latest":
        parts.append(args.which)
    if args.deterministic:
        parts.append("det")
    if args.anchor:
        parts.append("anchor")
    if args.restart_noise is not None:
        parts.append(f"noise{args.restart_noise:g}")
    return parts


def check_overwrite(out: Path, config: dict, force: bool) -> None:
    """Refuse to replace ``out`` when it holds an evaluation whose numbers-changing settings
    (:data:`NUMBER_FIELDS`) differ from ``config``, unless ``force``."""
    if force or not out.is_file():
        return
    try:
        old = read_results(out).get("config") or {}
    except SadynError:
        old = {}
    diff = [k for k in NUMBER_FIELDS if k in config and old.get(k) != config[k]]
    if diff:
        raise SadynError(
            f"{out} holds an evaluation with other settings ({', '.join(diff)} differ); "
            "pass --force to overwrite it, or choose another --out"
        )


def run_status(spec: str) -> str | None:
    """For a training run folder: None when it finished, else a sentence saying what it is (an
    interrupted or unfinished run, evaluated at its latest checkpoint). A run folder without any
    checkpoint is an error naming the resume command."""
    path = Path(spec)
    if not (path / CONFIG_NAME).is_file() or is_pretrained_spec(spec):
        return None
    summary = {}
    if (path / SUMMARY_NAME).is_file():
        try:
            summary = json.loads((path / SUMMARY_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
    if not (path / POINTERS["latest"]).is_file():
        raise SadynError(
            f"{path} is a training run with no checkpoint yet (stopped before its first one); "
            f"nothing to evaluate. Resume it: sadyn train --out {path} --resume"
        )
    status = summary.get("status")
    if status in ("completed", "time_budget"):
        return None
    if status == "interrupted":
        return (
            f"{path} is an interrupted training run (stopped at step {summary.get('step')} of "
            f"{summary.get('total_steps')}); evaluating its checkpoint at that step. Resume: "
            f"sadyn train --out {path} --resume"
        )
    return (
        f"{path} is an unfinished training run (no final summary: still running, or killed); "
        "evaluating its latest checkpoint"
    )


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
    note = run_status(args.checkpoint)
    if note:
        print(f"eval: note: {note}", flush=True)
    device = resolve_device(args.device)
    model, model_config, meta = resolve_model(
        args.checkpoint, which=args.which, weights=args.weights, device=device
    )
    vote = args.vote if args.votes > 1 else "none"
    halt = HaltRule.parse(args.halt)
    selector = None
    if "learned" in vote.split(",") or halt.needs_selector:
        from sadyn.pretrained.selector import load_selector

        selector, _ = load_selector(args.selector or args.checkpoint)
    specs = [s for s in args.data.split(",") if s]
    sets = {}
    for spec in specs:
        name = spec if spec in ("id", "ood") else Path(spec).stem
        sets[name] = _subset(
            resolve_dataset(spec, n=args.n, seed=args.data_seed), args.n, args.data_seed
        )
    pools = {name: pool_record(puzzles) for name, puzzles in sets.items()}
    ckpt_dir = Path(meta["path"])
    config = {
        "checkpoint": checkpoint_label(ckpt_dir, meta),
        "step": meta["step"],
        "weights": args.weights,
        "model_config": model_config,
        "data": specs,
        "pools": {k: pool_label(v) for k, v in pools.items() if v is not None},
        "steps": args.steps,
        "votes": args.votes,
        "vote": vote,
        "n": args.n,
        "data_seed": args.data_seed,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "deterministic": args.deterministic,
        "halt": str(halt),
        "anchor": args.anchor,
        "restart_noise": args.restart_noise,
        "attention": args.attention,
        "selector": args.selector,
    }
    if note:
        config["run_status"] = note
    out = _output_path(args, meta, ckpt_dir, list(sets), vote, halt, pools)
    check_overwrite(out, config, args.force)
    start = time.perf_counter()
    results = _evaluate_sets(model, sets, args, vote, halt, device, selector)
    wall = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    tagged = {with_pool_tag(k, pools[k]): v for k, v in results.items()}
    png = plot_accuracy(
        tagged,
        out.with_suffix(".png"),
        title=f"{model_config.get('model', '')} step {meta['step']}",
    )
    write_results(
        out,
        {
            "name": "eval",
            "claim": "accuracy against the loop count (test-time scaling), with voting",
            "config": config,
            "seed": args.seed,
            "wall_time_s": wall,
            "data": results,
            "figures": {"accuracy_vs_loops": accuracy_figure(tagged)},
        },
    )
    print(format_table(results))
    for name, record in pools.items():
        if record is not None:
            print(f"{name}: puzzles from the {pool_label(record)}")
    print(f"results: {out}\nplot: {png}")
    return 0


def checkpoint_label(ckpt_dir: Path, meta: dict) -> str:
    """How a results file names the evaluated weights: a pretrained model by name, a checkpoint
    by its path relative to the working folder (never a machine's absolute path)."""
    if meta.get("pretrained"):
        return f"pretrained:{meta['pretrained']}"
    return portable_path(ckpt_dir)


def _output_path(args, meta, ckpt_dir, names, vote, halt, pools) -> Path:
    if args.out:
        return Path(args.out)
    run_dir = ckpt_dir.parent.parent if ckpt_dir.parent.name == "checkpoints" else ckpt_dir
    if meta.get("pretrained"):  # the package folder may be read-only
        run_dir = Path("out") / str(meta["pretrained"])
    suffix = "" if args.votes == 1 else f"_{vote.replace(',', '+')}"
    if halt.active:
        suffix += "_halt-" + str(halt).replace(":", "").replace(",", "+")
    name = output_name(
        names, args.votes, suffix, args.steps, n=args.n, pools=pools, extras=_extras(args)
    )
    return run_dir / "eval" / name


def _evaluate_sets(model, sets, args, vote, halt, device, selector) -> dict:
    fused = None if args.attention == "auto" else args.attention == "fused"
    results = {}
    for name, puzzles in sets.items():
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
            selector=selector,
        )
        results[name]["source"] = puzzles.source
        results[name].update(pool_fields(puzzles))  # None unless RRN-style
        results[name]["data_seed"] = args.data_seed
    return results
