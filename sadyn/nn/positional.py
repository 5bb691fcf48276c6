"""Positional schemes over the 9x9 Sudoku grid (S = 81 cells, cell ``s = 9 * row + col``).

- :class:`GTA`: AKOrN's geometric transform attention. Per cell, every channel pair of a head's
  queries, keys and values is multiplied by a 2x2 block initialized to the SO(2) rotation by
  ``coord * base**(-f / F)`` (``F = ceil(head_dim / 4)`` frequencies, pairs alternating between
  the row and the column coordinate); the attention output is multiplied by the transposed
  blocks. In the reference the four sets of blocks (q, k, v, out) are free learnable 2x2 matrices
  shared across heads (``learnable=True``: ``8 * 81 * head_dim`` parameters); ``learnable=False``
  keeps the exact rotations as buffers (orthogonal, which the symmetric models need).
  Applied as elementwise ops on channel pairs, never as dense matrices.
- :class:`CellEmbedding`: learned row + column + box embeddings, a ``(S, D)`` table added to C.
- :class:`RelationBias`: a learned additive attention-logit bias per head and per Sudoku
  relation of the pair (i, j) (same cell, row, column, box; unrelated), so a head can find a
  cell's peers from the first step. Symmetric in (i, j).
- :func:`sinusoidal_2d`: the 2-D sine/cosine code the pre-LN ItrSA initializes its position
  embedding with.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sadyn.nn.pairs import pair_apply

GRID = 9
CELLS = GRID * GRID
RELATIONS = ("cell", "row", "col", "box", "unrelated")


def parse_pos(spec: str, allowed: tuple[str, ...]) -> frozenset[str]:
    """Parse a positional spec such as ``"gta+rcb"`` or ``"none"`` into its set of schemes."""
    if not isinstance(spec, str):
        raise ValueError(f"pos must be a string such as 'gta' or 'gta+rcb', got {spec!r}")
    parts = [p.strip() for p in spec.lower().split("+") if p.strip()]
    if parts == ["none"]:
        return frozenset()
    bad = [p for p in parts if p not in allowed]
    if bad or not parts:
        raise ValueError(
            f"unknown positional scheme {spec!r}; combine {', '.join(allowed)} with '+', or 'none'"
        )
    return frozenset(parts)


def canonical_pos(schemes: frozenset[str]) -> str:
    """Inverse of :func:`parse_pos`: a canonical string (sorted, ``+``-joined, or ``"none"``)."""
    return "+".join(sorted(schemes)) if schemes else "none"


def sudoku_grid() -> tuple[Tensor, Tensor, Tensor]:
    """Row, column and box index of every cell: three ``(81,)`` long tensors."""
    s = torch.arange(CELLS)
    rows, cols = s // GRID, s % GRID
    return rows, cols, (rows // 3) * 3 + cols // 3


def sinusoidal_2d(dim: int, height: int = GRID, width: int = GRID) -> Tensor:
    """2-D sine/cosine code ``(height * width, dim)``: the first half of the channels encodes the
    column, the second half the row, alternating sin/cos, base 10000 (AKOrN's
    ``positionalencoding2d`` layout)."""
    if dim % 4:
        raise ValueError(f"the 2-D sinusoidal code needs a width divisible by 4, got {dim}")
    half = dim // 2
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(10000.0) / half))  # (half/2,)
    col = torch.arange(float(width))[:, None] * div  # (W, half/2)
    row = torch.arange(float(height))[:, None] * div  # (H, half/2)
    pe = torch.zeros(height, width, dim)
    pe[:, :, 0:half:2] = torch.sin(col)[None]
    pe[:, :, 1:half:2] = torch.cos(col)[None]
    pe[:, :, half::2] = torch.sin(row)[:, None]
    pe[:, :, half + 1 :: 2] = torch.cos(row)[:, None]
    return pe.reshape(height * width, dim)


def gta_angles(head_dim: int, size: int = GRID, base: float = 10000.0) -> Tensor:
    """Rotation angle of every (cell, channel pair): ``(size**2, head_dim // 2)``.

    Pair ``p`` uses frequency ``base**(-f / F)``, ``f = p // 2``, ``F = ceil(head_dim / 4)``,
    and the row coordinate for even ``p``, the column for odd ``p`` (the reference's layout).
    """
    if head_dim % 2:
        raise ValueError(f"GTA needs an even head width, got {head_dim}")
    pairs = head_dim // 2
    nfreq = -(-head_dim // 4)
    freqs = base ** (-torch.arange(nfreq, dtype=torch.float64) / nfreq)  # (F,)
    s = torch.arange(size * size)
    coords = torch.stack((s // size, s % size), -1).to(torch.float64)  # (S, 2): row, col
    theta = coords[:, None, :] * freqs[None, :, None]  # (S, F, 2) -> pair index f * 2 + coord
    return theta.reshape(size * size, 2 * nfreq)[:, :pairs].to(torch.get_default_dtype())


def _blocks(theta: Tensor, *, transpose: bool = False) -> Tensor:
    """Rotations ``[[c, -s], [s, c]]`` (or their transposes) by ``theta: (..., P)`` in the
    diagonal / off-diagonal form of :func:`sadyn.nn.pairs.pair_apply`: ``(..., 2, 2P)``."""
    c, s = torch.cos(theta), torch.sin(theta)
    diag = torch.stack((c, c), -1).flatten(-2)
    off = torch.stack((s, -s) if transpose else (-s, s), -1).flatten(-2)
    return torch.stack((diag, off), -2)


class GTA(nn.Module):
    """Geometric transform attention blocks for one attention module (see the module docstring).

    Shapes: ``qkv: (B, S, 3, H, head_dim)``, ``o: (B, S, H, head_dim)``; the blocks are shared
    across heads and stored in the (diagonal, off-diagonal) form of :func:`pair_apply`:
    ``learnable=True`` holds parameters ``qkv: (S, 3, 2, head_dim)`` (q, k, v blocks) and
    ``out: (S, 2, head_dim)`` (4 numbers per channel pair, as the reference's 2x2 matrices);
    ``learnable=False`` holds the same tables of exact rotations as buffers.
    """

    def __init__(self, head_dim: int, *, learnable: bool = True, size: int = GRID):
        super().__init__()
        theta = gta_angles(head_dim, size)  # (S, P)
        self.head_dim, self.learnable = head_dim, learnable
        qkv = _blocks(theta)[:, None].repeat(1, 3, 1, 1)  # (S, 3, 2, hd)
        out = _blocks(theta, transpose=True)  # (S, 2, hd)
        if learnable:
            self.qkv = nn.Parameter(qkv)
            self.out = nn.Parameter(out)
        else:
            self.register_buffer("qkv", qkv, persistent=False)
            self.register_buffer("out", out, persistent=False)

    def apply_qkv(self, qkv: Tensor, q_scale: float = 1.0) -> Tensor:
        """Transform queries, keys and values, ``(B, S, 3, H, hd) -> (B, S, 3, H, hd)``; the query
        blocks are multiplied by ``q_scale`` (the attention's 1/sqrt(hd), folded in for free)."""
        m = self.qkv
        if q_scale != 1.0:
            m = m * m.new_tensor([q_scale, 1.0, 1.0]).view(1, 3, 1, 1)
        return pair_apply(qkv, m.unsqueeze(2))  # (S, 3, 1, 2, hd): shared over heads

    def apply_out(self, o: Tensor) -> Tensor:
        """Transform the attention output back, ``(B, S, H, hd) -> (B, S, H, hd)``."""
        return pair_apply(o, self.out.unsqueeze(1))

    def rotate(self, x: Tensor, *, inverse: bool = False) -> Tensor:
        """Exact rotation (``learnable=False`` only): ``x: (B, S, H, hd)``, cell ``s`` rotated by
        ``R_s`` (or ``R_s^T`` with ``inverse``). Orthogonal, so it preserves symmetric forms."""
        if self.learnable:
            raise RuntimeError("rotate() needs fixed rotations (GTA(learnable=False))")
        m = self.out if inverse else self.qkv[:, 0]
        return pair_apply(x, m.unsqueeze(1))

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, learnable={self.learnable}"


class CellEmbedding(nn.Module):
    """Learned row + column + box embeddings (``nn.Embedding`` N(0, 1) init).

    ``forward() -> (81, D)``: the table to add to the embedded puzzle.
    """

    def __init__(self, dim: int):
        super().__init__()
        rows, cols, boxes = sudoku_grid()
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("boxes", boxes, persistent=False)
        self.row = nn.Embedding(GRID, dim)
        self.col = nn.Embedding(GRID, dim)
        self.box = nn.Embedding(GRID, dim)

    def forward(self) -> Tensor:
        return self.row(self.rows) + self.col(self.cols) + self.box(self.boxes)


def relation_masks() -> Tensor:
    """Indicators of the relations of :data:`RELATIONS` for every pair: ``(5, 81, 81)`` float.
    A cell is in relation "row", "col" and "box" with itself as well as "cell"."""
    rows, cols, boxes = sudoku_grid()
    same_row = rows[:, None] == rows[None, :]
    same_col = cols[:, None] == cols[None, :]
    same_box = boxes[:, None] == boxes[None, :]
    same_cell = torch.eye(CELLS, dtype=torch.bool)
    unrelated = ~(same_row | same_col | same_box)
    return torch.stack((same_cell, same_row, same_col, same_box, unrelated)).to(
        torch.get_default_dtype()
    )


class RelationBias(nn.Module):
    """Additive attention-logit bias ``b[h, i, j] = sum_r w[h, r] * [relation r holds for (i, j)]``.

    ``weight: (H, 5)``; ``forward() -> (H, 81, 81)``, a pure function of the parameters (fine
    under ``jvp``/``vmap``), symmetric in (i, j).

    ``init`` = 0 (default) starts the model as without the bias. ``init`` = b > 0 starts heads
    0, 1, 2 looking at a cell's row, column and box (weight b on that relation; further heads
    stay at 0): a structured start that spares the model from discovering the Sudoku graph
    before it can propagate constraints, which is what makes CPU-scale training fast (see
    ``docs/training.md``, the ``small`` preset).
    """

    def __init__(self, heads: int, init: float = 0.0):
        super().__init__()
        self.register_buffer("masks", relation_masks(), persistent=False)
        weight = torch.zeros(heads, len(RELATIONS))
        for h, rel in enumerate(("row", "col", "box")[:heads]):
            weight[h, RELATIONS.index(rel)] = init
        self.weight = nn.Parameter(weight)

    def forward(self) -> Tensor:
        return torch.einsum("hr,rij->hij", self.weight, self.masks)
