"""Train the selector head of a frozen pretrained model on its own rollouts (RRN-style
training boards: a base pool disjoint from the test boards), check it on validation boards,
and ship it beside the model (``sadyn/pretrained/MODEL.selector.json``).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_selector_head.py \
        --model small-vote-wide --train-boards 200 --valid-boards 48 --cache selector-cache

Rollouts are cached (``--cache``: tensors saved with torch.save, read back with
``weights_only=True``), so a rerun only retrains the head.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sadyn.nn.selector import SelectorData
from sadyn.pretrained import load_pretrained
from sadyn.pretrained.selector import save_selector
from sadyn.probes.selectors import auroc, collect_selector_data
from sadyn.sudoku import get_dataset
from sadyn.training.selector import SelectorTrainConfig, train_selector

# the results this script reads and writes
HERE = Path(__file__).resolve().parents[1] / "results" / "verifier-free-selection"


def data_for(model, split, n, args, cache: Path | None) -> tuple[SelectorData, float]:
    path = None if cache is None else cache / f"{args.model}-{split}-n{n}-K{args.restarts}.pt"
    if path is not None and path.is_file():
        d = torch.load(path, weights_only=True)
        return SelectorData(**d["data"]), d["wall_s"]
    puzzles = get_dataset("rrn", split, n=n, progress=False)
    t0 = time.perf_counter()
    data = collect_selector_data(
        model, puzzles, args.times, restarts=args.restarts, noise=args.noise, seed=args.seed
    )
    wall = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"data": vars(data), "wall_s": wall}, path)
    return data, wall


def per_t_auroc(head, data: SelectorData) -> dict[str, float]:
    with torch.no_grad():
        z = head.cell_logits(data.feats.float())
        score = head.board_log_prob(z, data.blank)
    out = {}
    for t in sorted(set(data.t.tolist())):
        m = data.t == t
        out[str(t)] = auroc(score[m], data.board_ok[m])
    out["all"] = auroc(score, data.board_ok)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="small-vote-wide")
    ap.add_argument("--train-boards", type=int, default=160)
    ap.add_argument("--valid-boards", type=int, default=48)
    ap.add_argument("--restarts", type=int, default=8)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--times", default="8,16,24,32,48,64,96,128,192,256")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--no-ship", action="store_true", help="do not write the pretrained head")
    args = ap.parse_args()
    args.times = [int(t) for t in args.times.split(",")]
    torch.set_num_threads(1)
    model, _, meta = load_pretrained(args.model)
    cache = Path(args.cache) if args.cache else None
    train, t_train = data_for(model, "train", args.train_boards, args, cache)
    print(
        f"train samples {len(train)} ({t_train / 60:.1f} min), "
        f"right {train.board_ok.float().mean():.3f}",
        flush=True,
    )
    valid, t_valid = data_for(model, "valid", args.valid_boards, args, cache)
    print(
        f"valid samples {len(valid)} ({t_valid / 60:.1f} min), "
        f"right {valid.board_ok.float().mean():.3f}",
        flush=True,
    )
    cfg = SelectorTrainConfig(hidden=args.hidden, epochs=args.epochs, seed=args.seed)
    t0 = time.perf_counter()
    head = train_selector(train, int(model.cfg.dim), cfg)
    t_fit = time.perf_counter() - t0
    record = {
        "model": args.model,
        "model_sha256": meta["sha256"],
        "data": {
            "train": f"rrn:train, first {args.train_boards} boards (seed 0)",
            "valid": f"rrn:valid, first {args.valid_boards} boards (seed 0)",
            "restarts": args.restarts,
            "restart_noise": args.noise,
            "anchor": "restart 0 deterministic",
            "times": args.times,
            "samples": {"train": len(train), "valid": len(valid)},
            "right_fraction": {
                "train": float(train.board_ok.float().mean()),
                "valid": float(valid.board_ok.float().mean()),
            },
        },
        "train": {k: v for k, v in vars(cfg).items() if k != "log"},
        "log": cfg.log,
        "wall_minutes": {  # one thread on the shared CPU
            "rollouts_train": t_train / 60,
            "rollouts_valid": t_valid / 60,
            "fit": t_fit / 60,
        },
        "auroc": {"train": per_t_auroc(head, train), "valid": per_t_auroc(head, valid)},
    }
    print(json.dumps(record["auroc"], indent=1), flush=True)
    (HERE / "selector-training.json").write_text(json.dumps(record, indent=2) + "\n")
    if not args.no_ship:
        prov = {k: record[k] for k in ("data", "train", "wall_minutes")}
        prov["trained_on"] = "this 2-core CPU, 1 thread, frozen base model"
        print("wrote", save_selector(head, args.model, meta["sha256"], prov))


if __name__ == "__main__":
    main()
