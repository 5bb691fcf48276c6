"""Accuracy of a loaded model against the loop count on named puzzle sets, written as a results
file (``sadyn eval``'s pipeline; the exporter of pretrained weights runs it too).

:func:`run_evaluation` draws each set of ``settings.data`` (``id``, ``ood`` or puzzle files,
subset to ``n`` boards by ``data_seed``), runs :func:`sadyn.probes.accuracy.evaluate` on it
(one run per batch read out at every T, optional voting over K restarts and halting), and
writes the results JSON and a PNG of board accuracy against T beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sadyn.errors import SadynError
from sadyn.probes.accuracy import DEFAULT_STEPS, accuracy_figure, evaluate, plot_accuracy
from sadyn.probes.halting import HaltRule


@dataclass
class EvalSettings:
    """The settings of one evaluation (``sadyn eval``'s options of the same names)."""

    data: str = "id,ood"
    steps: list[int] = field(default_factory=lambda: list(DEFAULT_STEPS))
    votes: int = 1
    vote: str = "energy"
    halt: str = "none"
    anchor: bool = False
    restart_noise: float | None = None
    attention: str = "auto"
    n: int | None = None
    seed: int = 0
    data_seed: int = 0
    batch_size: int | None = None
    weights: str = "ema"
    deterministic: bool = False
    quiet: bool = False

    def check(self) -> None:
        if self.votes < 1:
            raise SadynError(f"--votes must be >= 1, got {self.votes}")
        if self.n is not None and self.n < 1:
            raise SadynError(f"--n must be >= 1, got {self.n}")


@dataclass
class Evaluation:
    """What :func:`run_evaluation` wrote: the results file, its figure, and the per-set
    results (``evaluate``'s dicts with ``source``, ``pool_sha256`` and ``data_seed``)."""

    out: Path
    png: Path
    results: dict[str, dict[str, Any]]


def set_name(spec: str) -> str:
    """The name a set's results go under: ``id``, ``ood``, or a puzzle file's stem."""
    return spec if spec in ("id", "ood") else Path(spec).stem


def subset(puzzles: Any, n: int | None, seed: int) -> Any:
    """``n`` boards of ``puzzles`` drawn by ``seed`` (all of them if it has no more)."""
    if n is None or len(puzzles) <= n:
        return puzzles
    rng = np.random.default_rng(seed)
    return puzzles.subset(np.sort(rng.permutation(len(puzzles))[:n]))


def evaluate_sets(
    model: torch.nn.Module, settings: EvalSettings, device: torch.device | str
) -> dict[str, dict[str, Any]]:
    """Accuracy on each set of ``settings.data``: set name -> ``evaluate``'s results."""
    from sadyn.sudoku import resolve_dataset
    from sadyn.sudoku.datasets import pool_record

    s = settings
    vote = s.vote if s.votes > 1 else "none"
    fused = None if s.attention == "auto" else s.attention == "fused"
    results = {}
    for spec in [d for d in s.data.split(",") if d]:
        puzzles = subset(resolve_dataset(spec, n=s.n, seed=s.data_seed), s.n, s.data_seed)
        name = set_name(spec)
        results[name] = evaluate(
            model,
            puzzles,
            s.steps,
            votes=s.votes,
            vote=vote,
            batch_size=s.batch_size,
            seed=s.seed,
            deterministic=s.deterministic,
            device=device,
            progress=not s.quiet,
            halt=HaltRule.parse(s.halt),
            fused=fused,
            anchor=s.anchor,
            restart_noise=s.restart_noise,
        )
        results[name]["source"] = puzzles.source
        results[name]["pool_sha256"] = pool_record(puzzles)  # None unless RRN-style
        results[name]["data_seed"] = s.data_seed
    return results


def run_evaluation(
    model: torch.nn.Module,
    model_config: dict[str, Any],
    meta: dict[str, Any],
    settings: EvalSettings,
    out: str | Path,
    *,
    device: torch.device | str = "cpu",
) -> Evaluation:
    """Evaluate ``model`` (loaded with its config and checkpoint ``meta``: ``path``, ``step``)
    on the sets of ``settings`` and write the results file ``out`` and its PNG beside it."""
    from sadyn.results import write_results

    s = settings
    s.check()
    start = time.perf_counter()
    results = evaluate_sets(model, s, device)
    wall = time.perf_counter() - start
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = plot_accuracy(
        results,
        out.with_suffix(".png"),
        title=f"{model_config.get('model', '')} step {meta['step']}",
    )
    vote = s.vote if s.votes > 1 else "none"
    config = {
        "checkpoint": str(Path(meta["path"])),
        "step": meta["step"],
        "weights": s.weights,
        "model_config": model_config,
        "data": [d for d in s.data.split(",") if d],
        "steps": s.steps,
        "votes": s.votes,
        "vote": vote,
        "n": s.n,
        "data_seed": s.data_seed,
        "batch_size": s.batch_size,
        "deterministic": s.deterministic,
        "halt": str(HaltRule.parse(s.halt)),
        "anchor": s.anchor,
        "restart_noise": s.restart_noise,
        "attention": s.attention,
    }
    write_results(
        out,
        {
            "name": "eval",
            "claim": "accuracy against the loop count (test-time scaling), with voting",
            "config": config,
            "seed": s.seed,
            "wall_time_s": wall,
            "data": results,
            "figures": {"accuracy_vs_loops": accuracy_figure(results)},
        },
    )
    return Evaluation(out, png, results)
