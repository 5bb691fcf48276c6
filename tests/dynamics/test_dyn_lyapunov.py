"""QR/Benettin spectrum: invariants, three-way agreement, zero directions, NaN, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dyn_maps import attention_block

from sadyn.dynamics import (
    NonFiniteStateWarning,
    finite_time_lyapunov,
    jacobian,
    lyapunov_spectrum,
    max_lyapunov_two_trajectory,
    systems,
)
from sadyn.errors import DivergenceError, ShapeError

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- invariants --------------------------------------------------------------------------------


def test_sum_equals_mean_log_det(chaotic_rnn):
    """sum_i lambda_i = <log|det J(x_t)|> along the orbit: exact for the full spectrum."""
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    steps, transient = 60, 10
    res = lyapunov_spectrum(f, x0, steps, transient=transient)
    x = x0
    for _ in range(transient):
        x = f(x)
    logdet = 0.0
    for _ in range(steps):
        logdet += float(torch.linalg.slogdet(chaotic_rnn.jacobian(x))[1])  # hand Jacobian
        x = f(x)
    assert float(res.exponents.sum()) == pytest.approx(logdet / steps, abs=1e-9)
    torch.testing.assert_close(res.final_state, x)


def test_k1_equals_first_of_full_spectrum(chaotic_rnn):
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    full = lyapunov_spectrum(f, x0, 300, transient=200, generator=gen(1))
    top = lyapunov_spectrum(f, x0, 300, 1, transient=200, generator=gen(2))
    assert top.exponents.shape == (1,)
    # After the transient both tangents have collapsed onto the same Lyapunov vector.
    assert float(top.exponents[0]) == pytest.approx(float(full.exponents[0]), abs=1e-8)


def test_independent_of_the_tangent_seed(chaotic_rnn):
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    a = lyapunov_spectrum(f, x0, 300, 4, transient=200, generator=gen(10))
    b = lyapunov_spectrum(f, x0, 300, 4, transient=200, generator=gen(11))
    torch.testing.assert_close(a.exponents, b.exponents, rtol=0, atol=1e-8)
    # Same seed, same numbers.
    c = lyapunov_spectrum(f, x0, 300, 4, transient=200, generator=gen(10))
    assert torch.equal(a.exponents, c.exponents)


def test_exponents_of_f_composed_with_f_are_twice_those_of_f(chaotic_rnn):
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    q0 = torch.linalg.qr(torch.randn(x0.shape[0], 3, generator=gen(0), dtype=F64))[0]
    once = lyapunov_spectrum(f, x0, 400, 3, transient=100, q0=q0, reortho_every=2)
    twice = lyapunov_spectrum(lambda x: f(f(x)), x0, 200, 3, transient=50, q0=q0)
    torch.testing.assert_close(twice.exponents, 2 * once.exponents, rtol=0, atol=1e-10)
    # QR every step instead of every other one changes nothing asymptotically.
    every = lyapunov_spectrum(f, x0, 400, 3, transient=100, q0=q0)
    torch.testing.assert_close(twice.exponents, 2 * every.exponents, rtol=0, atol=1e-6)


# -- three-way agreement ------------------------------------------------------------------------


def test_three_way_agreement_on_a_chaotic_tanh_rnn():
    m = systems.random_tanh_rnn(16, 2.0, seed=1)
    q0 = torch.linalg.qr(torch.randn(16, 4, generator=gen(0), dtype=F64))[0]
    by_jvp = lyapunov_spectrum(m.f, m.x0, 1000, 4, transient=200, q0=q0, tangent="jvp")
    by_jac = lyapunov_spectrum(m.f, m.x0, 1000, 4, transient=200, q0=q0, tangent="dense")
    two = max_lyapunov_two_trajectory(m.f, m.x0, 1000, transient=200)
    torch.testing.assert_close(by_jvp.exponents, by_jac.exponents, rtol=0, atol=1e-10)
    assert float(by_jvp.exponents[0]) > 0.05  # chaotic
    assert two == pytest.approx(float(by_jvp.exponents[0]), abs=2e-3)


def test_three_way_agreement_on_attention_with_rmsnorm(attn):
    """Full spectrum of 9 tokens x 8 dims: the 9 radial directions are -inf in both."""
    f, x0 = attn
    q0 = torch.linalg.qr(torch.randn(72, 72, generator=gen(0), dtype=F64))[0]
    by_jvp = lyapunov_spectrum(f, x0, 60, transient=40, q0=q0, tangent="jvp")
    by_jac = lyapunov_spectrum(f, x0, 60, transient=40, q0=q0, tangent="dense")
    for res in (by_jvp, by_jac):
        assert torch.isneginf(res.exponents[-9:]).all()
        assert torch.isfinite(res.exponents[:-9]).all()
        assert not torch.isnan(res.exponents).any()
    torch.testing.assert_close(by_jvp.exponents, by_jac.exponents, rtol=0, atol=1e-10)
    # align: the separation first turns toward the top direction, as the QR tangents do in
    # their transient; without it both carry different O(1/steps) start-up biases.
    two = max_lyapunov_two_trajectory(f, x0, 200, transient=40, align=40)
    top = lyapunov_spectrum(f, x0, 200, 1, transient=80, tangent="jvp")
    assert two == pytest.approx(float(top.exponents[0]), abs=2e-3)


def test_exact_zero_direction_gives_minus_inf():
    def f(x):  # the second coordinate is mapped to exactly 0
        return torch.stack((1.1 * x[..., 0], 0.0 * x[..., 1]), dim=-1)

    x0 = torch.tensor([0.3, 0.7], dtype=F64)
    for tol in (None, 0.0):
        res = lyapunov_spectrum(f, x0, 50, transient=1, zero_tol=tol)
        assert float(res.exponents[0]) == pytest.approx(math.log(1.1), abs=1e-12)
        assert torch.isneginf(res.exponents[1])


def test_roundoff_null_directions_need_the_tolerance():
    """x -> x/|x|: the radial stretch is ~1e-16, not 0; zero_tol decides what it means."""
    m = systems.toy_oscillator([1.0, 1.0], eta=0.3, normalize=True)
    res = lyapunov_spectrum(m.f, m.x0, 50, transient=2)
    assert torch.isneginf(res.exponents[-1])
    raw = lyapunov_spectrum(m.f, m.x0, 50, transient=2, zero_tol=0.0)
    assert -60.0 < float(raw.exponents[-1]) < -20.0  # log(roundoff): finite, meaningless


def test_float32_map_accumulates_in_float64():
    f, x0 = attention_block(dtype=torch.float32)
    res = lyapunov_spectrum(f, x0, 20, 12, transient=5)
    assert res.exponents.dtype == F64
    ref = lyapunov_spectrum(*attention_block(), 20, 12, transient=5)
    torch.testing.assert_close(res.exponents, ref.exponents, rtol=0, atol=1e-4)


# -- bookkeeping --------------------------------------------------------------------------------


def test_local_exponents_average_to_the_exponents(chaotic_rnn):
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    res = lyapunov_spectrum(f, x0, 30, 3, transient=7, reortho_every=4, keep_local=True)
    assert res.local.shape == (8, 3)  # ceil(30 / 4) QRs, the last over 2 steps
    weights = torch.tensor([4.0] * 7 + [2.0], dtype=F64)[:, None]
    torch.testing.assert_close((res.local * weights).sum(0) / 30, res.exponents)
    assert res.steps == 30
    assert res.tangents.shape == (8, 3)
    torch.testing.assert_close(res.tangents.T @ res.tangents, torch.eye(3, dtype=F64))
    assert lyapunov_spectrum(f, x0, 30, 3).local is None


def test_bad_arguments_raise():
    m = systems.henon()
    with pytest.raises(ShapeError):
        lyapunov_spectrum(m.f, m.x0, 10, k=3)
    with pytest.raises(ShapeError, match="batched=True"):
        lyapunov_spectrum(m.f, m.x0[None], 10)
    with pytest.raises(ShapeError):
        lyapunov_spectrum(lambda x: x[:1], m.x0, 10)
    with pytest.raises(ValueError):
        lyapunov_spectrum(m.f, m.x0, 0)
    with pytest.raises(ValueError):
        lyapunov_spectrum(m.f, m.x0, 10, reortho_every=0)
    with pytest.raises(ValueError):
        lyapunov_spectrum(m.f, m.x0, 10, on_nonfinite="ignore")


# -- non-finite states ------------------------------------------------------------------------


def test_escaping_orbit_gives_nan_with_a_warning():
    m = systems.logistic(4.5)  # orbits leave [0, 1] and run to -inf
    with pytest.warns(NonFiniteStateWarning, match="non-finite"):
        res = lyapunov_spectrum(m.f, m.x0, 200)
    assert torch.isnan(res.exponents).all()
    assert res.info["nonfinite_rows"] == [0]
    with pytest.raises(DivergenceError, match="step"):
        lyapunov_spectrum(m.f, m.x0, 200, on_nonfinite="raise")


def test_nan_initial_state_gives_nan():
    m = systems.henon()
    with pytest.warns(NonFiniteStateWarning):
        res = lyapunov_spectrum(m.f, torch.tensor([float("nan"), 0.1], dtype=F64), 10)
    assert torch.isnan(res.exponents).all()
    with pytest.warns(NonFiniteStateWarning):
        lam = max_lyapunov_two_trajectory(m.f, torch.tensor([float("nan"), 0.1]).double(), 10)
    assert math.isnan(lam)


def test_one_diverging_row_leaves_the_others_alone():
    r = torch.tensor([[4.5], [3.5]], dtype=F64)  # row 0 escapes, row 1 has a 4-cycle

    def g(x):
        return r * x * (1 - x)

    x0 = torch.tensor([[0.4], [0.4]], dtype=F64)
    with pytest.warns(NonFiniteStateWarning, match=r"rows \[0\]"):
        res = lyapunov_spectrum(g, x0, 400, transient=100, batched=True)
    assert torch.isnan(res.exponents[0]).all()
    assert float(res.exponents[1, 0]) == pytest.approx(-0.8725, abs=1e-4)


# -- batching ---------------------------------------------------------------------------------


def test_batched_equals_per_sample_loop(attn):
    f, x0 = attn
    x0s = torch.stack([x0, f(f(x0)), -x0])
    q0 = torch.linalg.qr(torch.randn(3, 72, 5, generator=gen(0), dtype=F64))[0]
    batch = lyapunov_spectrum(f, x0s, 15, 5, transient=3, q0=q0, batched=True, keep_local=True)
    assert batch.exponents.shape == (3, 5)
    assert batch.local.shape == (3, 15, 5)
    for i in range(3):
        one = lyapunov_spectrum(f, x0s[i], 15, 5, transient=3, q0=q0[i], keep_local=True)
        torch.testing.assert_close(batch.exponents[i], one.exponents, rtol=0, atol=1e-12)
        torch.testing.assert_close(batch.local[i], one.local, rtol=0, atol=1e-12)
        torch.testing.assert_close(batch.final_state[i], one.final_state)


def test_dense_tangent_matches_explicit_jacobian_product(chaotic_rnn):
    """The QR recursion by hand, with jacobian() and numpy, for a few steps."""
    f, x0 = chaotic_rnn.f, chaotic_rnn.x0
    q0 = torch.linalg.qr(torch.randn(8, 8, generator=gen(5), dtype=F64))[0]
    res = lyapunov_spectrum(f, x0, 5, q0=q0, tangent="jvp")
    x, Q, acc = x0, q0.numpy(), np.zeros(8)
    for _ in range(5):
        Q, R = np.linalg.qr(jacobian(f, x).numpy() @ Q)
        acc += np.log(np.abs(np.diag(R)))
        Q = Q * np.sign(np.diag(R))
        x = f(x)
    # exponents come largest first (the hand recursion keeps the start tangents' order)
    np.testing.assert_allclose(res.exponents.numpy(), np.sort(acc / 5)[::-1], atol=1e-12)


def test_trainable_parameters_do_not_leak_graphs(chaotic_rnn):
    """A map with requires_grad parameters: results carry no autograd graph (the trajectory
    would otherwise chain one graph through every step) and equal the frozen-weight ones."""
    W = torch.tensor(chaotic_rnn.params["W"], dtype=F64, requires_grad=True)

    def f(x):
        return torch.tanh(x) @ W.T

    x0 = chaotic_rnn.x0
    res = lyapunov_spectrum(f, x0, 20, 3, tangent="jvp")
    assert not res.exponents.requires_grad and not res.final_state.requires_grad
    ref = lyapunov_spectrum(chaotic_rnn.f, x0, 20, 3, tangent="jvp")
    torch.testing.assert_close(res.exponents, ref.exponents, rtol=0, atol=1e-12)
    ft = finite_time_lyapunov(f, x0, 8, 2, method="subspace")
    assert not ft.exponents.requires_grad
    assert not jacobian(f, x0).requires_grad


def test_qr_zero_threshold_is_the_rounding_level_of_one_step():
    """diag(1, 1e-15) in float64: 1e-15 is above n eps = 4.4e-16 (the rounding of one step's
    product), so QR keeps log 1e-15 (the old 16 sqrt(n) eps = 5e-15 made it -inf); an exact
    null direction is still -inf, with one ExactZeroWarning. A diagonal map's QR is exact, so
    the log is compared at a few eps of log-scale (|log 1e-15| ~ 35, eps64 ~ 2e-16); the start
    tangents are the axes so there is no transient (a random start adds log|q_11| / T)."""
    import math
    import warnings

    from sadyn.dynamics import ExactZeroWarning

    f = lambda v: v * torch.tensor([1.0, 1e-15], dtype=torch.float64)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExactZeroWarning)
        res = lyapunov_spectrum(
            f, torch.ones(2, dtype=torch.float64), 20, q0=torch.eye(2, dtype=torch.float64)
        )
    assert res.exponents[1].item() == pytest.approx(math.log(1e-15), abs=1e-12)
    g = lambda v: v * torch.tensor([1.0, 0.0], dtype=torch.float64)  # noqa: E731
    with pytest.warns(ExactZeroWarning, match="1 exponent"):
        res = lyapunov_spectrum(g, torch.ones(2, dtype=torch.float64), 20)
    assert torch.isneginf(res.exponents[1])
