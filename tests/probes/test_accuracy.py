"""Accuracy against the loop count: one run with readouts at every grid point must agree with
separate runs, with the training-time evaluator, and with sudoku.metrics on a plain forward."""

import numpy as np
import pytest
import torch

from sadyn.errors import SadynError
from sadyn.models import build_model
from sadyn.probes.accuracy import accuracy_figure, evaluate, format_table, plot_accuracy
from sadyn.sudoku import PuzzleSet, board_accuracy, cell_accuracy, get_dataset
from sadyn.training.evaluation import accuracy_at_steps


@pytest.fixture(scope="module")
def easy_puzzles(tmp_path_factory):
    """Real puzzles with all but 1-3 blanks filled in: on even boards the blanks hold an 8 (a
    digit the untrained model below often predicts), on odd boards other digits."""
    ps = get_dataset(
        "satnet", "test", n=40, seed=0, progress=False, cache_dir=tmp_path_factory.mktemp("data")
    )
    rng = np.random.default_rng(0)
    quiz = ps.solutions.copy()
    for i in range(len(quiz)):
        cells = np.flatnonzero((ps.quizzes[i] == 0) & ((ps.solutions[i] == 8) == (i % 2 == 0)))
        quiz[i, rng.choice(cells, size=1 + i % 3, replace=False)] = 0
    return PuzzleSet(quiz, ps.solutions, "easy")


@pytest.fixture(scope="module")
def model():
    """An untrained ItrSA with an MLP readout (it predicts few distinct digits, 8 among them)."""
    torch.manual_seed(0)
    return build_model({"model": "itrsa", "dim": 16, "heads": 2, "readout": "mlp"}).eval()


def test_one_run_equals_separate_runs_and_metrics(model, easy_puzzles):
    grid = [1, 3, 6]
    res = evaluate(model, easy_puzzles, grid, batch_size=16, seed=4)
    assert res["steps"] == grid and res["n"] == 40
    for j, t in enumerate(grid):
        alone = evaluate(model, easy_puzzles, [t], batch_size=16, seed=4)
        assert alone["board_accuracy"][0] == res["board_accuracy"][j]
        assert alone["cell_accuracy"][0] == res["cell_accuracy"][j]
    # against sudoku.metrics on a plain forward with the same noise
    q, s = easy_puzzles.to_torch()
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        logits = torch.cat(
            [model(q[i : i + 16], 6, generator=gen).logits for i in range(0, 40, 16)]
        )
    assert res["board_accuracy"][2] == pytest.approx(board_accuracy(logits, q, s))
    assert res["cell_accuracy"][2] == pytest.approx(cell_accuracy(logits, q, s))
    assert any(0 < a < 1 for a in res["board_accuracy"])  # a non-degenerate check


def test_training_evaluator_agrees(model, easy_puzzles):
    res = evaluate(model, easy_puzzles, [2, 5], batch_size=40, seed=9)
    quick = accuracy_at_steps(model, easy_puzzles, [2, 5], batch_size=40, seed=9)
    assert [quick["board_accuracy"][t] for t in (2, 5)] == pytest.approx(res["board_accuracy"])
    assert [quick["cell_accuracy"][t] for t in (2, 5)] == pytest.approx(res["cell_accuracy"])


def test_by_givens_averages_to_the_total(model, easy_puzzles):
    res = evaluate(model, easy_puzzles, [2, 4], batch_size=40, seed=1)
    by = res["by_givens"]
    assert sum(by["count"]) == 40 and by["givens"] == sorted(by["givens"])
    for j in range(2):
        total = sum(c * acc[j] for c, acc in zip(by["count"], by["board_accuracy"], strict=True))
        assert total / 40 == pytest.approx(res["board_accuracy"][j])


def test_seed_determinism_and_votes_with_a_real_model(model, easy_puzzles):
    a = evaluate(model, easy_puzzles, [3], votes=4, vote="confidence", batch_size=40, seed=2)
    b = evaluate(model, easy_puzzles, [3], votes=4, vote="confidence", batch_size=40, seed=2)
    timing = ("wall_time_s", "cpu_time_s", "boards_per_s")
    assert a == {**b, **{key: a[key] for key in timing}}
    assert a["mean_board_accuracy"][0] <= a["oracle_board_accuracy"][0]
    e = evaluate(model, easy_puzzles, [3], votes=4, vote="energy-sum", batch_size=40, seed=2)
    assert e["oracle_board_accuracy"] == a["oracle_board_accuracy"]  # same restarts drawn
    assert e["mean_board_accuracy"] == a["mean_board_accuracy"]


def test_table_figure_and_plot(model, easy_puzzles, tmp_path):
    res = {
        "easy": evaluate(
            model, easy_puzzles, [1, 2], votes=2, vote="energy-last", batch_size=40, seed=0
        )
    }
    table = format_table(res)
    assert len(table.splitlines()) == 3 and "oracle" in table.splitlines()[0]
    spec = accuracy_figure(res)
    assert spec["kind"] == "line" and spec["series"][0]["x"] == [1, 2]
    png = plot_accuracy(res, tmp_path / "acc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fused_attention_gives_the_same_evaluation(easy_puzzles):
    """The fused kernel is the same math: same answers as the explicit softmax (a model with
    the relation bias, the small preset's attention)."""
    from sadyn.probes.accuracy import default_rows, fused_available

    if not fused_available():
        pytest.skip("this build has no fused-attention switch")
    torch.manual_seed(0)
    model = build_model(
        {
            "model": "itrsa",
            "dim": 16,
            "heads": 2,
            "readout": "mlp",
            "pos": "rcb",
            "relation_bias": True,
            "relation_bias_init": 4.0,
            "init": "cond",
            "init_noise": 0.5,
        }
    ).eval()
    kw = {"votes": 3, "vote": "all", "seed": 1, "batch_size": 40}
    a = evaluate(model, easy_puzzles, [2, 6], fused=False, **kw)
    b = evaluate(model, easy_puzzles, [2, 6], fused=True, **kw)
    assert b["fused"] and not a["fused"]
    assert a["rules"] == b["rules"] and a["oracle_board_accuracy"] == b["oracle_board_accuracy"]
    assert default_rows("cpu") >= 1 and evaluate(model, easy_puzzles, [2])["fused"] is False


def test_compute_figure_series_per_k(model, easy_puzzles, tmp_path):
    from sadyn.probes.accuracy import compute_figure, plot_line_spec

    by_k = {
        1: evaluate(model, easy_puzzles, [1, 3], seed=0),
        4: evaluate(model, easy_puzzles, [1, 3], votes=4, vote="confidence,verifier", seed=0),
    }
    spec = compute_figure(by_k, rule="verifier")
    labels = [s["label"] for s in spec["series"]]
    assert labels == ["single run", "K=4 verifier", "K=4 oracle"]
    assert spec["series"][1]["y"] == [
        100 * a for a in by_k[4]["rules"]["verifier"]["board_accuracy"]
    ]
    assert plot_line_spec(spec, tmp_path / "k.png").read_bytes()[:4] == b"\x89PNG"


def test_vote_grid_votes_over_the_first_restarts():
    """``by_votes[K']`` is the vote over restarts 0..K'-1 of the same trajectories: recomputed
    here from the per-restart record of one ``run_restarts`` call with the same noise (the
    pretrained small ItrSA, restart noise 0.6, so restarts differ and some solve)."""
    from sadyn.pretrained import load_pretrained
    from sadyn.probes.accuracy import restart_noise_context, run_restarts, split_by_votes

    model, _, _ = load_pretrained("small-itrsa")
    puzzles = get_dataset("satnet", "test", n=24, seed=1, progress=False)
    k, grid, rules = 4, [8, 16], ("confidence", "verifier")
    res = evaluate(
        model,
        puzzles,
        grid,
        votes=k,
        vote=",".join(rules),
        seed=5,
        vote_grid=[1, 2],
        restart_noise=0.6,
    )
    q, s = (t.long() for t in puzzles.to_torch())
    with restart_noise_context(model, 0.6):
        rec = run_restarts(
            model,
            q.repeat_interleave(k, 0),
            s.repeat_interleave(k, 0),
            grid,
            rules=rules,
            generator=torch.Generator().manual_seed(5),
        )
    ok = rec.ok.view(len(q), k, len(grid)).numpy()
    for kk in (1, 2, 4):
        row = res["by_votes"][str(kk)]
        assert row["oracle_board_accuracy"] == pytest.approx(ok[:, :kk].any(1).mean(0))
        assert row["mean_board_accuracy"] == pytest.approx(ok[:, :kk].mean((0, 1)))
        for rule in rules:
            sc = rec.scores[rule].view(len(q), k, len(grid))[:, :kk].numpy()
            pick = sc.argmax(1)  # (boards, G): first maximum
            want = np.take_along_axis(ok[:, :kk], pick[:, None], 1)[:, 0].mean(0)
            assert row["rules"][rule] == pytest.approx(want)
    assert res["by_votes"]["4"]["rules"]["verifier"] == res["rules"]["verifier"]["board_accuracy"]
    assert res["by_votes"]["1"]["rules"]["verifier"] == res["by_votes"]["1"]["mean_board_accuracy"]
    oracles = [res["by_votes"][str(kk)]["oracle_board_accuracy"][-1] for kk in (1, 2, 4)]
    assert oracles[0] < oracles[2]  # non-degenerate: more restarts, more boards within reach
    split = split_by_votes(res)
    assert sorted(split) == [1, 2, 4] and split[2]["vote"] == "confidence"
    with pytest.raises(SadynError, match="vote_grid"):
        evaluate(model, puzzles, grid, votes=k, vote="verifier", vote_grid=[8])
