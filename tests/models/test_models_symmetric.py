"""Symmetric SA: its energy decreases along the small-step projected update when C = 0 (the
classical result; not asserted for the generalized, asymmetric models)."""

import pytest
import torch

from sadyn.models import ModelConfigError, build_model
from sadyn.nn.norms import sphere_normalize


def _symsa(**options):
    torch.manual_seed(0)
    model = build_model(
        {"model": "symsa", "dim": 16, "heads": 1, "pos": "gta", "relation_bias": True, **options}
    ).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move away from the symmetric-PSD initialization
        model.attention.sigma.normal_(generator=gen)
        model.attention.relation_bias.weight.normal_(generator=gen)
    return model


@pytest.mark.parametrize("group", [None, 4])
def test_energy_decreases_along_the_projected_update(group):
    model = _symsa(eta0=1e-2, norm_group=group, eta_learnable=False)
    n = 16 if group is None else group
    x = sphere_normalize(
        torch.randn(3, 81, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2)), n
    )
    zero = torch.zeros_like(x)
    energy = [model.energy(x)]
    for _ in range(30):
        x = model.step(x, zero)
        energy.append(model.energy(x))
    e = torch.stack(energy)  # (31, 3)
    assert (e[1:] <= e[:-1] + 1e-12 * e[:-1].abs()).all()
    assert (e[-1] < e[0]).all()


def test_energy_rate_matches_the_continuous_flow():
    """(E(X_1) - E(X_0)) / eta -> dE/dt = -sum_i Z_i ||Proj_{x_i} SA_i(X)||^2 as eta -> 0."""
    model = _symsa(eta0=1e-5, eta_learnable=False)
    x = sphere_normalize(
        torch.randn(2, 81, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3)), 16
    )
    zero = torch.zeros_like(x)
    rate = (model.energy(model.step(x, zero)) - model.energy(x)) / 1e-5
    sa = model.msa(x)
    proj = sa - (sa * x).sum(-1, keepdim=True) * x
    z = torch.exp(model.attention._logits(x)[2]).sum(-1)[:, 0]  # (B, S)
    expected = -(z * proj.pow(2).sum(-1)).sum(-1)
    torch.testing.assert_close(rate, expected, rtol=1e-3, atol=0)


def test_symmetric_configs():
    with pytest.raises(ModelConfigError, match="heads=1"):
        build_model({"model": "symsa", "dim": 16, "heads": 2})
    with pytest.raises(ModelConfigError, match="gta_learnable"):
        build_model({"model": "gensym-single", "dim": 16, "gta_learnable": True})
    with pytest.raises(ModelConfigError, match="2 \\* heads"):
        build_model({"model": "gensym-multi", "dim": 12, "heads": 4})
    for kind in ("symsa", "gensym-multi"):
        with pytest.raises(ModelConfigError, match="orthogonal_vo"):
            build_model({"model": kind, "dim": 16, "orthogonal_vo": True})
    multi = build_model({"model": "gensym-multi", "dim": 16, "heads": 2})
    # gensym-multi runs the ItrSA step: unit RMSNorm, no projection (an option only the
    # single-head symmetric models and AKOrN have)
    assert multi.config["norm"] == "rms_unit" and "project" not in multi.config
    single = build_model({"model": "gensym-single", "dim": 16, "rank": 8, "pos": "none"})
    assert single.attention.qk.weight.shape == (16, 16)
    assert multi.attention_modules() == [] and single.attention_modules() == []
