"""Sudoku accuracy of a looped model against the loop count, with voting over random restarts.

One run per batch up to the largest loop count reads out at every requested count
(``forward(readout_at=...)``), so the whole test-time-scaling curve costs one trajectory.
Voting over K initial states repeats each board K times inside the batch (one forward for
boards x votes, no Python loop over boards) and keeps, per board and per loop count, the
restart the vote rule prefers (:mod:`sadyn.probes.voting`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from sadyn.errors import SadynError
from sadyn.probes.voting import VOTE_RULES, select_votes, vote_scores
from sadyn.sudoku import PuzzleSet
from sadyn.sudoku.metrics import board_correct

DEFAULT_STEPS = (16, 32, 64, 128, 256)


def _chunks(n: int, votes: int, rows: int) -> Iterator[tuple[slice, int, int]]:
    """(boards, first vote, last vote + 1) chunks of at most ``rows`` model rows: whole boards
    when K <= rows, otherwise one board at a time with its votes split."""
    if votes <= rows:
        per = rows // votes
        for lo in range(0, n, per):
            yield slice(lo, min(lo + per, n)), 0, votes
    else:
        for b in range(n):
            for v in range(0, votes, rows):
                yield slice(b, b + 1), v, min(v + rows, votes)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    puzzles: PuzzleSet,
    steps: Sequence[int] = DEFAULT_STEPS,
    *,
    votes: int = 1,
    vote: str = "none",
    batch_size: int = 1000,
    seed: int = 0,
    deterministic: bool = False,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Board and cell accuracy of ``model`` on ``puzzles`` at each loop count in ``steps``.

    votes: K restarts per board (K > 1 needs a ``vote`` rule: energy-sum, energy-last,
        confidence). batch_size: model rows (boards x votes) per forward. The restarts draw
        from one generator seeded with ``seed``: same seed and batch size, same numbers.
    Returns a JSON-able dict: ``steps``, ``n``, ``votes``, ``vote``, ``board_accuracy`` and
    ``cell_accuracy`` (lists aligned with ``steps``; of the voted answer when K > 1), with K > 1
    also ``mean_board_accuracy`` (a single random restart, averaged over the K) and
    ``oracle_board_accuracy`` (any restart right), ``by_givens`` (board accuracy per number of
    givens), ``wall_time_s`` and ``boards_per_s``.
    """
    grid = sorted(set(int(t) for t in steps))
    if not grid or grid[0] < 1:
        raise SadynError(f"loop counts must be positive integers, got {list(steps)}")
    if votes < 1:
        raise SadynError(f"votes must be >= 1, got {votes}")
    if vote not in VOTE_RULES:
        raise SadynError(f"unknown vote rule {vote!r} (choose from {VOTE_RULES})")
    if votes > 1 and vote == "none":
        raise SadynError("votes > 1 needs a vote rule: energy-sum, energy-last or confidence")
    if len(puzzles) == 0:
        raise SadynError("no puzzles to evaluate")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    rule = vote if votes > 1 else "none"
    need_energy = rule.startswith("energy")

    quizzes, solutions = (t.to(device) for t in puzzles.to_torch())
    n, g = len(quizzes), len(grid)
    gen = torch.Generator(device=device).manual_seed(seed)
    best_score = torch.full((n, g), -math.inf, device=device)
    best_board = torch.zeros(n, g, dtype=torch.bool, device=device)
    best_cells = torch.zeros(n, g, dtype=torch.long, device=device)
    right_votes = torch.zeros(n, g, dtype=torch.long, device=device)  # restarts that solve it
    blank = quizzes == 0

    was_training = model.training
    model.eval()
    start = time.perf_counter()
    chunks = list(_chunks(n, votes, max(batch_size, 1)))
    for boards, v0, v1 in tqdm(chunks, desc="eval", disable=not progress, leave=False):
        k = v1 - v0
        q = quizzes[boards].repeat_interleave(k, 0)  # (b*k, S): board-major, votes inner
        s = solutions[boards].repeat_interleave(k, 0)
        out = model(
            q,
            grid[-1],
            generator=gen,
            deterministic=deterministic,
            readout_at=grid,
            return_energies=need_energy,
        )
        b = q.shape[0] // k
        for j, t in enumerate(grid):
            logits = out.logits_at[t]
            pred = logits.argmax(-1) + 1
            ok = board_correct(pred, q, s).view(b, k)
            cells = ((pred == s) & (q == 0)).sum(-1).view(b, k)
            right_votes[boards, j] += ok.sum(1)
            if rule == "none":
                score = torch.zeros(b, k, device=device)
            else:
                score = vote_scores(
                    rule, t, logits=logits, blank=q == 0, energies=out.energies
                ).view(b, k)
            pick = select_votes(score)
            rows = torch.arange(b, device=device)
            top = score[rows, pick]
            better = top > best_score[boards, j]  # strict: earlier restarts win ties
            best_score[boards, j] = torch.where(better, top, best_score[boards, j])
            best_board[boards, j] = torch.where(better, ok[rows, pick], best_board[boards, j])
            best_cells[boards, j] = torch.where(better, cells[rows, pick], best_cells[boards, j])
    model.train(was_training)
    wall = time.perf_counter() - start

    result: dict[str, Any] = {
        "steps": grid,
        "n": n,
        "votes": votes,
        "vote": rule,
        "seed": seed,
        "board_accuracy": best_board.float().mean(0).tolist(),
        "cell_accuracy": (best_cells.sum(0).float() / blank.sum().clamp(min=1)).tolist(),
    }
    if votes > 1:
        result["mean_board_accuracy"] = (right_votes.float() / votes).mean(0).tolist()
        result["oracle_board_accuracy"] = (right_votes > 0).float().mean(0).tolist()
    givens = (~blank).sum(1)
    levels = sorted(set(givens.tolist()))
    result["by_givens"] = {
        "givens": levels,
        "count": [int((givens == v).sum()) for v in levels],
        "board_accuracy": [best_board[givens == v].float().mean(0).tolist() for v in levels],
    }
    result["wall_time_s"] = wall
    result["boards_per_s"] = n / wall if wall > 0 else math.inf
    return result


def accuracy_figure(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A ``line`` figure spec (results-file format): board accuracy (%) vs loop count, one
    series per dataset name in ``results``."""
    series = []
    for name, res in results.items():
        series.append(
            {
                "label": f"{name} board",
                "x": res["steps"],
                "y": [100 * a for a in res["board_accuracy"]],
                "marker": "o",
            }
        )
        if "oracle_board_accuracy" in res:
            series.append(
                {
                    "label": f"{name} oracle (any of {res['votes']})",
                    "x": res["steps"],
                    "y": [100 * a for a in res["oracle_board_accuracy"]],
                    "linestyle": "--",
                }
            )
    return {
        "kind": "line",
        "series": series,
        "xlabel": "loop count T",
        "xscale": "log",
        "ylabel": "board accuracy (%)",
        "title": "accuracy vs loop count",
    }


def plot_accuracy(
    results: dict[str, dict[str, Any]], out_png: str | Path, *, title: str | None = None
) -> Path:
    """Draw :func:`accuracy_figure` to ``out_png`` (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = accuracy_figure(results)
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for s in spec["series"]:
        ax.plot(
            s["x"],
            s["y"],
            marker=s.get("marker"),
            linestyle=s.get("linestyle", "-"),
            label=s["label"],
        )
    ax.set_xscale("log", base=2)
    ax.set(xlabel=spec["xlabel"], ylabel=spec["ylabel"], title=title or spec["title"])
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per (dataset, loop count)."""
    lines = [f"{'data':<12} {'T':>5} {'board %':>8} {'cell %':>8}"]
    voted = any("oracle_board_accuracy" in r for r in results.values())
    if voted:
        lines[0] += f" {'single %':>9} {'oracle %':>9}"
    for name, res in results.items():
        for j, t in enumerate(res["steps"]):
            row = (
                f"{name:<12} {t:>5} {100 * res['board_accuracy'][j]:>8.2f} "
                f"{100 * res['cell_accuracy'][j]:>8.2f}"
            )
            if "oracle_board_accuracy" in res:
                row += (
                    f" {100 * res['mean_board_accuracy'][j]:>9.2f}"
                    f" {100 * res['oracle_board_accuracy'][j]:>9.2f}"
                )
            lines.append(row)
    return "\n".join(lines)
