"""Adaptive halting: parsing, the step each criterion stops at on constructed trajectories, and
the batched evaluation against the same rule applied to whole recorded trajectories."""

import numpy as np
import pytest
import torch

from sadyn.errors import SadynError
from sadyn.models import build_model
from sadyn.probes.accuracy import evaluate
from sadyn.probes.halting import HaltRule, halting_steps
from sadyn.sudoku import PuzzleSet, get_dataset
from sadyn.sudoku.metrics import board_correct


def _grid() -> torch.Tensor:
    base = [[(3 * (r % 3) + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)]
    return torch.tensor(base).reshape(81)


def test_parse_and_str():
    rule = HaltRule.parse("stable:4,valid,residual:1e-3")
    assert (rule.stable, rule.valid, rule.residual) == (4, True, 1e-3)
    assert str(rule) == "stable:4,valid,residual:0.001"
    assert HaltRule.parse(str(rule)) == rule
    assert not HaltRule.parse("none").active and not HaltRule.parse(None).active
    for bad in ("stable", "stable:0", "residual:-1", "valid:2", "often"):
        with pytest.raises(SadynError, match="halting"):
            HaltRule.parse(bad)


def test_stable_and_valid_stop_at_the_right_step():
    sol = _grid()
    quiz = torch.where(torch.arange(81) % 2 == 0, sol, torch.zeros_like(sol))
    wrong = sol.clone()
    wrong[1] = sol[2]  # invalid board
    other = wrong.clone()
    other[3] = sol[5]  # another invalid board
    t_max = 8
    preds = torch.stack([wrong] * (t_max + 1))[:, None].repeat(1, 3, 1)  # (9, 3, 81)
    # row 0: changes at t=1 and t=2 (other, wrong, other ...), then stays: stable from t=2
    preds[1, 0], preds[2, 0] = other, wrong
    preds[3:, 0] = wrong
    # row 1: alternates forever (never stable), valid from t=5
    preds[:, 1] = torch.stack([wrong, other] * 5)[: t_max + 1]
    preds[5:, 1] = sol
    # row 2: alternates forever, never valid
    preds[:, 2] = torch.stack([wrong, other] * 5)[: t_max + 1]
    q = quiz.expand(3, 81)
    # stable:3 needs X_{t-3}..X_t decoded alike: row 0 -> t = 2 + 3 = 5; row 1 -> 5+3 = 8
    assert halting_steps("stable:3", preds=preds, quizzes=q).tolist() == [5, 8, 8]
    assert halting_steps("stable:1", preds=preds, quizzes=q).tolist() == [3, 6, 8]
    assert halting_steps("valid", preds=preds, quizzes=q).tolist() == [8, 5, 8]
    assert halting_steps("stable:3,valid", preds=preds, quizzes=q).tolist() == [5, 5, 8]


def test_residual_stops_at_the_right_step():
    # X_t = (1 + sum_{s<=t} r^s) e: ||X_t - X_{t-1}|| / ||X_t|| = r^t / (1 + sum_{s<=t} r^s)
    r, steps = 0.5, 12
    vals = torch.cumsum(r ** torch.arange(steps + 1.0), 0)
    states = vals[:, None, None, None] * torch.ones(1, 2, 81, 4)
    states[:, 1] *= torch.tensor([1.0, -1.0] * 7)[: steps + 1, None, None]  # flips: never settles
    rel = (r ** torch.arange(1, steps + 1.0)) / vals[1:]
    expect = int(torch.nonzero(rel <= 1e-2)[0]) + 1
    got = halting_steps("residual:1e-2", states=states)
    assert got.tolist() == [expect, steps]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(1)
    model = build_model(
        {"model": "itrsa", "dim": 16, "heads": 2, "readout": "mlp", "init": "akorn"}
    ).eval()
    ps = get_dataset(
        "satnet", "test", n=24, seed=0, progress=False, cache_dir=tmp_path_factory.mktemp("d")
    )
    rng = np.random.default_rng(0)
    quiz = ps.solutions.copy()
    for i in range(len(quiz)):  # a few blanks, so some boards get solved and stay solved
        quiz[i, rng.choice(81, size=1 + i % 4, replace=False)] = 0
    return model, PuzzleSet(quiz, ps.solutions, "easy")


@pytest.mark.parametrize("spec", ["stable:2", "valid", "stable:3,valid", "residual:0.05"])
def test_batched_halting_matches_whole_trajectories(setup, spec):
    model, puzzles = setup
    grid = [2, 5, 9]
    res = evaluate(model, puzzles, grid, batch_size=100, seed=4, halt=spec)
    q, s = (t.long() for t in puzzles.to_torch())
    with torch.no_grad():
        out = model(q, grid[-1], generator=torch.Generator().manual_seed(4), return_states=True)
        preds = torch.stack([model.readout(x).argmax(-1) + 1 for x in out.states])
    tau = halting_steps(spec, preds=preds, quizzes=q, states=out.states)
    for j, t in enumerate(grid):
        stop = torch.clamp(tau, max=t)
        pred = preds[stop, torch.arange(len(q))]
        assert res["board_accuracy"][j] == pytest.approx(
            board_correct(pred, q, s).float().mean().item()
        )
        assert res["mean_loops"][j] == pytest.approx(stop.float().mean().item())
    assert res["halt"] == str(HaltRule.parse(spec))
    if spec != "valid":  # (this untrained model never decodes a valid board)
        assert res["mean_loops"][-1] < grid[-1]  # it does halt some rows early


def test_a_rule_that_never_fires_changes_nothing(setup):
    model, puzzles = setup
    plain = evaluate(model, puzzles, [3, 6], seed=2, votes=3, vote="all")
    never = evaluate(model, puzzles, [3, 6], seed=2, votes=3, vote="all", halt="residual:1e-30")
    assert never["rules"] == plain["rules"]
    assert never["mean_loops"] == [3.0, 6.0] == plain["mean_loops"]


def test_halted_rows_sit_at_their_state_for_the_energy_rules(setup):
    """A row halted at u keeps X_u for the rest of the budget t: its reference E-vote score is
    -(sum_{s<u} E(X_s) + (t - u) E(X_u)), its last -E(X_{t-1}) = -E(X_u) when u < t."""
    from sadyn.probes.accuracy import run_restarts

    model, puzzles = setup
    q, s = (t.long() for t in puzzles.to_torch())
    grid = [2, 5, 9]
    rules = ("energy", "energy-last", "energy-sum", "energy-final")
    rec = run_restarts(
        model, q, s, grid, rules=rules, generator=torch.Generator().manual_seed(4), halt="stable:2"
    )
    with torch.no_grad():
        out = model(
            q,
            grid[-1],
            generator=torch.Generator().manual_seed(4),
            return_states=True,
            return_energies=True,
        )
        preds = torch.stack([model.readout(x).argmax(-1) + 1 for x in out.states])
    tau = halting_steps("stable:2", preds=preds, quizzes=q)
    e = out.energies.double()  # (T+1, R)
    rows = torch.arange(len(q))
    assert (tau < grid[-1]).any()
    for j, t in enumerate(grid):
        u = torch.clamp(tau, max=t)
        extra = (t - u).double()
        csum = torch.cat([torch.zeros(1, len(q)).double(), e.cumsum(0)])  # csum[k] = sum_{s<k}
        e_u = e[u, rows]
        expect = {
            "energy": -(csum[u, rows] + extra * e_u),
            "energy-last": torch.where(extra > 0, -e_u, -e[(u - 1).clamp(min=0), rows]),
            "energy-sum": -(csum[u + 1, rows] - e[0] + extra * e_u),
            "energy-final": -e_u,
        }
        for rule in rules:
            torch.testing.assert_close(
                rec.scores[rule][:, j].double(), expect[rule], rtol=1e-5, atol=1e-4
            )
        assert torch.equal(rec.loops[:, j], u)


def test_any_valid_stops_every_restart_of_a_solved_board():
    sol = _grid()
    quiz = torch.where(torch.arange(81) % 2 == 0, sol, torch.zeros_like(sol))
    wrong = sol.clone()
    wrong[1] = sol[2]
    t_max = 8
    preds = wrong.expand(t_max + 1, 6, 81).clone()  # boards of K=3 restarts: rows 0-2, 3-5
    preds[5:, 1] = sol  # board 0: its restart 1 solves at t=5
    preds[7:, 2] = sol  # ... and restart 2 at t=7 (too late to matter)
    q = quiz.expand(6, 81)
    assert halting_steps("valid", preds=preds, quizzes=q).tolist() == [8, 5, 7, 8, 8, 8]
    got = halting_steps("any-valid", preds=preds, quizzes=q, group=3)
    assert got.tolist() == [5, 5, 5, 8, 8, 8]
    rule = HaltRule.parse("stable:2,any-valid")
    assert rule.any_valid and rule.needs_decode and str(rule) == "stable:2,any-valid"
    assert HaltRule.parse(str(rule)) == rule
    with pytest.raises(SadynError, match="group"):
        halting_steps("any-valid", preds=preds, quizzes=q, group=0)


def test_any_valid_keeps_the_verifier_and_oracle_at_fewer_loops():
    """On a trained model, stopping a board's K restarts when one solves it leaves the verifier
    vote and the oracle exactly as with per-restart ``valid`` halting, at every budget, with
    fewer loops."""
    from sadyn.pretrained import load_pretrained

    model, _, _ = load_pretrained("small-itrsa")
    ps = get_dataset("satnet", "test", n=24, seed=0, progress=False)
    kw = {"votes": 4, "vote": "verifier,confidence", "seed": 3, "restart_noise": 0.5}
    valid = evaluate(model, ps, [2, 4, 8, 16], halt="valid", **kw)
    anyv = evaluate(model, ps, [2, 4, 8, 16], halt="any-valid", **kw)
    assert anyv["rules"]["verifier"] == valid["rules"]["verifier"]
    assert anyv["oracle_board_accuracy"] == valid["oracle_board_accuracy"]
    assert 0 < valid["oracle_board_accuracy"][-1]  # some boards are solved
    assert anyv["mean_loops"][-1] < valid["mean_loops"][-1]
    assert all(a <= b for a, b in zip(anyv["mean_loops"], valid["mean_loops"], strict=True))
    with pytest.raises(SadynError, match="vote_grid"):
        evaluate(model, ps, [4], halt="any-valid", vote_grid=[1, 4], **kw)
