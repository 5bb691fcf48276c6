"""One call of a resumable training that spans several short calls on a lent GPU.

    python scripts/paper-train-call.py OUT --model itrsa [--from PACK] [--budget-min 8]
        [--preset paper] [--max-mib 15] [--set KEY=JSON ...]

Continues the run packed in ``PACK`` (a folder of ``state.tar.NNN`` pieces and
``state-pack.json``, as a previous call left in its ``OUT/state``), or starts the preset's run
when ``--from`` is not given; trains for ``--budget-min`` minutes of training time (evaluation
and checkpoint included in the stop, not in the budget); packs the full training state into
``OUT/state`` (pieces of at most ``--max-mib`` MiB); chooses raw or EMA weights on the
validation split (``satnet:valid``, never a test set) and writes ``OUT/call.json``: the step
reached, whether the run is complete, the weights chosen and why. The run folder itself stays
in a temporary folder: only ``OUT`` comes back.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from sadyn.io import atomic_write_json
from sadyn.training import get_preset, train
from sadyn.training.packing import pack_run, unpack_run
from sadyn.training.weights import VALIDATION, choose_weights


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="itrsa", help="model kind of the preset (itrsa, akorn)")
    p.add_argument("--preset", default="paper")
    p.add_argument("--from", dest="source", type=Path, default=None, help="a state pack")
    p.add_argument("--budget-min", type=float, default=8.0)
    p.add_argument("--max-mib", type=float, default=15.0)
    p.add_argument("--validation", default=VALIDATION)
    p.add_argument("--validation-n", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON", help="a TrainConfig field"
    )
    return p.parse_args(argv)


def overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    values = {"device": args.device, **overrides(args.set)}
    values["model"] = {"model": args.model, **values.get("model", {})}
    config = get_preset(args.preset, **values)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        if args.source is not None:
            unpack_run(args.source, run_dir)
        # the budget is this call's: a resumed run counts its earlier training time too, so
        # the run's own max_minutes is set to what it has used plus this call's share
        used = _elapsed_minutes(run_dir) if args.source is not None else 0.0
        config = config.replace(max_minutes=used + args.budget_min)
        summary = train(config, run_dir, resume=args.source is not None, progress=False)
        pieces = pack_run(run_dir, args.out / "state", max_bytes=int(args.max_mib * 2**20))
        choice = choose_weights(run_dir, validation=args.validation, n=args.validation_n)
    record = {
        "model": args.model,
        "preset": args.preset,
        "step": summary.step,
        "total_steps": summary.total_steps,
        "complete": summary.status == "completed",
        "status": summary.status,
        "weights": choice,
        "pieces": [p.name for p in pieces],
        "call_wall_s": time.monotonic() - start,
    }
    atomic_write_json(args.out / "call.json", record)
    print(json.dumps({k: v for k, v in record.items() if k != "pieces"}))
    return 0


def _elapsed_minutes(run_dir: Path) -> float:
    from sadyn.training import read_checkpoint

    meta = read_checkpoint(run_dir, files=()).meta
    return float(meta.get("elapsed_s", 0.0)) / 60.0


if __name__ == "__main__":
    sys.exit(main())
