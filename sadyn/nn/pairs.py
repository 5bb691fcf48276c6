"""Elementwise operations on consecutive channel pairs ``(x0, x1), (x2, x3), ...``.

Used by the GTA blocks and by Omega; written without ``select``/``stack`` so that forward and
backward are a few fused passes.
"""

from __future__ import annotations

import torch
from torch import Tensor


def swap_pairs(x: Tensor) -> Tensor:
    """``(x0, x1, x2, x3, ...) -> (x1, x0, x3, x2, ...)`` on the last axis."""
    return x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)


def pair_apply(x: Tensor, m: Tensor) -> Tensor:
    """Multiply every channel pair of ``x: (..., 2P)`` by its 2x2 block, given in the form
    ``m: (..., 2, 2P)`` (broadcast against ``x``): ``m[..., 0, :]`` holds the diagonal entries
    ``(m00, m11)`` and ``m[..., 1, :]`` the off-diagonal ones ``(m01, m10)`` of every pair, so
    ``y = m_diag * x + m_off * swap_pairs(x)``: three elementwise ops, no dense matrices."""
    return torch.addcmul(x * m[..., 0, :], swap_pairs(x), m[..., 1, :])
