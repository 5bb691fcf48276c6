import pytest
import torch
from probes_toys import LinearToy, ToyItrSA, puzzles

from sadyn.errors import DataFormatError, DivergenceError, ShapeError
from sadyn.probes.stepmap import (
    analysis_mode,
    as_puzzle_tensor,
    msa_map,
    rollout,
    single_msa_map,
    single_step_map,
    step_map,
)


def test_rollout_follows_the_step_and_the_seed():
    model = ToyItrSA()
    q = puzzles(3)
    run = rollout(model, q, 5, seed=7)
    assert run.states.shape == (6, 3, 81, 2) and run.dim == 162 and run.steps == 5
    cond = model.encode(q)
    x0 = model.init_state(cond, q > 0, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(run.states[0], x0)
    for t in range(5):
        torch.testing.assert_close(run.states[t + 1], model.step(run.states[t], cond))
    torch.testing.assert_close(rollout(model, q, 5, seed=7).states, run.states)
    assert not torch.allclose(rollout(model, q, 5, seed=8).states, run.states)


def test_rollout_subset_and_range_check():
    run = rollout(ToyItrSA(), puzzles(4), 2)
    sub = run.subset([1, 3])
    torch.testing.assert_close(sub.states, run.states[:, [1, 3]])
    assert sub.batch == 2
    with pytest.raises(ShapeError, match="outside"):
        run.state(3)


def test_batched_map_rows_are_the_single_maps():
    model = ToyItrSA()
    run = rollout(model, puzzles(3), 1)
    x = run.state(1)
    flat = x.reshape(3, -1)
    with analysis_mode(model):
        fb = step_map(model, run.cond)(flat)
        mb = msa_map(model, tuple(x.shape))(flat)
        for i in range(3):
            torch.testing.assert_close(fb[i], single_step_map(model, run.cond, i)(flat[i]))
            torch.testing.assert_close(mb[i], single_msa_map(model, (81, 2))(flat[i]))
        torch.testing.assert_close(fb.reshape(x.shape), model.step(x, run.cond))


def test_analysis_mode_restores_the_model():
    model = ToyItrSA()
    model.train()
    model.gamma.requires_grad_(False)
    with analysis_mode(model):
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())
    assert model.training
    assert not model.gamma.requires_grad and model.attn.qkv.weight.requires_grad


def test_puzzle_validation():
    assert as_puzzle_tensor(torch.zeros(81, dtype=torch.long)).shape == (1, 81)
    with pytest.raises(ShapeError, match=r"\(B, 81\)"):
        as_puzzle_tensor(torch.zeros(2, 80, dtype=torch.long))
    bad = torch.zeros(1, 81, dtype=torch.long)
    bad[0, 3] = 10
    with pytest.raises(DataFormatError, match=r"0\.\.9"):  # the models' own check_puzzles
        as_puzzle_tensor(bad)


def test_divergence_is_reported():
    model = LinearToy(1e200 * torch.eye(162))
    with pytest.raises(DivergenceError, match="non-finite states at step"):
        rollout(model, puzzles(2), 3)
