"""``sadyn data``: make the Sudoku data sets and inspect puzzle files.

sadyn data make satnet --out DIR [--n N] [--seed S] [--split train,test]
    -> DIR/satnet-train.csv, DIR/satnet-test.csv
sadyn data make rrn --out DIR [--split test] [--pool sudoku17.txt.gz]   -> DIR/rrn-test.csv
sadyn data stats FILE [--json OUT] [--no-unique]      (FILE may be - for stdin)

RRN-style sets are made from Royle's 17-clue list, found through --pool, $SADYN_SUDOKU17, the
data folder or the project's shared/data; without it they fall back to sadyn-made minimal
puzzles (easier), say so, and record the pool as "fallback".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sadyn.cli._args import add_quiet
from sadyn.errors import SadynError
from sadyn.io import atomic_write_json

DEFAULT_SPLITS = {"satnet": "train,test", "rrn": "test"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="make Sudoku data sets, check puzzle files",
        description=__doc__,
    )
    sub = parser.add_subparsers(dest="data_command", required=True)

    make = sub.add_parser(
        "make",
        help="make a SATNet-style or RRN-style data set (deterministic by seed, cached)",
        description="Make a data set and write <out>/<kind>-<split>.csv (+ .meta.json), e.g. "
        "satnet-train.csv, satnet-test.csv, rrn-test.csv. SATNet-style: "
        "9,000 train / 1,000 test from one 10k set. RRN-style: 18,000 test (1,000 per extra-"
        "givens count), 18,000 valid, 180,000 train, on Royle's 17-clue list.",
    )
    make.add_argument(
        "kind", choices=("satnet", "rrn"), help="SATNet-style (ID) or RRN-style (OOD, hard)"
    )
    make.add_argument(
        "--out", required=True, type=Path, help="output folder (files <kind>-<split>.csv)"
    )
    make.add_argument(
        "--n", type=int, default=None, help="puzzles per split (default: the recipe's size)"
    )
    make.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    make.add_argument(
        "--split",
        default=None,
        help="comma-separated splits among train, "
        "valid, test (default: satnet train,test; rrn test)",
    )
    make.add_argument(
        "--pool",
        type=Path,
        default=None,
        help="Royle's 17-clue list (default: "
        "$SADYN_SUDOKU17, the data folder, or the project's shared/data)",
    )
    make.add_argument(
        "--box-rule",
        choices=("park", "exact"),
        default="park",
        help="SATNet pluck box test: Park's (as SATNet) or the exact one",
    )
    make.add_argument("--gzip", action="store_true", help="write .csv.gz")
    make.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    make.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (default: $SADYN_DATA_DIR or ~/.cache/sadyn/data)",
    )
    add_quiet(make)
    make.set_defaults(func=run_make)

    stats = sub.add_parser(
        "stats",
        help="count, givens histogram, uniqueness and validity of a puzzle file",
        description="Read a puzzle file (CSV quiz,solution, .gz, SATNet folder, or a quiz-only "
        "list such as Royle's) and report its statistics. Exit status: 0 all puzzles unique and "
        "consistent, 1 some are not, 2 the file is malformed.",
    )
    stats.add_argument(
        "file", type=Path, help="a puzzle file (.csv, .csv.gz, quiz list, SATNet folder; - = stdin)"
    )
    stats.add_argument("--no-unique", action="store_true", help="skip the uniqueness check")
    stats.add_argument(
        "--check-duplicates", action="store_true", help="treat repeated quizzes as an error"
    )
    stats.add_argument("--json", type=Path, default=None, help="also write the stats as JSON")
    add_quiet(stats)
    stats.set_defaults(func=run_stats)


def run(args: argparse.Namespace) -> int:
    return int(args.func(args))


def histogram_text(hist: dict[int, int], width: int = 40) -> str:
    """Render {givens: count} as text bars, one line per givens count in the range."""
    if not hist:
        return "  (empty)"
    peak = max(hist.values())
    lines = []
    for g in range(min(hist), max(hist) + 1):
        c = hist.get(g, 0)
        bar = "#" * max(round(width * c / peak), 1 if c else 0)
        lines.append(f"  {g:3d} {c:8d} {bar}")
    return "\n".join(lines)


def _summary(stats: dict[str, Any]) -> str:
    return (
        f"{stats['count']} puzzles, givens mean {stats['givens_mean']:.2f} (std "
        f"{stats['givens_std']:.2f}), range {stats['givens_min']}-{stats['givens_max']}"
    )


def run_make(args: argparse.Namespace) -> int:
    from sadyn.sudoku.datasets import SPLITS, load_or_make, pool_record
    from sadyn.sudoku.formats import write_csv

    splits = [s.strip() for s in (args.split or DEFAULT_SPLITS[args.kind]).split(",") if s.strip()]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise SadynError(f"unknown split(s) {unknown}; choose among {', '.join(SPLITS)}")
    for split in splits:
        puzzles = load_or_make(
            args.kind,
            split,
            n=args.n,
            seed=args.seed,
            cache_dir=args.cache_dir,
            progress=not args.quiet,
            pool=args.pool,
            box_rule=args.box_rule,
            use_cache=not args.no_cache,
        )
        out = args.out / f"{args.kind}-{split}.csv{'.gz' if args.gzip else ''}"
        write_csv(puzzles, out)
        stats = puzzles.stats()
        print(f"{out}: {_summary(stats)}")
        print(f"  source: {puzzles.source}")
        if args.kind == "rrn":
            print(f"  17-clue pool: {pool_record(puzzles)} (sha256, or fallback)")
        print(histogram_text(stats["givens_histogram"]))
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from sadyn.sudoku.board import valid_solutions
    from sadyn.sudoku.formats import read_any, read_puzzles
    from sadyn.sudoku.solver import solve_many

    path: Path = args.file
    stdin = str(path) == "-"
    if not stdin and not path.exists():
        raise SadynError(f"{path}: file not found")
    lines = None
    if not stdin and (
        (path.is_dir() and (path / "features.pt").exists()) or path.suffix == ".pt"
    ):  # SATNet tensors: puzzles are counted, not lines
        puzzles = read_puzzles(path, check_duplicates=args.check_duplicates)
        quizzes, solutions, source = puzzles.quizzes, puzzles.solutions, puzzles.source
    else:  # one pass, so a pipe works: quiz,solution rows or a quiz-only list (Royle's)
        found, qf, lines = read_any(path, check_duplicates=args.check_duplicates)
        if qf is not None:
            quizzes, solutions = qf.quizzes, None
            source = f"quiz-only file {'<stdin>' if stdin else path} (sha256 {qf.sha256})"
        else:
            assert found is not None
            quizzes, solutions, source = found.quizzes, found.solutions, found.source
    givens = (quizzes != 0).sum(axis=1)
    values, counts = np.unique(givens, return_counts=True)
    hist = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    stats: dict[str, Any] = {
        "file": str(path),
        "source": source,
        "count": len(quizzes),
        "givens_mean": float(givens.mean()),
        "givens_std": float(givens.std()),
        "givens_min": int(givens.min()),
        "givens_max": int(givens.max()),
        "givens_histogram": hist,
    }
    if solutions is not None:
        # read_puzzles has already rejected any invalid solution or disagreeing quiz
        stats["solutions_valid"] = bool(valid_solutions(solutions).all())
    print(f"{path}: {_summary(stats)}")
    print(f"  source: {source}")
    if "FALLBACK" in source:
        print("  note: made WITHOUT Royle's 17-clue list; easier than the real RRN sudoku-hard")
    print("  givens histogram:")
    print(histogram_text(hist))
    status = 0
    if not args.no_unique:
        n_sol, found, nodes = solve_many(
            quizzes, 2, progress=not args.quiet, desc="uniqueness check"
        )
        bad = np.flatnonzero(n_sol != 1)
        stats["unique"] = int((n_sol == 1).sum())
        stats["no_solution"] = int((n_sol == 0).sum())
        stats["several_solutions"] = int((n_sol > 1).sum())
        stats["singles_solvable"] = int(((n_sol == 1) & (nodes == 1)).sum())
        stats["mean_search_nodes"] = float(nodes.mean())
        print(
            f"  uniqueness (exact solver): {stats['unique']}/{len(quizzes)} unique, "
            f"{stats['no_solution']} without solution, {stats['several_solutions']} with several"
        )
        print(
            f"  singles-solvable (no search): {stats['singles_solvable']}/{len(quizzes)}; "
            f"mean search nodes {stats['mean_search_nodes']:.2f}"
        )
        if solutions is not None:
            mismatch = (n_sol == 1) & (found != solutions).any(axis=1)
            stats["solver_agrees"] = not bool(mismatch.any())
            bad = np.union1d(bad, np.flatnonzero(mismatch))
        if len(bad):
            shown = ", ".join(
                f"line {lines[i]}" if lines is not None else f"puzzle {i + 1}" for i in bad[:10]
            )
            print(f"  problems at: {shown}{' ...' if len(bad) > 10 else ''}", file=sys.stderr)
            status = 1
    if args.json is not None:
        atomic_write_json(args.json, stats)
    return status
