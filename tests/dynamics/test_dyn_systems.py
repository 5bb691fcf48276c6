"""Every reference system of dynamics.md §2 at its tolerance (QR method unless stated).

Finite runs fluctuate around the asymptotic exponent (std ~ 0.5/sqrt(steps) for Hénon);
where the notes give a band for a single run we average a batch of independent trajectories
run side by side (``batched=True``), which is both faster and a sharper test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sadyn.dynamics import eigenvalues, lyapunov_spectrum, max_lyapunov_two_trajectory, systems

F64 = torch.float64
EPS64 = float(torch.finfo(F64).eps)


def spread(x0: torch.Tensor, b: int, scale: float) -> torch.Tensor:
    """``(b, n)`` initial states near ``x0`` (distinct trajectories of the same attractor)."""
    return x0[None] + scale * torch.linspace(0.0, 1.0, b, dtype=F64)[:, None]


def test_henon_matches_sprott_and_the_exact_sum():
    h = systems.henon()
    x0 = spread(h.x0, 64, 0.05)
    res = lyapunov_spectrum(h.f, x0, 2000, transient=h.transient, batched=True)
    mean = res.exponents.mean(0).numpy()
    # ChaosTools' bands at 2000 steps, for the mean of 64 independent runs (std ~1e-3).
    assert 0.41 < mean[0] < 0.43
    assert -1.63 < mean[1] < -1.61
    assert abs(mean[0] - h.exponents[0]) < 6e-3
    # det J = -b at every step, so the sum is ln b for every run, not just on average.
    sums = res.exponents.sum(-1)
    assert torch.allclose(sums, torch.full_like(sums, math.log(0.3)), rtol=0, atol=1e-10)


def test_henon_two_trajectory_in_band():
    h = systems.henon()
    x0 = spread(h.x0, 64, 0.05)
    lam = max_lyapunov_two_trajectory(h.f, x0, 2000, transient=100, batched=True)
    assert 0.41 < float(lam.mean()) < 0.43


def test_logistic_r4_is_ln2():
    """A single run's error is ~0.9/sqrt(steps) (log|f'| has variance pi^2/12 on the
    arcsine density); 4096 runs of 1000 steps bring it to ~5e-4, well inside 2e-3."""
    m = systems.logistic(4.0)
    x0 = torch.linspace(0.01, 0.49, 4096, dtype=F64)[:, None]
    res = lyapunov_spectrum(m.f, x0, 1000, transient=100, batched=True)
    assert abs(float(res.exponents.mean()) - math.log(2.0)) < 2e-3


def test_logistic_r35_periodic_orbit():
    m = systems.logistic(3.5)
    assert m.exponents[0] == pytest.approx(-0.8725, abs=1e-4)
    res = lyapunov_spectrum(m.f, m.x0, 400, transient=200)  # 400 = 100 periods
    assert float(res.exponents[0]) == pytest.approx(m.exponents[0], abs=1e-4)


@pytest.mark.parametrize(("r", "sign"), [(2.5, -1), (3.4, -1), (3.7, 1), (4.0, 1)])
def test_logistic_signs(r, sign):
    m = systems.logistic(r)
    res = lyapunov_spectrum(m.f, m.x0, 1000, transient=100)
    assert np.sign(float(res.exponents[0])) == sign
    if m.exponents is not None and r < 3:
        assert float(res.exponents[0]) == pytest.approx(m.exponents[0], abs=1e-6)


def test_diagonal_map_chaostools_case():
    m = systems.diagonal([1.1, 0.8])
    res = lyapunov_spectrum(m.f, m.x0, 100, transient=20)
    # Not round-off but the seeded start tangent's misalignment theta_t, tan theta_t =
    # r^t tan theta_0 with r = 0.8/1.1: step t's stretch is ln 1.1 - sin^2(theta_t)(1 - r^2)/2,
    # so the 100 steps after a 20-step transient carry a bias tan^2(theta_0) r^40 / 200 =
    # 1.5e-7 ln(1.1) tan^2(theta_0): within rtol 1e-6 while tan(theta_0) < 2.5 (this seed:
    # ~1.4). A fixed seed, so no machine's rounding enters.
    np.testing.assert_allclose(res.exponents.numpy(), [math.log(1.1), math.log(0.8)], rtol=1e-6)


def test_general_linear_map_real_spectrum():
    mu = np.array([1.5, -1.2, 0.9, 0.7, -0.5, 0.3])
    rng = np.random.default_rng(0)
    P = rng.normal(size=(6, 6))
    A = P @ np.diag(mu) @ np.linalg.inv(P)
    m = systems.linear(A)
    np.testing.assert_allclose(m.exponents, np.sort(np.log(np.abs(mu)))[::-1], atol=1e-12)
    # Real, distinct moduli: once the tangents span the invariant flag R_ii = |mu_i| exactly.
    res = lyapunov_spectrum(m.f, m.x0, 100, transient=150)
    np.testing.assert_allclose(res.exponents.numpy(), m.exponents, atol=1e-8)
    assert float(res.exponents.sum()) == pytest.approx(m.exponent_sum, abs=1e-9)


def test_general_linear_map_complex_pairs():
    """Complex pairs converge as O(1/steps); their sums exactly."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(6, 6)) / math.sqrt(6)
    m = systems.linear(A)
    res = lyapunov_spectrum(m.f, m.x0, 1000, transient=100)
    np.testing.assert_allclose(res.exponents.numpy(), m.exponents, atol=1e-2)
    assert float(res.exponents.sum()) == pytest.approx(m.exponent_sum, abs=1e-9)


@pytest.mark.slow
def test_general_linear_map_complex_pairs_long():
    rng = np.random.default_rng(1)
    m = systems.linear(rng.normal(size=(6, 6)) / math.sqrt(6))
    res = lyapunov_spectrum(m.f, m.x0, 5000, transient=500)
    np.testing.assert_allclose(res.exponents.numpy(), m.exponents, atol=1e-3)


def test_cat_map():
    m = systems.cat_map()
    res = lyapunov_spectrum(m.f, m.x0, 200, transient=30)
    # J is constant with eigenvalues phi^2, phi^-2: after the transient (misalignment
    # ~ phi^-4 per step, 1e-25 after 30 steps) R_ii = phi^+-2 exactly, so the mean of 200 logs
    # is exact to round-off, a few eps per step. (It was compared with the 6-digit 0.962424,
    # whose own rounding, 3.5e-7, used a third of a 1e-6 band.)
    lam = math.log((3.0 + math.sqrt(5.0)) / 2.0)
    np.testing.assert_allclose(res.exponents.numpy(), [lam, -lam], rtol=0, atol=64 * EPS64)
    # The state stays on the torus; the tangent never sees the wrap.
    assert bool(((res.final_state >= 0) & (res.final_state < 1)).all())


def test_contracting_tanh_rnn_is_log_eig_w():
    rng = np.random.default_rng(2)
    O, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    mu = np.array([0.9, -0.8, 0.6, 0.5, -0.4, 0.3, 0.2, -0.1])
    W = O @ np.diag(mu) @ O.T  # symmetric: ||W||_2 = 0.9 < 1, real eigenvalues
    m = systems.tanh_rnn(W)
    assert m.exponents is not None
    res = lyapunov_spectrum(m.f, m.x0, 100, transient=150)
    np.testing.assert_allclose(res.exponents.numpy(), m.exponents, atol=1e-3)


def test_tanh_rnn_without_closed_form_has_no_reference():
    assert systems.random_tanh_rnn(16, 2.0).exponents is None
    assert systems.tanh_rnn(0.5 * np.eye(3), b=np.ones(3)).exponents is None


def test_toy_oscillator_eigenvalues_outside_and_exponents():
    m = systems.toy_oscillator([1.0, 3.0], eta=0.2)
    want = np.array([1 + 0.6j, 1 - 0.6j, 1 + 0.2j, 1 - 0.2j])
    got = eigenvalues(m.f, m.x0)
    np.testing.assert_allclose(np.sort_complex(got), np.sort_complex(want), atol=1e-12)
    assert np.all(np.abs(got) > 1.0)
    res = lyapunov_spectrum(m.f, m.x0, 100, transient=200)
    np.testing.assert_allclose(res.exponents.numpy(), m.exponents, atol=1e-8)


def test_toy_oscillator_normalized_is_neutral_with_one_null_direction():
    m = systems.toy_oscillator([1.0, 1.0, 1.0], eta=0.3, normalize=True)
    # At a unit state with equal frequencies ||J||_2 <= 1: eigenvalues inside/on the circle.
    eig = eigenvalues(m.f, m.x0)
    assert np.all(np.abs(eig) <= 1.0 + 1e-12)
    assert np.min(np.abs(eig)) < 1e-12  # the radial direction
    res = lyapunov_spectrum(m.f, m.x0, 200, transient=5)
    assert torch.isneginf(res.exponents[-1])
    np.testing.assert_allclose(res.exponents[:-1].numpy(), 0.0, atol=1e-10)


def test_toy_oscillator_normalized_unequal_frequencies():
    m = systems.toy_oscillator([1.0, 2.0, 0.5], eta=0.3, normalize=True)
    # The state settles in the fastest plane at rate ln(s_2/s_1) = 0.11 per step.
    res = lyapunov_spectrum(m.f, m.x0, 100, transient=300)
    assert torch.isneginf(res.exponents[-1])
    np.testing.assert_allclose(res.exponents[:-1].numpy(), m.exponents[:-1], atol=1e-6)


@pytest.mark.parametrize(
    "system",
    [
        systems.henon(),
        systems.logistic(3.7),
        systems.cat_map(),
        systems.random_tanh_rnn(6, 2.0),
        systems.toy_oscillator([1.0, 2.0], 0.3, normalize=True),
        systems.linear(np.arange(9.0).reshape(3, 3) / 10),
    ],
    ids=lambda s: s.name,
)
def test_hand_jacobians_match_autodiff(system):
    from sadyn.dynamics import jacobian

    x = system.x0 + 0.01
    np.testing.assert_allclose(
        jacobian(system.f, x).numpy(), system.jacobian(x).numpy(), rtol=1e-12, atol=1e-14
    )
