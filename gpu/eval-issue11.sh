#!/usr/bin/env bash
# Optional GPU evaluation of the issue-11 runs (if the call has time left after training):
# votes over K restarts on 1,000 RRN-style OOD boards, every rule scored on the same restarts,
# restart 0 deterministic (--anchor), budgets T = 16..256, fixed T (no halting), then K=64 with
# halting. Runs with restart noise first (the others have one restart). Each command is capped.
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
for name in aug-n1u-s0 wide-d128-aug-n1u long-e60-aug-n1u aug-n2u-s0 aug-n05u-s0 \
            aug-n1u-rand-s0; do
  run=$RUNS/$name
  [ -d "$run" ] || continue
  mkdir -p "$OUT/$name"
  for k in 16 64; do
    timeout "$CAP" "$py" -m sadyn.cli eval "$run" --data ood --n 1000 --steps 16,32,64,128,256 \
      --votes "$k" --vote "$RULES" --anchor --device cuda --quiet \
      --out "$OUT/$name/vote-ood_K${k}_n1000_halt-none.json" > "$OUT/$name/vote-K$k.log" 2>&1 \
      || echo "$name K=$k: exit $?"
  done
  timeout "$CAP" "$py" -m sadyn.cli eval "$run" --data id --n 1000 --steps 16,32,64 \
    --deterministic --device cuda --quiet --out "$OUT/$name/eval-id.json" \
    > "$OUT/$name/eval-id.log" 2>&1 || echo "$name id: exit $?"
  timeout "$CAP" "$py" -m sadyn.cli eval "$run" --data ood --n 1000 --steps 16,32,64,128,256 \
    --deterministic --device cuda --quiet --out "$OUT/$name/eval-ood.json" \
    > "$OUT/$name/eval-ood.log" 2>&1 || echo "$name ood: exit $?"
done
