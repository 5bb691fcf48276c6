#!/usr/bin/env bash
# Optional GPU evaluation of the test-time compute study's runs (if the call has time left after training), on
# 1,000 RRN-style OOD boards, budgets T = 16..256, every vote rule scored on the same restarts,
# restart 0 deterministic (--anchor). Most needed first:
#   1. K = 64 with halting at a valid solution (--halt valid: a trajectory that decodes a valid
#      solution keeping the givens stops there; on CPU this kept solutions a longer run loses):
#      runs trained with restart noise use their own, runs trained without it sigma = 0.3;
#   2. the deterministic single run with --halt valid, every run;
#   3. fixed-T votes: K = 16 and 64 (noise runs), K = 16 at test-time sigma 0.1 / 0.3 (others);
#   4. the deterministic single run, ID (T = 16, 32, 64) and OOD, fixed T (for runs trained
#      without noise the run's own summary.json already holds these numbers).
# Each command is capped at SECONDS_PER_COMMAND.
#
# usage: gpu/eval-test-time-compute.sh RUNS_DIR OUT_DIR [SECONDS_PER_COMMAND=60]
set -uo pipefail
RUNS=${1:?usage: eval-test-time-compute.sh RUNS_DIR OUT_DIR [SECONDS]}
OUT=${2:?out dir}
CAP=${3:-60}
RULES=confidence,verifier,energy,energy-last,energy-sum,energy-final,stability
py=${PYTHON:-python3}  # the machine's python with torch; the package from this checkout
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d .gpu/data ] && export SADYN_DATA_DIR="$(pwd)/.gpu/data"
[ -f .gpu/sudoku17-royle.txt.gz ] && export SADYN_SUDOKU17="$(pwd)/.gpu/sudoku17-royle.txt.gz"
T=16,32,64,128,256
NOISY="aug-n1u-rand-s0 long-e60-aug-n1u-rand aug-n05u-rand-s0 aug-n1u-s0"
CLEAN="wide-d128-aug long-e60-aug wide-d128-aug-rand aug-rand-s0 aug-s0 aug-s1"
ev() {  # ev NAME TAG ARGS...: one capped sadyn eval of run NAME into OUT/NAME/TAG.json
  local name=$1 tag=$2
  shift 2
  [ -d "$RUNS/$name" ] || return 0
  mkdir -p "$OUT/$name"
  timeout "$CAP" "$py" -m sadyn.cli eval "$RUNS/$name" --device cuda --quiet \
    --out "$OUT/$name/$tag.json" "$@" > "$OUT/$name/$tag.log" 2>&1 || echo "$name $tag: exit $?"
}
vote() { ev "$@" --data ood --n 1000 --steps $T --vote "$RULES" --anchor; }
for name in $NOISY; do vote "$name" vote-ood_K64_n1000_halt-valid --votes 64 --halt valid; done
for name in $CLEAN; do
  vote "$name" vote-ood_K64_n1000_halt-valid_noise0.3 --votes 64 --halt valid --restart-noise 0.3
done
for name in $NOISY $CLEAN; do
  ev "$name" eval-ood_halt-valid --data ood --n 1000 --steps $T --deterministic --halt valid
done
for name in $NOISY; do
  for k in 16 64; do vote "$name" "vote-ood_K${k}_n1000_halt-none" --votes "$k"; done
done
for name in $CLEAN; do
  for sigma in 0.1 0.3; do
    vote "$name" "vote-ood_K16_n1000_halt-none_noise$sigma" --votes 16 --restart-noise "$sigma"
  done
done
for name in $NOISY $CLEAN; do
  ev "$name" eval-id --data id --n 1000 --steps 16,32,64 --deterministic
  ev "$name" eval-ood --data ood --n 1000 --steps $T --deterministic
done
