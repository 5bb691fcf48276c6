"""The probes on sadyn's own models (small widths, float64), through the protocol only."""

import math

import numpy as np
import pytest
import torch
from probes_toys import puzzles

from sadyn.dynamics import math_attention
from sadyn.models import build_model, default_config, model_names
from sadyn.probes.energy import PVForm, energy_probe, pv_form
from sadyn.probes.jacobian import prop51_bound
from sadyn.probes.lyapunov import lyapunov_probe
from sadyn.probes.stepmap import analysis_mode, rollout, single_msa_map

D = 4


def small(name: str, **kw) -> torch.nn.Module:
    """A width-4 float64 model (n = 324); single-head models keep one head."""
    torch.manual_seed(0)
    heads = 1 if default_config(name)["heads"] == 1 else 2
    return build_model({"model": name, "dim": D, "heads": heads, **kw}).double()


@pytest.mark.parametrize("name", model_names())
def test_pseudo_energy_is_minus_x_dot_drive_for_every_model(name):
    # (GTA in gensym-multi needs an even per-head rank D/(2H), which width 4 cannot give)
    model = small(name, pos="none") if name == "gensym-multi" else small(name)
    run = rollout(model, puzzles(2), 3, seed=0)
    probe = energy_probe(model, run, ci_steps=[], approximation=False, show_progress=False)
    # the pre-LN baseline injects nothing after the embedding: its drive is MSA(X) alone
    injected = 0 * run.cond if name == "preln-itrsa" else run.cond
    with torch.no_grad(), analysis_mode(model):
        for t in range(4):
            x = run.state(t)
            hand = -(x * (injected + model.msa(x))).sum((1, 2)).numpy()
            np.testing.assert_allclose(probe.energy[t], hand, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("config", "form", "scale"),
    [
        ({"model": "itrsa"}, "J_MSA", 1.0),
        ({"model": "itrsa", "norm": "rms", "eta0": 4.0}, "J_MSA", math.sqrt(D)),
        ({"model": "itrsa", "norm_group": 2, "pos": "none"}, "J_MSA", 1.0),
        ({"model": "akorn"}, "J_update", 1.0),
    ],
)
def test_prop51_bound_on_real_models(config, form, scale):
    config = dict(config)
    model = small(config.pop("model"), **config)
    run = rollout(model, puzzles(2), 2, seed=1)
    check = prop51_bound(model, run.state(2), run.cond)
    assert check.form == form
    assert check.norm.scale == pytest.approx(scale, rel=1e-6)
    assert np.all(check.measured <= check.bound * (1 + 1e-9))


def test_unnormalised_model_has_no_bound():
    model = small("itrsa", norm="none", eta0=0.1)
    run = rollout(model, puzzles(1), 1)
    assert prop51_bound(model, run.state(1), run.cond).bound is None


def test_pv_form_with_gta_is_exact_when_attention_is_constant():
    # With W^Q = W^K = 0 (and their biases) P does not depend on X, the softmax-derivative term
    # vanishes and J_MSA is exactly the value path: J_PV (GTA blocks included) must equal it.
    model = small("itrsa", pos="gta")
    with torch.no_grad():
        model.attention.qkv.weight[: 2 * D].zero_()
        model.attention.qkv.bias[: 2 * D].zero_()
    run = rollout(model, puzzles(1, given=0.0), 1)
    x = run.state(1)
    pv = pv_form(model, x)
    assert isinstance(pv, PVForm) and pv.positional and pv.residual < 1e-12
    with analysis_mode(model), math_attention():
        j = torch.func.jacrev(single_msa_map(model, (81, D)))(x[0].reshape(-1)).numpy()
    probs = model.attention_probs(x)[0]
    np.testing.assert_allclose(pv.dense(probs), j, atol=1e-12)
    # GTA makes it differ from the position-free Kronecker form of the same weights
    m = pv.value_output()
    kron = sum(torch.kron(probs[h].detach(), m[h].T.contiguous()) for h in range(2)).numpy()
    assert np.abs(kron - j).max() > 1e-3


def test_finite_time_exponents_batched_equal_one_by_one_on_itrsa():
    model = small("itrsa")
    run = rollout(model, puzzles(3), 0, seed=2)
    together = lyapunov_probe(model, run, horizon=4, k=3, show_progress=False)
    for b in range(3):
        alone = lyapunov_probe(model, run.subset([b]), horizon=4, k=3, seed=9, show_progress=False)
        np.testing.assert_allclose(alone.finite_time[0], together.finite_time[b], atol=1e-8)
