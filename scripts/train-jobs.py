#!/usr/bin/env python3
"""Train jobs of a sadyn job list, one process (one CPU thread) per job.

    scripts/train-jobs.py JOBFILE OUT [NAME ...] [--first N] [--workers W] [--device D]
                          [--minutes M] [--compile]

JOBFILE is a list written by ``sadyn reproduce --export-jobs`` (most decisive first). Without
names the first ``--first`` jobs run. Each job trains as ``python -m sadyn.training.jobs _train``
into ``OUT/NAME`` (a killed or stopped job resumes from its checkpoint on the next call; a
completed one is skipped), its console in ``OUT/logs/NAME.log``. With ``--minutes`` every job
stops, checkpointed, that many minutes after this script started (a lent GPU's call limit),
resumed ones included. ``--compile`` compiles each job's loop step (``compile`` does not change
a job's identity; on this CPU it saves 5-30% of an AKOrN step and nothing measurable for
ItrSA, see BENCHMARKS.md). Then install them:
``sadyn reproduce --import-runs OUT --cache CACHE``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sadyn.errors import SadynError
from sadyn.training.jobs import completed, read_jobs, run_jobs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("jobfile", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("names", nargs="*", help="job names (default: the first --first jobs)")
    p.add_argument("--first", type=int, default=None, help="run the first N jobs of the list")
    p.add_argument("--workers", type=int, default=1, help="processes at a time (1 thread each)")
    p.add_argument("--device", default="cpu", help="torch device of every job (e.g. cuda)")
    p.add_argument("--minutes", type=float, default=None, help="stop every job by then")
    p.add_argument("--compile", action="store_true", help="torch.compile each job's loop step")
    args = p.parse_args()
    deadline = None if args.minutes is None else time.time() + 60.0 * args.minutes
    out = args.out.resolve()
    try:
        jobs = {j.name: j for j in read_jobs(args.jobfile, out)}
    except SadynError as exc:
        sys.exit(str(exc))
    names = args.names or list(jobs)[: args.first]
    unknown = [n for n in names if n not in jobs]
    if unknown:
        sys.exit(f"{args.jobfile}: no job named {', '.join(unknown)}")
    todo = [jobs[n] for n in names if not completed(out / n)]
    if len(todo) < len(names):
        print(f"{len(names) - len(todo)} finished job(s) skipped", flush=True)
    failed = run_jobs(
        todo,
        out / "logs",
        workers=args.workers,
        device=args.device,
        deadline=deadline,
        overrides={"threads": 1, "compile": args.compile},
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
