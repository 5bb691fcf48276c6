#!/usr/bin/env python3
"""Train jobs of a sadyn job list on this CPU, one thread per process.

    scripts/train-jobs.py JOBFILE OUT [NAME ...] [--first N] [--workers W]

JOBFILE is a list written by ``sadyn reproduce --export-jobs`` (most decisive first). Without
names the first ``--first`` jobs run. Each job trains as ``python -m sadyn.cli.paper _train``
into ``OUT/NAME`` (a killed job resumes from its checkpoint on the next call; a finished one,
with ``summary.json``, is skipped), its console in ``OUT/logs/NAME.log``. Then install them:
``sadyn reproduce --import-runs OUT --cache CACHE``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("jobfile", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("names", nargs="*", help="job names (default: the first --first jobs)")
    p.add_argument("--first", type=int, default=None, help="run the first N jobs of the list")
    p.add_argument("--workers", type=int, default=1, help="processes at a time (1 thread each)")
    args = p.parse_args()
    jobs = {j["name"]: j for j in json.loads(args.jobfile.read_text(encoding="utf-8"))}
    names = args.names or list(jobs)[: args.first]
    unknown = [n for n in names if n not in jobs]
    if unknown:
        sys.exit(f"{args.jobfile}: no job named {', '.join(unknown)}")
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    todo = [n for n in names if not (out / n / "summary.json").is_file()]
    if len(todo) < len(names):
        print(f"{len(names) - len(todo)} finished job(s) skipped", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running: dict[str, tuple[subprocess.Popen, float, Any]] = {}
    failed = 0
    while todo or running:
        while todo and len(running) < args.workers:
            name = todo.pop(0)
            cfg = {**jobs[name]["config"], "device": "cpu", "threads": 1, "tensorboard": False}
            spec = out / "logs" / f"{name}.config.json"
            spec.write_text(json.dumps(cfg), encoding="utf-8")
            log = open(out / "logs" / f"{name}.log", "a", encoding="utf-8")
            cmd = [sys.executable, "-m", "sadyn.cli.paper", "_train", str(spec), str(out / name)]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            running[name] = (proc, time.time(), log)
            print(f"{time.strftime('%H:%M:%S')} start {name}", flush=True)
        time.sleep(5)
        for name, (proc, t0, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[name]
                failed += proc.returncode != 0
                took = time.time() - t0
                print(f"{time.strftime('%H:%M:%S')} {name} rc={proc.returncode} {took:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
