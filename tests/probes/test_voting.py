"""Vote rules on crafted energies and confidences, and voting through ``evaluate`` with a stub
model whose restarts are right exactly when their (known) score is high."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sadyn.errors import SadynError
from sadyn.models import LoopOutput
from sadyn.probes.accuracy import evaluate
from sadyn.probes.voting import select_votes, vote_scores
from sadyn.sudoku import PuzzleSet


def test_energy_votes_pick_lowest_sum_or_last():
    # 3 restarts, energies of X_0..X_3 (rows: t, columns: restart)
    energies = torch.tensor(
        [
            [9.0, -9.0, 0.0],  # X_0: excluded from the sum
            [-5.0, 0.0, -1.0],
            [-5.0, 0.0, -1.0],
            [0.0, -2.0, -3.0],
        ]
    )
    # sums over X_1..X_3: -10, -2, -5 -> restart 0; last E(X_3): 0, -2, -3 -> restart 2
    assert select_votes(vote_scores("energy-sum", 3, energies=energies)[None]).item() == 0
    assert select_votes(vote_scores("energy-last", 3, energies=energies)[None]).item() == 2
    # at t = 1 the two rules agree: lowest E(X_1) is restart 0
    assert select_votes(vote_scores("energy-last", 1, energies=energies)[None]).item() == 0
    with pytest.raises(SadynError, match="outside"):
        vote_scores("energy-sum", 4, energies=energies)


def test_confidence_vote_counts_blank_cells_only():
    s = 4
    blank = torch.tensor([[True, True, False, False]] * 2)
    logits = torch.zeros(2, s, 9)
    logits[0, :2, 0] = 2.0  # restart 0: moderately sure on the blanks
    logits[1, :2, 0] = 1.0  # restart 1: less sure on the blanks ...
    logits[1, 2:, 0] = 50.0  # ... but certain on the givens, which must not count
    score = vote_scores("confidence", 1, logits=logits, blank=blank)
    p0 = math.exp(2) / (math.exp(2) + 8)
    assert score[0].item() == pytest.approx(p0)
    assert select_votes(score[None]).item() == 0


def test_selection_ties_keep_the_first_and_nan_never_wins():
    scores = torch.tensor([[1.0, 3.0, 3.0], [math.nan, -1.0, -2.0], [math.nan] * 3])
    assert select_votes(scores).tolist() == [1, 1, 0]


class ScoredRestarts(nn.Module):
    """Stub looped model: each row draws u ~ U(0,1) from the generator; a row answers its board
    correctly iff u > 0.5; its pseudo-energy is -u at every step and its readout confidence
    grows with u. So the best-scored restart is right iff any restart is."""

    def __init__(self, puzzles: PuzzleSet):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.answers = {
            tuple(q.tolist()): torch.as_tensor(s, dtype=torch.long)
            for q, s in zip(puzzles.quizzes, puzzles.solutions, strict=True)
        }

    def forward(
        self,
        q,
        steps,
        *,
        generator=None,
        deterministic=False,
        readout_at=(),
        return_energies=False,
        **_,
    ):
        b = q.shape[0]
        u = torch.rand(b, generator=generator)
        sol = torch.stack([self.answers[tuple(row.tolist())] for row in q])
        wrong = sol % 9 + 1
        digits = torch.where((u > 0.5)[:, None], sol, wrong)
        logits = torch.nn.functional.one_hot(digits - 1, 9).float() * (1 + 5 * u)[:, None, None]
        energies = (-u).expand(steps + 1, b).clone() if return_energies else None
        return LoopOutput(
            logits=logits, logits_at={t: logits for t in readout_at}, energies=energies
        )


def _puzzles(n=12, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([[(3 * (r % 3) + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)])
    sols = np.stack([base.reshape(-1)] * n)
    sols = (sols + np.arange(n)[:, None]) % 9 + 1  # distinct boards (digit relabellings)
    quiz = np.where(rng.random(sols.shape) < 0.5, sols, 0)
    return PuzzleSet(quiz.astype(np.uint8), sols.astype(np.uint8), "crafted")


@pytest.mark.parametrize("rule", ["energy-sum", "energy-last", "confidence"])
def test_voting_picks_the_best_scored_restart(rule):
    puzzles = _puzzles()
    model = ScoredRestarts(puzzles)
    res = evaluate(model, puzzles, [2, 4], votes=5, vote=rule, batch_size=20, seed=1)
    # the chosen restart has the largest u: right iff any restart is right
    assert res["board_accuracy"] == res["oracle_board_accuracy"]
    assert res["oracle_board_accuracy"][0] > res["mean_board_accuracy"][0] > 0
    again = evaluate(model, puzzles, [2, 4], votes=5, vote=rule, batch_size=20, seed=1)
    assert again["board_accuracy"] == res["board_accuracy"]


def test_votes_split_across_chunks_still_pick_the_best():
    """K larger than the batch: one board at a time, votes in sub-chunks, running best."""
    puzzles = _puzzles(4)
    model = ScoredRestarts(puzzles)
    res = evaluate(model, puzzles, [3], votes=7, vote="energy-last", batch_size=3, seed=2)
    assert res["board_accuracy"] == res["oracle_board_accuracy"]


def test_voting_needs_a_rule():
    puzzles = _puzzles(2)
    with pytest.raises(SadynError, match="vote rule"):
        evaluate(ScoredRestarts(puzzles), puzzles, [2], votes=3)
