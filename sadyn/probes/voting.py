"""Voting over K random restarts: scores and selection.

A model with a random initial state gives K different answers to one board from K draws.
A vote keeps one of them, scored without the solution:

- ``energy-sum`` (AKOrN's E-vote, ``--evote_type=sum``): lowest pseudo-energy summed over the
  states the loop produced, ``sum_{s=1..t} E(X_s)`` for a readout at loop count t;
- ``energy-last`` (``--evote_type=last``): lowest ``E(X_t)``, the energy of the read-out state;
- ``confidence`` (C-vote, Kubo et al. 2026): highest mean top-1 softmax probability over the
  blank cells.

AKOrN's code logs the energy of the state *before* each update, so its sum runs over
``X_0..X_{t-1}`` and its "last" is ``E(X_{t-1})``; we score the states that the loop produced
and that the readout sees (``X_1..X_t``), which drops the random start ``X_0`` from the sum.

Scores follow one convention: higher is better; ties keep the earliest vote.
"""

from __future__ import annotations

import torch

from sadyn.errors import SadynError

VOTE_RULES = ("none", "energy-sum", "energy-last", "confidence")


def vote_scores(
    rule: str,
    t: int,
    *,
    logits: torch.Tensor | None = None,
    blank: torch.Tensor | None = None,
    energies: torch.Tensor | None = None,
) -> torch.Tensor:
    """Score of each row (higher = better) for a readout at loop count ``t``.

    logits: (R, S, 9) readout at t (confidence); blank: (R, S) bool mask of blank cells;
    energies: (T+1, R) pseudo-energies of X_0..X_T (energy rules). Returns (R,).
    """
    if rule == "confidence":
        if logits is None or blank is None:
            raise SadynError("the confidence vote needs logits and the blank mask")
        top1 = logits.float().softmax(-1).amax(-1)  # (R, S)
        mask = blank.to(top1.dtype)
        return (top1 * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    if rule in ("energy-sum", "energy-last"):
        if energies is None:
            raise SadynError(f"the {rule} vote needs the pseudo-energies of the trajectory")
        if not 1 <= t < energies.shape[0]:
            raise SadynError(
                f"loop count {t} outside the recorded energies (0..{len(energies) - 1})"
            )
        if rule == "energy-last":
            return -energies[t]
        return -energies[1 : t + 1].sum(0)
    raise SadynError(f"unknown vote rule {rule!r} (choose from {VOTE_RULES[1:]})")


def select_votes(scores: torch.Tensor) -> torch.Tensor:
    """Index of the chosen vote per board: scores (B, K) -> (B,) long, the first maximum."""
    # argmax returns the first maximal index; NaN scores (a diverged restart) never win
    return torch.nan_to_num(scores.float(), nan=-torch.inf).argmax(dim=1)
