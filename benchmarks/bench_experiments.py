"""Benchmark of sadyn.experiments and sadyn.report: what a reproduction costs on this machine.

Measures, in one run:
1. `reproduce all --preset tiny` with a fresh cache (training included) and again with the
   cache warm (measurement only): per-recipe wall time, and the ratio cold/warm;
2. building the HTML report from those results (redrawing every figure);
3. optionally (``--small-dir out/small``) tabulates a finished small-preset run: per recipe
   wall time, and the training time of every checkpoint it trained.

Writes ``benchmarks/results/experiments.md``.
Run: ``.venv/bin/python benchmarks/bench_experiments.py [--small-dir out/small]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from sadyn.experiments.registry import recipe_names, reproduce
from sadyn.report import build_report, find_results

OUT = Path(__file__).parent / "results" / "experiments.md"


def tiny_runs(root: Path) -> tuple[dict[str, float], dict[str, float], float]:
    cold = {
        r["name"]: r["wall_time_s"]
        for r in reproduce("all", "tiny", root / "a", cache_dir=root / "cache")
    }
    warm = {
        r["name"]: r["wall_time_s"]
        for r in reproduce("all", "tiny", root / "b", cache_dir=root / "cache")
    }
    t0 = time.perf_counter()
    summary = build_report(root / "b")
    report_s = time.perf_counter() - t0
    print(f"report: {summary.figures} figures in {report_s:.2f} s")
    return cold, warm, report_s


def small_table(small: Path) -> list[str]:
    lines = [
        "",
        f"### A small-preset run (`{small}`)",
        "",
        "| recipe | verdict | wall time (min) | models trained here (min each) |",
        "|---|---|---|---|",
    ]
    total = 0.0
    for res in find_results(small):
        rec = res.record
        trained = [c for c in rec.get("checkpoints", []) if not c.get("reused")]
        train = ", ".join(f"{c['label']} {c['train_wall_s'] / 60:.1f}" for c in trained) or "-"
        total += rec.get("wall_time_s", 0.0)
        status, minutes = rec["verdict"]["status"], rec["wall_time_s"] / 60
        lines.append(f"| {res.name} | {status} | {minutes:.1f} | {train} |")
    lines.append(f"| **all** | | **{total / 60:.0f}** | |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small-dir", type=Path, default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cold, warm, report_s = tiny_runs(Path(tmp))
    load = os.getloadavg()[0]
    lines = [
        "## sadyn.experiments / sadyn.report",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s); load average {load:.1f} at the end: the CPU was shared "
        "with other jobs, so absolute times are pessimistic.",
        "",
        "### `reproduce all --preset tiny`",
        "",
        "| recipe | cold cache (s) | warm cache (s) | cold / warm |",
        "|---|---|---|---|",
    ]
    for name in recipe_names():
        c, w = cold[name], warm[name]
        lines.append(f"| {name} | {c:.1f} | {w:.1f} | {c / max(w, 1e-9):.1f} |")
    lines.append(
        f"| **all** | **{sum(cold.values()):.1f}** | **{sum(warm.values()):.1f}** | "
        f"{sum(cold.values()) / sum(warm.values()):.1f} |"
    )
    lines += ["", f"Report from the warm run's results (every figure redrawn): {report_s:.2f} s."]
    if args.small_dir is not None:
        lines += small_table(args.small_dir)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
