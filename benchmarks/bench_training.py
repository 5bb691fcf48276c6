"""Training and evaluation throughput at the ``small`` preset sizes, and K-vote throughput.

    .venv/bin/python benchmarks/bench_training.py [--threads 2] [--repeats 3] [--quick]
                                                  [--compile]

Per model at the ``small`` preset (ItrSA and AKOrN with the preset's whole model config; the
other kinds at its width and heads; batch 100, T=16, the preset's loss): training boards/s (one
full update: unroll, CE, backward, clip, Adam, EMA, exactly the training loop's objective),
and evaluation boards/s (no grad, T=16). Then voting throughput of ItrSA,
boards x votes per second at K = 1, 8, 32 (T=16, confidence vote). With ``--compile``, also
the training update with the loop step under ``torch.compile`` (``compile=True``) against
eager, for ItrSA and AKOrN: compile time, time per update, break-even and the largest gradient
difference. Writes ``benchmarks/results/training.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from sadyn.models import build_model, model_names
from sadyn.probes.accuracy import evaluate
from sadyn.sudoku import get_dataset
from sadyn.training.config import TrainConfig
from sadyn.training.ema import EMA
from sadyn.training.objective import Objective
from sadyn.training.presets import PRESETS

OUT = Path(__file__).parent / "results" / "training.md"
SMALL = PRESETS["small"]
DIM, HEADS = SMALL["model"]["dim"], SMALL["model"]["heads"]
BATCH, T = SMALL["batch_size"], SMALL["train_steps"]
SINGLE_HEAD = ("symsa", "gensym-single")  # these models are single-head by definition
FULL_PRESET = ("itrsa", "akorn")  # the models whose options are the small preset's


def model_config(name: str) -> dict:
    if name in FULL_PRESET:
        return {**SMALL["model"], "model": name}
    return {"model": name, "dim": DIM, "heads": 1 if name in SINGLE_HEAD else HEADS}


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, lazy imports)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def small_objective(name: str, *, compile: bool = False) -> tuple[torch.nn.Module, Objective]:
    """A fresh model (seed 0) and its training objective at the small preset's sizes."""
    torch.manual_seed(0)
    spec = model_config(name)
    model = build_model(spec)
    config = TrainConfig(
        model=spec,
        batch_size=BATCH,
        train_steps=T,
        loss_steps=SMALL["loss_steps"],
        compile=compile,
    )
    return model, Objective(model, config)


def bench_model(name: str, quizzes, solutions, repeats: int) -> dict[str, float]:
    model, objective = small_objective(name)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    ema = EMA(model, every=1, start=0)
    gen = torch.Generator().manual_seed(0)
    q, s = quizzes[:BATCH], solutions[:BATCH]

    def update() -> None:
        loss, _ = objective(q, s, slice(0, BATCH), T, gen)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        ema.update(model)

    def infer() -> None:
        with torch.no_grad():
            model(q, T, generator=gen)

    t_train = _median_time(update, repeats)
    t_eval = _median_time(infer, repeats)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "train_s_per_step": t_train,
        "train_boards_per_s": BATCH / t_train,
        "eval_boards_per_s": BATCH / t_eval,
    }


def bench_compile(name: str, quizzes, solutions, repeats: int) -> dict[str, float]:
    """Eager against compiled loop step (``TrainConfig.compile``) for one training update
    (unroll, loss, backward) from the same weights and noise; the two are timed alternately so
    a shared CPU's load falls on both alike."""
    q, s = quizzes[:BATCH], solutions[:BATCH]
    runs = {compiled: small_objective(name, compile=compiled) for compiled in (False, True)}

    def update(compiled: bool) -> torch.Tensor:
        model, objective = runs[compiled]
        loss, _ = objective(q, s, slice(0, BATCH), T, torch.Generator().manual_seed(0))
        model.zero_grad(set_to_none=True)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    grads, first = {}, {}
    for compiled in (False, True):  # the first call compiles
        t0 = time.perf_counter()
        grads[compiled] = update(compiled)
        first[compiled] = time.perf_counter() - t0
    times = {False: [], True: []}
    for _ in range(repeats):
        for compiled in (False, True):
            t0 = time.perf_counter()
            update(compiled)
            times[compiled].append(time.perf_counter() - t0)
    eager, comp = statistics.median(times[False]), statistics.median(times[True])
    diff = (grads[True] - grads[False]).abs().max() / grads[False].abs().max()
    return {
        "eager_s": eager,
        "compiled_s": comp,
        "compile_s": first[True] - comp,
        "speedup": eager / comp,
        "break_even": (first[True] - comp) / (eager - comp) if eager > comp else float("inf"),
        "grad_rel_diff": float(diff),
    }


def bench_votes(puzzles, repeats: int) -> dict[int, float]:
    torch.manual_seed(0)
    model = build_model({**model_config("itrsa"), "init": "akorn"}).eval()  # noise: votes differ
    boards = puzzles.subset(range(32))
    out = {}
    for k in (1, 8, 32):
        vote = "confidence" if k > 1 else "none"

        def run(k=k, vote=vote) -> None:
            evaluate(model, boards, [T], votes=k, vote=vote, batch_size=256, seed=0)

        out[k] = len(boards) * k / _median_time(run, repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="itrsa and akorn only")
    parser.add_argument("--compile", action="store_true", help="eager vs compiled loop step")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    puzzles = get_dataset("satnet", "test", n=BATCH, seed=0, progress=False)
    quizzes, solutions = puzzles.to_torch()
    names = ("itrsa", "akorn") if args.quick else model_names()
    rows = {}
    for name in names:
        rows[name] = bench_model(name, quizzes, solutions, args.repeats)
        print(name, {k: round(v, 3) for k, v in rows[name].items()}, flush=True)
    votes = bench_votes(puzzles, args.repeats)
    print("votes", {k: round(v, 1) for k, v in votes.items()}, flush=True)
    compiled = {}
    if args.compile:
        for name in FULL_PRESET:
            compiled[name] = bench_compile(name, quizzes, solutions, args.repeats)
            print(name, "compile", {k: round(v, 3) for k, v in compiled[name].items()}, flush=True)

    load_after = os.getloadavg()[0]
    base = rows["itrsa"]["train_boards_per_s"]
    shared = max(load_before, load_after) > 0.5 * (os.cpu_count() or 1)
    load_note = (
        "CPU shared with other jobs while measuring (absolute numbers are pessimistic; ratios "
        "were measured side by side in one run)"
        if shared
        else "no other jobs on the CPU"
    )
    lines = [
        "## Training and evaluation throughput (`benchmarks/bench_training.py`)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread{'s' if args.threads != 1 else ''}, {load_note}. Median of "
        f"{args.repeats} after a warm-up. 1-minute load average {load_before:.1f} at the start, "
        f"{load_after:.1f} at the end ({os.cpu_count()} cores).",
        "",
        f"Small preset: D={DIM}, H={HEADS}, batch {BATCH}, T={T}; {' and '.join(FULL_PRESET)} "
        "with the preset's whole model config, the others at its width. *Train*: one update "
        f"(unroll, the preset's loss (loss_steps={SMALL['loss_steps']}), backward, clip, Adam, "
        f"EMA). *Eval*: a no-grad forward of T={T} steps. {', '.join(SINGLE_HEAD)} are "
        "single-head models (H=1).",
        "",
        "| model | params | s / step | train boards/s | vs ItrSA | eval boards/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['params']:,} | {r['train_s_per_step']:.2f} | "
            f"{r['train_boards_per_s']:.1f} | {r['train_boards_per_s'] / base:.2f}x | "
            f"{r['eval_boards_per_s']:.1f} |"
        )
    lines += [
        "",
        f"Voting (ItrSA, T={T}, 32 boards repeated K times in the batch, confidence vote):",
        "",
        "| K | boards x votes / s | vs K=1 |",
        "|---|---|---|",
    ]
    for k, v in votes.items():
        lines.append(f"| {k} | {v:.1f} | {v / votes[1]:.2f}x |")
    if compiled:
        lines += [
            "",
            "Compiled loop step (`compile=True`: `torch.compile(model.step, dynamic=False)`), one "
            "update without the optimizer (unroll, loss, backward), eager and compiled timed "
            "alternately; compile time = first call minus a compiled update (inductor's "
            "on-disk cache may hold an earlier compilation, which shortens it); break-even = "
            "compile time / time saved per update; gradient "
            "difference = max |g_compiled - g_eager| / max |g_eager|:",
            "",
            "| model | eager s / update | compiled s / update | speed-up | compile s "
            "| break-even updates | gradient difference |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in compiled.items():
            lines.append(
                f"| {name} | {r['eager_s']:.2f} | {r['compiled_s']:.2f} | {r['speedup']:.2f}x | "
                f"{r['compile_s']:.1f} | {r['break_even']:.0f} | {r['grad_rel_diff']:.1e} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
