"""Symmetric and generalized-symmetric attention: dense formulas, constraints by construction,
and the symmetric energy's gradient identity (the fact behind its decrease)."""

import pytest
import torch
from torch.func import grad

from sadyn.nn.constrained import GenSymMultiAttention, GenSymSingleAttention, SymmetricAttention
from sadyn.nn.norms import sphere_normalize
from sadyn.nn.positional import GTA, RelationBias

D = 8


def _perturb(module, gen):
    """Move every free parameter at random, as training would."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _modules(gta=False, bias=False):
    def pos(feat, heads):
        return (GTA(feat, learnable=False) if gta else None, RelationBias(heads) if bias else None)

    g1, b1 = pos(6, 1)
    g2, b2 = pos(D, 1)
    g3, b3 = pos(D // 4, 2)
    return {
        "symmetric": SymmetricAttention(D, 6, gta=g1, relation_bias=b1).double(),
        "single": GenSymSingleAttention(D, gta=g2, relation_bias=b2).double(),
        "multi": GenSymMultiAttention(D, 2, gta=g3, relation_bias=b3).double(),
    }


@pytest.mark.parametrize("kind", ["symmetric", "single", "multi"])
def test_dense_formula(kind):
    """Without positions: output = sum_h softmax(beta X A_h X^T) X W^V_h."""
    gen = torch.Generator().manual_seed(1)
    att = _modules()[kind]
    _perturb(att, gen)
    x = torch.randn(2, 81, D, dtype=torch.float64, generator=gen)
    a, wv = att.dense_matrices()
    logits = att.scale * torch.einsum("bid,hde,bje->bhij", x, a, x)
    expected = torch.einsum("bhij,bjd,hde->bie", torch.softmax(logits, -1), x, wv)
    torch.testing.assert_close(att(x), expected)
    torch.testing.assert_close(att.probs(x), torch.softmax(logits, -1))


@pytest.mark.parametrize("seed", range(3))
def test_constraints_hold_by_construction(seed):
    gen = torch.Generator().manual_seed(seed)
    mods = _modules()
    for m in mods.values():
        _perturb(m, gen)
    # symmetric SA: A symmetric, W^V = A
    a, wv = mods["symmetric"].dense_matrices()
    torch.testing.assert_close(a, a.transpose(1, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(wv, a, atol=1e-6, rtol=0)
    # Prop 4.1: A asymmetric in general, W^V its symmetric part
    a, wv = mods["single"].dense_matrices()
    assert (a - a.transpose(1, 2)).abs().max() > 1e-2
    torch.testing.assert_close(wv, 0.5 * (a + a.transpose(1, 2)), atol=1e-6, rtol=0)
    # Prop 4.2: orthogonal basis, low rank, symmetric W^V_h, vanishing cross-head products
    multi = mods["multi"]
    q = multi.basis.weight
    # The orthogonal basis was made in float32 before .double(): orthogonal to ~D eps32
    # (backward-stable Householder QR), and the cross-head products inherit that.
    orth = {"rtol": 0.0, "atol": D * float(torch.finfo(torch.float32).eps)}
    torch.testing.assert_close(q @ q.T, torch.eye(D, dtype=q.dtype), **orth)
    a, wv = multi.dense_matrices()
    torch.testing.assert_close(wv, 0.5 * (a + a.transpose(1, 2)), atol=1e-6, rtol=0)
    assert (a - a.transpose(1, 2)).abs().max() > 1e-2
    for h in range(2):
        assert torch.linalg.matrix_rank(a[h], atol=1e-8) <= D // 4
        for k in range(2):
            if h != k:
                zero = torch.zeros(D, D, dtype=a.dtype)
                torch.testing.assert_close(a[h].T @ a[k], zero, **orth)
                torch.testing.assert_close(a[h] @ a[k].T, zero, **orth)
                torch.testing.assert_close(wv[h] @ wv[k], zero, **orth)


def test_gta_symmetrized_pair_forms():
    """With rotations and bias, each (i, j) pair passes the symmetric part of its bilinear form:
    out_i = sum_j P_ij (B_ij + B_ji^T) / 2 x_j, B_ij = W^Q^T R_i^T R_j W^K (Prop 4.1 + GTA)."""
    gen = torch.Generator().manual_seed(3)
    att = _modules(gta=True, bias=True)["single"]
    _perturb(att, gen)
    x = torch.randn(1, 81, D, dtype=torch.float64, generator=gen)
    wq, wk = att.qk.weight[:D], att.qk.weight[D:]
    eye = torch.eye(D, dtype=torch.float64).expand(81, 1, D, D).permute(2, 0, 1, 3)
    rot = att.gta.rotate(eye).permute(1, 2, 3, 0)[:, 0]  # (S, D, D): R_s
    bij = torch.einsum("da,sed,tef,fb->stab", wq, rot, rot, wk)  # W^Q^T R_s^T R_t W^K
    logits = att.scale * torch.einsum("sa,stab,tb->st", x[0], bij, x[0]) + att.relation_bias()[0]
    p = torch.softmax(logits, -1)
    value = 0.5 * (bij + bij.permute(1, 0, 3, 2))
    expected = torch.einsum("st,stab,tb->sa", p, value, x[0])
    torch.testing.assert_close(att(x)[0], expected)


def test_symmetric_energy_gradient_identity():
    """-grad_i E = Z_i SA_i(X) exactly (Z_i = sum_j exp(logit_ij)), with GTA rotations and a
    symmetric relation bias: the identity that makes E a Lyapunov function of the projected flow."""
    gen = torch.Generator().manual_seed(4)
    att = _modules(gta=True, bias=True)["symmetric"]
    _perturb(att, gen)
    x = sphere_normalize(torch.randn(1, 81, D, dtype=torch.float64, generator=gen), D)
    g = grad(lambda v: att.energy(v).sum())(x)
    _, _, logits = att._logits(x)
    z = torch.exp(logits).sum(-1)[0, 0]  # (S,)
    torch.testing.assert_close(-g[0], z[:, None] * att(x)[0])


def test_learnable_gta_is_refused():
    with pytest.raises(ValueError, match="orthogonal"):
        SymmetricAttention(D, gta=GTA(D))
