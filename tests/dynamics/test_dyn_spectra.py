"""Spectral norm, eigenvalues and singular values: dense vs matrix-free, batched vs loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dyn_maps import attention_block

from sadyn.dynamics import (
    eigenvalues,
    jacobian,
    singular_values,
    spectral_norm,
    systems,
)
from sadyn.errors import ShapeError

F64 = torch.float64


@pytest.fixture(scope="module")
def wide():
    """81 tokens x 8: n = 648, large enough for ARPACK to be the natural tool."""
    return attention_block(tokens=81, width=8, heads=2, gain=2.0, seed=1)


def test_spectral_norm_power_matches_svd(wide):
    f, x0 = wide
    exact = spectral_norm(f, x0, method="dense")
    power = spectral_norm(f, x0, method="power", tol=1e-8, max_iter=500)
    assert power.converged and exact.iterations == 0
    assert power.value == pytest.approx(exact.value, rel=1e-9)
    sv = np.linalg.svd(jacobian(f, x0).numpy(), compute_uv=False)
    assert exact.value == pytest.approx(sv[0], rel=1e-12)
    # The vector is the top right singular vector: ||J v|| = sigma.
    jv = torch.func.jvp(f, (x0,), (power.vector,))[1]
    assert float(jv.norm()) == pytest.approx(exact.value, rel=1e-9)


def test_spectral_norm_warm_start_converges_at_once(wide):
    f, x0 = wide
    first = spectral_norm(f, x0, method="power", tol=1e-8, max_iter=500)
    again = spectral_norm(f, x0, method="power", tol=1e-8, v0=first.vector)
    assert again.iterations <= 2
    assert again.value == pytest.approx(first.value, rel=1e-12)


def test_spectral_norm_batched_equals_loop(attn):
    f, x0 = attn
    xs = torch.stack([x0, f(x0), f(f(x0))])
    for method in ("dense", "power"):
        batch = spectral_norm(f, xs, method=method, batched=True, tol=1e-9, max_iter=1000)
        assert batch.value.shape == (3,) and batch.vector.shape == (3, 72)
        assert bool(batch.converged.all())
        for i in range(3):
            one = spectral_norm(f, xs[i], method="dense")
            assert float(batch.value[i]) == pytest.approx(one.value, rel=1e-9)


def test_eigenvalues_arnoldi_matches_dense(wide):
    f, x0 = wide
    dense = eigenvalues(f, x0)
    top = eigenvalues(f, x0, 6, method="arnoldi")
    assert dense.shape == (648,) and top.shape == (6,)
    assert np.all(np.diff(np.abs(dense)) <= 1e-12)  # sorted by modulus, descending
    np.testing.assert_allclose(np.abs(top), np.abs(dense[:6]), rtol=1e-8)
    # Match each Arnoldi value to its nearest dense value (conjugate pairs tie in modulus).
    for z in top:
        assert np.min(np.abs(dense[:8] - z)) < 1e-8
    # Non-normal: the spectral radius sits below the spectral norm.
    assert np.abs(dense[0]) < spectral_norm(f, x0).value


def test_singular_values_svds_matches_dense(wide):
    f, x0 = wide
    dense = singular_values(f, x0)
    top = singular_values(f, x0, 5, method="svds")
    np.testing.assert_allclose(top, dense[:5], rtol=1e-9)
    assert np.all(np.diff(dense) <= 0)


def test_batched_eigenvalues_and_singular_values_equal_loop(attn):
    f, x0 = attn
    xs = torch.stack([x0, f(x0)])
    for method in ("dense", "arnoldi"):
        ev = eigenvalues(f, xs, 4, method=method, batched=True)
        assert ev.shape == (2, 4)
        for i in range(2):
            np.testing.assert_allclose(np.abs(ev[i]), np.abs(eigenvalues(f, xs[i], 4)), rtol=1e-8)
    sv = singular_values(f, xs, 3, method="svds", batched=True)
    for i in range(2):
        np.testing.assert_allclose(sv[i], singular_values(f, xs[i], 3), rtol=1e-9)


def test_oscillator_spectra_with_and_without_normalization():
    free = systems.toy_oscillator([1.0, 1.0], eta=0.5)
    normed = systems.toy_oscillator([1.0, 1.0], eta=0.5, normalize=True)
    ev_free = eigenvalues(free.f, free.x0)
    ev_norm = eigenvalues(normed.f, normed.x0)
    np.testing.assert_allclose(np.abs(ev_free), np.sqrt(1.25), rtol=1e-12)
    assert np.all(np.abs(ev_norm) <= 1 + 1e-12)
    assert spectral_norm(normed.f, normed.x0).value <= 1 + 1e-12


def test_bad_k_raises(attn):
    f, x0 = attn
    with pytest.raises(ShapeError):
        eigenvalues(f, x0, 0)
    with pytest.raises(ShapeError):
        singular_values(f, x0, 73)
    with pytest.raises(ValueError):
        spectral_norm(f, x0, method="krylov")
