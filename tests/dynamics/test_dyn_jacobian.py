"""Dense Jacobians and the matrix-free operator: autodiff vs finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dyn_maps import attention_block

from sadyn.dynamics import JacobianOperator, jacobian, systems
from sadyn.errors import ShapeError

F64 = torch.float64


def central_differences(f, x: torch.Tensor, h: float = 1e-6) -> np.ndarray:
    """Column j = (f(x + h e_j) - f(x - h e_j)) / 2h, in float64."""
    n = x.shape[-1]
    cols = []
    for j in range(n):
        e = torch.zeros(n, dtype=F64)
        e[j] = h
        cols.append(((f(x + e) - f(x - e)) / (2 * h)).numpy())
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
def test_jacobian_matches_finite_differences_on_attention(attn, mode):
    f, x0 = attn
    J = jacobian(f, x0, mode=mode)
    assert J.shape == (72, 72) and J.dtype == F64
    np.testing.assert_allclose(J.numpy(), central_differences(f, x0), atol=1e-8)


def test_jacobian_chunking_and_modes_agree():
    f, x0 = attention_block(tokens=20, width=16, heads=4)  # n = 320 > one chunk of 256
    Jf = jacobian(f, x0, mode="forward", chunk_size=100)
    Jr = jacobian(f, x0, mode="reverse", chunk_size=None)
    torch.testing.assert_close(Jf, Jr, rtol=0, atol=1e-13)


def test_batched_jacobian_is_per_row(attn):
    f, x0 = attn
    xs = torch.stack([x0, f(x0), -x0])
    Jb = jacobian(f, xs, batched=True)
    assert Jb.shape == (3, 72, 72)
    for i in range(3):
        torch.testing.assert_close(Jb[i], jacobian(f, xs[i]), rtol=0, atol=1e-14)
    torch.testing.assert_close(jacobian(f, xs, batched=True, mode="forward"), Jb)


def test_jacobian_of_a_map_without_forward_derivative_uses_reverse():
    class NoJvp(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x.sin()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            return g * ctx.saved_tensors[0].cos()

    x = torch.linspace(0.1, 1.0, 5, dtype=F64)
    J = jacobian(NoJvp.apply, x)
    torch.testing.assert_close(J, torch.diag(x.cos()))


def test_operator_products_match_dense(attn):
    f, x0 = attn
    J = jacobian(f, x0)
    op = JacobianOperator(f, x0)
    v, u = torch.randn(72, dtype=F64), torch.randn(72, dtype=F64)
    V = torch.randn(72, 4, dtype=F64)
    torch.testing.assert_close(op.matvec(v), J @ v)
    torch.testing.assert_close(op.rmatvec(u), J.T @ u)
    torch.testing.assert_close(op.matmat(V), J @ V)
    torch.testing.assert_close(op.rmatmat(V), J.T @ V)
    torch.testing.assert_close(op.value, f(x0))
    assert op.shape == (72, 72) and op.dtype == F64
    A = op.to_scipy()
    np.testing.assert_allclose(A @ v.numpy(), (J @ v).numpy(), atol=1e-13)
    np.testing.assert_allclose(A.H @ u.numpy(), (J.T @ u).numpy(), atol=1e-13)
    np.testing.assert_allclose(A.matmat(V.numpy()), (J @ V).numpy(), atol=1e-13)
    # Symmetric part as a scipy operator, the way the pseudo-energy probes use it.
    S = (A + A.H) @ v.numpy()
    np.testing.assert_allclose(S, ((J + J.T) @ v).numpy(), atol=1e-13)


def test_linearized_operator_matches(attn):
    f, x0 = attn
    plain, lin = JacobianOperator(f, x0), JacobianOperator(f, x0, linearize=True)
    V = torch.randn(72, 3, dtype=F64)
    torch.testing.assert_close(lin.matmat(V), plain.matmat(V))


def test_batched_operator_and_row_operators(attn):
    f, x0 = attn
    xs = torch.stack([x0, f(x0)])
    op = JacobianOperator(f, xs, batched=True)
    V = torch.randn(2, 72, 3, dtype=F64)
    J0, J1 = jacobian(f, xs[0]), jacobian(f, xs[1])
    out = op.matmat(V)
    torch.testing.assert_close(out[0], J0 @ V[0])
    torch.testing.assert_close(out[1], J1 @ V[1])
    torch.testing.assert_close(op.rmatvec(V[..., 0])[1], J1.T @ V[1, :, 0])
    v = V[1, :, 0].numpy()
    np.testing.assert_allclose(op.to_scipy(row=1) @ v, (J1 @ V[1, :, 0]).numpy(), atol=1e-13)
    block = op.to_scipy()
    assert block.shape == (144, 144)
    np.testing.assert_allclose(
        block @ V[..., 0].reshape(-1).numpy(), out[..., 0].reshape(-1).numpy()
    )


def test_operator_rejects_wrong_shapes(attn):
    f, x0 = attn
    op = JacobianOperator(f, x0)
    with pytest.raises(ShapeError):
        op.matvec(torch.zeros(71, dtype=F64))
    with pytest.raises(ShapeError):
        op.matmat(torch.zeros(72, dtype=F64))
    with pytest.raises(ShapeError):
        op.to_scipy(row=0)
    with pytest.raises(ShapeError):
        jacobian(f, x0[None])
    with pytest.raises(ShapeError):
        jacobian(f, torch.arange(72))


@pytest.mark.parametrize(
    "system", [systems.henon(), systems.cat_map(), systems.logistic(3.9)], ids=lambda s: s.name
)
def test_reference_maps_autodiff_vs_finite_differences(system):
    x = system.x0 + 0.05
    np.testing.assert_allclose(
        jacobian(system.f, x).numpy(), central_differences(system.f, x), atol=1e-8
    )
