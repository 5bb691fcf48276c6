"""The FTLE's Krylov stopping rule by residuals, narrow blocks and the final values without
a re-reading sweep (issue 12 follow-up: fewer sweeps, the same honesty)."""

from __future__ import annotations

import pytest
import torch

from sadyn.dynamics import Propagator, finite_time_lyapunov
from sadyn.errors import ArgumentError


@pytest.fixture
def exact(attn):
    f, x0 = attn
    return finite_time_lyapunov(f, x0, 16, 10).exponents  # dense, tol 1e-12


@pytest.mark.parametrize("block", [None, 5, 14])
@pytest.mark.parametrize("tol", [1e-2, 1e-4, 1e-7])
def test_residual_estimate_bounds_the_actual_error(attn, exact, tol, block):
    f, x0 = attn
    res = finite_time_lyapunov(
        f,
        x0,
        16,
        10,
        method="subspace",
        options={"tol": tol, "block": block},
        generator=torch.Generator().manual_seed(0),
    )
    est = float(res.info["error_estimate"])
    actual = float((res.exponents - exact).abs().max())
    assert res.converged and est <= tol
    assert actual <= est + 1e-13, f"estimate {est:.1e} below the actual error {actual:.1e}"
    assert torch.all(res.exponents[:-1] >= res.exponents[1:])


def test_narrow_blocks_are_the_default_for_k_from_8(attn, exact):
    """k = 10: blocks of 5 columns (the first iteration holds only 5 values, so the space
    grows before the first estimate); the same values as wide blocks."""
    f, x0 = attn
    narrow = finite_time_lyapunov(f, x0, 16, 10, method="subspace", options={"tol": 1e-10})
    wide = finite_time_lyapunov(
        f, x0, 16, 10, method="subspace", options={"tol": 1e-10, "block": 14}
    )
    torch.testing.assert_close(narrow.exponents, exact, rtol=0, atol=1e-9)
    torch.testing.assert_close(wide.exponents, exact, rtol=0, atol=1e-9)
    # too few iterations for a 5-wide space to hold 10 values: subspace iteration takes over
    short = finite_time_lyapunov(f, x0, 16, 10, method="subspace", options={"max_iter": 1})
    assert short.exponents.shape == (10,) and short.converged is False


def test_values_without_the_final_sweep_carry_consistent_vectors(attn, exact):
    """When the Ritz values are final, the left vectors at x_T come from the Krylov space:
    M v_i = sigma_i u_i for the returned right and left vectors; keep_local (which needs a
    sweep) gives the same values."""
    f, x0 = attn
    res = finite_time_lyapunov(f, x0, 16, 10, method="subspace", options={"tol": 1e-10})
    V = res.info["right_vectors"]
    U = res.tangents
    eye = torch.eye(10, dtype=V.dtype)
    torch.testing.assert_close(V.mT @ V, eye, rtol=0, atol=1e-10)
    torch.testing.assert_close(U.mT @ U, eye, rtol=0, atol=1e-10)
    MV = Propagator(f, x0, 16).matmat(V)
    sigma = (16 * res.exponents).exp()
    torch.testing.assert_close(MV, U * sigma, rtol=0, atol=1e-8 * float(sigma[0]))
    local = finite_time_lyapunov(
        f, x0, 16, 10, method="subspace", options={"tol": 1e-10}, keep_local=True
    )
    assert local.local.shape == (16, 10)
    torch.testing.assert_close(local.exponents, res.exponents, rtol=0, atol=1e-9)


def test_stop_and_block_options_are_checked(attn):
    f, x0 = attn
    with pytest.raises(ArgumentError, match="stop"):
        finite_time_lyapunov(f, x0, 8, 3, method="subspace", options={"stop": "never"})
    with pytest.raises(ArgumentError, match="block"):
        finite_time_lyapunov(f, x0, 8, 3, method="subspace", options={"block": 0})
    old = finite_time_lyapunov(f, x0, 8, 3, method="subspace", options={"stop": "change"})
    assert old.converged
