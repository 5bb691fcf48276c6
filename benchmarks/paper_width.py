"""Paper-width models at initialization (D=512, H=8: the ``paper`` preset's model config),
for the paper-scale probe benchmarks and the committed analysis of an untrained AKOrN.

``python benchmarks/paper_width.py DIR --model akorn`` writes a checkpoint folder (EMA weights
= the initial weights, step 0) that ``sadyn analyze DIR`` loads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sadyn.models import build_model
from sadyn.training.checkpoint import save_checkpoint
from sadyn.training.presets import get_preset


def paper_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """The ``paper`` preset's model (``kind`` = itrsa or akorn) at initialization."""
    config = get_preset("paper", model={"model": kind}).model
    torch.manual_seed(seed)
    return build_model(config).eval()


def write_checkpoint(out: Path, kind: str, seed: int = 0) -> Path:
    """A checkpoint folder of :func:`paper_model` (EMA file only: the weights evaluated)."""
    model = paper_model(kind, seed)
    weights = dict(model.state_dict())
    ckpt = save_checkpoint(
        out,
        step=0,
        model={},
        ema=weights,
        state={},
        meta={
            "model_config": model.config,
            "note": f"the paper preset's {kind} at initialization (torch.manual_seed({seed})), "
            "untrained",
        },
    )
    return ckpt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="akorn", choices=("itrsa", "akorn"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(write_checkpoint(args.out, args.model, args.seed))


if __name__ == "__main__":
    main()
