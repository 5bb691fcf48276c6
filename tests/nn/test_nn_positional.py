"""GTA blocks, sinusoids, cell embeddings and the relation bias against direct constructions."""

import math

import pytest
import torch

from sadyn.nn.pairs import pair_apply
from sadyn.nn.positional import (
    GTA,
    CellEmbedding,
    RelationBias,
    gta_angles,
    parse_pos,
    relation_masks,
    sinusoidal_2d,
    sudoku_grid,
)

#: float32 machine epsilon: the rotations are built in the default dtype, float32.
EPS32 = float(torch.finfo(torch.float32).eps)


def _reference_angles(head_dim, size=9, base=10000.0):
    """The reference's make_SO2mats layout: F = ceil(hd/4) frequencies exp(-2f log(b) / 2F),
    pair index f * 2 + coordinate (0: row, 1: col), truncated to hd/2 pairs."""
    nf = head_dim // 4 + (head_dim % 4 != 0)
    steps = torch.arange(0.0, 2 * nf, 2, dtype=torch.float64)
    freqs = torch.exp(steps * -(math.log(base) / (2 * nf)))
    out = torch.zeros(size * size, 2 * nf, dtype=torch.float64)
    for s in range(size * size):
        r, c = divmod(s, size)
        for f in range(nf):
            out[s, 2 * f] = r * freqs[f]
            out[s, 2 * f + 1] = c * freqs[f]
    return out[:, : head_dim // 2]


@pytest.mark.parametrize("hd", [8, 6, 32])
def test_gta_angles_match_reference_layout(hd):
    torch.testing.assert_close(gta_angles(hd).double(), _reference_angles(hd), atol=1e-6, rtol=1e-6)


def _dense_blocks(m):
    """(..., 2, 2P) diag/off form -> dense block-diagonal (..., 2P, 2P)."""
    diag, off = m[..., 0, :], m[..., 1, :]
    p = diag.shape[-1] // 2
    dense = torch.zeros(*diag.shape[:-1], 2 * p, 2 * p, dtype=m.dtype)
    for i in range(p):
        dense[..., 2 * i, 2 * i] = diag[..., 2 * i]
        dense[..., 2 * i + 1, 2 * i + 1] = diag[..., 2 * i + 1]
        dense[..., 2 * i, 2 * i + 1] = off[..., 2 * i]
        dense[..., 2 * i + 1, 2 * i] = off[..., 2 * i + 1]
    return dense


def test_pair_apply_is_block_diagonal_matmul():
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    m = torch.randn(5, 2, 8, dtype=torch.float64)
    expected = torch.einsum("sij,bsj->bsi", _dense_blocks(m), x)
    torch.testing.assert_close(pair_apply(x, m), expected)


def test_gta_learnable_starts_at_the_rotations():
    hd = 8
    learn, fixed = GTA(hd).double(), GTA(hd, learnable=False).double()
    assert sum(p.numel() for p in learn.parameters()) == 4 * 81 * hd * 2  # 4 blocks of 2x2/pair
    assert not list(fixed.parameters())
    qkv = torch.randn(2, 81, 3, 3, hd, dtype=torch.float64)
    torch.testing.assert_close(learn.apply_qkv(qkv, 0.5), fixed.apply_qkv(qkv, 0.5))
    o = torch.randn(2, 81, 3, hd, dtype=torch.float64)
    torch.testing.assert_close(learn.apply_out(o), fixed.apply_out(o))
    # queries scaled, q/k/v rotated by R_s, output by R_s^T
    theta = gta_angles(hd).double()
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2)  # (S, P, 2, 2)
    dense = torch.block_diag(*rot[10])  # cell 10
    got = fixed.apply_qkv(qkv, 0.5)
    # The module's cos/sin were taken in float32 (the default dtype at construction), ours in
    # float64 of the same float32 angles: each entry differs by <= 1 float32 ulp (eps32 of an
    # entry <= 1), and an output of a 2x2 block sums two of them: <= 2 eps32 max|x|. (The
    # default float64 tolerance, 1e-7, sat at 0.9 of that gap: it held only for one libm.)
    tol = {"rtol": 0.0, "atol": 2 * EPS32 * float(max(qkv.abs().max(), o.abs().max()))}
    torch.testing.assert_close(got[:, 10, 0], 0.5 * qkv[:, 10, 0] @ dense.T, **tol)
    torch.testing.assert_close(got[:, 10, 2], qkv[:, 10, 2] @ dense.T, **tol)
    torch.testing.assert_close(fixed.apply_out(o)[:, 10], o[:, 10] @ dense, **tol)


def test_fixed_rotations_are_relative():
    """R_i^T R_j depends only on the displacement between cells i and j (RoPE property), and
    rotate / inverse rotate are mutually inverse isometries."""
    g = GTA(8, learnable=False).double()
    eye = torch.eye(8, dtype=torch.float64).expand(81, 1, 8, 8)  # rotate each basis vector
    rot = g.rotate(eye.permute(2, 0, 1, 3)).permute(1, 2, 3, 0)[:, 0]  # (S, 8, 8): columns R_s e
    rel = lambda i, j: rot[i].T @ rot[j]  # noqa: E731
    # The rotations' entries are float32 cos/sin (<= 1 ulp, eps32, off): an entry of R_i^T R_j
    # sums two products of them, <= 4 eps32 off the exact, so two such differ by <= 8 eps32;
    # rotating there and back leaves R^T R = I + <= 4 eps32 per entry, x 2 nonzeros per row.
    exact = {"rtol": 0.0, "atol": 8 * EPS32}
    torch.testing.assert_close(rel(0, 10), rel(30, 40), **exact)  # both are (+1 row, +1 col)
    torch.testing.assert_close(rel(2, 29), rel(12, 39), **exact)  # (+3 rows, 0 cols)
    x = torch.randn(4, 81, 2, 8, dtype=torch.float64)
    y = g.rotate(x)
    back = {"rtol": 0.0, "atol": 8 * EPS32 * float(x.abs().max())}
    torch.testing.assert_close(g.rotate(y, inverse=True), x, **back)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), rtol=4 * EPS32, atol=0.0)
    with pytest.raises(RuntimeError):
        GTA(8).rotate(x)


def test_sinusoidal_2d_layout():
    pe = sinusoidal_2d(8)
    half = 4
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(10000.0) / half))
    r, c = 4, 7
    expected = torch.tensor(
        [
            math.sin(c * div[0]),
            math.cos(c * div[0]),
            math.sin(c * div[1]),
            math.cos(c * div[1]),
            math.sin(r * div[0]),
            math.cos(r * div[0]),
            math.sin(r * div[1]),
            math.cos(r * div[1]),
        ]
    )
    torch.testing.assert_close(pe[9 * r + c], expected)
    with pytest.raises(ValueError):
        sinusoidal_2d(6)


def test_relations():
    masks = relation_masks().bool()
    cell, row, col, box, unrelated = masks
    torch.testing.assert_close(masks.transpose(1, 2), masks)  # symmetric
    assert (cell.sum(1) == 1).all() and (row.sum(1) == 9).all() and (col.sum(1) == 9).all()
    assert (box.sum(1) == 9).all() and (unrelated.sum(1) == 60).all()  # 81 - 20 peers - self
    assert ((row | col | box).sum(1) == 21).all()
    rb = RelationBias(3)
    assert (rb() == 0).all()
    with torch.no_grad():
        rb.weight.copy_(torch.arange(15.0).view(3, 5))
    bias = rb()
    assert bias[1, 0, 0] == 5 + 6 + 7 + 8  # the cell itself: cell + row + col + box
    assert bias[1, 0, 1] == 6 + 8  # same row, same box
    assert bias[1, 0, 80] == 9  # unrelated


def test_cell_embedding_is_row_col_box_sum():
    emb = CellEmbedding(4)
    rows, cols, boxes = sudoku_grid()
    assert boxes[40] == 4 and boxes[80] == 8 and boxes[3] == 1
    table = emb()
    s = 57
    torch.testing.assert_close(
        table[s], emb.row.weight[rows[s]] + emb.col.weight[cols[s]] + emb.box.weight[boxes[s]]
    )


def test_parse_pos():
    assert parse_pos("gta+rcb", ("gta", "rcb")) == {"gta", "rcb"}
    assert parse_pos("none", ("gta",)) == frozenset()
    with pytest.raises(ValueError, match="unknown positional"):
        parse_pos("gta+rope", ("gta", "rcb"))


def test_relation_bias_structured_init_points_heads_at_row_col_box():
    rows, cols, boxes = sudoku_grid()
    bias = RelationBias(4, init=4.0)()
    i = 40  # the centre cell
    for h, unit in enumerate((rows, cols, boxes)):
        peers = (unit == unit[i]) & (torch.arange(81) != i)
        others = unit != unit[i]
        # head h prefers exactly the cells sharing unit h with cell i (strictly, by init)
        assert bias[h, i, peers].min() > bias[h, i, others].max()
    assert (bias[3] == 0).all()  # heads beyond the third start unbiased
    p = torch.softmax(bias[0, i], -1)
    assert p[rows == rows[i]].sum() > 0.85  # a row head attends mostly to the row from step 0
