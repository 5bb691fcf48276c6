"""AKOrN's natural-frequency term Omega: an anti-symmetric linear map acting on channel pairs."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sadyn.nn.pairs import swap_pairs


class Omega(nn.Module):
    """``Omega x``: every consecutive channel pair ``(a, b)`` is mapped to ``(w b, -w a)``.

    As in the reference, ``w = ||omega_param||`` (a norm, so always >= 0), with ``omega_param`` of
    shape ``(2,)`` for one global frequency, or ``(D/2, 2)`` for one frequency per pair. The map
    is anti-symmetric, so ``<Omega x, x> = 0``: it only rotates.

    ``forward(x: (..., D)) -> (..., D)``; ``Omega x = coefficients() * swap_pairs(x)``.
    """

    def __init__(
        self, dim: int, init: float = 0.5, *, learnable: bool = True, global_omega: bool = True
    ):
        super().__init__()
        if dim % 2:
            raise ValueError(f"Omega needs an even width, got {dim}")
        self.dim = dim
        shape = (2,) if global_omega else (dim // 2, 2)
        self.omega_param = nn.Parameter(
            torch.full(shape, init / math.sqrt(2.0)), requires_grad=learnable
        )

    @property
    def frequencies(self) -> Tensor:
        """``()`` for a global frequency, else ``(D/2,)``."""
        return torch.linalg.vector_norm(self.omega_param, dim=-1)

    def coefficients(self) -> Tensor:
        """``(D,)``: ``(w, -w)`` for every pair, so that ``Omega x = coefficients * swap(x)``."""
        w = self.frequencies
        c = w[..., None] * w.new_tensor([1.0, -1.0])  # (2,) global, (D/2, 2) per pair
        return c.repeat(self.dim // 2) if c.ndim == 1 else c.flatten()

    def forward(self, x: Tensor) -> Tensor:
        return swap_pairs(x) * self.coefficients()
