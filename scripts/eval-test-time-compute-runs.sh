#!/usr/bin/env bash
# Single-run evaluation of the test-time compute study's training runs (deterministic start X_0 = Norm(C), the
# path a single run takes): 1,000 RRN-style OOD boards at T = 16..256 and 1,000 SATNet-style ID
# boards at T = 16, 32, 64. Copies each run's config, summary and training log beside the results.
#
# usage: scripts/eval-test-time-compute-runs.sh RUNS_DIR [PARALLEL=2] [NAMES...]
set -euo pipefail
RUNS=${1:?usage: eval-test-time-compute-runs.sh RUNS_DIR [PARALLEL] [NAMES...]}
PAR=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
OUT=results/test-time-compute
export OMP_NUM_THREADS=1
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in "$RUNS"/*/; do names+=("$(basename "$d")"); done
fi
one() {
  local run=$1 name=$2 out=$3
  mkdir -p "$out/$name"
  for f in config.json summary.json log.jsonl; do
    [ -f "$run/$f" ] && cp "$run/$f" "$out/$name/${f/log.jsonl/train-log.jsonl}"
  done
  .venv/bin/sadyn eval "$run" --data ood --n 1000 --steps 16,32,64,128,256 --deterministic \
    --threads 1 --quiet --out "$out/$name/eval-ood.json" > "$out/$name/eval-ood.log" 2>&1
  .venv/bin/sadyn eval "$run" --data id --n 1000 --steps 16,32,64 --deterministic \
    --threads 1 --quiet --out "$out/$name/eval-id.json" > "$out/$name/eval-id.log" 2>&1
  echo "done $name"
}
export -f one
printf '%s\n' "${names[@]}" | xargs -P "$PAR" -I{} bash -c 'one "$0/{}" "{}" "$1"' "$RUNS" "$OUT"
