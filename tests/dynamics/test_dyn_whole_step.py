"""The compiled whole QR step (product + QR + sign fix + logs in one function, issue 12
follow-up): the same loop as the eager one, row freezing included; the real compile is
slow-marked, the fast tests stand a no-op in for ``torch.compile``."""

from __future__ import annotations

import warnings

import pytest
import torch

from sadyn.dynamics import NonFiniteStateWarning, lyapunov_spectrum
from sadyn.dynamics import tangent as tangent_mod
from sadyn.errors import DivergenceError

F64 = torch.float64


@pytest.fixture
def no_compile(monkeypatch):
    """``torch.compile`` replaced by the identity; records what it was asked to compile."""
    seen: list = []

    def fake(fn, **kwargs):
        seen.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake)
    return seen


@pytest.mark.parametrize("tangent", ["jvp", "vjp2", "fastest"])
def test_whole_step_equals_the_eager_loop(attn, no_compile, tangent):
    f, x0 = attn
    x0s = torch.stack([x0, f(f(x0)), -x0])
    q0 = torch.linalg.qr(
        torch.randn(3, 72, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    )[0]
    kw = {"transient": 3, "q0": q0, "batched": True, "keep_local": True, "tangent": tangent}
    eager = lyapunov_spectrum(f, x0s, 12, 5, **kw)
    whole = lyapunov_spectrum(f, x0s, 12, 5, compile=True, **kw)
    assert len(no_compile) == 1 and whole.info["compiled"]
    assert whole.method == ("qr-vjp2" if tangent == "fastest" else f"qr-{tangent}")
    torch.testing.assert_close(whole.exponents, eager.exponents, rtol=0, atol=1e-12)
    torch.testing.assert_close(whole.local, eager.local, rtol=0, atol=1e-12)
    torch.testing.assert_close(whole.tangents, eager.tangents, rtol=0, atol=1e-12)
    torch.testing.assert_close(whole.final_state, eager.final_state, rtol=0, atol=0)
    # one cache entry per (mode, zero_tol, shapes): a second run compiles nothing new
    lyapunov_spectrum(f, x0s, 12, 5, compile=True, **kw)
    assert len(no_compile) == 1


def test_whole_step_freezes_a_diverging_row_like_the_eager_loop(no_compile):
    r = torch.tensor([[4.5], [3.5]], dtype=F64)  # row 0 escapes, row 1 has a 4-cycle

    def g(x):
        return r * x * (1 - x)

    x0 = torch.tensor([[0.4], [0.4]], dtype=F64)
    out = {}
    for compile in (False, True):
        with pytest.warns(NonFiniteStateWarning, match=r"rows \[0\]") as rec:
            out[compile] = lyapunov_spectrum(
                g, x0, 300, transient=50, batched=True, tangent="jvp", compile=compile
            )
        assert sum(issubclass(w.category, NonFiniteStateWarning) for w in rec) == 1
    a, b = out[False], out[True]
    assert torch.isnan(b.exponents[0]).all()
    assert float(b.exponents[1, 0]) == pytest.approx(-0.8725, abs=1e-3)
    torch.testing.assert_close(b.exponents, a.exponents, rtol=0, atol=1e-12, equal_nan=True)
    torch.testing.assert_close(b.final_state, a.final_state, rtol=0, atol=0, equal_nan=True)
    assert a.info["nonfinite_step"] == b.info["nonfinite_step"]
    with pytest.raises(DivergenceError):
        lyapunov_spectrum(
            g, x0, 300, batched=True, tangent="jvp", compile=True, on_nonfinite="raise"
        )


def test_other_settings_keep_the_product_only_path(attn, no_compile):
    """reortho_every > 1 and differentiable runs compile the tangent product alone (the
    whole step is one QR per step); dense never compiles."""
    f, x0 = attn
    lyapunov_spectrum(f, x0, 6, 3, tangent="jvp", compile=True, reortho_every=2)
    assert len(no_compile) == 1 and no_compile[0] is not None
    lyapunov_spectrum(f, x0, 6, 3, tangent="dense", compile=True)
    assert len(no_compile) == 1
    with pytest.raises(ValueError, match="compile"):
        lyapunov_spectrum(f, x0, 6, 3, tangent="jvp", compile="sometimes")


def test_auto_switch_compiles_the_whole_step_only_for_long_runs(attn, no_compile, monkeypatch):
    f, x0 = attn
    short = lyapunov_spectrum(f, x0, 10, 3, tangent="jvp", compile="auto")
    assert not short.info["compiled"] and not no_compile
    monkeypatch.setattr(tangent_mod, "COMPILE_AUTO_SECONDS", 0.0)
    long = lyapunov_spectrum(f, x0, 10, 3, tangent="jvp", compile="auto")
    assert long.info["compiled"] and len(no_compile) == 1
    torch.testing.assert_close(long.exponents, short.exponents, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_real_compiled_whole_step_equals_eager_in_float32():
    """torch.compile for real (10-40 s on CPU): a float32 map, equal to eager to 1e-6 of
    the largest exponent's magnitude, cached per map and shape."""
    g = torch.Generator().manual_seed(0)
    n = 48
    # a contracting map (gain 0.9): compiled and eager round differently, and a chaotic
    # trajectory would amplify that along the orbit; here the difference is the step's own
    W = torch.randn(n, n, generator=g) * (0.9 / n**0.5)
    b = torch.randn(n, generator=g) * 0.1

    def f(x):
        return torch.tanh(x @ W.T + b)

    x0 = torch.randn(n, generator=g)
    q0 = torch.linalg.qr(torch.randn(n, 6, generator=g))[0]
    for tangent in ("jvp", "vjp2"):
        eager = lyapunov_spectrum(f, x0, 16, 6, q0=q0, tangent=tangent)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
            res = lyapunov_spectrum(f, x0, 16, 6, q0=q0, tangent=tangent, compile=True)
        assert res.info["compiled"] and res.method == f"qr-{tangent}"
        # relative to the spectrum's scale (an exponent near 0 has no relative precision)
        scale = float(eager.exponents.abs().max())
        assert float((res.exponents - eager.exponents).abs().max()) <= 1e-6 * scale
    n_cached = len(tangent_mod._cache_for(f))
    assert n_cached == 2
    lyapunov_spectrum(f, x0, 16, 6, q0=q0, tangent="jvp", compile=True)
    assert len(tangent_mod._cache_for(f)) == n_cached
