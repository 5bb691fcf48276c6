"""Restart diversity (issue 11): the ItrSA ``init_noise`` option on the Norm(C) start, and the
symmetry augmentation of training puzzles through the training loop."""

import json

import pytest
import torch

from sadyn.models import build_model
from sadyn.models.config import ModelConfigError
from sadyn.training.config import ConfigError, TrainConfig

SMALL = {
    "model": "itrsa",
    "dim": 16,
    "heads": 2,
    "pos": "rcb",
    "input_scale": 1.0,
    "init": "cond",
    "readout": "mlp",
}


def _inputs(model, b=5):
    torch.manual_seed(3)
    q = torch.randint(0, 10, (b, 81))
    return q, model.encode(q), q > 0


def test_noise_is_sigma_times_the_cond_norm_on_blanks_only():
    sigma = 0.7
    torch.manual_seed(0)
    noisy = build_model({**SMALL, "init_noise": sigma})
    _, cond, given = _inputs(noisy)
    x = noisy.init_state(cond, given, generator=torch.Generator().manual_seed(5))
    # by hand: Norm(C + sigma ||C_i|| n_i / sqrt(D)) on blanks, Norm(C) on givens
    n = torch.randn(cond.shape, generator=torch.Generator().manual_seed(5))
    raw = cond + sigma * cond.norm(dim=-1, keepdim=True) * n / 16**0.5
    expect = noisy.norm(torch.where(given[..., None], cond, raw))
    torch.testing.assert_close(x, expect)
    plain = noisy.norm(cond)
    assert torch.equal(x[given], plain[given])
    assert (x[~given] - plain[~given]).norm(dim=-1).min() > 0
    # the deterministic start is Norm(C) itself: the single run of the preset is unchanged
    assert torch.equal(noisy.init_state(cond, given, deterministic=True), plain)


def test_uniform_sigma_varies_per_board_and_zero_noise_is_the_old_start():
    torch.manual_seed(0)
    model = build_model({**SMALL, "init_noise": 2.0, "init_noise_dist": "uniform"})
    _, cond, given = _inputs(model, 64)
    blank = ~given
    gen = torch.Generator().manual_seed(1)
    x = model.init_state(cond, given, generator=gen)
    drift = ((x - model.norm(cond)).norm(dim=-1) * blank).sum(1) / blank.sum(1)  # (B,)
    assert drift.std() / drift.mean() > 0.3  # boards see different noise scales
    base = build_model(SMALL)
    base.load_state_dict(model.state_dict())
    assert torch.equal(base.init_state(cond, given, generator=gen), base.norm(cond))


def test_restarts_follow_different_trajectories():
    torch.manual_seed(0)
    model = build_model({**SMALL, "init_noise": 1.0}).eval()
    q = torch.randint(0, 10, (1, 81)).expand(4, 81)
    with torch.no_grad():
        out = model(q, 6, generator=torch.Generator().manual_seed(2), return_states=True)
    final = out.states[-1]
    assert (final[1:] - final[0]).abs().amax() > 1e-3


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"init_noise": -0.1}, "init_noise must be >= 0"),
        ({"init_noise": 0.5, "init": "akorn"}, "init='cond'"),
        ({"init_noise": 0.5, "init_noise_dist": "gamma"}, "init_noise_dist"),
    ],
)
def test_noise_options_are_validated(bad, match):
    with pytest.raises(ModelConfigError, match=match):
        build_model({**SMALL, **bad})


def test_augment_field_is_validated():
    assert TrainConfig(augment="full").augment == "full"
    with pytest.raises(ConfigError, match="augment must be one of"):
        TrainConfig(augment="rotate")


@pytest.mark.slow
def test_augmented_training_is_deterministic_and_differs(tmp_path):
    """Two runs with augment=full end on the same weights; without augmentation they differ."""
    from sadyn.training.loop import train
    from sadyn.training.presets import get_preset

    def run(name, augment):
        cfg = get_preset("tiny", augment=augment, eval_every=0, ckpt_every=0, threads=1)
        train(cfg, tmp_path / name, progress=False)
        return json.loads((tmp_path / name / "summary.json").read_text())["final_loss"]

    a, b, c = run("a", "full"), run("b", "full"), run("c", "none")
    assert a == b and a != c


def test_test_time_restart_noise_on_a_model_trained_without_it():
    from sadyn.errors import SadynError
    from sadyn.probes.accuracy import evaluate, restart_noise_context
    from sadyn.sudoku import PuzzleSet

    torch.manual_seed(0)
    model = build_model(SMALL).eval()
    torch.manual_seed(1)
    sols = torch.randint(1, 10, (6, 81))
    quiz = torch.where(torch.rand(6, 81) < 0.5, sols, torch.zeros_like(sols))
    puzzles = PuzzleSet(quiz.numpy().astype("uint8"), sols.numpy().astype("uint8"), "random")
    from sadyn.probes.accuracy import run_restarts

    q = quiz[:1].expand(4, 81)
    s = sols[:1].expand(4, 81)

    def confidences():
        gen = torch.Generator().manual_seed(0)
        return run_restarts(model, q, s, [4], rules=("confidence",), generator=gen).scores[
            "confidence"
        ][:, 0]

    assert torch.unique(confidences()).numel() == 1  # Norm(C): every restart is the same run
    with restart_noise_context(model, 2.0):
        assert torch.unique(confidences()).numel() == 4  # four different trajectories
    noisy = evaluate(model, puzzles, [4], votes=4, vote="confidence", seed=0, restart_noise=2.0)
    assert noisy["restart_noise"] == 2.0
    assert model.cfg.init_noise == 0.0  # restored
    with restart_noise_context(model, 0.3):
        assert model.cfg.init_noise == 0.3
    akorn = build_model({**SMALL, "init": "akorn"})
    with pytest.raises(SadynError, match="init='cond'"):
        evaluate(akorn, puzzles, [2], votes=2, vote="confidence", restart_noise=0.5)


def test_votes_on_a_deterministic_start_warn():
    from sadyn.probes.accuracy import evaluate
    from sadyn.sudoku import PuzzleSet

    model = build_model(SMALL).eval()
    sols = torch.randint(1, 10, (2, 81))
    puzzles = PuzzleSet(sols.numpy().astype("uint8"), sols.numpy().astype("uint8"), "full")
    with pytest.warns(UserWarning, match="same run"):
        evaluate(model, puzzles, [1], votes=2, vote="confidence")
