"""Finite-time exponents (1/T) log sigma_i(J_{T-1} ... J_0): dense vs matrix-free vs numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dyn_maps import attention_block

from sadyn.dynamics import (
    NonFiniteStateWarning,
    Propagator,
    finite_time_lyapunov,
    jacobian,
    lyapunov_spectrum,
    systems,
)
from sadyn.errors import ShapeError

F64 = torch.float64


def numpy_ftle(f, x0: torch.Tensor, steps: int) -> np.ndarray:
    """Reference: explicit product of dense Jacobians, numpy SVD."""
    M = np.eye(x0.shape[-1])
    x = x0
    for _ in range(steps):
        M = jacobian(f, x).numpy() @ M
        x = f(x)
    return np.log(np.linalg.svd(M, compute_uv=False)) / steps


def test_linear_map_is_log_singular_values_of_a_power():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5)) / math.sqrt(5)
    m = systems.linear(A)
    want = np.log(np.linalg.svd(np.linalg.matrix_power(A, 6), compute_uv=False)) / 6
    for method in ("dense", "subspace", "svds"):
        k = 5 if method == "dense" else 3
        res = finite_time_lyapunov(m.f, m.x0, 6, k, method=method)
        np.testing.assert_allclose(res.exponents.numpy(), want[:k], atol=1e-10, err_msg=method)
        assert res.method == f"ftle-{method}"


def test_henon_t16_top_exponent_and_exact_sum():
    h = systems.henon()
    x0 = h.f(h.f(h.x0))
    res = finite_time_lyapunov(h.f, x0, 16)
    want = numpy_ftle(h.f, x0, 16)
    assert float(res.exponents[0]) == pytest.approx(want[0], abs=1e-10)
    # det M = (-b)^16: the two exponents sum to ln b exactly, although sigma_2 / sigma_1 is
    # ~1e-14 here and a plain SVD of the product gets sigma_2 only to a few per cent.
    assert float(res.exponents.sum()) == pytest.approx(math.log(0.3), abs=1e-12)


def test_dense_subspace_svds_agree_on_attention(attn):
    f, x0 = attn
    dense = finite_time_lyapunov(f, x0, 16)
    assert dense.exponents.shape == (72,)
    assert torch.isneginf(dense.exponents[-9:]).all()  # one radial direction per token
    np.testing.assert_allclose(dense.exponents[:-9].numpy(), numpy_ftle(f, x0, 16)[:-9], atol=1e-8)
    sub = finite_time_lyapunov(f, x0, 16, 10, method="subspace", options={"tol": 1e-10})
    svd = finite_time_lyapunov(f, x0, 16, 10, method="svds")
    assert sub.info["converged"]
    torch.testing.assert_close(sub.exponents, dense.exponents[:10], rtol=0, atol=1e-8)
    # the default tolerance (1e-4) is met, and the error estimate is not below the error
    quick = finite_time_lyapunov(f, x0, 16, 10, method="subspace")
    err = float((quick.exponents - dense.exponents[:10]).abs().max())
    assert quick.converged and err <= 1e-4
    assert err <= float(quick.info["error_estimate"])
    torch.testing.assert_close(svd.exponents, dense.exponents[:10], rtol=0, atol=1e-8)


def test_subspace_past_the_null_space_gives_minus_inf():
    f, x0 = attention_block(tokens=3, width=4, heads=2)
    res = finite_time_lyapunov(f, x0, 8, 12, method="subspace")  # n = 12, 3 null directions
    assert torch.isneginf(res.exponents[-3:]).all()
    dense = finite_time_lyapunov(f, x0, 8)
    torch.testing.assert_close(res.exponents[:9], dense.exponents[:9], rtol=0, atol=1e-8)


def test_finite_time_differs_from_short_qr(chaotic_rnn):
    """dynamics.md TL;DR 4: at T = 16 the SVD of the propagator is not the QR sum."""
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    ftle = finite_time_lyapunov(f, x0, 16, 1)
    qr = lyapunov_spectrum(f, x0, 16, 1)
    assert float(ftle.exponents[0]) > float(qr.exponents[0]) + 0.05


def test_batched_equals_per_sample_loop(attn):
    f, x0 = attn
    x0s = torch.stack([x0, f(x0), -x0])
    # rows of a batch iterate until the last converges: compare converged values (tol 1e-11)
    opts = {"tol": 1e-11}
    for method in ("dense", "subspace"):
        batch = finite_time_lyapunov(f, x0s, 16, 6, method=method, batched=True, options=opts)
        assert batch.exponents.shape == (3, 6)
        for i in range(3):
            one = finite_time_lyapunov(f, x0s[i], 16, 6, method=method, options=opts)
            torch.testing.assert_close(batch.exponents[i], one.exponents, rtol=0, atol=1e-9)


def test_propagator_products_match_dense(chaotic_rnn):
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    P = Propagator(f, x0, 5)
    M = np.eye(8)
    x = x0
    for _ in range(5):
        M = jacobian(f, x).numpy() @ M
        x = f(x)
    V = torch.randn(8, 3, dtype=F64)
    np.testing.assert_allclose(P.matmat(V).numpy(), M @ V.numpy(), atol=1e-12)
    np.testing.assert_allclose(P.rmatmat(V).numpy(), M.T @ V.numpy(), atol=1e-12)
    np.testing.assert_allclose(P.matvec(V[:, 0]).numpy(), M @ V[:, 0].numpy(), atol=1e-12)
    op = P.to_scipy()
    np.testing.assert_allclose(op.rmatvec(V[:, 1].numpy()), M.T @ V[:, 1].numpy(), atol=1e-12)


def test_long_horizon_does_not_overflow():
    m = systems.diagonal([3.0, 0.5])
    res = finite_time_lyapunov(m.f, m.x0, 800, 1, method="subspace")  # 3^800 overflows
    assert float(res.exponents[0]) == pytest.approx(math.log(3.0), abs=1e-12)


def test_nonfinite_trajectory_gives_nan():
    m = systems.logistic(4.5)
    with pytest.warns(NonFiniteStateWarning):
        res = finite_time_lyapunov(m.f, m.x0, 300)
    assert torch.isnan(res.exponents).all()


def test_bad_arguments_raise():
    m = systems.henon()
    with pytest.raises(ShapeError):
        finite_time_lyapunov(m.f, m.x0, 16, 3)
    with pytest.raises(ShapeError, match="pass k"):
        finite_time_lyapunov(m.f, m.x0, 16, method="subspace")
    with pytest.raises(ValueError):
        finite_time_lyapunov(m.f, m.x0, 16, method="lanczos")
    with pytest.raises(ValueError):
        finite_time_lyapunov(m.f, m.x0, 0)
