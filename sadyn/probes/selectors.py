"""Verifier-free selectors: calibration of a vote score, and the data a learned selector is
trained on.

A selector scores each restart of a board without the solution and without the Sudoku rules;
the vote keeps the restart with the highest score (:mod:`sadyn.probes.voting`), and a halting
rule can stop a board once a score is high enough (:mod:`sadyn.probes.halting`). How well a
score separates right boards from wrong ones, whatever its scale, is its AUROC
(:func:`auroc`): the probability that a right board outscores a wrong one, ties counting 1/2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from sadyn.errors import SadynError
from sadyn.nn.selector import SelectorData, selector_features
from sadyn.sudoku import PuzzleSet

__all__ = ["auroc", "collect_selector_data"]


def auroc(scores: Tensor | np.ndarray | Sequence[float], labels) -> float:
    """Area under the ROC curve of ``scores`` (N,) against bool ``labels`` (N,), by the rank
    formula ``(sum of the positives' ranks - n1 (n1 + 1) / 2) / (n1 n0)`` with average ranks for
    ties (the Mann-Whitney U over n1 n0): a tied pair counts 1/2. NaN scores rank lowest (a
    diverged restart never wins a vote). NaN when one class is empty."""
    s = np.asarray(torch.as_tensor(scores).double().cpu(), dtype=np.float64).reshape(-1)
    y = np.asarray(torch.as_tensor(labels).bool().cpu()).reshape(-1)
    if s.shape != y.shape:
        raise SadynError(f"auroc: {s.shape[0]} scores but {y.shape[0]} labels")
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.nan_to_num(s, nan=-np.inf), method="average")
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@torch.no_grad()
def collect_selector_data(
    model: nn.Module,
    puzzles: PuzzleSet,
    times: Sequence[int],
    *,
    restarts: int = 8,
    noise: float | None = 0.3,
    seed: int = 0,
    batch_rows: int = 256,
) -> SelectorData:
    """Roll out ``restarts`` starts of every board of ``puzzles`` (restart 0 deterministic, the
    others drawn with the model's ``init_noise`` set to ``noise``, None: its own) to
    ``max(times)`` loops and keep the selector features and labels at each loop count."""
    from sadyn.probes.accuracy import restart_noise_context  # accuracy imports this module

    times = sorted(set(int(t) for t in times))
    if not times or times[0] < 1:
        raise SadynError(f"selector data: loop counts must be >= 1, got {list(times)}")
    if restarts < 1:
        raise SadynError(f"selector data: restarts must be >= 1, got {restarts}")
    quizzes, solutions = puzzles.to_torch()
    gen = torch.Generator().manual_seed(seed)
    parts: list[tuple[Tensor, ...]] = []
    per = max(1, batch_rows // restarts)
    model.eval()
    with restart_noise_context(model, noise):
        for lo in range(0, len(quizzes), per):
            ids = torch.arange(lo, min(lo + per, len(quizzes))).repeat_interleave(restarts)
            parts += _rollout_samples(model, quizzes[ids], solutions[ids], ids, times, gen)
    cols = list(zip(*parts, strict=True))
    return SelectorData(*(torch.cat(c) for c in cols))


def _rollout_samples(model, q, s, ids, times, gen) -> list[tuple[Tensor, ...]]:
    """One batch of rows (restarts consecutive, the first of each board deterministic)."""
    restarts = int((ids == ids[0]).sum())
    given = q > 0
    cond = model.encode(q)
    x = model.init_state(cond, given, generator=gen)
    x0 = model.init_state(cond, given, deterministic=True)
    anchor = (torch.arange(len(q)) % restarts) == 0
    x = torch.where(anchor[:, None, None], x0, x)
    out, prev = [], x
    for t in range(1, times[-1] + 1):
        y = model.drive(x, cond)
        prev, x = x, model.step(x, cond, drive=y)
        if t in times:
            y_t = model.drive(x, cond)
            logits = model.readout(x)
            pred = logits.argmax(-1) + 1
            cell_ok = (pred == s) | given
            out.append(
                (
                    selector_features(x, y_t, logits, prev).half(),
                    ~given,
                    cell_ok,
                    cell_ok.all(-1),
                    torch.full((len(q),), t),
                    ids.clone(),
                )
            )
    return out
