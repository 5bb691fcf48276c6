"""Spectra whose iterative methods cannot converge: power iteration on a nearly degenerate
top pair, ARPACK on eigenvalues of one modulus. Before: a silent unconverged number, or a raw
``ArpackNoConvergence`` after minutes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import sadyn.dynamics.spectra as spectra
from sadyn.dynamics import ConvergenceWarning, eigenvalues, spectral_norm, systems
from sadyn.errors import ConvergenceError, SadynError

F64 = torch.float64


def record(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fn()
    return res, [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def near_degenerate(n: int) -> systems.ReferenceSystem:
    """A rotation times ``diag(1, 0.9995, ...)``: power iteration gains ``0.9995^2`` per
    step, about 0.2 over 200 iterations, far from a 1e-6 residual. ``||J|| = 1``."""
    g = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))[0]
    s = torch.linspace(1.0, 0.5, n, dtype=F64)
    s[1] = 0.9995
    return systems.linear(Q * s)


def orthogonal(n: int) -> systems.ReferenceSystem:
    """All eigenvalues on the unit circle: Arnoldi cannot tell the top k apart."""
    g = torch.Generator().manual_seed(0)
    return systems.linear(torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))[0])


def test_unconverged_power_iteration_warns():
    m = near_degenerate(20)
    res, caught = record(lambda: spectral_norm(m.f, m.x0, method="power", max_iter=20))
    assert (
        res.converged is False and len(caught) == 1 and "did not converge" in str(caught[0].message)
    )


def test_auto_falls_back_to_the_exact_norm(monkeypatch):
    """ "auto" above DENSE_MAX (lowered here to reach it at n = 60) takes the dense SVD when
    power iteration stops unconverged: the exact norm 1, to LAPACK's ~n eps."""
    m = near_degenerate(60)
    monkeypatch.setattr(spectra, "DENSE_MAX", 10)
    res, caught = record(lambda: spectral_norm(m.f, m.x0))
    assert res.converged is True and not caught
    assert res.value == pytest.approx(1.0, abs=60 * 2.3e-16)


def test_auto_without_room_for_dense_takes_lanczos(monkeypatch):
    """Above DENSE_MAX with no room for the dense SVD, "auto" hands the stalled power
    iterate to ARPACK's Lanczos (svds): the gap 5e-4 that stalls power iteration costs Lanczos
    only a square root, so it converges to the exact norm 1. ARPACK's tol 1e-6 bounds the
    relative error of the singular value; float64 products add ~n eps."""
    m = near_degenerate(60)
    monkeypatch.setattr(spectra, "DENSE_MAX", 10)
    monkeypatch.setattr(spectra, "DENSE_FALLBACK_BYTES", 0)
    res, caught = record(lambda: spectral_norm(m.f, m.x0, max_iter=20))
    assert res.converged is True and not caught
    assert res.value == pytest.approx(1.0, abs=1e-6 + 60 * 2.3e-16)
    # its vector is the top right singular vector: ||J v|| = ||J||
    assert float(m.f(res.vector).norm()) == pytest.approx(res.value, rel=1e-6)


def test_lanczos_matches_the_dense_norm_batched():
    """method="lanczos" against the dense SVD, per row of a batch of different maps."""
    g = torch.Generator().manual_seed(3)
    A = torch.randn(3, 40, 40, generator=g, dtype=F64)

    def f(x):  # (B, n) -> (B, n): row b applies A[b]
        return torch.einsum("bij,bj->bi", A, x)

    x = torch.zeros(3, 40, dtype=F64)
    res = spectral_norm(f, x, method="lanczos", batched=True, tol=1e-10)
    exact = torch.linalg.matrix_norm(A, ord=2)
    assert bool(torch.as_tensor(res.converged).all())
    # ARPACK's tol 1e-10 on the singular value, plus float64 rounding of the products
    torch.testing.assert_close(res.value, exact, rtol=1e-9, atol=0)


def test_arnoldi_on_one_modulus_falls_back_to_dense():
    """Old: a raw ArpackNoConvergence after scipy's 10 n restarts (647 s at n = 1100; the
    default bound of 300 is exercised at that size by the slow test). Here 20 restarts."""
    m = orthogonal(60)
    vals, caught = record(lambda: eigenvalues(m.f, m.x0, 4, method="arnoldi", max_iter=20))
    assert len(caught) == 1 and "ARPACK" in str(caught[0].message)
    # an orthogonal matrix is normal: its computed eigenvalues lie within ~n eps of the circle
    np.testing.assert_allclose(np.abs(vals), 1.0, rtol=0, atol=60 * 2.3e-16)


def test_arnoldi_without_room_for_dense_raises_a_sadyn_error(monkeypatch):
    m = orthogonal(60)
    monkeypatch.setattr(spectra, "DENSE_FALLBACK_BYTES", 0)
    with pytest.raises(ConvergenceError, match="ARPACK did not converge") as info:
        eigenvalues(m.f, m.x0, 4, method="arnoldi", max_iter=5)
    assert isinstance(info.value, SadynError)


@pytest.mark.slow
def test_issue_sizes_orthogonal_1100_and_norm_1296():
    """The reported sizes: eigenvalues of an orthogonal 1100 x 1100 map (auto: Arnoldi,
    bounded, then dense) and the norm at n = 1296 (auto: power, then dense)."""
    m = orthogonal(1100)
    vals, caught = record(lambda: eigenvalues(m.f, m.x0, 6))
    assert len(caught) == 1
    np.testing.assert_allclose(np.abs(vals), 1.0, rtol=0, atol=1100 * 2.3e-16)
    m = near_degenerate(1296)
    res, caught = record(lambda: spectral_norm(m.f, m.x0))
    assert res.converged is True and not caught
    assert res.value == pytest.approx(1.0, abs=1296 * 2.3e-16 * math.sqrt(1296))
