"""GPU training throughput, read from the logs of one ``sadyn paper`` call (a lent GPU is there
for minutes, so the figures come from the real run rather than a separate benchmark).

    python benchmarks/bench_paper_gpu.py results/paper-gpu

Writes ``benchmarks/results/training_gpu.md``: per main run, the boards per second of each
phase (the number of training processes that shared the GPU then) and the ratio between
phases, measured in the one run; the extra jobs' wall time; the arithmetic of a step.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def train_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train" and r.get("boards_per_s")]


def main(root: Path) -> None:
    paper = json.loads((root / "paper.json").read_text())
    env = paper["environment"]
    runs = paper["runs"]
    ends = [v["seconds"] for v in runs.values() if not v["main"] and v["seconds"]]
    first_end = min(ends, default=0.0)
    two_left: dict[str, float] = {}
    lines = [
        "## Training on a GPU (`sadyn paper`, `benchmarks/bench_paper_gpu.py`)",
        "",
        f"One call on an {env.get('gpu', env['device'])} (torch {env['torch']}), budget "
        f"{paper['budget_s'] / 60:.0f} min: the paper ItrSA and AKOrN (D=512, H=8, batch 100, "
        "T=16; bf16 autocast, compiled step, fused attention) beside "
        f"{sum(not v['main'] for v in runs.values() if v['returncode'] is not None)} small-preset "
        "jobs (D=64, fp32, eager). Processes on one GPU time-slice it: the rates below are per "
        "process, medians over log intervals (10 steps each) in two phases of the same run: the "
        f"first 60% of the log (every job running; the first ended at {first_end:.0f} s) and "
        "the last 20 intervals (the jobs finished or finishing, the two main runs left).",
        "",
        "| run | steps done | boards/s, all running | boards/s, at the end | ratio |",
        "|---|---|---|---|---|",
    ]
    for name, rec in runs.items():
        if not rec["main"]:
            continue
        rates = [r["boards_per_s"] for r in train_rows(root / "runs" / name)]
        # the first 60% of the log: every job running; the last 20 intervals (200 steps):
        # the extra jobs finished or finishing
        b = statistics.median(rates[: int(0.6 * len(rates))])
        q = two_left[name] = statistics.median(rates[-20:])
        lines.append(
            f"| {name} | {rec['step']:,} / {rec['total_steps']:,} | {b:,.0f} | {q:,.0f} | "
            f"{q / b:.2f}x |"
        )
    jobs = [v for v in runs.values() if not v["main"] and v["status"] == "completed"]
    if jobs:
        secs = statistics.median(v["seconds"] for v in jobs)
        lines += [
            "",
            f"Small-preset jobs (2,700 steps each) completed in the busy phase: {len(jobs)}, "
            f"median wall time {secs:.0f} s each (process start, data, training, 9 evaluations).",
        ]
    lines += [
        "",
        "Arithmetic of a paper-ItrSA step: 2.26 MFLOP per token per loop step forward (6D^2 "
        "qkv + 2D^2 output + 4SD attention), x 81 tokens x 100 boards x 16 steps x 3 "
        "(backward) = 0.88 TFLOP; at the end-of-run rate that is about "
        + f"{0.88e12 * two_left.get('itrsa', float('nan')) / 100 / 1e12:.0f} TFLOP/s for the "
        "ItrSA"
        + " (AKOrN's step costs more than this count), a few percent of the chip's bf16 rate:"
        " the 16 sequential small steps are latency-bound.",
    ]
    out = Path(__file__).resolve().parent / "results" / "training_gpu.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out.read_text())


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/paper-gpu"))
