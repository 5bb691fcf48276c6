"""Forward+backward throughput and peak memory of every model (sadyn.models).

One training-shaped pass: ``model(puzzles, T=16)``, cross-entropy over all cells, backward; batch
100 boards, 2 intra-op threads, at (D=128, H=4) and (D=512, H=8) (single-head models: H=1).
Each configuration runs in its own subprocess, one after the other, so its peak RSS is its own:
"peak MB" is the maximum resident set size during the timed passes minus the resident size
before them (model built and warmed up), i.e. activations, gradients and temporaries.

    .venv/bin/python benchmarks/bench_models.py [--reps 3] [--reps-large 1] [--budget 30]

A configuration stops repeating once its timed passes have used ``--budget`` seconds (at least
one pass), so a contended machine does not stretch the run without bound.

Writes ``benchmarks/results/models.md`` (a markdown section; ratios are against ItrSA measured
in the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "models.md"
SINGLE_HEAD = ("symsa", "gensym-single")
MODELS = ("itrsa", "akorn", "symsa", "gensym-single", "gensym-multi", "preln-itrsa")
# option variants the small preset may use (D=128 only); "threads" overrides --threads
VARIANTS = {
    "itrsa, 1 thread": {"model": "itrsa", "threads": 1},
    "itrsa, fixed GTA rotations": {"model": "itrsa", "gta_learnable": False},
    "itrsa, pos=rcb, mlp readout": {
        "model": "itrsa",
        "pos": "rcb",
        "readout": "mlp",
        "input_scale": 1.0,
    },
    "itrsa, gta+relation bias": {"model": "itrsa", "relation_bias": True},
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(spec: dict) -> None:
    """Run one configuration and print a JSON line with its figures."""
    import torch

    sys.path.insert(0, str(ROOT))
    from sadyn.models import build_model

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = build_model(spec["config"])
    params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    puzzles = torch.randint(0, 10, (spec["batch"], 81), generator=gen)
    target = torch.randint(0, 9, (spec["batch"], 81), generator=gen)

    def one_pass(batch: int, steps: int) -> float:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        out = model(puzzles[:batch], steps, generator=torch.Generator().manual_seed(1))
        loss = torch.nn.functional.cross_entropy(
            out.logits.reshape(-1, 9), target[:batch].reshape(-1)
        )
        loss.backward()
        return time.perf_counter() - start

    one_pass(8, 2)  # warm-up: lazy initialization, small
    base = _rss_mb()
    times = [one_pass(spec["batch"], spec["steps"])]
    while len(times) < spec["reps"] and sum(times) + times[-1] <= spec["budget"]:
        times.append(one_pass(spec["batch"], spec["steps"]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"seconds": times, "params": params, "peak_mb": peak - base}))


def run_child(config: dict, reps: int, args: argparse.Namespace) -> dict:
    config = dict(config)
    threads = config.pop("threads", args.threads)
    spec = {
        "config": config,
        "reps": reps,
        "threads": threads,
        "batch": args.batch,
        "steps": args.steps,
        "budget": args.budget,
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=3, help="timed passes at D=128")
    ap.add_argument("--reps-large", type=int, default=1, help="timed passes at D=512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds of timed passes after which a configuration stops repeating",
    )
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="D=128 only, no variants")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    import torch

    rows = []
    load_start = os.getloadavg()
    started = time.perf_counter()
    widths = [(128, 4)] if args.quick else [(128, 4), (512, 8)]
    jobs = []
    for dim, heads in widths:
        reps = args.reps if dim == 128 else args.reps_large
        for name in MODELS:
            h = 1 if name in SINGLE_HEAD else heads
            jobs.append((name, {"model": name, "dim": dim, "heads": h}, reps))
        if dim == 128 and not args.quick:
            for label, cfg in VARIANTS.items():
                jobs.append((label, {**cfg, "dim": dim, "heads": heads}, reps))
    for label, cfg, reps in jobs:
        res = run_child(cfg, reps, args)
        sec = statistics.median(res["seconds"])
        rows.append(
            {
                "label": label,
                "dim": cfg["dim"],
                "heads": cfg["heads"],
                "sec": sec,
                "reps": len(res["seconds"]),
                "params": res["params"],
                "peak_mb": res["peak_mb"],
            }
        )
        print(
            f"{label:32s} D={cfg['dim']:<4d} H={cfg['heads']}  {sec:7.2f} s/pass  "
            f"{args.batch / sec:7.1f} boards/s  peak {res['peak_mb']:7.0f} MB",
            flush=True,
        )
    elapsed = time.perf_counter() - started
    load_end = os.getloadavg()

    ref = {r["dim"]: r["sec"] for r in rows if r["label"] == "itrsa"}
    lines = [
        "## Models: forward+backward throughput (sadyn.models)",
        "",
        f"One pass = `model(puzzles, T={args.steps})` + cross-entropy + backward, batch "
        f"{args.batch}, {args.threads} threads (unless the row says otherwise), median of the "
        f"timed passes (up to {args.reps} at D=128, {args.reps_large} at D=512, fewer when a "
        f"configuration's passes exceed {args.budget:.0f} s). "
        "Each row runs alone in its own subprocess; peak MB = max RSS during the timed passes "
        "minus RSS before them. Ratio = time / ItrSA's time at the same width, same run.",
        "",
        f"Machine: {_cpu()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"Python {platform.python_version()}. **The CPU was shared with other jobs** (load "
        f"average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end, on "
        f"{os.cpu_count()} CPUs): absolute times are inflated and noisy; ratios are the more "
        f"reliable figures. Benchmark wall time {elapsed / 60:.1f} min.",
        "",
        "| model | D | H | params | s / pass | boards / s | vs ItrSA | peak MB | passes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['dim']} | {r['heads']} | {r['params']:,} | {r['sec']:.2f} | "
            f"{args.batch / r['sec']:.1f} | {r['sec'] / ref[r['dim']]:.2f} | "
            f"{r['peak_mb']:.0f} | {r['reps']} |"
        )
    lines += [
        "",
        "Context (calibration.md, the reference AKOrN code on this CPU, a full training step "
        "incl. Adam): pre-LN ItrSA 1.03 s and AKOrN 7.09 s at D=128, H=4; 9.11 s and 28.1 s "
        "at D=512, H=8.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
