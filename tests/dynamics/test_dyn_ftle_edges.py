"""Finite-time exponents at the edges: the zero threshold, zero and nilpotent propagators,
strongly non-normal chains, unconverged iterations, the automatic method choice and the
dense chain's memory. Each case returned a silent wrong number before."""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
import torch

import sadyn.dynamics.finite_time as ft
import sadyn.dynamics.finite_time_dense as ftd
from sadyn.dynamics import (
    ConvergenceWarning,
    ExactZeroWarning,
    Propagator,
    finite_time_lyapunov,
    systems,
)
from sadyn.dynamics.finite_time import choose_method
from sadyn.dynamics.finite_time_dense import DenseChain

F64 = torch.float64


def eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def record(fn):
    """``(result, warnings)`` of ``fn()``, every warning recorded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fn()
    return res, caught


# -- the exact-zero threshold: the rounding level of one step, n eps ----------------------------


def test_small_float64_stretch_is_kept():
    """Old: ``16 sqrt(n) eps`` (5e-15 at n = 2) declared the stretch 1e-15 an exact zero."""
    m = systems.diagonal([1.0, 1e-15])
    res, caught = record(lambda: finite_time_lyapunov(m.f, m.x0, 4))
    # a diagonal map computes its stretches exactly up to the representation of 1e-15 and the
    # QR's normalisation: a few ulps relative, so a few eps in the exponent
    np.testing.assert_allclose(res.exponents.numpy(), [0.0, math.log(1e-15)], rtol=0, atol=8e-16)
    assert not [w for w in caught if issubclass(w.category, ExactZeroWarning)]


def test_float32_stretch_above_n_eps_is_kept_below_is_declared_with_one_warning():
    """n = 16 float32: a stretch of 5e-6 lies above n eps = 1.9e-6 (kept; the old threshold
    16 sqrt(n) eps = 7.6e-6 made it -inf); at n = 100, 1e-5 lies below n eps = 1.2e-5: declared
    zero, with one warning naming the threshold; ``zero_tol=0`` keeps it."""
    d = [1.0] * 8 + [5e-6] * 8
    m = systems.diagonal(d)
    res = finite_time_lyapunov(m.f, m.x0.float(), 4, 16)
    want = np.log(np.float32(5e-6))  # the stretch as float32 represents it
    # exact products up to float32 rounding of the QR's normalisation: a few eps32 relative
    np.testing.assert_allclose(res.exponents[8:].numpy(), want, rtol=0, atol=8 * eps(torch.float32))
    d = torch.ones(100)
    d[50:] = 1e-5
    m = systems.diagonal(d.tolist())
    res, caught = record(lambda: finite_time_lyapunov(m.f, m.x0.float(), 4, 60))
    assert torch.isneginf(res.exponents[50:]).all()
    zero = [w for w in caught if issubclass(w.category, ExactZeroWarning)]
    assert len(zero) == 1 and "10 exponent(s)" in str(zero[0].message)
    assert res.zero_tol == pytest.approx(100 * eps(torch.float32))
    kept = finite_time_lyapunov(m.f, m.x0.float(), 4, 60, zero_tol=0.0)
    want = np.log(np.float32(1e-5))
    np.testing.assert_allclose(
        kept.exponents[50:].numpy(), want, rtol=0, atol=8 * eps(torch.float32)
    )


# -- zero and nilpotent propagators: -inf from every method ---------------------------------------


@pytest.mark.parametrize("method", ["dense", "subspace"])
def test_zero_and_nilpotent_propagators(method):
    """Old: subspace gave -734 (zero map) and finite values for a nilpotent one, reported
    converged with error 0, while dense gave -inf."""
    n = 6
    zero = systems.linear(torch.zeros(n, n, dtype=F64))
    res = finite_time_lyapunov(zero.f, zero.x0, 4, 3, method=method)
    assert torch.isneginf(res.exponents).all() and res.converged
    shift = systems.linear(torch.diag(torch.ones(n - 1, dtype=F64), -1))  # N^6 = 0
    res = finite_time_lyapunov(shift.f, shift.x0, 8, 3, method=method)
    assert torch.isneginf(res.exponents).all() and res.converged
    # N^3 is a partial isometry of rank 3: three singular values exactly 1. The shift moves
    # coordinates without arithmetic, so only the QR's rounding (a few eps) enters
    res = finite_time_lyapunov(shift.f, shift.x0, 3, 3, method=method)
    np.testing.assert_allclose(res.exponents.numpy(), 0.0, rtol=0, atol=8 * eps(F64))


# -- strongly non-normal chains: detected at the rounding floor ------------------------------------


def jordan(lower: bool, n: int = 4, lam: float = 0.9, c: float = 1e3) -> torch.Tensor:
    """The issue's chain: ``lam`` on the diagonal, ``c`` on the sub- or superdiagonal."""
    A = lam * torch.eye(n, dtype=F64)
    idx = torch.arange(n - 1)
    if lower:
        A[idx + 1, idx] = c
    else:
        A[idx, idx + 1] = c
    return A


def jordan_reference(A: torch.Tensor, T: int) -> np.ndarray:
    """``(1/T) log sigma_i(A^T)`` from mpmath: the singular values span ``e^{T (l_1 - l_4)}``
    (1e33 at T = 100... 500), so 80 digits hold the smallest to more than 30."""
    with mpmath.workdps(80):
        s = mpmath.svd_r(mpmath.matrix(A.tolist()) ** T, compute_uv=False)
        vals = sorted((s[i] for i in range(len(s))), reverse=True)
        return np.array([float(mpmath.log(v) / T) for v in vals])


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("method", ["dense", "subspace"])
def test_non_normal_chain_is_detected_and_bounded(lower, method):
    """4x4 Jordan chains (0.9, 1e3 off the diagonal), T = 100: rounding of eps ||J|| per step
    is amplified by the transient growth (first-order condition of sigma_1 to per-step
    perturbations ~ sum_t ||M_>t|| ||J|| ||M_<t|| / sigma_1 ~ 1e14 here), so no sweep in
    float64 is exact in general. Old: the value of whichever sweep ran last, 101 sweeps,
    subspace error estimates of 12-27 exponent units. Now: the forward reading, stopped at
    the rounding floor in a few sweeps, an estimate that covers the actual error, flagged."""
    A = jordan(lower)
    m = systems.linear(A)
    T, k = 100, (4 if method == "dense" else 2)
    want = jordan_reference(A, T)[:k]
    res, caught = record(lambda: finite_time_lyapunov(m.f, m.x0, T, k, method=method))
    err = float(np.abs(res.exponents.numpy() - want).max())
    est = float(res.info["error_estimate"])
    assert err <= est <= 0.1, f"error {err:.1e}, estimate {est:.1e}"
    assert res.info["sweeps"] <= 7
    if est > res.info["options"]["tol"]:
        assert res.converged is False and bool(res.info["rounding_limited"])
        conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        assert len(conv) == 1 and "non-normal" in str(conv[0].message)
    if not lower:
        # the upper chain's forward sweep keeps the triangle with positive entries (the
        # start block is the product's SVD, exact to eps): each factor is exact to a few
        # ulps; measured 1e-13 at T = 500, three decades of room
        assert err <= 1e-10


# -- unconverged iterations warn; "auto" picks a method that converges -----------------------------


def test_unconverged_subspace_warns():
    """Old: max_iter reached silently (only ``converged`` False)."""
    g = torch.Generator().manual_seed(0)
    m = systems.linear(torch.randn(40, 40, generator=g, dtype=F64) / math.sqrt(40))
    opts = {"max_iter": 1, "tol": 1e-12}
    res, caught = record(
        lambda: finite_time_lyapunov(m.f, m.x0, 1, 6, method="subspace", options=opts)
    )
    assert res.converged is False
    conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(conv) == 1 and "max_iter" in str(conv[0].message)


def test_auto_falls_back_to_dense_when_subspace_does_not_converge(monkeypatch):
    """T = 1 packs the singular values of a random 200 x 200 matrix densely: the subspace
    iteration stops at ~1e-3 (the issue's case at n = 200). "auto" (made to try subspace
    first by lowering DENSE_MAX) falls back to the dense method, which is exact."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(200, 200, generator=g, dtype=F64) / math.sqrt(200)
    m = systems.linear(A)
    monkeypatch.setattr(ft, "DENSE_MAX", 100)
    res, caught = record(lambda: finite_time_lyapunov(m.f, m.x0, 1, 10, options={"max_iter": 2}))
    assert res.info["fallback"] is not None and res.method == "ftle-dense"
    assert res.converged and not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    want = np.log(np.linalg.svd(A.numpy(), compute_uv=False)[:10])
    # one step, singular values of a well-conditioned matrix: LAPACK's relative accuracy
    # ~ n eps sigma_1 / sigma_10 < 1e-12
    np.testing.assert_allclose(res.exponents.numpy(), want, rtol=0, atol=1e-12)


def test_auto_weighs_the_horizon_and_memory():
    """Dense at short horizons or while the Jacobians fit; subspace at long horizons with
    many large Jacobians (n = 400, T = 500 held 1.6 GB before)."""
    assert choose_method(400, 16, 4) == "dense"
    assert choose_method(400, 500, 400) == "dense"  # all exponents: dense, O(n^2) memory
    assert choose_method(400, 500, 4) == "subspace"
    assert choose_method(50, 5000, 4) == "dense"  # 50 x 50 x 5000 float64: 100 MB
    assert choose_method(2000, 16, 4) == "subspace"


# -- the dense chain's memory: O(n^2), the same numbers ------------------------------------------


def test_dense_chain_recomputes_instead_of_storing(monkeypatch, chaotic_rnn):
    """Over the memory budget the chain keeps no Jacobian and recomputes each per sweep
    (deterministic: the same float64 numbers), giving identical exponents."""
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    kept = finite_time_lyapunov(f, x0, 30, method="dense")
    monkeypatch.setattr(ftd, "DENSE_CHAIN_BYTES", 0)
    prop = Propagator(f, x0, 30)
    chain = DenseChain(prop, prop.nonfinite, "warn", False, keep=ftd.keeps_jacobians(1, 8, 30))
    assert chain.J == []
    V = torch.eye(8, dtype=F64)[None]
    assert torch.equal(chain.step(0, V), chain.jacobian(0))
    streamed = finite_time_lyapunov(f, x0, 30, method="dense")
    assert torch.equal(streamed.exponents, kept.exponents)


def test_long_horizons_show_progress(monkeypatch):
    """The first pass over the Jacobians (and each long sweep) runs under a progress bar."""
    seen = []

    def spy(it, total, enable, desc):
        seen.append((total, enable, desc))
        return iter(it)

    monkeypatch.setattr(ftd, "progress_bar", spy)
    m = systems.diagonal([0.5, 0.9])
    finite_time_lyapunov(m.f, m.x0, 150, method="dense")
    assert seen and seen[0][:2] == (150, True)
    seen.clear()
    finite_time_lyapunov(m.f, m.x0, 150, method="dense", progress=False)
    assert seen and seen[0][1] is False
