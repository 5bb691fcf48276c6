import json

import numpy as np
import pytest
import torch
from probes_toys import LinearToy, ToyItrSA, puzzles

from sadyn.probes.sensitivity import growth_rate, sensitivity_probe
from sadyn.probes.stepmap import rollout


def test_distance_of_a_contracting_map_decays_at_its_rate():
    model = LinearToy(0.8 * torch.eye(162, dtype=torch.float64))
    run = rollout(model, puzzles(3), 0)
    probe = sensitivity_probe(
        model, run, warmup=5, steps=40, records=41, eps=1e-3, show_progress=False
    )
    np.testing.assert_array_equal(probe.times, np.arange(41))
    # X_t - X'_t = 0.8^t (X_0 - X'_0) exactly, in both norms
    np.testing.assert_allclose(probe.l2, probe.l2[0] * 0.8 ** probe.times[:, None], rtol=1e-9)
    np.testing.assert_allclose(probe.l1, probe.l1[0] * 0.8 ** probe.times[:, None], rtol=1e-9)
    np.testing.assert_allclose(probe.growth, np.log(0.8), rtol=1e-9)
    # the perturbation is N(0, eps^2 I): ||d_0||_2 ~ eps sqrt(n)
    assert np.all(np.abs(probe.l2[0] / (1e-3 * 162**0.5) - 1) < 0.25)


def test_eps_as_variance_scales_the_same_draws():
    model = ToyItrSA()
    run = rollout(model, puzzles(2), 0)
    kw = {"warmup": 3, "steps": 4, "records": 5, "eps": 1e-4, "show_progress": False}
    a = sensitivity_probe(model, run, eps_is="std", **kw)
    b = sensitivity_probe(model, run, eps_is="variance", **kw)
    np.testing.assert_allclose(b.l2[0] / a.l2[0], 1e-2 / 1e-4, rtol=1e-10)
    assert a.traces.shape == (5, 2, 2, 8)
    json.dumps(a.to_dict())


def test_growth_rate_fits_only_the_exponential_phase():
    t = np.arange(30.0)
    grow = np.minimum(1e-6 * np.exp(0.5 * t), 1.0)  # saturates at 1
    rates = growth_rate(t, np.stack([grow, np.full(30, 1e-300)], axis=1), 1e-12)
    assert rates[0] == pytest.approx(0.5, rel=1e-9)
    assert np.isnan(rates[1])  # everything under the floor


def test_validation():
    model = ToyItrSA()
    run = rollout(model, puzzles(1), 0)
    with pytest.raises(ValueError, match="eps_is"):
        sensitivity_probe(model, run, eps_is="sd", show_progress=False)
    with pytest.raises(ValueError, match="records"):
        sensitivity_probe(model, run, records=1, show_progress=False)
