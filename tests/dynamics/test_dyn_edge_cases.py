"""Issue 12: exact finite-time exponents at any horizon, bad maps and arguments refused, NaN
maps giving NaN with exactly one warning. Each test failed on the code before the fix (the
old behaviour is noted in its docstring)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings

import mpmath
import numpy as np
import pytest
import torch

from sadyn.dynamics import (
    JacobianOperator,
    NonFiniteStateWarning,
    Propagator,
    divergence,
    eigenvalues,
    finite_time_lyapunov,
    jacobian,
    lyapunov_spectrum,
    max_lyapunov_two_trajectory,
    singular_values,
    spectral_norm,
    systems,
)
from sadyn.dynamics._common import rounding_zero_tol
from sadyn.dynamics.tangent import pick_tangent
from sadyn.errors import ArgumentError, ShapeError

F64 = torch.float64
NAN = float("nan")


def linear20() -> systems.ReferenceSystem:
    """``A = randn(20, 20) / sqrt(20)``, seed 0 (the issue's case)."""
    g = torch.Generator().manual_seed(0)
    return systems.linear(torch.randn(20, 20, generator=g, dtype=F64) / math.sqrt(20))


def mp_ftle(A: np.ndarray, T: int, k: int) -> np.ndarray:
    """Reference: ``(1/T) log sigma_i(A^T)`` from an mpmath SVD with ``T + 40`` digits (the
    singular values of ``A^T`` span ~``T`` decades; float64 resolves 16)."""
    with mpmath.workdps(T + 40):
        s = mpmath.svd_r(mpmath.matrix(A.tolist()) ** T, compute_uv=False)
        vals = sorted((s[i] for i in range(len(s))), reverse=True)[:k]
        return np.array([float(mpmath.log(v) / T) for v in vals])


# -- 1. exact at any horizon, sorted, honest convergence ---------------------------------------


@pytest.mark.parametrize(
    ("T", "method", "k"),
    [
        (16, "dense", 20),
        (32, "subspace", 4),
        (200, "dense", 20),
        (200, "subspace", 4),
        (1000, "dense", 4),
        pytest.param(1000, "subspace", 4, marks=pytest.mark.slow),
    ],
)
def test_linear_map_exact_to_1e10_at_any_horizon(T, method, k):
    """Old: at T = 200 errors of 1e-2 (dense 1.1e-1 on the full spectrum), unsorted at
    T = 1000, and subspace reported converged with errors of 1e-2."""
    m = linear20()
    want = mp_ftle(linear20_matrix(), T, k)
    res = finite_time_lyapunov(m.f, m.x0, T, k, method=method, options={"tol": 1e-12})
    got = res.exponents.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    assert np.all(np.diff(got) <= 0), "not sorted largest first"
    assert res.converged


def linear20_matrix() -> np.ndarray:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(20, 20, generator=g, dtype=F64) / math.sqrt(20)).numpy()


def test_converged_flag_is_honest():
    """Old: method="subspace", tol=1e-10 said converged after 3 iterations, errors 6e-3."""
    m = linear20()
    want = mp_ftle(linear20_matrix(), 200, 4)
    short = finite_time_lyapunov(
        m.f, m.x0, 200, 4, method="subspace", options={"tol": 1e-14, "max_iter": 1}
    )
    assert short.converged is False
    full = finite_time_lyapunov(m.f, m.x0, 200, 4, method="subspace", options={"tol": 1e-10})
    assert full.converged
    err = np.abs(full.exponents.numpy() - want).max()
    assert err <= 1e-10 and err <= float(full.info["error_estimate"]) + 1e-15


def test_finite_time_output_is_sorted_with_nulls_last():
    """A map whose most expanding direction is the *second* coordinate."""
    m = systems.diagonal([0.5, 3.0, 0.0, 1.5])
    for method in ("dense", "subspace"):
        res = finite_time_lyapunov(m.f, m.x0, 40, 4, method=method)
        np.testing.assert_allclose(res.exponents[:3].numpy(), np.log([3.0, 1.5, 0.5]), atol=1e-12)
        assert torch.isneginf(res.exponents[3])


def test_qr_spectrum_is_sorted_and_shows_its_zero_tolerance():
    """Old: QR exponents came in the start tangents' order at short horizons (unsorted,
    against the docs). The -inf threshold is a visible field of the result."""
    m = systems.diagonal([0.5, 3.0, 0.0])
    # started from e_1, e_2, e_3 the QR sums come out as [log 0.5, log 3, -inf]: sorted now
    short = lyapunov_spectrum(m.f, m.x0, 4, q0=torch.eye(3, dtype=F64), keep_local=True)
    np.testing.assert_allclose(short.exponents[:2].numpy(), np.log([3.0, 0.5]), atol=1e-12)
    np.testing.assert_allclose(short.local[0, :2].numpy(), np.log([3.0, 0.5]), atol=1e-12)
    assert short.tangents[1, 0].abs() == 1.0  # the tangents are permuted with them
    res = lyapunov_spectrum(m.f, m.x0, 50, transient=5)
    np.testing.assert_allclose(res.exponents[:2].numpy(), np.log([3.0, 0.5]), atol=1e-12)
    assert torch.isneginf(res.exponents[2])
    assert res.zero_tol == pytest.approx(rounding_zero_tol(F64, 3))
    ft = finite_time_lyapunov(m.f, m.x0, 16, zero_tol=1e-3)
    assert ft.zero_tol == 1e-3
    raw = lyapunov_spectrum(m.f, m.x0, 5, zero_tol=0.0)
    assert raw.zero_tol == 0.0


# -- 3. NaN maps: NaN and exactly one warning, never a LinAlgError or LAPACK chatter ---------


def _nan_after_growth(x: torch.Tensor) -> torch.Tensor:
    """The issue's map: 1.5 x until some |x_i| > 7, then NaN."""
    return torch.where((1.5 * x).abs().amax() > 7, 1.5 * x * NAN, 1.5 * x)


def _nan_everywhere(x: torch.Tensor) -> torch.Tensor:
    return x * NAN


X3 = torch.tensor([1.0, 0.5, 0.2], dtype=F64)


def _one_warning(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call()
    ours = [w for w in caught if issubclass(w.category, NonFiniteStateWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert len(caught) == 1, [str(w.message) for w in caught]
    return out


@pytest.mark.parametrize("method", ["dense", "subspace"])
@pytest.mark.parametrize("f", [_nan_after_growth, _nan_everywhere])
def test_ftle_of_a_nan_map_is_nan_with_one_warning(method, f):
    """Old: _LinAlgError: linalg.svd ... non-finite (the frozen state's Jacobian is NaN)."""
    res = _one_warning(lambda: finite_time_lyapunov(f, X3, 16, 2, method=method))
    assert torch.isnan(res.exponents).all()


def test_every_function_gives_nan_and_one_warning_on_a_nan_map():
    """Old: dense spectral_norm raised, power iteration returned NaN silently, eigenvalues
    printed an MKL DGEBAL error (and could crash the interpreter)."""
    f = _nan_everywhere
    assert math.isnan(_one_warning(lambda: spectral_norm(f, X3, method="dense")).value)
    assert math.isnan(_one_warning(lambda: spectral_norm(f, X3, method="power")).value)
    assert np.isnan(_one_warning(lambda: singular_values(f, X3))).all()
    assert torch.isnan(_one_warning(lambda: jacobian(f, X3))).all()
    assert torch.isnan(_one_warning(lambda: lyapunov_spectrum(f, X3, 5)).exponents).all()
    assert math.isnan(_one_warning(lambda: max_lyapunov_two_trajectory(f, X3, 5)))
    assert torch.isnan(_one_warning(lambda: divergence(f, X3, 1e-6, 3)).distances[1:]).all()
    _one_warning(lambda: JacobianOperator(f, X3))


def test_eigenvalues_of_a_nan_map_never_reach_lapack():
    """In a fresh interpreter, so LAPACK's own stderr/stdout would be seen."""
    code = textwrap.dedent(
        """
        import warnings, numpy as np, torch
        from sadyn.dynamics import eigenvalues, singular_values
        f = lambda x: x * float("nan")
        x = torch.linspace(0.1, 1.0, 40, dtype=torch.float64)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            a = eigenvalues(f, x)
            b = eigenvalues(f, x, 3, method="arnoldi")
            c = singular_values(f, x, 3, method="svds")
        assert np.isnan(a).all() and np.isnan(b).all() and np.isnan(c).all()
        print(len(w))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "3"
    assert "MKL" not in out.stderr and "DGEBAL" not in out.stdout + out.stderr


# -- 4. shape-changing maps and bad arguments are refused --------------------------------------


def test_shape_changing_maps_are_refused():
    """Old: the two-trajectory method returned 0.586 for x -> 2 x[:2], divergence returned
    distances for a map that appends a coordinate, FTLE raised a raw RuntimeError."""
    shrink = lambda x: 2 * x[..., :2]  # noqa: E731
    grow = lambda x: torch.cat([x, x[..., :1]], -1)  # noqa: E731
    for f in (shrink, grow):
        for call in (
            lambda f=f: max_lyapunov_two_trajectory(f, X3, 5),
            lambda f=f: divergence(f, X3, 1e-3, 5),
            lambda f=f: finite_time_lyapunov(f, X3, 5),
            lambda f=f: finite_time_lyapunov(f, X3, 5, 2, method="subspace"),
            lambda f=f: lyapunov_spectrum(f, X3, 5, tangent="jvp"),
            lambda f=f: lyapunov_spectrum(f, X3, 5, tangent="dense"),
            lambda f=f: spectral_norm(f, X3, method="power"),
            lambda f=f: eigenvalues(f, X3),
            lambda f=f: jacobian(f, X3),
            lambda f=f: Propagator(f, X3, 3),
        ):
            with pytest.raises(ShapeError, match="same shape"):
                call()


def test_bad_arguments_are_refused_not_truncated():
    """Old: transient=-1 raised IndexError; k=2.7 and T=2.5 were truncated silently."""
    f = lambda x: 0.5 * x  # noqa: E731
    bad_calls = [
        lambda: finite_time_lyapunov(f, X3, 5, transient=-1),
        lambda: finite_time_lyapunov(f, X3, 2.5),
        lambda: finite_time_lyapunov(f, X3, 5, 2.7),
        lambda: finite_time_lyapunov(f, X3, 5, 2, options={"max_iter": 0}),
        lambda: finite_time_lyapunov(f, X3, 5, 2, options={"lanczos": 3}),
        lambda: lyapunov_spectrum(f, X3, 5, k=2.7),
        lambda: lyapunov_spectrum(f, X3, 2.5),
        lambda: lyapunov_spectrum(f, X3, 5, transient=-1),
        lambda: lyapunov_spectrum(f, X3, 5, reortho_every=True),
        lambda: max_lyapunov_two_trajectory(f, X3, 5, transient=-1),
        lambda: max_lyapunov_two_trajectory(f, X3, 5.0),
        lambda: max_lyapunov_two_trajectory(f, X3, 5, d0=-1.0),
        lambda: divergence(f, X3, 1e-3, 2.5),
        lambda: divergence(f, X3, 1e-3, 5, record_every=0),
        lambda: spectral_norm(f, X3, method="power", max_iter=1.5),
        lambda: eigenvalues(f, X3, 1.5),
    ]
    for i, call in enumerate(bad_calls):
        with pytest.raises(ArgumentError):
            call()
            pytest.fail(f"call {i} accepted a bad argument")


def test_numpy_state_is_converted():
    """Old: AttributeError: 'numpy.ndarray' object has no attribute 'detach'."""
    m = systems.henon()
    x_np = m.x0.numpy()
    a = lyapunov_spectrum(m.f, x_np, 50, progress=False)
    b = lyapunov_spectrum(m.f, m.x0, 50, progress=False)
    torch.testing.assert_close(a.exponents, b.exponents, rtol=0, atol=0)
    ft = finite_time_lyapunov(m.f, x_np, 16)
    torch.testing.assert_close(ft.exponents, finite_time_lyapunov(m.f, m.x0, 16).exponents)
    assert max_lyapunov_two_trajectory(m.f, x_np, 20) == max_lyapunov_two_trajectory(m.f, m.x0, 20)
    with pytest.raises(ShapeError, match=r"torch\.Tensor"):
        lyapunov_spectrum(m.f, [0.1, 0.2], 5)
    with pytest.raises(ShapeError, match="floating"):
        lyapunov_spectrum(m.f, np.array([1, 2]), 5)


# -- 5. tangent="auto" ----------------------------------------------------------------------------


def test_auto_tangent_takes_the_dense_jacobian_for_small_maps():
    """Old: JVP at n = 40 (7.4x slower than dense there). The crossover is measured in
    benchmarks/bench_dynamics_tangent.py (BENCHMARKS.md)."""
    assert pick_tangent("auto", 40, 40) == "dense"
    assert pick_tangent("auto", 40, 4) == "dense"
    assert pick_tangent("auto", 96, 48) == "dense"
    assert pick_tangent("auto", 96, 4) == "fastest"  # jvp or vjp2, timed on the first steps
    assert pick_tangent("auto", 200, 200) == "fastest"
    m = systems.random_tanh_rnn(40, 2.0, seed=0)
    assert lyapunov_spectrum(m.f, m.x0, 3, progress=False).method == "qr-dense"
