"""AKOrN: tangent projection, states on the sphere, Omega rotates; the RMSNorm variant."""

import math

import torch

from sadyn.models import build_model
from sadyn.nn.norms import group_norms

N = 4


def _osc(t):
    return t.unflatten(-1, (-1, N))


def _akorn(**options):
    torch.manual_seed(0)
    return build_model({"model": "akorn", "dim": 16, "heads": 2, **options}).double()


def test_defaults_follow_the_reference():
    model = _akorn()
    cfg = model.config
    assert (cfg["norm"], cfg["norm_group"], cfg["project"], cfg["omega"]) == (
        "sphere",
        4,
        True,
        True,
    )
    assert math.isclose(model.omega.frequencies.item(), 0.5, rel_tol=1e-6)
    assert model.eta.item() == 1.0 and model.eta.requires_grad
    assert model.norm_gain is None and cfg["input_scale"] == "raw"


def test_projection_is_tangent_and_states_stay_on_the_sphere(boards):
    model = _akorn()
    quiz, _ = boards(2)
    out = model(quiz, 6, return_states=True)
    ones = torch.ones(7, 2, 81, 4, dtype=torch.float64)
    torch.testing.assert_close(group_norms(out.states, N), ones)
    cond = model.encode(quiz)
    x = out.states[3]
    drive = cond + model.msa(x)
    proj = model.update(x, cond) - model.omega(x)
    torch.testing.assert_close(
        (_osc(proj) * _osc(x)).sum(-1), torch.zeros(2, 81, 4, dtype=torch.float64)
    )
    # the projection removes exactly the radial part of C + MSA(X)
    radial = (_osc(drive) * _osc(x)).sum(-1, keepdim=True) * _osc(x)
    torch.testing.assert_close(_osc(proj), _osc(drive) - radial)


def test_omega_rotates(boards):
    """With no attention output and C = 0, a step is Pi(x + eta Omega x): each channel pair
    turns by -atan(eta w) and keeps its length."""
    model = _akorn(eta0=0.8)
    with torch.no_grad():
        model.attention.out.weight.zero_()
        model.attention.out.bias.zero_()
        model.omega.omega_param.copy_(torch.tensor([0.6, 0.8]))  # w = 1
    quiz, _ = boards(1)
    cond = model.encode(quiz)
    x = model.init_state(cond, quiz > 0, generator=torch.Generator().manual_seed(0))
    y = model.step(x, torch.zeros_like(cond))
    px, py = x.unflatten(-1, (-1, 2)), y.unflatten(-1, (-1, 2))
    torch.testing.assert_close(py.norm(dim=-1), px.norm(dim=-1))
    turn = torch.atan2(py[..., 1], py[..., 0]) - torch.atan2(px[..., 1], px[..., 0])
    turn = torch.remainder(turn + math.pi, 2 * math.pi) - math.pi
    torch.testing.assert_close(turn, torch.full_like(turn, -math.atan(0.8)))


def test_rmsnorm_variant(boards):
    """AKOrN + RMSNorm: oscillator-wise unit RMSNorm with gain gamma; the projection is onto
    the tangent space at x / ||x|| per oscillator."""
    model = _akorn(norm="rms_unit")
    with torch.no_grad():
        model.norm.weight.uniform_(0.3, 1.5)
    quiz, _ = boards(2)
    out = model(quiz, 4, return_states=True)
    x = out.states[-1]
    torch.testing.assert_close(
        group_norms(x / model.norm_gain, N), torch.ones(2, 81, 4, dtype=torch.float64)
    )
    assert (group_norms(x, N) - 1).abs().max() > 1e-2  # off the unit sphere
    cond = model.encode(quiz)
    proj = model.update(x, cond) - model.omega(x)
    torch.testing.assert_close(
        (_osc(proj) * _osc(x)).sum(-1), torch.zeros(2, 81, 4, dtype=torch.float64)
    )
