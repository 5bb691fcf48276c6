"""One evaluation of a pretrained model and its selector head on OOD boards, every vote rule
scored on the same restarts; writes ``eval-TAG.json`` here.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/verifier_free_selection_eval.py \
        --n 200 --votes 16 --vote-grid 1,4,16 --tag ood-n200-K16

The boards are the first N of ``--data ood --n 1000`` (the set of the test-time-compute
study), restart 0 the deterministic run (``anchor``), the others with restart noise 0.3.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sadyn.pretrained import load_pretrained
from sadyn.pretrained.selector import load_selector
from sadyn.probes.accuracy import VoteSettings, evaluate
from sadyn.sudoku.datasets import pool_record, resolve_dataset

# the results this script reads and writes
HERE = Path(__file__).resolve().parents[1] / "results" / "verifier-free-selection"
RULES = "learned,confidence,settling,energy-slope,persistence,energy,stability,verifier"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="small-vote-wide")
    ap.add_argument("--data", default="ood")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--first", type=int, default=0, help="first board of the 1,000")
    ap.add_argument("--votes", type=int, default=16)
    ap.add_argument("--vote-grid", default=None)
    ap.add_argument("--steps", default="16,32,64,128,256")
    ap.add_argument("--vote", default=RULES)
    ap.add_argument("--halt", default="none")
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--tag", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _, meta = load_pretrained(args.model)
    head, head_info = load_selector(args.model)
    full = resolve_dataset(args.data, n=1000 if args.data == "ood" else None)
    puzzles = full.subset(range(args.first, args.first + args.n))
    settings = VoteSettings(
        votes=args.votes,
        vote=args.vote,
        halt=args.halt,
        anchor=True,
        restart_noise=args.noise,
        vote_grid=[int(k) for k in args.vote_grid.split(",")] if args.vote_grid else None,
        selector=head,
    )
    t0 = time.perf_counter()
    res = evaluate(
        model,
        puzzles,
        [int(t) for t in args.steps.split(",")],
        settings,
        batch_size=args.batch_size,
        seed=0,
    )
    res["config"] = {
        **{k: v for k, v in vars(args).items()},
        "boards": f"{args.data} (n=1000) rows {args.first}..{args.first + args.n - 1}",
        "pool_sha256": pool_record(full),
        "model_sha256": meta["sha256"],
        "selector_sha256": head_info["sha256"],
        "machine": f"{platform.machine()}, 1 thread, shared 2-core CPU",
        "torch": torch.__version__,
        "elapsed_s": time.perf_counter() - t0,
    }
    out = HERE / f"eval-{args.tag}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out.name}: cpu {res['cpu_time_s'] / 60:.1f} min", flush=True)
    for rule, r in res.get("rules", {}).items():
        print(
            f"{rule:>13}",
            [round(100 * a, 1) for a in r["board_accuracy"]],
            "auroc",
            [round(a, 3) for a in res["auroc"].get(rule, [])],
        )
    print("oracle", [round(100 * a, 1) for a in res.get("oracle_board_accuracy", [])])
    print("loops", [round(a, 1) for a in res["mean_loops"]])


if __name__ == "__main__":
    main()
