"""Probes at the paper's width, S*D = 81*512 = 41,472, on one CPU core, at initialization.

For the paper preset's ItrSA and AKOrN (D=512, H=8; ``benchmarks/paper_width.py``; untrained,
``torch.manual_seed(0)``) and one SATNet-style test puzzle rolled out T=16 steps, the CPU time
(``time.process_time``: the work done, not the wait, on a shared machine; one thread) of

* the Jacobian probe at t=16: spectral norm and Prop 5.1 bound (power iteration), top-8
  eigenvalues (ARPACK on the matrix-free Jacobian); target 5 min per puzzle;
* the top-16 finite-time Lyapunov exponents at T=16 (subspace solver); target 5 min;
* with ``--ci-minutes M``: one contribution index per step of ``--ci-steps`` (default 16; top
  2% = 829 vectors of (J + J^T)/2, the block solver) stopped after M CPU minutes if not
  converged, with its residual after each sweep (CPU and wall seconds, load average); target
  20 min.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_paper_probes.py [--models akorn,itrsa]
[--ci-minutes 20 --ci-steps 16,0 --skip-jacobian]``; writes ``benchmarks/results/paper_probes.md``
and ``.json`` (``--out-name`` changes the file names). ``results/paper_probes.md`` also holds
the hand-written section of BENCHMARKS.md that reads these figures: name other runs with
``--out-name`` (the contribution-index run: ``paper_contribution_index``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_width import paper_model

from sadyn.dynamics.block_eigen import SymmetricPart, top_eigenspace
from sadyn.probes import jacobian_probe, lyapunov_probe, rollout
from sadyn.probes.stepmap import analysis_mode, single_msa_map
from sadyn.sudoku import resolve_dataset

OUT = Path(__file__).resolve().parent / "results"


def cpu_timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def contribution(model, run, minutes: float, step: int = 16) -> dict:
    """One contribution index at loop step ``step`` (top 2% of (J+J^T)/2, the block solver),
    stopped at ``minutes`` CPU minutes: CPU and wall seconds, the load average, the residual
    after each sweep, the index with its Davis-Kahan bound and its range over the cut window."""
    x = run.state(step)[0].reshape(-1)
    load0 = os.getloadavg()[0]
    c0, w0 = time.process_time(), time.perf_counter()

    def progress(sweep: int, residual: float) -> None:
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        print(f"    sweep {sweep}: residual {residual:.2e}, cpu {cpu:.0f} s, wall {wall:.0f} s, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip

    with analysis_mode(model):
        op = SymmetricPart(single_msa_map(model, run.state_shape), x)
        res = top_eigenspace(
            op, x.numel(), math.floor(0.02 * x.numel()), tol=1e-3, dtype=x.dtype,
            generator=torch.Generator().manual_seed(0), max_seconds=60 * minutes,
            progress=progress, track=x,
        )  # fmt: skip
    out = {
        "step": step,
        "cpu_s": res.cpu_seconds,
        "wall_s": res.seconds,
        "load_average_1min": [load0, os.getloadavg()[0]],
        "sweeps": res.sweeps,
        "products": res.products,
        "block_columns": res.ritz_vectors.shape[1],
        "converged": res.converged,
        "stalled": res.stalled,
        "max_residual": float(res.residuals[: res.m + 1].max()),
        "index": res.share(x),
        "gap": res.gap,
        "space_error": res.space_error,
        "cut_window": list(res.cut_window()),
        "index_over_cut_window": list(res.share_range(x)),
        "ritz_values_at_cut": [float(v) for v in res.ritz_values[res.m - 3 : res.m + 3]],
        "ritz_value_range": [float(res.ritz_values[0]), float(res.ritz_values[-1])],
        "scale": res.scale,
        "index_per_sweep": [h["shares"][0] for h in res.history],
        "history": res.history,
    }
    history = [(h["sweep"], h["max_residual"], h["cpu_seconds"]) for h in res.history]
    if len(history) >= 3 and not res.converged:  # geometric decay per sweep, extrapolated
        (s0, r0, t0), (s1, r1, t1) = history[1], history[-1]
        rate = (r1 / r0) ** (1 / max(s1 - s0, 1))
        per_sweep = (t1 - t0) / max(s1 - s0, 1)
        more = math.log(1e-3 / r1) / math.log(rate) if rate < 1 else math.inf
        out["residual_factor_per_sweep"] = rate
        out["cpu_s_per_sweep"] = per_sweep
        out["projected_cpu_s_to_tol"] = res.cpu_seconds + more * per_sweep
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="akorn,itrsa")
    ap.add_argument("--ci-minutes", type=float, default=0.0)
    ap.add_argument("--ci-steps", default="16", help="loop steps of the contribution index")
    ap.add_argument("--skip-jacobian", action="store_true")
    ap.add_argument("--out-name", default="paper_probes", help="results file names (no suffix)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    puzzle = resolve_dataset("id", n=1, seed=0)
    rows = {}
    for kind in args.models.split(","):
        model = paper_model(kind)
        run = rollout(model, puzzle, 16, seed=0)
        row: dict = {}
        if not args.skip_jacobian:
            _, c, w = cpu_timed(
                lambda m=model, r=run: jacobian_probe(
                    m, r, [16], samples=1, k=8, show_progress=False
                )
            )
            row["jacobian"] = {"cpu_s": c, "wall_s": w}
            print(f"{kind}: jacobian probe cpu {c:.0f} s (wall {w:.0f} s)", flush=True)
            _, c, w = cpu_timed(
                lambda m=model, r=run: lyapunov_probe(m, r, horizon=16, k=16, show_progress=False)
            )
            row["ftle_top16_T16"] = {"cpu_s": c, "wall_s": w}
            print(f"{kind}: top-16 FTLE at T=16 cpu {c:.0f} s (wall {w:.0f} s)", flush=True)
        if args.ci_minutes > 0:
            for step in (int(t) for t in args.ci_steps.split(",")):
                ci = contribution(model, run, args.ci_minutes, step)
                row[f"contribution_index_t{step}"] = ci
                brief = {k: v for k, v in ci.items() if k != "history"}
                print(f"{kind}: contribution index at t={step} {brief}", flush=True)
                write(args.out_name, {**rows, kind: row})
        rows[kind] = row
    write(args.out_name, rows)


def write(name: str, rows: dict) -> None:
    """``results/{name}.json`` (every figure) and ``.md`` (the CPU and wall seconds)."""
    env = {
        "device": "this 2-core CPU, one thread",
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "load_average_1min": os.getloadavg()[0],
    }
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    lines = [
        "## Probes at paper width (S*D = 41,472), one CPU core, at initialization",
        "",
        f"Device: {env['device']} ({env['cpu']}, torch {env['torch']}); load average "
        f"{env['load_average_1min']:.1f} at the end (CPU seconds count the work done).",
        "",
        "| model | probe | CPU s | wall s |",
        "|---|---|---|---|",
    ]
    for kind, row in rows.items():
        for probe, r in row.items():
            lines.append(f"| {kind} | {probe} | {r['cpu_s']:.0f} | {r['wall_s']:.0f} |")
    (OUT / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
