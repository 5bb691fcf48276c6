"""Verifier-free selectors: AUROC against hand computations, each selector picking the right
restart on trajectories built for it, and confident halting saving loops without changing the
selected answer where it must not."""

import math

import numpy as np
import pytest
import torch

from sadyn.errors import SadynError
from sadyn.models import LoopedModel, build_model
from sadyn.nn.selector import SelectorConfig, SelectorHead
from sadyn.probes.accuracy import VoteSettings, evaluate
from sadyn.probes.halting import HaltRule, halting_steps
from sadyn.probes.restarts import run_restarts
from sadyn.probes.selectors import auroc
from sadyn.sudoku import PuzzleSet

# ------------------------------------------------------------------------------- AUROC


def test_auroc_matches_a_hand_count_with_ties():
    # positives 0.9, 0.5; negatives 0.5, 0.1, 0.5. Pairs (pos > neg 1, tie 1/2):
    # 0.9: 1 + 1 + 1 = 3; 0.5: 1/2 + 1 + 1/2 = 2 -> 5 of 6 pairs
    scores = [0.9, 0.5, 0.5, 0.1, 0.5]
    labels = [True, True, False, False, False]
    assert auroc(scores, labels) == pytest.approx(5 / 6, abs=0)
    assert auroc([0.2, 0.1], [True, False]) == 1.0
    assert auroc([0.1, 0.2], [True, False]) == 0.0
    assert auroc([0.3, 0.3, 0.3], [True, False, True]) == 0.5  # all tied: chance
    assert math.isnan(auroc([0.1, 0.2], [True, True]))  # one class empty


def test_auroc_equals_the_pair_count_on_random_scores_with_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 6, 200).astype(float)  # few values: many ties
    y = rng.random(200) < 0.3
    pos, neg = s[y], s[~y]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    # the rank sum is exact in float64 for these sizes (integers and halves below 2^53)
    assert auroc(torch.tensor(s), torch.tensor(y)) == pytest.approx(
        pairs / (len(pos) * len(neg)), rel=1e-12
    )


def test_auroc_ranks_nan_lowest_and_checks_lengths():
    assert auroc([float("nan"), 0.0], [False, True]) == 1.0
    assert auroc([float("nan"), 0.0], [True, False]) == 0.0
    with pytest.raises(SadynError, match="labels"):
        auroc([0.1, 0.2], [True])


# ------------------------------------------------------- selectors on built trajectories


def _grid() -> torch.Tensor:
    base = [[(3 * (r % 3) + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)]
    return torch.tensor(base).reshape(81)


def _puzzles(n=12, seed=0) -> PuzzleSet:
    rng = np.random.default_rng(seed)
    sols = np.stack([_grid().numpy()] * n)
    sols = (sols + np.arange(n)[:, None]) % 9 + 1  # distinct boards (digit relabellings)
    quiz = np.where(rng.random(sols.shape) < 0.5, sols, 0)
    return PuzzleSet(quiz.astype(np.uint8), sols.astype(np.uint8), "crafted")


class SettleOrCycle(LoopedModel):
    """Restart u ~ U(0, 1) (channel 0). u > 0.5: a fixed point that decodes the solution.
    u <= 0.5: channel 10 flips sign every step, the decoded board alternates between two wrong
    boards and the pseudo-energy -(u + x_10) alternates: it never settles. So settling,
    energy-slope and persistence must each pick a right restart whenever there is one."""

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
        u = torch.rand(cond.shape[0], generator=generator)
        x = cond.clone()
        x[..., 0] = u[:, None]
        x[..., 10] = 1.0
        return x

    def readout(self, x):
        u, phase = x[:, 0, 0], x[:, 0, 10]
        sol = x[..., 1:10].argmax(-1) + 1
        wrong = torch.where((phase > 0)[:, None], sol % 9 + 1, (sol + 1) % 9 + 1)
        digits = torch.where((u > 0.5)[:, None], sol, wrong)
        return torch.nn.functional.one_hot(digits - 1, 9).float()

    def drive(self, x, cond):
        y = torch.zeros_like(x)
        y[..., 0] = 1.0 / 81
        y[..., 10] = 1.0 / 81  # pseudo-energy -sum(x * y) = -(u + x_10)
        return y

    def step(self, x, cond, *, drive=None):
        x = x.clone()
        cycle = x[:, 0, 0] <= 0.5
        x[cycle, :, 10] = -x[cycle, :, 10]
        return x


def _u_head(dim: int = 11) -> SelectorHead:
    """A head whose cell logit is 20 (u - 0.5) (u = the state's channel 0): it knows."""
    head = SelectorHead(SelectorConfig(dim=dim, hidden=1))
    lin = torch.nn.Linear(2 * dim + 5, 1)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, 0] = 20.0
        lin.bias.fill_(-10.0)
    head.net = lin
    return head.eval()


@pytest.mark.parametrize("rule", ["settling", "energy-slope", "persistence", "learned"])
def test_each_selector_picks_a_right_restart_when_there_is_one(rule):
    puzzles = _puzzles()
    model = SettleOrCycle(puzzles)
    res = evaluate(
        model, puzzles, [3, 6], votes=5, vote=rule, batch_size=20, seed=1, selector=_u_head()
    )
    assert res["oracle_board_accuracy"][0] > res["mean_board_accuracy"][0] > 0  # a real choice
    assert res["board_accuracy"] == res["oracle_board_accuracy"]
    assert res["auroc"][rule] == [1.0, 1.0]  # separates right from wrong restarts exactly


class ContractOrExpand(SettleOrCycle):
    """Restart u ~ U(0, 1) as in :class:`SettleOrCycle`; the step scales channel 10 by 1/2
    (u > 0.5, right restarts) or by 2 (u <= 0.5, wrong) and keeps the rest, so the step's
    Jacobian is diag(1, ..., 1, a) per cell: the largest Lyapunov exponent is exactly 0 for a
    right restart and log 2 for a wrong one (the branch on u has zero derivative)."""

    def step(self, x, cond, *, drive=None):
        a = torch.where(x[:, 0, 0] > 0.5, 0.5, 2.0)[:, None, None]
        return torch.cat([x[..., :10], x[..., 10:] * a], -1)


def test_the_ftle_selector_reads_the_known_exponents_and_picks_the_contracting_restart():
    puzzles = _puzzles()
    model = ContractOrExpand(puzzles)
    q, s = puzzles.to_torch()
    gen = torch.Generator().manual_seed(1)
    rec = run_restarts(model, q, s, [40], rules=("ftle",), generator=gen)
    right = rec.ok[:, 0]
    assert 0 < int(right.sum()) < len(right)  # both kinds of restart present
    # The window covers steps 24..39. A unit tangent with squared fraction p_0 in channel 10
    # (about 81/891 for a random start) has (1 - p_t)/p_t = 4^-t (1 - p_0)/p_0 for a = 2, so the
    # growth misses log 2 by about 4^-24 / p_0 < 1e-12 (likewise 0 for a = 1/2); what remains is
    # float32 rounding of one log per step, a few eps32 ~ 1e-6 in the window mean: 1e-5 bounds it.
    expected = torch.where(right, 0.0, -math.log(2.0))  # the score is minus the exponent
    torch.testing.assert_close(rec.scores["ftle"][:, 0], expected, atol=1e-5, rtol=0)
    res = evaluate(model, puzzles, [40], votes=5, vote="ftle", batch_size=20, seed=1)
    assert res["oracle_board_accuracy"][0] > res["mean_board_accuracy"][0] > 0
    assert res["board_accuracy"] == res["oracle_board_accuracy"]
    assert res["auroc"]["ftle"] == [1.0]


def test_the_ftle_selector_leaves_the_trajectories_of_the_other_rules_unchanged():
    puzzles = _puzzles(4)
    model = build_model({"model": "itrsa", "dim": 16, "heads": 2}).eval()
    q, s = puzzles.to_torch()
    runs = [
        run_restarts(model, q, s, [3, 6], rules=rules, generator=torch.Generator().manual_seed(0))
        for rules in (("settling", "confidence"), ("settling", "confidence", "ftle"))
    ]
    assert torch.equal(runs[0].answer, runs[1].answer)
    for rule in ("settling", "confidence"):
        assert torch.equal(runs[0].scores[rule], runs[1].scores[rule])
    assert torch.isfinite(runs[1].scores["ftle"]).all()


def test_the_learned_rule_needs_a_head():
    puzzles = _puzzles(2)
    with pytest.raises(SadynError, match="selector head"):
        evaluate(SettleOrCycle(puzzles), puzzles, [2], votes=2, vote="learned")
    with pytest.raises(SadynError, match="selector head"):
        VoteSettings(votes=2, vote="confidence", halt="any-confident:0.9").checked()


def test_any_confident_halting_on_the_built_case_saves_loops_and_keeps_the_vote():
    puzzles = _puzzles()
    model = SettleOrCycle(puzzles)
    kw = dict(votes=5, vote="learned", batch_size=20, seed=1, selector=_u_head())
    full = evaluate(model, puzzles, [4, 8], **kw)
    cut = evaluate(model, puzzles, [4, 8], halt="any-confident:0.5", **kw)
    assert cut["board_accuracy"] == full["board_accuracy"] == full["oracle_board_accuracy"]
    assert cut["mean_loops"][-1] < full["mean_loops"][-1] == 8


# --------------------------------------------------- confident halting on a real model


def test_confident_parse_and_validation():
    rule = HaltRule.parse("any-confident:0.9,confident:0.99")
    assert (rule.any_confident, rule.confident) == (0.9, 0.99)
    assert rule.board_level and rule.needs_selector and rule.active
    assert HaltRule.parse(str(rule)) == rule
    for bad in ("confident:0", "confident:1.5", "any-confident:x"):
        with pytest.raises(SadynError, match="halting"):
            HaltRule.parse(bad)


def test_confident_halting_keeps_the_pick_at_the_halting_step():
    """With any-confident halting, a board whose restart reaches p at step u stops there: its
    learned-vote pick at every later budget is the pick of the un-halted run at budget u (the
    same trajectories up to u), and boards that never reach p are untouched."""
    torch.manual_seed(0)
    model = build_model(
        {
            "model": "itrsa",
            "dim": 16,
            "heads": 2,
            "pos": "rcb",
            "init": "cond",
            "init_noise": 1.0,
            "readout": "mlp",
        }
    ).eval()
    torch.manual_seed(1)
    head = SelectorHead(SelectorConfig(dim=16, hidden=8)).eval()
    puzzles = _puzzles(6)
    q, s = (t.long() for t in puzzles.to_torch())
    k, steps = 4, 8
    q, s = q.repeat_interleave(k, 0), s.repeat_interleave(k, 0)
    grid = list(range(1, steps + 1))

    def run(halt):
        return run_restarts(
            model,
            q,
            s,
            grid,
            rules=("learned",),
            generator=torch.Generator().manual_seed(3),
            halt=halt,
            group=k,
            selector=head,
        )

    full = run(None)
    lp = full.scores["learned"]  # (R, T): log P(right) at t = 1..T
    # the median over boards of each board's best score: about half the boards reach it
    p = math.exp(float(lp.view(-1, k, steps).amax((1, 2)).median()))
    cut = run(f"any-confident:{p}")
    log_probs = torch.cat([torch.full((1, lp.shape[0]), -math.inf), lp.T])  # t = 0..T
    u = halting_steps(f"any-confident:{p}", log_probs=log_probs, group=k)  # (R,)
    assert 0 < int((u < steps).sum()) < len(u)
    for j, t in enumerate(grid):
        at = torch.minimum(u, torch.tensor(t)) - 1  # the budget each row's answer comes from
        rows = torch.arange(len(u))
        torch.testing.assert_close(cut.answer[:, j], full.answer[rows, at], rtol=0, atol=0)
        pick_cut = cut.scores["learned"][:, j].view(-1, k).argmax(1)
        pick_full = lp[rows, at].view(-1, k).argmax(1)
        assert torch.equal(pick_cut, pick_full)
        assert torch.equal(cut.loops[:, j], at + 1)
    assert cut.loops[:, -1].float().mean() < steps  # loops saved
