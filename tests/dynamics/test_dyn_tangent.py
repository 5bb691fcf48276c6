"""Tangent steps (jvp, vjp2, dense), the compiled path and its auto switch, the typed QR loop,
and the FTLE options (issue 12 / 14)."""

from __future__ import annotations

import warnings

import pytest
import torch

from sadyn.dynamics import LyapunovResult, finite_time_lyapunov, lyapunov_spectrum, systems
from sadyn.dynamics import tangent as tangent_mod
from sadyn.dynamics._common import as_batched, rounding_zero_tol
from sadyn.dynamics.lyapunov import benettin, initial_tangents
from sadyn.dynamics.tangent import AutoCompile, eager_tangent_step, make_tangent_step

F64 = torch.float64


def test_vjp_of_vjp_equals_forward_mode(attn):
    f, x0 = attn
    g = torch.Generator().manual_seed(0)
    q0 = torch.linalg.qr(torch.randn(72, 6, generator=g, dtype=F64))[0]
    a = lyapunov_spectrum(f, x0, 12, 6, q0=q0, tangent="jvp", keep_local=True)
    b = lyapunov_spectrum(f, x0, 12, 6, q0=q0, tangent="vjp2", keep_local=True)
    c = lyapunov_spectrum(f, x0, 12, 6, q0=q0, tangent="dense", keep_local=True)
    torch.testing.assert_close(a.local, b.local, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.local, c.local, rtol=0, atol=1e-12)
    assert (a.method, b.method, c.method) == ("qr-jvp", "qr-vjp2", "qr-dense")


def test_fastest_picks_a_measured_winner_and_survives_a_failing_one(attn):
    f, x0 = attn
    g = torch.Generator().manual_seed(1)
    q0 = torch.linalg.qr(torch.randn(72, 3, generator=g, dtype=F64))[0]
    ref = lyapunov_spectrum(f, x0, 8, 3, q0=q0, tangent="jvp")
    res = lyapunov_spectrum(f, x0, 8, 3, q0=q0, tangent="fastest")
    assert res.method in ("qr-jvp", "qr-vjp2")
    torch.testing.assert_close(res.exponents, ref.exponents, rtol=0, atol=1e-12)

    def broken(*args):
        raise NotImplementedError("no double backward")

    pick = tangent_mod.Fastest(lambda a: a + 1, broken, ("one", "two"))
    assert [pick(1) for _ in range(4)] == [2, 2, 2, 2] and pick.mode == "one"
    timed = tangent_mod.Fastest(lambda a: a, lambda a: a, ("one", "two"))
    for _ in range(4):
        timed(0)
    assert timed.choice in ("one", "two") and set(timed.times) == {"one", "two"}


def test_benettin_returns_a_typed_result_with_separate_transient(chaotic_rnn):
    """The transient loop evolves without accumulating: 5 + 7 steps from x0 accumulate over
    the same 7 steps as 7 steps from the state and tangents after 5."""
    F, X = as_batched(chaotic_rnn.f, chaotic_rnn.x0, False)
    Q = initial_tangents(X, 3, None, torch.Generator().manual_seed(0), False)
    tol = rounding_zero_tol(F64, 8)
    step = eager_tangent_step(F, "jvp")
    whole = benettin(step, X, Q, 7, transient=5, zero_tol=tol, show_progress=False)
    assert isinstance(whole, LyapunovResult) and whole.exponents.shape == (1, 3)
    pre = benettin(step, X, Q, 5, zero_tol=tol, show_progress=False)
    rest = benettin(step, pre.final_state, pre.tangents, 7, zero_tol=tol, show_progress=False)
    torch.testing.assert_close(whole.exponents, rest.exponents, rtol=0, atol=1e-13)
    assert whole.zero_tol == tol and whole.steps == 7


def test_auto_compile_switches_only_for_long_runs(monkeypatch, chaotic_rnn):
    """The switch itself, without compiling: a stub stands in for torch.compile."""
    made = []

    def fake(F, tangent, owner=None):
        made.append(tangent)
        return eager_tangent_step(F, tangent)

    monkeypatch.setattr(tangent_mod, "compiled_tangent_step", fake)
    F, X = as_batched(chaotic_rnn.f, chaotic_rnn.x0, False)
    Q = torch.linalg.qr(torch.randn(1, 8, 2, dtype=F64))[0]
    short = AutoCompile(F, "jvp", total_steps=10, threshold_s=3600.0)
    long = AutoCompile(F, "jvp", total_steps=10**9, threshold_s=1e-9)
    for _ in range(6):
        short(X, Q)
        long(X, Q)
    assert not short.compiled and long.compiled and made == ["jvp"]
    make_tangent_step(F, "dense", True, 10)(X, Q)  # the dense step never compiles
    make_tangent_step(F, "jvp", False, 10**9)(X, Q)  # nor does compile=False
    assert made == ["jvp"]
    make_tangent_step(F, "vjp2", True, 10)
    assert made == ["jvp", "vjp2"]
    with pytest.raises(ValueError):
        make_tangent_step(F, "jvp", "sometimes", 10)


@pytest.mark.slow
def test_compiled_step_agrees_with_eager_and_is_cached(attn):
    """torch.compile (10-30 s per shape on CPU): slow, once on a tiny map."""
    f, x0 = attn
    eager = lyapunov_spectrum(f, x0, 8, 4, tangent="jvp")
    for tangent in ("jvp", "vjp2"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
            res = lyapunov_spectrum(f, x0, 8, 4, tangent=tangent, compile=True)
        assert res.info["compiled"]
        torch.testing.assert_close(res.exponents, eager.exponents, rtol=0, atol=1e-10)
    assert len(tangent_mod._cache_for(f)) == 2  # one entry per (mode, shape)
    lyapunov_spectrum(f, x0, 8, 4, tangent="jvp", compile=True)
    assert len(tangent_mod._cache_for(f)) == 2


def test_krylov_and_plain_sweeps_agree_with_dense(attn):
    f, x0 = attn
    dense = finite_time_lyapunov(f, x0, 16, 10)
    for krylov in (True, False):
        res = finite_time_lyapunov(
            f, x0, 16, 10, method="subspace", options={"tol": 1e-11, "krylov": krylov}
        )
        assert res.converged
        torch.testing.assert_close(res.exponents, dense.exponents, rtol=0, atol=1e-9)


def test_options_and_deprecated_keywords():
    m = systems.henon()
    new = finite_time_lyapunov(m.f, m.x0, 16, 1, method="subspace", options={"tol": 1e-10})
    with pytest.warns(DeprecationWarning, match="options="):
        old = finite_time_lyapunov(m.f, m.x0, 16, 1, method="subspace", tol=1e-10)
    torch.testing.assert_close(old.exponents, new.exponents, rtol=0, atol=0)
    assert new.info["options"]["tol"] == 1e-10


def test_krylov_memory_cap_hands_over_to_subspace_iteration(attn, monkeypatch):
    import sadyn.dynamics.finite_time as ft_mod

    monkeypatch.setattr(ft_mod, "KRYLOV_MAX_BLOCKS", 2)
    f, x0 = attn
    dense = finite_time_lyapunov(f, x0, 16, 10)
    res = finite_time_lyapunov(
        f, x0, 16, 10, method="subspace", options={"tol": 1e-11, "krylov": True}
    )
    assert res.converged and res.info["sweeps"] > 4
    torch.testing.assert_close(res.exponents, dense.exponents, rtol=0, atol=1e-9)
