import json

import numpy as np
import pytest
import torch
from probes_toys import LinearToy, ToyItrSA, puzzles

from sadyn.dynamics import math_attention
from sadyn.probes.lyapunov import distribution, lyapunov_probe
from sadyn.probes.stepmap import analysis_mode, rollout, single_step_map


def reference_ftle(model, run, b, horizon, k):
    """(1/T) ln sigma_i(J_{T-1} ... J_0) from dense reverse-mode Jacobians."""
    f = single_step_map(model, run.cond, b)
    x = run.state(0)[b].reshape(-1)
    prod = torch.eye(x.numel(), dtype=x.dtype)
    with analysis_mode(model), math_attention():
        for _ in range(horizon):
            prod = torch.func.jacrev(f)(x) @ prod
            x = f(x)
    return torch.log(torch.linalg.svdvals(prod)[:k]).numpy() / horizon


@pytest.fixture(scope="module")
def toy():
    model = ToyItrSA(eta=1.0, seed=5)
    return model, rollout(model, puzzles(3, seed=5), 0, seed=5)


def test_finite_time_exponents_match_the_dense_propagator(toy):
    model, run = toy
    probe = lyapunov_probe(model, run, horizon=6, k=5, show_progress=False)
    assert probe.finite_time.shape == (3, 5)
    for b in range(3):
        np.testing.assert_allclose(
            probe.finite_time[b], reference_ftle(model, run, b, 6, 5), atol=1e-6
        )
    assert np.all(np.diff(probe.finite_time, axis=1) <= 1e-12)  # descending


def test_batched_equals_one_by_one(toy):
    model, run = toy
    together = lyapunov_probe(model, run, horizon=5, k=4, show_progress=False)
    chunked = lyapunov_probe(model, run, horizon=5, k=4, batch_size=2, show_progress=False)
    np.testing.assert_allclose(chunked.finite_time, together.finite_time, atol=1e-8)
    for b in range(3):
        alone = lyapunov_probe(
            model, run.subset([b]), horizon=5, k=4, seed=100 + b, show_progress=False
        )
        np.testing.assert_allclose(alone.finite_time[0], together.finite_time[b], atol=1e-8)


def test_known_exponents_of_a_diagonal_map():
    n = 162
    d = torch.ones(n) * 0.3
    d[:4] = torch.tensor([1.5, -1.2, 0.9, 0.5])
    model = LinearToy(torch.diag(d))
    run = rollout(model, puzzles(2), 0)
    probe = lyapunov_probe(
        model, run, horizon=16, k=4, top_m=3, asymptotic_steps=60, transient=20, show_progress=False
    )
    # The model holds d in float64 (its float32 values); take the logs in float64 too. (They
    # were taken in float32, whose log is off by up to ~1e-8 depending on NumPy's SIMD code
    # path, against a 1e-9 band: the exponents themselves are exact to ~1e-15.)
    expected = np.log(np.abs(d[:4].double().numpy()))
    np.testing.assert_allclose(probe.finite_time, np.tile(expected, (2, 1)), atol=1e-9)
    np.testing.assert_allclose(probe.asymptotic, np.tile(expected, (2, 1)), atol=2e-2)
    np.testing.assert_allclose(probe.max_ftle, expected[0], atol=1e-9)
    np.testing.assert_allclose(probe.mean_ftle, expected[:3].mean(), atol=1e-9)
    s = probe.summary()
    assert s["max_ftle"]["count"] == 2 and s["max_qr"]["median"] == pytest.approx(
        expected[0], abs=2e-2
    )
    back = json.loads(json.dumps(probe.to_dict()))
    assert back["top_m"] == 3 and len(back["finite_time"]) == 2


def test_normalisation_null_directions_are_minus_inf_and_counted():
    # n = 81 * 2, RMSNorm over each token makes 81 exact null directions: with k = n every
    # puzzle's bottom exponents are -inf (or hugely negative) and the mean over all is not
    # finite, which the summary reports instead of averaging.
    model = ToyItrSA(d=2, heads=1, seed=1)
    run = rollout(model, puzzles(1), 0)
    probe = lyapunov_probe(model, run, horizon=3, k=162, show_progress=False)
    tail = probe.finite_time[0, -81:]
    assert np.all(np.isneginf(tail) | (tail < -20))
    assert np.all(np.isfinite(probe.finite_time[0, :60]))


def test_distribution_and_validation(toy):
    vals = np.array([1.0, 2.0, 3.0, -np.inf])
    d = distribution(vals)
    assert d["count"] == 4 and d["n_nonfinite"] == 1
    assert d["median"] == 2.0 and d["mean"] == 2.0 and d["std"] == pytest.approx(1.0)
    model, run = toy
    with pytest.raises(ValueError, match="top_m"):
        lyapunov_probe(model, run, k=3, top_m=4, show_progress=False)
