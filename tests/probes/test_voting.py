"""Vote rules on crafted energies, confidences, boards and residuals; the reference E-vote
against a hand-computed sum on a real model's trajectory; and voting through ``evaluate`` with
a stub looped model whose restarts are right exactly when their (known) quality is high."""

import math

import numpy as np
import pytest
import torch

from sadyn.errors import SadynError
from sadyn.models import LoopedModel, build_model
from sadyn.probes.accuracy import evaluate, run_restarts
from sadyn.probes.voting import (
    VOTE_RULES,
    board_conflicts,
    energy_score,
    parse_rules,
    select_votes,
    vote_scores,
)
from sadyn.sudoku import PuzzleSet

# 3 restarts, energies of X_0..X_3 (rows: t, columns: restart)
ENERGIES = torch.tensor(
    [
        [9.0, -9.0, 0.0],
        [-5.0, 0.0, -1.0],
        [-5.0, 0.0, -1.0],
        [0.0, -2.0, -3.0],
    ]
)


def test_energy_rules_conventions_and_picks():
    pick = lambda rule, t: select_votes(vote_scores(rule, t, energies=ENERGIES)[None]).item()  # noqa: E731
    # reference sum over X_0..X_2 at t=3: -1, -9, -2 -> restart 1 (X_0 counts)
    assert energy_score("energy", 3, ENERGIES).tolist() == [1.0, 9.0, 2.0]
    assert pick("energy", 3) == 1
    # reference last = E(X_2): -5, 0, -1 -> restart 0
    assert pick("energy-last", 3) == 0
    # sadyn's sum over X_1..X_3: -10, -2, -5 -> restart 0; final E(X_3): 0, -2, -3 -> restart 2
    assert pick("energy-sum", 3) == 0
    assert pick("energy-final", 3) == 2
    # at t = 1: reference sum = E(X_0) = reference last
    assert pick("energy", 1) == pick("energy-last", 1) == 1
    with pytest.raises(SadynError, match="outside"):
        vote_scores("energy", 4, energies=ENERGIES)
    with pytest.raises(SadynError, match="pseudo-energies"):
        vote_scores("energy", 2)


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


def _grid() -> torch.Tensor:
    base = [[(3 * (r % 3) + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)]
    return torch.tensor(base).reshape(81)


def test_board_conflicts_counts_repeats_and_changed_givens():
    sol = _grid()
    quiz = torch.where(torch.arange(81) % 3 == 0, sol, torch.zeros_like(sol))
    assert board_conflicts(sol[None], quiz[None]).item() == 0
    bad = sol.clone()
    bad[1] = sol[2]  # row 0 and box 0 repeat a digit, column 1 repeats it too: 3 repeats
    assert board_conflicts(bad[None], quiz[None]).item() == 3
    relabelled = sol % 9 + 1  # a valid grid, but every given changed
    assert board_conflicts(relabelled[None], quiz[None]).item() == int((quiz > 0).sum())


def test_verifier_prefers_fewest_conflicts_then_confidence():
    sol = _grid()
    quiz = torch.where(torch.arange(81) % 2 == 0, sol, torch.zeros_like(sol))
    one_off = sol.clone()
    one_off[1] = sol[2]  # 3 conflicts
    boards = torch.stack([one_off, sol, sol])
    sure = torch.tensor([30.0, 2.0, 3.0])  # the wrong board is the most confident
    logits = torch.nn.functional.one_hot(boards - 1, 9).float() * sure[:, None, None]
    score = vote_scores("verifier", 1, logits=logits, quizzes=quiz.expand(3, 81))
    conf = vote_scores("confidence", 1, logits=logits, quizzes=quiz.expand(3, 81))
    assert select_votes(conf[None]).item() == 0  # C-vote takes the confident wrong board
    assert select_votes(score[None]).item() == 2  # the verifier: valid, then more confident
    assert score[0].item() == pytest.approx(conf[0].item() - 3)


def test_stability_vote_picks_smallest_residual():
    score = vote_scores("stability", 5, residual=torch.tensor([0.3, 0.01, 0.2]))
    assert select_votes(score[None]).item() == 1
    with pytest.raises(SadynError, match="residual"):
        vote_scores("stability", 5)


def test_selection_ties_keep_the_first_and_nan_never_wins():
    scores = torch.tensor([[1.0, 3.0, 3.0], [math.nan, -1.0, -2.0], [math.nan] * 3])
    assert select_votes(scores).tolist() == [1, 1, 0]


def test_parse_rules():
    assert parse_rules("all") == tuple(r for r in VOTE_RULES[1:] if r not in ("learned", "ftle"))
    assert "ftle" in VOTE_RULES  # a rule, only left out of "all" for its cost
    assert parse_rules("confidence, verifier,confidence") == ("confidence", "verifier")
    with pytest.raises(SadynError, match="unknown vote rule"):
        parse_rules("majority")
    with pytest.raises(SadynError, match="cannot be combined"):
        parse_rules("none,energy")


def test_reference_evote_matches_a_hand_computed_sum():
    """run_restarts' energy scores on a real model equal sums over forward()'s energy list."""
    torch.manual_seed(0)
    model = build_model({"model": "itrsa", "dim": 16, "heads": 2}).eval()  # init: akorn noise
    q = torch.as_tensor(_puzzles(6).quizzes, dtype=torch.long)
    s = torch.as_tensor(_puzzles(6).solutions, dtype=torch.long)
    grid = [1, 3, 5]
    rules = ("energy", "energy-last", "energy-sum", "energy-final")
    rec = run_restarts(model, q, s, grid, rules=rules, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(q, 5, generator=torch.Generator().manual_seed(3), return_energies=True)
    e = out.energies.double()  # (6, rows): E(X_0..X_5)
    for j, t in enumerate(grid):
        hand = {
            "energy": -sum(e[s_] for s_ in range(t)),  # X_0 .. X_{t-1}
            "energy-last": -e[t - 1],
            "energy-sum": -sum(e[s_] for s_ in range(1, t + 1)),
            "energy-final": -e[t],
        }
        for rule in rules:
            torch.testing.assert_close(
                rec.scores[rule][:, j].double(), hand[rule], rtol=1e-5, atol=1e-4
            )


class ScoredRestarts(LoopedModel):
    """Stub looped model. Each row draws a quality u ~ U(0, 1) (channel 0 of its state); it
    answers its board right iff u > 0.5 (else a relabelled grid that changes every given). Its
    pseudo-energy is -u at every step, its readout confidence grows with u and its state
    oscillates with amplitude 1 - u: every rule prefers the largest u, so the voted restart is
    right iff any restart is."""

    name = "stub"

    def __init__(self, puzzles: PuzzleSet):
        super().__init__(type("Cfg", (), {"dim": 11})())
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.answers = {
            tuple(int(v) for v in q): torch.as_tensor(s, dtype=torch.long)
            for q, s in zip(puzzles.quizzes, puzzles.solutions, strict=True)
        }

    def encode(self, puzzles):
        sol = torch.stack([self.answers[tuple(int(v) for v in row)] for row in puzzles])
        c = torch.zeros(*puzzles.shape, 11)
        c[..., 1:10] = torch.nn.functional.one_hot(sol - 1, 9).float()
        return c

    def init_state(self, cond, given, *, generator=None, deterministic=False):
        u = (
            torch.full((cond.shape[0],), 0.75)
            if deterministic
            else torch.rand(cond.shape[0], generator=generator)
        )
        x = cond.clone()
        x[..., 0] = u[:, None]
        x[..., 10] = (1 - u)[:, None]
        return x

    def readout(self, x):
        u = x[:, 0, 0]
        sol = x[..., 1:10].argmax(-1) + 1
        digits = torch.where((u > 0.5)[:, None], sol, sol % 9 + 1)
        return torch.nn.functional.one_hot(digits - 1, 9).float() * (1 + 5 * u)[:, None, None]

    def drive(self, x, cond):
        y = torch.zeros_like(x)
        y[..., 0] = 1.0 / 81  # pseudo-energy -sum(x * y) = -u
        return y

    def step(self, x, cond, *, drive=None):
        x = x.clone()
        x[..., 10] = -x[..., 10]  # residual 2 (1 - u) sqrt(81)
        return x


def _puzzles(n=12, seed=0):
    rng = np.random.default_rng(seed)
    sols = np.stack([_grid().numpy()] * n)
    sols = (sols + np.arange(n)[:, None]) % 9 + 1  # distinct boards (digit relabellings)
    quiz = np.where(rng.random(sols.shape) < 0.5, sols, 0)
    return PuzzleSet(quiz.astype(np.uint8), sols.astype(np.uint8), "crafted")


# this stub's restarts differ in u only: its energy never changes, its decoded board never
# moves, it has no selector head; energy-slope, persistence, learned and ftle are tested on
# trajectories built for them (tests/probes/test_selectors.py)
@pytest.mark.parametrize(
    "rule",
    [r for r in VOTE_RULES[1:] if r not in ("energy-slope", "persistence", "learned", "ftle")],
)
def test_voting_picks_the_best_scored_restart(rule):
    puzzles = _puzzles()
    model = ScoredRestarts(puzzles)
    res = evaluate(model, puzzles, [2, 4], votes=5, vote=rule, batch_size=20, seed=1)
    # the chosen restart has the largest u: right iff any restart is right
    assert res["board_accuracy"] == res["oracle_board_accuracy"]
    assert res["oracle_board_accuracy"][0] > res["mean_board_accuracy"][0] > 0
    again = evaluate(model, puzzles, [2, 4], votes=5, vote=rule, batch_size=20, seed=1)
    assert again["board_accuracy"] == res["board_accuracy"]


def test_all_rules_scored_on_the_same_restarts():
    puzzles = _puzzles()
    res = evaluate(ScoredRestarts(puzzles), puzzles, [3], votes=4, vote="all", seed=5)
    assert set(res["rules"]) == set(VOTE_RULES[1:]) - {
        "learned",
        "ftle",
    }  # learned: a head; ftle: named only
    assert res["vote"] == "energy"
    for name, r in res["rules"].items():
        if name in ("energy-slope", "persistence"):  # all tied on this stub: restart 0 wins
            continue
        assert r["board_accuracy"] == res["oracle_board_accuracy"]


def test_votes_split_across_chunks_still_pick_the_best():
    """K larger than the batch: one board at a time, votes in sub-chunks, running best."""
    puzzles = _puzzles(4)
    model = ScoredRestarts(puzzles)
    res = evaluate(model, puzzles, [3], votes=7, vote="energy-last", batch_size=3, seed=2)
    assert res["board_accuracy"] == res["oracle_board_accuracy"]


def test_anchor_restart_is_deterministic():
    """With anchor=True restart 0 starts from the deterministic state (u = 0.75: right)."""
    puzzles = _puzzles(6)
    res = evaluate(ScoredRestarts(puzzles), puzzles, [2], votes=3, vote="confidence", anchor=True)
    assert res["oracle_board_accuracy"] == [1.0]


def test_voting_needs_a_rule():
    puzzles = _puzzles(2)
    with pytest.raises(SadynError, match="vote rule"):
        evaluate(ScoredRestarts(puzzles), puzzles, [2], votes=3)


def test_valid_halting_stops_right_restarts_after_one_step():
    """The stub decodes the solution from X_0 on when u > 0.5 (valid, keeps the givens): those
    rows halt at t = 1, the others run the whole budget; answers are unchanged."""
    puzzles = _puzzles()
    model = ScoredRestarts(puzzles)
    plain = evaluate(model, puzzles, [4, 8], votes=5, vote="verifier", seed=3)
    halted = evaluate(model, puzzles, [4, 8], votes=5, vote="verifier", seed=3, halt="valid")
    assert halted["rules"] == plain["rules"]
    frac = plain["mean_board_accuracy"]  # fraction of restarts that are right
    assert halted["mean_loops"] == pytest.approx(
        [f + (1 - f) * t for f, t in zip(frac, [4, 8], strict=True)]
    )


def test_distinct_answers_counts_different_decoded_boards():
    """The stub answers right (u > 0.5) or one fixed wrong grid: 1 distinct answer when all K
    restarts agree, 2 otherwise; a deterministic start gives 1."""
    puzzles = _puzzles()
    model = ScoredRestarts(puzzles)
    res = evaluate(model, puzzles, [2], votes=5, vote="confidence", seed=1)
    q, _ = puzzles.to_torch()
    gen = torch.Generator().manual_seed(1)
    u = torch.rand(len(q) * 5, generator=gen).view(len(q), 5)  # the stub's draws, in order
    right = (u > 0.5).sum(1)
    expect = (1 + ((right > 0) & (right < 5)).double()).mean().item()
    assert res["distinct_answers"] == [pytest.approx(expect)]
    det = evaluate(model, puzzles, [2], votes=5, vote="confidence", deterministic=True)
    assert det["distinct_answers"] == [1.0]
