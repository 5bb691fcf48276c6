#!/usr/bin/env bash
# Voting over K restarts of one run of the test-time compute study on 1,000 RRN-style OOD boards: every rule scored
# on the same restarts (restart 0 is the deterministic start, --anchor), budgets T = 16..256,
# with or without adaptive halting.
#
# usage: scripts/vote-test-time-compute.sh RUN_DIR NAME [K=16] [HALT=none] [N=1000]
set -euo pipefail
RUN=${1:?usage: vote-test-time-compute.sh RUN_DIR NAME [K] [HALT] [N]}
NAME=${2:?name}
K=${3:-16}
HALT=${4:-none}
N=${5:-1000}
OUT=results/test-time-compute/$NAME
mkdir -p "$OUT"
tag="K${K}_n${N}_halt-${HALT//[:,]/-}"
export OMP_NUM_THREADS=1
.venv/bin/sadyn eval "$RUN" --data ood --n "$N" --steps 16,32,64,128,256 --votes "$K" \
  --vote confidence,verifier,energy,energy-last,energy-sum,energy-final,stability --anchor \
  --halt "$HALT" --threads 1 --quiet --out "$OUT/vote-ood_${tag}.json" | tee "$OUT/vote-ood_${tag}.log"
