"""Maps for the dynamics tests, written inline on purpose: ``sadyn.dynamics`` must work on any
torch function, so its tests use neither ``sadyn.nn`` nor ``sadyn.models``."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

F64 = torch.float64


def attention_block(
    tokens: int = 9,
    width: int = 8,
    heads: int = 2,
    eta: float = 0.5,
    gain: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype = F64,
    normalize: bool = True,
) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """One looped self-attention step with input injection and unit RMSNorm.

    ``X' = Y / ||Y||`` per token, ``Y = X + eta (C + MSA(X))``, with a fused qkv projection,
    ``F.scaled_dot_product_attention`` and an output projection (the paper's ItrSA step).
    The map acts on the last axis, so it takes ``(S*D,)`` or a batch ``(B, S*D)``; each token
    has an exact zero direction (its radial direction under the normalisation).

    Returns:
        ``(f, x0)`` with ``x0: (S*D,)``, tokens on the unit sphere.
    """
    g = torch.Generator().manual_seed(seed)
    w_qkv = torch.randn(3 * width, width, generator=g, dtype=F64) * gain / math.sqrt(width)
    w_out = torch.randn(width, width, generator=g, dtype=F64) * gain / math.sqrt(width)
    cond = torch.randn(tokens, width, generator=g, dtype=F64)
    w_qkv, w_out, cond = (t.to(dtype) for t in (w_qkv, w_out, cond))
    dh = width // heads

    def f(v: Tensor) -> Tensor:
        x = v.reshape(*v.shape[:-1], tokens, width)
        qkv = (x @ w_qkv.T).reshape(*x.shape[:-1], 3, heads, dh)  # (..., S, 3, H, Dh)
        q, k, val = qkv.movedim(-3, 0).transpose(-3, -2)  # each (..., H, S, Dh)
        att = F.scaled_dot_product_attention(q, k, val)  # (..., H, S, Dh)
        msa = att.transpose(-3, -2).reshape(x.shape) @ w_out.T
        y = x + eta * (cond + msa)
        if normalize:
            y = y / torch.linalg.vector_norm(y, dim=-1, keepdim=True)
        return y.reshape(v.shape)

    x0 = torch.randn(tokens, width, generator=g, dtype=F64)
    x0 = (x0 / x0.norm(dim=-1, keepdim=True)).reshape(-1).to(dtype)
    return f, x0
