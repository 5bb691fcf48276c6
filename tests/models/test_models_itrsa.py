"""ItrSA: Prop 5.1 as a property test, normalization against the same model without it, and the
options (input scale, initial state, step size, norms)."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.func import jacfwd

from sadyn.models import build_model
from sadyn.nn.norms import group_norms, sphere_normalize

D = 4  # S*D = 324: dense Jacobians stay cheap; the slow sweep uses D = 8


def _jacobian(f, x):
    """Dense Jacobian of ``f: (1, S, D) -> (1, S, D)`` at ``x``: ``(S*D, S*D)``."""
    return jacfwd(lambda v: f(v.view(x.shape)).reshape(-1))(x.reshape(-1))


def _spectral(mat):
    return torch.linalg.matrix_norm(mat, ord=2).item()


def _setup(seed, eta, gain_scale, weight_scale, input_scale, state, boards, dim=D):
    torch.manual_seed(seed)
    cfg = {"model": "itrsa", "dim": dim, "heads": 2, "eta0": eta, "input_scale": input_scale}
    model = build_model(cfg).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        gamma = torch.rand(dim, generator=gen, dtype=torch.float64) * 2 - 1
        model.norm.weight.copy_(gain_scale * gamma)
        model.attention.qkv.weight.mul_(weight_scale)
        model.attention.out.weight.mul_(weight_scale)
    quiz, _ = boards(1, seed=seed)
    cond = model.encode(quiz)
    if state == "random":
        x = model.norm(torch.randn(1, 81, dim, generator=gen, dtype=torch.float64))
    else:
        x = model.init_state(cond, quiz > 0, generator=gen)
        if state == "trajectory":
            for _ in range(6):
                x = model.step(x, cond)
    return model, cond, x.detach()


STRATEGY = {
    "seed": st.integers(0, 10_000),
    "eta": st.floats(0.01, 8.0),
    "gain_scale": st.floats(0.05, 3.0),
    "weight_scale": st.floats(0.3, 4.0),
    "input_scale": st.one_of(st.just("raw"), st.floats(0.2, 5.0)),
    "state": st.sampled_from(["random", "init", "trajectory"]),
}
SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture],
}  # boards is pure


@settings(max_examples=8, **SETTINGS)
@given(**STRATEGY)
def test_prop_5_1_bound(seed, eta, gain_scale, weight_scale, input_scale, state, boards):
    _check_prop_5_1(_setup(seed, eta, gain_scale, weight_scale, input_scale, state, boards))


@pytest.mark.slow
@settings(max_examples=60, **SETTINGS)
@given(**STRATEGY)
def test_prop_5_1_bound_sweep(seed, eta, gain_scale, weight_scale, input_scale, state, boards):
    _check_prop_5_1(_setup(seed, eta, gain_scale, weight_scale, input_scale, state, boards, 8))


def _check_prop_5_1(setup):
    """||dF/dX||_2 <= max|gamma| / R * ||I + eta J_MSA|| <= max|gamma| / R * (1 + eta ||J_MSA||),
    R = min_i ||X_i + eta (C + MSA(X))_i||; and when R > max|gamma| the normalized map has a
    smaller spectral norm than the same model without normalization (Jacobian I + eta J_MSA)."""
    model, cond, x = setup
    with torch.no_grad():
        jac = _jacobian(lambda v: model.step(v, cond), x)
        jac_msa = _jacobian(model.msa, x)
        y = x + model.eta * (cond + model.msa(x))
    r = y.norm(dim=-1).min().item()
    gmax = model.norm_gain.abs().max().item()
    eye = torch.eye(jac.shape[0], dtype=jac.dtype)
    unnormalized = _spectral(eye + model.eta.item() * jac_msa)
    s = _spectral(jac)
    tight = gmax / r * unnormalized
    bound = gmax / r * (1 + model.eta.item() * _spectral(jac_msa))
    assert s <= tight * (1 + 1e-9)
    assert tight <= bound * (1 + 1e-9)

    plain = build_model({**model.config, "norm": "none"}).double()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and unexpected == ["norm.weight"]
    with torch.no_grad():
        jac_plain = _jacobian(lambda v: plain.step(v, cond), x)
    torch.testing.assert_close(jac_plain, eye + model.eta.item() * jac_msa)
    if r > gmax:
        assert s < _spectral(jac_plain)


@pytest.mark.parametrize("seed", range(3))
def test_normalization_lowers_the_spectral_norm_at_initialization(seed, boards):
    """The paper's setting at init (raw C, unit gain): R > 1 = max|gamma|, so normalization
    lowers ||J||, here by more than the factor max|gamma| / R."""
    torch.manual_seed(seed)
    model = build_model({"model": "itrsa", "dim": 8, "heads": 2}).double()
    quiz, _ = boards(1, seed=seed)
    cond = model.encode(quiz).detach()
    x = model.init_state(cond, quiz > 0, generator=torch.Generator().manual_seed(seed)).detach()
    with torch.no_grad():
        s = _spectral(_jacobian(lambda v: model.step(v, cond), x))
        s_plain = _spectral(_jacobian(lambda v: v + model.eta * (cond + model.msa(v)), x))
        r = (x + model.eta * (cond + model.msa(x))).norm(dim=-1).min().item()
    assert r > 1 and s <= s_plain / r


def test_input_scale_and_initial_states(boards):
    quiz, _ = boards(2)
    given = quiz > 0
    model = build_model(
        {"model": "itrsa", "dim": 16, "heads": 2, "input_scale": 2.5, "norm_group": 4, "pos": "rcb"}
    )
    cond = model.encode(quiz)
    torch.testing.assert_close(group_norms(cond, 4), torch.full((2, 81, 4), 2.5))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    x1 = model.init_state(cond, given, generator=g1)
    x2 = model.init_state(cond, given, generator=g2)
    # given cells start at Norm(C), blank cells from different noise
    torch.testing.assert_close(x1[given], model.norm(cond)[given])
    assert (x1[~given] - x2[~given]).abs().min() > 0
    torch.testing.assert_close(group_norms(x1, 4), torch.ones(2, 81, 4))

    cond_init = build_model({**model.config, "init": "cond"})
    cond_init.load_state_dict(model.state_dict())
    torch.testing.assert_close(cond_init.init_state(cond, given, generator=g1), model.norm(cond))
    plain = build_model({**model.config, "norm": "none"})  # the initial state still normalized
    torch.testing.assert_close(
        plain.init_state(cond, given, deterministic=True),
        sphere_normalize(plain.init_state(cond, given, deterministic=True), 4),
    )


def test_step_size_and_state_set(boards):
    fixed = build_model(
        {"model": "itrsa", "dim": 16, "heads": 2, "eta_learnable": False, "eta0": 0.25}
    )
    assert fixed.eta.item() == 0.25 and not fixed.eta.requires_grad
    assert "step_size" not in dict(fixed.named_parameters())
    learned = build_model({"model": "itrsa", "dim": 16, "heads": 2})
    assert learned.eta.item() == 1.0 and learned.eta.requires_grad
    with torch.no_grad():
        learned.norm.weight.uniform_(0.5, 2.0)
    quiz, _ = boards(2)
    x = learned(quiz, 3, return_states=True).states[-1]
    # the unit RMSNorm keeps every token at gamma * (unit vector)
    torch.testing.assert_close((x / learned.norm_gain).norm(dim=-1), torch.ones(2, 81))


def test_readout_group_defaults():
    itrsa = build_model({"model": "itrsa", "dim": 16, "heads": 2, "norm_group": 8})
    akorn = build_model({"model": "akorn", "dim": 16, "heads": 2, "norm_group": 8})
    assert itrsa.head.norm_readout.n == 4  # ItrSA: its own small readout N
    assert akorn.head.norm_readout.n == 8  # AKOrN: tied to the oscillator size, as the reference
    mlp = build_model({"model": "itrsa", "dim": 16, "heads": 2, "readout": "mlp"})
    assert not hasattr(mlp.head, "norm_readout")
