"""Readouts from the final state to per-cell class logits, in the (B, S, D) layout.

- :class:`NormReadout`: AKOrN's phase-invariant ``c_k = ||sum_j U_kj x_j|| + b_k`` (a Linear
  D -> D*N', then the Euclidean norm over each of the D groups of N' outputs, plus a bias).
- :class:`AKOrNReadout`: NormReadout, then the residual feed-forward block
  ``z + Linear(ReLU(Linear(ReLU(z))))``, then ``ReLU, Linear(D, D)``, then the head
  ``ReLU, Linear(D, classes)`` (the reference's 1x1 convolutions are per-token Linears).
- :class:`MLPReadout`: ``Linear(D, D), ReLU, Linear(D, classes)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NormReadout(nn.Module):
    """``x: (B, S, D) -> (B, S, out_dim)``: norms of ``n`` -dim groups of a Linear's output."""

    def __init__(self, dim: int, out_dim: int, n: int):
        super().__init__()
        self.out_dim, self.n = out_dim, n
        self.proj = nn.Linear(dim, out_dim * n)
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x: Tensor) -> Tensor:
        z = self.proj(x).unflatten(-1, (self.out_dim, self.n))
        return torch.linalg.vector_norm(z, dim=-1) + self.bias


class AKOrNReadout(nn.Module):
    """The reference AKOrN Sudoku readout. ``x: (B, S, D) -> logits (B, S, classes)``."""

    def __init__(self, dim: int, n: int, classes: int = 9):
        super().__init__()
        self.norm_readout = NormReadout(dim, dim, n)
        self.ff1 = nn.Linear(dim, dim)
        self.ff2 = nn.Linear(dim, dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        z = self.norm_readout(x)
        z = z + self.ff2(F.relu(self.ff1(F.relu(z))))
        z = self.mix(F.relu(z))
        return self.head(F.relu(z))


class MLPReadout(nn.Module):
    """``Linear(D, D), ReLU, Linear(D, classes)``. ``x: (B, S, D) -> (B, S, classes)``."""

    def __init__(self, dim: int, classes: int = 9):
        super().__init__()
        self.hidden = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.hidden(x)))
