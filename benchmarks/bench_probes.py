"""Benchmark of the dynamics probes at the paper-like state size S*D = 81*128 = 10,368.

Measures, on an initialised ItrSA (D = 128, H = 8, GTA, unit RMSNorm, float32) and B puzzles:

* finite-time exponents (top k = 16, T = 16) for the whole batch in one batched call, against
  the same puzzles one at a time (the ratio is the point of ``batched=True``);
* the asymptotic QR spectrum (k = 16) over a few hundred steps, batched;
* the Jacobian spectral norms (Prop 5.1 check) of the batch;
* one contribution index (top 2% = 207 eigenvectors of J + J^T, dense).

Run: ``.venv/bin/python benchmarks/bench_probes.py [--batch 32] [--one-by-one 4]``; writes
``benchmarks/results/probes.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sadyn.models import build_model
from sadyn.probes import contribution_index, lyapunov_probe, prop51_bound, rollout


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--one-by-one",
        type=int,
        default=4,
        help="puzzles timed one at a time (the per-puzzle time is extrapolated)",
    )
    ap.add_argument("--qr-steps", type=int, default=64)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "probes.md"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model({"model": "itrsa", "dim": args.dim, "heads": 8})
    g = torch.Generator().manual_seed(0)
    quizzes = torch.where(
        torch.rand(args.batch, 81, generator=g) < 0.4,
        torch.randint(1, 10, (args.batch, 81), generator=g),
        0,
    )
    run = rollout(model, quizzes, 0)
    n = run.dim
    kw = {"horizon": 16, "k": 16, "show_progress": False}

    lyapunov_probe(model, run.subset([0]), horizon=2, k=2, show_progress=False)  # warm-up
    batched, t_batched = timed(lambda: lyapunov_probe(model, run, batch_size=args.batch, **kw))
    chunked, t_chunked = timed(lambda: lyapunov_probe(model, run, **kw))  # default chunks
    singles, t_single = [], 0.0
    for b in range(args.one_by_one):
        res, dt = timed(lambda b=b: lyapunov_probe(model, run.subset([b]), **kw))
        singles.append(res.finite_time[0])
        t_single += dt
    per_puzzle = t_single / args.one_by_one
    agree = float(np.abs(np.stack(singles) - batched.finite_time[: args.one_by_one]).max())
    agree = max(agree, float(np.abs(chunked.finite_time - batched.finite_time).max()))
    qr, t_qr = timed(
        lambda: lyapunov_probe(
            model,
            run,
            horizon=16,
            k=16,
            asymptotic_steps=args.qr_steps,
            transient=0,
            show_progress=False,
        )
    )
    _, t_norm = timed(lambda: prop51_bound(model, run.state(0), run.cond))
    ci, t_ci = timed(lambda: contribution_index(model, run.state(0)[:1]))

    threads = torch.get_num_threads()
    lines = [
        "## Probes (`benchmarks/bench_probes.py`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, torch "
        f"{torch.__version__}, {threads} intra-op threads; the CPU was shared with other "
        "jobs while measuring (load average "
        f"{os.getloadavg()[0]:.1f}), so absolute times are pessimistic; the ratio was measured "
        "side by side in one run.",
        "",
        f"Initialised ItrSA, D = {args.dim}, H = 8, GTA, unit RMSNorm, float32; "
        f"n = S*D = {n}; B = {args.batch} puzzles.",
        "",
        "| what | time |",
        "|---|---|",
        f"| finite-time exponents, top 16, T = 16, {args.batch} puzzles, one batched call | "
        f"{t_batched:.1f} s |",
        f"| same, batched in chunks of 4 (the CPU default) | {t_chunked:.1f} s |",
        f"| same, one puzzle at a time ({args.one_by_one} timed, x{args.batch}) | "
        f"{per_puzzle * args.batch:.1f} s |",
        f"| finite-time + QR spectrum ({args.qr_steps} steps), chunks of 4 | {t_qr:.1f} s |",
        f"| spectral norms of J and J_MSA + Prop 5.1 bound, {args.batch} puzzles | "
        f"{t_norm:.1f} s |",
        f"| contribution index, one state (dense J, top {int(0.02 * n)} eigenvectors; "
        f"index {ci[0]:.3f}) | {t_ci:.1f} s |",
        "",
        f"Batched, chunked and one-by-one exponents agree to {agree:.1e} (max abs, 4 "
        "subspace iterations). Median max FTLE "
        f"{np.median(batched.max_ftle):+.4f}, median max QR {np.median(qr.max_qr):+.4f} "
        "(an untrained model).",
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
