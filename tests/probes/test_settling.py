import pytest
import torch
from probes_toys import LinearToy, ToyItrSA, puzzles

from sadyn.errors import DivergenceError
from sadyn.probes.settling import step_changes
from sadyn.probes.stepmap import rollout


def test_step_changes_on_known_maps_and_against_the_rollout():
    q = puzzles(3)
    # X -> a X: every step changes the state by |a - 1| of its norm
    for a in (0.5, 1.0, 1.5):
        ch = step_changes(LinearToy(a * torch.eye(162)), q, 4, seed=2)
        torch.testing.assert_close(ch, torch.full((4, 3), abs(a - 1.0), dtype=torch.float64))
    # a rotation by theta in every coordinate pair: norm kept, change 2 sin(theta / 2) forever
    theta = 0.3
    c, s = torch.cos(torch.tensor(theta)), torch.sin(torch.tensor(theta))
    rot = torch.block_diag(*[torch.stack([torch.stack([c, -s]), torch.stack([s, c])])] * 81)
    ch = step_changes(LinearToy(rot), q, 50)
    torch.testing.assert_close(
        ch, torch.full((50, 3), 2 * float(torch.sin(torch.tensor(theta / 2))), dtype=torch.float64)
    )
    # a trained-like model: the same numbers as the stored trajectory gives, same seed
    model = ToyItrSA()
    run = rollout(model, q, 6, seed=5)
    diff = (run.states[1:] - run.states[:-1]).flatten(2).norm(dim=2)
    torch.testing.assert_close(
        step_changes(model, q, 6, seed=5), diff / run.states[:-1].flatten(2).norm(dim=2)
    )
    with pytest.raises(DivergenceError, match="non-finite states at step"):
        step_changes(LinearToy(1e200 * torch.eye(162)), q, 3)
    with pytest.raises(ValueError, match=">= 1"):
        step_changes(model, q, 0)
