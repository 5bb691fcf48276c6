"""Multi-head attention against PyTorch's SDPA and dense formulas; forward-mode AD."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import jvp, vmap

from sadyn.nn.attention import MultiHeadSelfAttention
from sadyn.nn.positional import GTA, RelationBias, gta_angles

D, H = 12, 3
HD = D // H


def _reference(att, x, rot=None, bias=None):
    """Standard MHSA with torch SDPA; ``rot``: dense per-cell (S, hd, hd) transforms for q/k/v
    (output transformed by their transposes)."""
    b, s, _ = x.shape
    q, k, v = att.qkv(x).view(b, s, 3, H, HD).permute(2, 0, 3, 1, 4)
    if rot is not None:
        q, k, v = (torch.einsum("sij,bhsj->bhsi", rot, t) for t in (q, k, v))
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    if rot is not None:
        o = torch.einsum("sji,bhsj->bhsi", rot, o)
    return att.out(o.transpose(1, 2).reshape(b, s, D))


def _dense_rotations():
    theta = gta_angles(HD).double()
    c, s = torch.cos(theta), torch.sin(theta)
    blocks = torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2)
    return torch.stack([torch.block_diag(*blocks[i]) for i in range(81)])


def test_matches_sdpa():
    att = MultiHeadSelfAttention(D, H).double()
    x = torch.randn(2, 81, D, dtype=torch.float64)
    torch.testing.assert_close(att(x), _reference(att, x))


@pytest.mark.parametrize("learnable", [True, False])
def test_gta_matches_dense_rotations(learnable):
    att = MultiHeadSelfAttention(D, H, gta=GTA(HD, learnable=learnable)).double()
    x = torch.randn(2, 81, D, dtype=torch.float64)
    torch.testing.assert_close(att(x), _reference(att, x, rot=_dense_rotations()))


def test_relation_bias_and_probs():
    rb = RelationBias(H)
    att = MultiHeadSelfAttention(D, H, relation_bias=rb).double()
    x = torch.randn(2, 81, D, dtype=torch.float64)
    with torch.no_grad():
        rb.weight.normal_()
    torch.testing.assert_close(att(x), _reference(att, x, bias=rb()))
    _, probs = att.attend(x)
    torch.testing.assert_close(probs, att.probs(x))
    assert probs.shape == (2, H, 81, 81)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, H, 81, dtype=torch.float64))
    # a strongly negative "unrelated" bias confines every head to the cell's 20 peers + itself
    with torch.no_grad():
        rb.weight.zero_()
        rb.weight[:, 4] = -1e3
    p = att.probs(x)
    unrelated = rb.masks[4].bool()
    assert p[..., unrelated].max() < 1e-100


def test_value_output_matrices():
    """Without positions, MSA(X) = sum_h P_h X W^V_h W^O_h + b_V W^O + b_O (P rows sum to 1)."""
    att = MultiHeadSelfAttention(D, H).double()
    x = torch.randn(2, 81, D, dtype=torch.float64)
    vo = att.value_output_matrices()
    assert vo.shape == (H, D, D)
    probs = att.probs(x)
    bias = att.out(att.qkv.bias[2 * D :])
    expected = torch.einsum("bhij,bjd,hde->bie", probs, x, vo) + bias
    torch.testing.assert_close(att(x), expected)


def test_forward_mode_matches_finite_differences():
    att = MultiHeadSelfAttention(D, H, gta=GTA(HD), relation_bias=RelationBias(H)).double()
    with torch.no_grad():
        att.relation_bias.weight.normal_()
    x = torch.randn(2, 81, D, dtype=torch.float64)
    v = torch.randn_like(x)
    _, tangent = jvp(att, (x,), (v,))
    eps = 1e-6
    fd = (att(x + eps * v) - att(x - eps * v)) / (2 * eps)
    torch.testing.assert_close(tangent, fd, atol=1e-7, rtol=1e-6)
    # vmap over boards gives the batched result
    per_board = vmap(lambda xi: att(xi[None])[0])(x)
    torch.testing.assert_close(per_board, att(x))


def test_orthogonal_vo_keeps_values_and_outputs_orthogonal_through_training():
    torch.manual_seed(0)
    plain = MultiHeadSelfAttention(D, H).double()
    torch.manual_seed(0)
    att = MultiHeadSelfAttention(D, H, orthogonal_vo=True).double()
    eye = torch.eye(D, dtype=torch.float64)
    # registration keeps Q, K (and the biases) and replaces V by the Q factor of its QR
    torch.testing.assert_close(att.qkv.weight[: 2 * D], plain.qkv.weight[: 2 * D])
    w = plain.qkv.weight[2 * D :].detach()
    q, r = torch.linalg.qr(w)
    # Registration ran in float32, before .double(): Householder QR is backward stable, so its
    # Q is the exact Q of a matrix within ~D eps32 ||W|| of W, which moves Q by up to cond(W)
    # times that. (A fixed 1e-6 = 8.4 eps32 was met with 6.6 eps32 over 30 seeds: no margin.)
    eps32 = float(torch.finfo(torch.float32).eps)
    near = {"rtol": 0.0, "atol": D * eps32 * float(torch.linalg.cond(w))}
    torch.testing.assert_close(att.qkv.weight[2 * D :], q * r.diagonal().sign(), **near)
    opt = torch.optim.Adam(att.parameters(), lr=0.05)
    x = torch.randn(2, 81, D, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        att(x).square().sum().backward()
        opt.step()
    wv, wo = att.qkv.weight[2 * D :], att.out.weight
    # orthogonal to the float32 QR's own accuracy: |Q^T Q - I| <= ~D eps32 (4 eps32 measured)
    orth = {"rtol": 0.0, "atol": D * eps32}
    torch.testing.assert_close(wv @ wv.T, eye, **orth)
    torch.testing.assert_close(wo @ wo.T, eye, **orth)
    assert (wv - q * r.diagonal().sign()).abs().max() > 1e-3  # it trained


def test_orthogonal_vo_assignment_and_state_dict_round_trip():
    att = MultiHeadSelfAttention(D, H, orthogonal_vo=True).double()
    wv = att.qkv.weight[2 * D :].detach()
    with torch.no_grad():
        att.out.weight = wv.T.clone()  # right_inverse stores an orthogonal block exactly
    torch.testing.assert_close(att.out.weight, wv.T, atol=1e-6, rtol=0)
    m = att.value_output_matrices()  # W^O = W^V^T: every head's W^V_h W^O_h is symmetric
    torch.testing.assert_close(m, m.transpose(1, 2), atol=1e-6, rtol=0)
    assert (m - m.mean(0)).abs().max() > 1e-2  # and not trivially (heads differ)
    again = MultiHeadSelfAttention(D, H, orthogonal_vo=True).double()
    again.load_state_dict(att.state_dict())
    x = torch.randn(1, 81, D, dtype=torch.float64)
    torch.testing.assert_close(again(x), att(x))
