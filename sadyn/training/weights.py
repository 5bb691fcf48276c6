"""Choose between a run's online (raw) and EMA weights on a validation split.

A run cut by its budget can end with an EMA that still mixes weights from before and after a
fast transition (the paper-width ItrSA of results/paper-gpu: raw weights 92.7% ID, EMA 0%).
Which weights a run reports must then be chosen, and chosen on puzzles that are neither
trained on nor used for the reported figures: a validation split (``satnet:valid``, drawn
from its own generator stream). A test set (``id``, ``ood``, any ``<kind>:test``) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sadyn.errors import SadynError
from sadyn.sudoku import resolve_dataset
from sadyn.training.checkpoint import build_from_checkpoint, read_checkpoint
from sadyn.training.evaluation import accuracy_at_steps

#: the default validation split: SATNet-style puzzles from the valid stream (not train, not test)
VALIDATION = "satnet:valid"


def validation_set(spec: str, n: int, seed: int = 0) -> Any:
    """The puzzles of ``spec``, refusing a test split (by name or by the set's metadata)."""
    if spec in ("id", "ood") or spec.endswith(":test"):
        raise SadynError(
            f"{spec!r} is a test set: choose weights on a validation split (e.g. {VALIDATION})"
        )
    puzzles = resolve_dataset(spec, n=n, seed=seed)
    if (getattr(puzzles, "meta", None) or {}).get("split") == "test":
        raise SadynError(f"{spec!r} holds a test split: choose weights on a validation split")
    return puzzles


def choose_weights(
    run: str | Path,
    *,
    validation: str = VALIDATION,
    n: int = 500,
    steps: int = 16,
    which: str = "latest",
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate the raw and EMA weights of a run's checkpoint on ``n`` validation puzzles at
    ``steps`` loops; the higher board accuracy wins (cell accuracy breaks a tie, then EMA).

    Returns:
        ``{"weights": "raw" | "ema", "step", "validation", "n", "steps", "board_accuracy":
        {"raw", "ema"}, "cell_accuracy": {"raw", "ema"}}``.
    """
    puzzles = validation_set(validation, n, seed)
    ckpt = read_checkpoint(run, which)
    scores: dict[str, dict[str, float]] = {"board_accuracy": {}, "cell_accuracy": {}}
    for weights in ("raw", "ema"):
        model = build_from_checkpoint(ckpt, weights, device=device)
        acc = accuracy_at_steps(model, puzzles, [steps], seed=seed, device=device)
        for key in scores:
            scores[key][weights] = acc[key][steps]
    board, cell = scores["board_accuracy"], scores["cell_accuracy"]
    raw_wins = (board["raw"], cell["raw"]) > (board["ema"], cell["ema"])
    return {
        "weights": "raw" if raw_wins else "ema",
        "step": ckpt.meta.get("step"),
        "validation": validation,
        "n": len(puzzles),
        "steps": steps,
        **scores,
    }
