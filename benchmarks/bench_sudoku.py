"""Benchmark of sadyn.sudoku: data-set generation speed, solver throughput, givens histograms.

Run: ``.venv/bin/python benchmarks/bench_sudoku.py [--out benchmarks/results/sudoku.md]``.
Measures, in one run on the same machine:
1. making the SATNet-style 10k set (vectorized numpy) vs. a plain-Python version of the same
   procedure (Park's fill + pluck; timed on a subset and extrapolated), and the uniqueness check;
2. exact-solver throughput on the RRN-style hard set (17-clue base puzzles, and k-revealed);
3. givens histograms of the two default sets (SATNet-style 10k, RRN-style test 18k).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from pathlib import Path

import numpy as np

from sadyn.sudoku import board, rrn, satnet
from sadyn.sudoku.datasets import find_and_load_pool
from sadyn.sudoku.solver import solve_many


def _could_hold(g: list[int], i: int, j: int, v: int) -> bool:
    """Blank cell (i, j) of grid g could take digit v (v not in its row, column or box)."""
    if g[i * 9 + j]:
        return False
    bi, bj = i // 3 * 3, j // 3 * 3
    for k in range(9):
        if g[i * 9 + k] == v or g[k * 9 + j] == v or g[(bi + k // 3) * 9 + bj + k % 3] == v:
            return False
    return True


def plain_python_park(n: int, seed: int) -> list[list[int]]:
    """The SATNet-style procedure in plain Python (lists and sets), for the speed comparison."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        while True:  # row-major fill; restart on a dead end
            rows = [set(range(1, 10)) for _ in range(9)]
            cols = [set(range(1, 10)) for _ in range(9)]
            boxes = [set(range(1, 10)) for _ in range(9)]
            g = [0] * 81
            ok = True
            for cell in range(81):
                r, c = divmod(cell, 9)
                b = r // 3 * 3 + c // 3
                choices = list(rows[r] & cols[c] & boxes[b])
                if not choices:
                    ok = False
                    break
                d = rnd.choice(choices)
                g[cell] = d
                rows[r].discard(d)
                cols[c].discard(d)
                boxes[b].discard(d)
            if ok:
                break
        order = list(range(81))
        rnd.shuffle(order)
        for cell in order:  # one pluck pass with Park's box test
            r, c = divmod(cell, 9)
            v = g[cell]
            g[cell] = 0

            row_ok = not any(_could_hold(g, r, j, v) for j in range(9) if j != c)
            col_ok = not any(_could_hold(g, i, c, v) for i in range(9) if i != r)
            box_ok = r % 3 == c // 3 and not any(
                _could_hold(g, r // 3 * 3 + k // 3, c // 3 * 3 + k % 3, v)
                for k in range(9)
                if (r // 3 * 3 + k // 3, c // 3 * 3 + k % 3) != (r, c)
            )
            if not (row_ok or col_ok or box_ok):
                g[cell] = v
        out.append(g)
    return out


def histogram_table(hist: dict[int, int]) -> list[str]:
    lo, hi = min(hist), max(hist)
    head = "| givens | " + " | ".join(str(g) for g in range(lo, hi + 1)) + " |"
    sep = "|---|" + "---|" * (hi - lo + 1)
    row = "| puzzles | " + " | ".join(str(hist.get(g, 0)) for g in range(lo, hi + 1)) + " |"
    return [head, sep, row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sudoku.md"))
    parser.add_argument("--plain-n", type=int, default=200, help="plain-Python subset size")
    args = parser.parse_args()
    load0 = os.getloadavg()
    lines = ["## sadyn.sudoku: data generation and solver", ""]

    # 1. SATNet-style 10k ------------------------------------------------------------------
    t0 = time.perf_counter()
    q, s = satnet.stream(0, 0, 0, 10_000)
    t_make = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = plain_python_park(args.plain_n, 0)
    t_plain = (time.perf_counter() - t0) * 10_000 / args.plain_n
    plain_givens = np.mean([sum(1 for d in g if d) for g in plain])
    t0 = time.perf_counter()
    counts, found, nodes = solve_many(q, 2)
    t_check = time.perf_counter() - t0
    assert (counts == 1).all() and (found == s).all()
    g = board.num_givens(q)
    lines += [
        "### SATNet-style set (10,000 puzzles, seed 0)",
        "",
        "| step | time | rate |",
        "|---|---|---|",
        f"| make 10,000 (vectorized numpy, 1 process) | {t_make:.1f} s | "
        f"{10_000 / t_make:,.0f} puzzles/s |",
        f"| plain-Python version of the same procedure (timed on {args.plain_n}, "
        f"extrapolated) | {t_plain:.0f} s | {10_000 / t_plain:,.0f} puzzles/s |",
        f"| speed-up (same run) | {t_plain / t_make:.1f}x | |",
        f"| uniqueness check of all 10,000 (exact solver, count to 2) | {t_check:.1f} s | "
        f"{10_000 / t_check:,.0f} puzzles/s |",
        "",
        f"All 10,000 unique: {bool((counts == 1).all())}; solved by singles alone (no search): "
        f"{int((nodes == 1).sum()):,}/10,000. Givens: mean {g.mean():.2f}, std {g.std():.2f}, "
        f"range {g.min()}-{g.max()} (SATNet's test split: mean 36.2; plain-Python subset mean "
        f"{plain_givens:.1f}).",
        "",
        *histogram_table(board.givens_histogram(q)),
        "",
    ]

    # 2./3. RRN-style -------------------------------------------------------------------------
    pool = find_and_load_pool()
    if pool is None:
        lines += ["### RRN-style set", "", "Royle's 17-clue list not found: section skipped.", ""]
    else:
        test_idx = rrn.split_pool(len(pool), 0)["test"]
        base = pool.quizzes[test_idx[:2000]]
        t0 = time.perf_counter()
        c17, _, n17 = solve_many(base, 2)
        t17 = time.perf_counter() - t0
        t0 = time.perf_counter()
        test = rrn.make_rrn("test", seed=0, pool=pool)
        t_rrn = time.perf_counter() - t0
        t0 = time.perf_counter()
        ck, _, nk = solve_many(test.quizzes, 2)
        tk = time.perf_counter() - t0
        extra = test.num_givens - 17
        by_k = {k: nk[extra == k].mean() for k in (0, 6, 12, 17)}
        lines += [
            "### RRN-style sudoku-hard (Royle's 17-clue pool, test split, seed 0)",
            "",
            "| step | time | rate |",
            "|---|---|---|",
            f"| solve + uniqueness, 2,000 17-clue base puzzles | {t17:.2f} s | "
            f"{2000 / t17:,.0f} puzzles/s (mean {n17.mean():.1f} search nodes) |",
            f"| make the 18,000-puzzle test split (solving ~8.4k base puzzles) | {t_rrn:.1f} s |"
            f" {18_000 / t_rrn:,.0f} puzzles/s |",
            f"| solve + uniqueness, all 18,000 k-revealed test puzzles | {tk:.1f} s | "
            f"{18_000 / tk:,.0f} puzzles/s |",
            "",
            f"All unique: 17-clue {bool((c17 == 1).all())}, test set {bool((ck == 1).all())}. "
            "Mean search nodes by extra givens k: "
            + ", ".join(f"k={k}: {v:.2f}" for k, v in by_k.items())
            + ".",
            "",
            *histogram_table(board.givens_histogram(test.quizzes)),
            "",
        ]

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines += [
        f"Machine: {cpu}, {os.cpu_count()} cores shared with other jobs (load average at start "
        f"{load0[0]:.1f}, at end {os.getloadavg()[0]:.1f}), numpy {np.__version__}, Python "
        f"{platform.python_version()}. Every figure comes from one run of "
        "`benchmarks/bench_sudoku.py`; the machine was contended, so absolute times are upper "
        "bounds.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
