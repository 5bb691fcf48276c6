#!/usr/bin/env bash
# One GPU call: train named jobs of gpu/jobs-claims-small.json side by side, every one stopped and
# checkpointed by the deadline, then pack the runs for the trip back (install them here with
# `sadyn reproduce --import-runs DIR --cache CACHE`; a job stopped by the deadline resumes on
# the CPU with scripts/train-jobs.py and the same names).
#
#   gpu/train-claims-jobs.sh OUT MINUTES NAME...
#
# With RUNS=DIR (e.g. .gpu/runs, carried) the jobs train in DIR, so runs stopped by an earlier
# call's deadline resume from their checkpoints there.
# Runs from the repository root with the machine's python3 and torch; carries .gpu/data (as
# $SADYN_DATA_DIR) and Royle's list .gpu/sudoku17-royle.txt.gz (gpu/README.md).
set -uo pipefail
out=${1:?usage: gpu/train-claims-jobs.sh OUT MINUTES NAME...}
minutes=${2:?minutes}
shift 2
py=${PYTHON:-python3}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d .gpu/data ] && export SADYN_DATA_DIR="$(pwd)/.gpu/data"
[ -f .gpu/sudoku17-royle.txt.gz ] && export SADYN_SUDOKU17="$(pwd)/.gpu/sudoku17-royle.txt.gz"
runs=${RUNS:-$(mktemp -d)/runs}
mkdir -p "$out"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  "$py" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__)'
  "$py" scripts/train-jobs.py gpu/jobs-claims-small.json "$runs" "$@" --workers $# --device cuda \
    --minutes "$minutes"
  echo "train-jobs exit: $?"
  date -u
  "$py" scripts/pack_runs.py "$runs" "$out" --files 6 --max-mib 15
  date -u
} 2>&1 | tee "$out/console.log"
