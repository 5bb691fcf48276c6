"""Regularizers against dense references (SVD norms, dense Jacobians, explicit products)."""

import pytest
import torch
from torch import nn

from sadyn.dynamics import lyapunov_spectrum
from sadyn.nn.attention import MultiHeadSelfAttention
from sadyn.training.regularizers import (
    SpectralPenalty,
    e_multi_penalty,
    e_single_penalty,
    jacobian_spectral_norm,
    lyapunov_penalty,
)


class MiniLoop(nn.Module):
    """A normalized attention loop, X <- Pi(X + eta (C + MSA(X))), in float64."""

    def __init__(self, dim: int = 8, heads: int = 2, eta: float = 0.7):
        super().__init__()
        self.attn = MultiHeadSelfAttention(dim, heads).double()
        self.eta = eta

    def attention_modules(self):
        return [self.attn]

    def step(self, x, cond):
        y = x + self.eta * (cond + self.attn(x))
        return y / y.norm(dim=-1, keepdim=True)


def _dense_blocks(attn):
    d = attn.dim
    w = attn.qkv.weight
    return [w[:d], w[d : 2 * d], w[2 * d :], attn.out.weight]


def test_spec_sigmas_match_matrix_norm_and_penalty_matches_dense():
    torch.manual_seed(1)
    model = MiniLoop(dim=12, heads=3)
    spec = SpectralPenalty(torch.Generator().manual_seed(0))
    spec.sigmas(model, iterations=300)
    got = torch.stack(spec.sigmas(model)).detach()
    dense = torch.stack([torch.linalg.matrix_norm(w, 2) for w in _dense_blocks(model.attn)])
    torch.testing.assert_close(got, dense.detach(), rtol=1e-8, atol=1e-10)

    penalty = spec(model)
    biases = (*model.attn.qkv.bias.chunk(3), model.attn.out.bias)
    ref = sum((torch.linalg.matrix_norm(w, 2) ** 2 - 1) ** 2 for w in _dense_blocks(model.attn))
    ref = ref + sum(b.norm() ** 4 for b in biases)
    torch.testing.assert_close(penalty, ref, rtol=1e-8, atol=1e-10)
    # at convergence u^T W v has the gradient of the exact sigma_max
    g = torch.autograd.grad(penalty, model.attn.qkv.weight)[0]
    g_ref = torch.autograd.grad(ref, model.attn.qkv.weight)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-8)


def test_spec_power_iteration_is_one_step_per_call_and_persistent():
    torch.manual_seed(2)
    model = MiniLoop(dim=16, heads=2)
    spec = SpectralPenalty(torch.Generator().manual_seed(0))
    exact = torch.linalg.matrix_norm(model.attn.out.weight, 2).item()
    errors = []
    for _ in range(40):
        errors.append(abs(spec.sigmas(model)[3].item() - exact))
    assert errors[-1] < 1e-6 < errors[0]  # converges across calls: the vectors persist
    state = {k: v.clone() for k, v in spec.state_dict().items()}
    fresh = SpectralPenalty()
    fresh.load_state_dict(state)
    assert fresh.sigmas(model)[3].item() == pytest.approx(spec.sigmas(model)[3].item(), 1e-12)


def _paper_blocks(attn):
    """Per head (W^Q_h, W^K_h) in the paper's x W convention, from qkv.weight directly."""
    d, h, e = attn.dim, attn.heads, attn.head_dim
    wq, wk = attn.qkv.weight[:d].t(), attn.qkv.weight[d : 2 * d].t()  # (D, D), column blocks
    return [(wq[:, i * e : (i + 1) * e], wk[:, i * e : (i + 1) * e]) for i in range(h)]


@pytest.mark.parametrize("heads", [1, 4])
def test_e_single_matches_dense_condition(heads):
    torch.manual_seed(3)
    model = MiniLoop(dim=8, heads=heads)
    vo = model.attn.value_output_matrices()  # (H, D, D): W^V_h W^O_h, independent code
    ref = sum(
        ((vo[i] - 0.5 * (q @ k.t() + k @ q.t())) ** 2).sum()
        for i, (q, k) in enumerate(_paper_blocks(model.attn))
    )
    torch.testing.assert_close(e_single_penalty(model), ref)


def test_e_multi_product_matches_dense_and_vanishes_on_symmetric_heads():
    torch.manual_seed(4)
    model = MiniLoop(dim=12, heads=3)
    vo = model.attn.value_output_matrices()
    ref = sum(((m - m.t()) ** 2).sum() for m in vo)
    torch.testing.assert_close(e_multi_penalty(model, "product"), ref)
    # transpose form: ||W^V - W^O^T||^2 with W^V = V rows transposed
    d = model.attn.dim
    wv, wo = model.attn.qkv.weight[2 * d :].t(), model.attn.out.weight.t()
    torch.testing.assert_close(e_multi_penalty(model, "transpose"), ((wv - wo.t()) ** 2).sum())
    with torch.no_grad():  # W^O = W^V^T makes each M_h = W^V_h W^V_h^T symmetric
        model.attn.out.weight.copy_(model.attn.qkv.weight[2 * d :].t())
    assert e_multi_penalty(model, "transpose").item() == pytest.approx(0.0, abs=1e-20)
    assert e_multi_penalty(model, "product").item() == pytest.approx(0.0, abs=1e-10)


def _dense_jacobian(model, x, cond):
    """Per-board dense Jacobian (B, n, n) of the step, differentiable in the parameters."""
    b = x.shape[0]
    rows = []
    for i in range(b):

        def f(z, i=i):
            return model.step(z.view(1, *x.shape[1:]), cond[i : i + 1]).reshape(-1)

        rows.append(torch.autograd.functional.jacobian(f, x[i].reshape(-1), create_graph=True))
    return torch.stack(rows)


def test_jacobian_spectral_norm_matches_dense_value_and_gradient():
    torch.manual_seed(0)  # a case with a clear gap sigma_2 / sigma_1 < 0.65: fast convergence
    model = MiniLoop(dim=8, heads=2, eta=5.0)
    x = torch.nn.functional.normalize(torch.randn(2, 5, 8, dtype=torch.float64), dim=-1)
    cond = torch.randn(2, 5, 8, dtype=torch.float64)
    sigma = jacobian_spectral_norm(
        model.step, x, cond, iterations=50, generator=torch.Generator().manual_seed(0)
    )
    dense = torch.linalg.matrix_norm(_dense_jacobian(model, x, cond), 2)
    torch.testing.assert_close(sigma, dense, rtol=1e-8, atol=1e-10)
    w = model.attn.qkv.weight
    g = torch.autograd.grad(sigma.sum(), w)[0]
    g_ref = torch.autograd.grad(dense.sum(), w)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6)


def test_lyapunov_penalty_exponents_match_dense_jacobian_product():
    """The penalty's exponents (the QR loop of sadyn.dynamics.lyapunov_spectrum) against
    the QR of the explicit T-step Jacobian product applied to the same start tangents."""
    torch.manual_seed(6)
    model = MiniLoop(dim=6, heads=2, eta=0.9)
    b, s, d, k, steps = 2, 4, 6, 3, 5
    x = torch.nn.functional.normalize(torch.randn(b, s, d, dtype=torch.float64), dim=-1)
    cond = torch.randn(b, s, d, dtype=torch.float64)
    penalty, lam = lyapunov_penalty(
        model.step, x, cond, k=k, steps=steps, generator=torch.Generator().manual_seed(7)
    )
    assert float(penalty.detach()) == pytest.approx(float((lam**2).sum(1).mean()), rel=1e-12)
    # one implementation: the analysis function gives the same numbers without the graph
    ana = lyapunov_spectrum(
        lambda z: model.step(z.view(b, s, d), cond).reshape(b, -1),
        x.reshape(b, -1),
        steps,
        k,
        batched=True,
        generator=torch.Generator().manual_seed(7),
        tangent="jvp",
    )
    torch.testing.assert_close(lam, ana.exponents, rtol=0, atol=1e-12)
    # dense: J_total Q0 = Q R with R the product of the per-step R factors
    # (the start tangents are drawn one batch row after another, so a row's do not depend on
    # the batch size)
    g = torch.Generator().manual_seed(7)
    draws = [torch.randn(s * d, k, generator=g, dtype=torch.float64) for _ in range(b)]
    q0 = torch.linalg.qr(torch.stack(draws)).Q
    total = torch.eye(s * d, dtype=torch.float64).expand(b, -1, -1)
    state = x
    for _ in range(steps):
        total = _dense_jacobian(model, state, cond) @ total
        state = model.step(state, cond)
    r = torch.linalg.qr(total @ q0).R
    ref = torch.diagonal(r, dim1=1, dim2=2).abs().log() / steps
    ref = ref.sort(dim=1, descending=True).values  # exponents come largest first
    torch.testing.assert_close(lam, ref, rtol=1e-8, atol=1e-10)


def test_lyapunov_gradient_matches_finite_differences():
    torch.manual_seed(8)
    model = MiniLoop(dim=6, heads=2, eta=0.9)
    x = torch.nn.functional.normalize(torch.randn(2, 4, 6, dtype=torch.float64), dim=-1)
    cond = torch.randn(2, 4, 6, dtype=torch.float64)

    def value():
        penalty, _ = lyapunov_penalty(
            model.step, x, cond, k=2, steps=3, generator=torch.Generator().manual_seed(1)
        )
        return penalty

    w = model.attn.out.weight
    g = torch.autograd.grad(value(), w)[0]
    h = 1e-6
    for idx in [(0, 0), (3, 1), (5, 4)]:
        with torch.no_grad():
            w[idx] += h
        up = value().item()
        with torch.no_grad():
            w[idx] -= 2 * h
        down = value().item()
        with torch.no_grad():
            w[idx] += h
        assert g[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_models_without_free_attention_weights_are_reported():
    from sadyn.errors import SadynError
    from sadyn.models import build_model

    model = build_model({"model": "symsa", "dim": 8, "heads": 1})
    for penalty in (SpectralPenalty(), e_single_penalty, e_multi_penalty):
        with pytest.raises(SadynError, match="no unconstrained attention modules"):
            penalty(model)
