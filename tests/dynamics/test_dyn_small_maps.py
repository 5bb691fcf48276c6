"""Small maps: the dense tangent step that looks ahead, and rows of a batch that do not
depend on their neighbours."""

from __future__ import annotations

import math

import pytest
import torch

from sadyn.dynamics import (
    NonFiniteStateWarning,
    divergence,
    lyapunov_spectrum,
    math_attention,
    max_lyapunov_two_trajectory,
    systems,
)
from sadyn.dynamics._common import as_batched, eps, rounding_zero_tol
from sadyn.dynamics.lyapunov import benettin, initial_tangents
from sadyn.dynamics.tangent import DenseLookahead, dense_tangent_step, make_tangent_step

F64 = torch.float64


def _per_step_reference(f, x, steps, *, batched=False, seed=0, **kw):
    """The QR spectrum with the plain per-step dense step (one Jacobian per call)."""
    F, X = as_batched(f, x, batched)
    Q = initial_tangents(X, None, None, torch.Generator().manual_seed(seed), batched)
    ztol = rounding_zero_tol(X.dtype, X.shape[-1])
    with math_attention(), torch.no_grad():
        res = benettin(dense_tangent_step(F), X, Q, steps, zero_tol=ztol, show_progress=False, **kw)
    return res.exponents.sort(dim=-1, descending=True).values


def _roundoff(n: int, dtype: torch.dtype = F64) -> float:
    """How far two runs may differ whose Jacobians round differently (a vmapped call batches
    its matmuls otherwise): a few ulps per stretch ``log |R_ii|``, and the orthonormal frame is
    stable (its errors contract), so the averages differ by a few ulps too. The package's
    round-off floor of a stretch, ``16 sqrt(n) eps``, bounds that."""
    return 16.0 * math.sqrt(n) * eps(dtype)


def test_lookahead_equals_the_per_step_dense_jacobian_on_henon():
    h = systems.henon()
    res = lyapunov_spectrum(h.f, h.x0, 700, transient=100, progress=False)
    assert res.method == "qr-dense"
    ref = _per_step_reference(h.f, h.x0, 700, transient=100)[0]
    torch.testing.assert_close(res.exponents, ref, rtol=0, atol=_roundoff(2))
    # and the exponents sum to ln b exactly at every step (det J = -b)
    assert float(res.exponents.sum()) == pytest.approx(math.log(0.3), abs=1e-12)


def test_lookahead_equals_per_step_on_a_batched_attention_map_with_reortho(attn):
    """n = 72 (dense by "auto" for the full spectrum), a batch of 2, a transient, a QR every 3
    steps: the states the look-ahead predicts are the loop's, the Jacobians the same to
    round-off; exact zero directions (one per token, RMSNorm) stay -inf in both."""
    f, x0 = attn
    X = torch.stack([x0, f(x0)])
    kw = {"transient": 5, "reortho_every": 3}
    res = lyapunov_spectrum(f, X, 40, batched=True, progress=False, **kw)
    ref = _per_step_reference(f, X, 40, batched=True, **kw)
    assert res.method == "qr-dense"
    assert torch.equal(torch.isinf(res.exponents), torch.isinf(ref))
    assert int(torch.isinf(ref).sum()) == 2 * 9
    fin = torch.isfinite(ref)
    torch.testing.assert_close(res.exponents[fin], ref[fin], rtol=0, atol=_roundoff(72))


def test_lookahead_recovers_from_a_frozen_row():
    """A row that escapes to inf is frozen by the NaN guard (a state the look-ahead did not
    predict); the other row's exponent is unchanged and the escaped one is NaN."""
    m = systems.logistic(4.0)
    X = torch.tensor([[0.3], [1.7]], dtype=F64)  # row 1 leaves [0, 1] and escapes to -inf
    with pytest.warns(NonFiniteStateWarning):
        res = lyapunov_spectrum(m.f, X, 300, batched=True, progress=False)
    alone = lyapunov_spectrum(m.f, X[0], 300, progress=False)
    assert torch.isnan(res.exponents[1, 0])
    torch.testing.assert_close(res.exponents[0], alone.exponents, rtol=0, atol=_roundoff(1))
    step = DenseLookahead(as_batched(m.f, X[0], False)[0], 10)
    Q = torch.ones(1, 1, 1, dtype=F64)
    x1, _ = step(X[:1], Q)  # looks 10 steps ahead (all there are)
    x2, _ = step(x1, Q)  # the predicted state: no new look-ahead
    assert step.chunk is not None and len(step._states) == 10 and step.left == 8
    x3, _ = step(x2.clone(), Q)  # not the predicted tensor: recomputed, half as far
    assert step.chunk == 5 and len(step._states) == 5
    torch.testing.assert_close(x3, m.f(x2), rtol=0, atol=0)


def test_a_map_vmap_cannot_batch_falls_back_to_one_step_at_a_time():
    """Data-dependent Python control flow: vmap over time refuses it, the step falls back."""
    A = torch.tensor([[1.2, 0.3], [0.0, 0.5]], dtype=F64)
    B = torch.tensor([[0.8, 0.0], [0.4, 1.1]], dtype=F64)

    def piecewise(x):
        return (A if bool(x[0] > 0) else B) @ x

    x0 = torch.tensor([0.3, -0.2], dtype=F64)
    res = lyapunov_spectrum(piecewise, x0, 60, progress=False)
    ref = _per_step_reference(piecewise, x0, 60)[0]
    torch.testing.assert_close(res.exponents, ref, rtol=0, atol=_roundoff(2))
    step = make_tangent_step(as_batched(piecewise, x0, False)[0], "dense", False, 5)
    assert isinstance(step, DenseLookahead)
    step(x0[None], torch.eye(2, dtype=F64)[None])
    assert step.vectorised is False


def test_a_differentiable_run_keeps_the_per_step_graph():
    """Gradients of the exponents reach the map's parameters (no look-ahead there)."""
    a = torch.tensor(1.4, dtype=F64, requires_grad=True)

    def henon(x):
        return torch.stack((1.0 - a * x[..., 0] ** 2 + x[..., 1], 0.3 * x[..., 0]), dim=-1)

    res = lyapunov_spectrum(henon, systems.henon().x0, 30, differentiable=True, progress=False)
    (g,) = torch.autograd.grad(res.exponents[0], a, retain_graph=True)
    assert res.method == "qr-dense" and bool(torch.isfinite(g)) and float(g) != 0.0
    # the sum is ln 0.3 whatever a (det J = -0.3): its gradient vanishes to round-off, a few
    # ulps of |g|-sized terms from each of the 30 steps' two stretches (1e3 eps covers 16 each)
    (g_sum,) = torch.autograd.grad(res.exponents.sum(), a)
    assert abs(float(g_sum)) <= 1e3 * eps(F64) * (1.0 + abs(float(g)))


@pytest.mark.parametrize("tangent", ["dense", "jvp"])
def test_row_0_of_a_batch_equals_the_state_alone(tangent):
    """The random start tangents of a batch used to be one (B, n, k) draw, whose first rows
    depend on B (torch's sampler fills blocks of 16): row 0 of a batch of 4 differed by 0.055
    from the same state alone, same seed. Now each row is drawn in turn."""
    h = systems.henon()
    x = h.x0
    for _ in range(50):
        x = h.f(x)
    X = torch.stack([x, h.f(x), 0.9 * x, h.f(h.f(x))])
    kw = {"tangent": tangent, "progress": False}
    batch = lyapunov_spectrum(h.f, X, 10, batched=True, generator=_gen(), **kw)
    alone = lyapunov_spectrum(h.f, X[0], 10, generator=_gen(), **kw)
    torch.testing.assert_close(batch.exponents[0], alone.exponents, rtol=0, atol=_roundoff(2))
    # a 10-step average still carries the start tangents' imprint, so this would fail with
    # other draws (the old code's row 0)
    other = lyapunov_spectrum(h.f, X[0], 10, generator=torch.Generator().manual_seed(4), **kw)
    assert float((other.exponents - alone.exponents).abs().max()) > 1e3 * _roundoff(2)


def test_random_directions_of_a_batch_row_do_not_depend_on_the_batch():
    """A batch of 9 Hénon states: one (9, 2) draw (18 numbers: torch's sampler fills blocks of
    16 and the tail apart) gave row 0 other numbers than the (2,) draw of the state alone.
    Hénon is elementwise, so a row's arithmetic is the same alone or in a batch: exact."""
    h = systems.henon()
    xs = [h.x0]
    for _ in range(8):
        xs.append(h.f(xs[-1]))
    X = torch.stack(xs)
    kw = {"progress": False}
    div_b = divergence(h.f, X, 1e-8, 15, batched=True, generator=_gen(), **kw)
    div_1 = divergence(h.f, X[0], 1e-8, 15, generator=_gen(), **kw)
    torch.testing.assert_close(div_b.distances[0], div_1.distances, rtol=0, atol=0)
    lam_b = max_lyapunov_two_trajectory(h.f, X, 30, batched=True, generator=_gen(), **kw)
    lam_1 = max_lyapunov_two_trajectory(h.f, X[0], 30, generator=_gen(), **kw)
    assert float(lam_b[0]) == lam_1


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(3)
