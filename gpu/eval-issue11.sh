#!/usr/bin/env bash
# Optional GPU evaluation of the issue-11 runs (if the call has time left after training), on
# 1,000 RRN-style OOD boards, budgets T = 16..256, fixed T (no halting), every vote rule scored
# on the same restarts, restart 0 deterministic (--anchor):
#   - runs trained with restart noise: K = 16 and 64 with their own noise;
#   - runs trained without it: K = 16 with test-time restart noise sigma = 0.1 and 0.3;
#   - every run: the deterministic single run, ID (T = 16, 32, 64) and OOD.
# Each command is capped at SECONDS_PER_COMMAND.
#
# usage: gpu/eval-issue11.sh RUNS_DIR OUT_DIR [SECONDS_PER_COMMAND=60]
set -uo pipefail
RUNS=${1:?usage: eval-issue11.sh RUNS_DIR OUT_DIR [SECONDS]}
OUT=${2:?out dir}
CAP=${3:-60}
RULES=confidence,verifier,energy,energy-last,energy-sum,energy-final,stability
py=${PYTHON:-python3}  # the machine's python with torch; the package from this checkout
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d .gpu/data ] && export SADYN_DATA_DIR="$(pwd)/.gpu/data"
[ -f .gpu/sudoku17-royle.txt.gz ] && export SADYN_SUDOKU17="$(pwd)/.gpu/sudoku17-royle.txt.gz"
T=16,32,64,128,256
ev() {  # ev NAME TAG ARGS...: one capped sadyn eval of run NAME into OUT/NAME/TAG.json
  local name=$1 tag=$2
  shift 2
  timeout "$CAP" "$py" -m sadyn.cli eval "$RUNS/$name" --device cuda --quiet \
    --out "$OUT/$name/$tag.json" "$@" > "$OUT/$name/$tag.log" 2>&1 || echo "$name $tag: exit $?"
}
for name in aug-n1u-rand-s0 long-e60-aug-n1u-rand aug-n05u-rand-s0 aug-n1u-s0; do
  [ -d "$RUNS/$name" ] || continue
  mkdir -p "$OUT/$name"
  for k in 16 64; do
    ev "$name" "vote-ood_K${k}_n1000_halt-none" --data ood --n 1000 --steps $T --votes "$k" \
      --vote "$RULES" --anchor
  done
done
for name in aug-s0 wide-d128-aug long-e60-aug aug-rand-s0 wide-d128-aug-rand aug-s1; do
  [ -d "$RUNS/$name" ] || continue
  mkdir -p "$OUT/$name"
  for sigma in 0.1 0.3; do
    ev "$name" "vote-ood_K16_n1000_halt-none_noise$sigma" --data ood --n 1000 --steps $T \
      --votes 16 --vote "$RULES" --anchor --restart-noise "$sigma"
  done
done
for d in "$RUNS"/*/; do
  name=$(basename "$d")
  mkdir -p "$OUT/$name"
  ev "$name" eval-id --data id --n 1000 --steps 16,32,64 --deterministic
  ev "$name" eval-ood --data ood --n 1000 --steps $T --deterministic
done
