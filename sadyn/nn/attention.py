"""Multi-head self-attention in the (B, S, D) token layout, written as explicit softmax math.

By default no fused SDPA kernel: every op has forward-mode AD and vmap rules, so a step built on
it works under ``torch.func.jvp``, ``jacfwd`` and ``vmap`` as it is. Inside
:func:`fused_attention` (training and no-grad evaluation, where no forward-mode derivative is
taken) ``forward`` goes through ``torch.nn.functional.scaled_dot_product_attention`` instead,
which never materializes the ``(B, H, S, S)`` probabilities and picks the flash kernel on a GPU.

Paper convention (paper.md §2.2): ``MSA(X) = sum_h softmax(beta X W^Q_h W^K_h^T X^T) X W^V_h W^O_h``
with ``beta = 1/sqrt(D_H)``. Here ``qkv.weight`` is ``(3D, D)`` with rows ``[Q; K; V]``, head
``h`` owning rows ``h*D_H:(h+1)*D_H`` of each block (contiguous heads; the AKOrN code interleaves
them, which is only a permutation of the weights), and ``out.weight[:, h*D_H:(h+1)*D_H]`` is
``(W^O_h)^T``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sadyn.nn.positional import GTA, RelationBias

_FUSED = False


@contextlib.contextmanager
def fused_attention(enabled: bool = True) -> Iterator[None]:
    """Within the block, :class:`MultiHeadSelfAttention` forwards use the fused
    ``scaled_dot_product_attention`` kernel (same math, no probabilities kept). Not for
    ``torch.func.jvp``/``jacfwd``: the fused kernels have no forward-mode derivative."""
    global _FUSED
    previous, _FUSED = _FUSED, enabled
    try:
        yield
    finally:
        _FUSED = previous


def fused_attention_enabled() -> bool:
    """Whether :func:`fused_attention` is active."""
    return _FUSED


class OrthogonalRows(nn.Module):
    """Parametrization of a weight whose rows ``[start, start + n)`` form an orthogonal
    ``n x n`` block (the other rows are left free).

    The block is ``base @ matrix_exp(A - A^T)`` with ``A`` the strictly lower triangle of the
    raw rows: the trivialization of PyTorch's ``orthogonal`` parametrization, kept to one block
    of a fused weight (here W^V inside ``qkv``). ``right_inverse`` sets ``base`` to the orthogonal
    factor Q of the assigned block's QR decomposition (R with a positive diagonal) and the raw
    block to 0: registering it orthogonalizes the initial weight, and assigning an orthogonal
    block stores exactly that block.
    """

    def __init__(self, start: int, n: int):
        super().__init__()
        self.start, self.n = start, n
        self.register_buffer("base", torch.eye(n))

    def forward(self, w: Tensor) -> Tensor:
        lo, hi = self.start, self.start + self.n
        a = w[lo:hi].tril(-1)
        block = self.base @ torch.linalg.matrix_exp(a - a.mT)
        return torch.cat((w[:lo], block, w[hi:]))

    @torch.no_grad()
    def right_inverse(self, w: Tensor) -> Tensor:
        lo, hi = self.start, self.start + self.n
        if w.shape[1] != self.n or w.shape[0] < hi:
            raise ValueError(f"OrthogonalRows({self.start}, {self.n}) cannot take {tuple(w.shape)}")
        q, r = torch.linalg.qr(w[lo:hi])
        self.base.copy_(q * torch.where(r.diagonal() < 0, -1.0, 1.0).to(q))
        raw = w.clone()
        raw[lo:hi] = 0
        return raw


def softmax_attention(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T + bias) v``; the scale must already be in ``q``.

    ``q, k: (B, H, S, d)``, ``v: (B, H, S, e)``, ``bias: (H, S, S)`` or None.
    Returns ``(out: (B, H, S, e), probs: (B, H, S, S))``.
    """
    logits = torch.matmul(q, k.transpose(-1, -2))
    if bias is not None:
        logits = logits + bias
    probs = torch.softmax(logits, dim=-1)
    return torch.matmul(probs, v), probs


class MultiHeadSelfAttention(nn.Module):
    """Fused ``qkv`` Linear (D -> 3D, bias) and ``out`` Linear (D -> D, bias), with optional GTA
    blocks and relation bias.

    ``orthogonal_vo``: W^V (the V rows of ``qkv``) and W^O are parametrized as orthogonal
    D x D matrices (paper App. B.2, the setting of the E-multi regularizer). Wrap a forward in
    ``torch.nn.utils.parametrize.cached()`` to build them once per call.

    ``forward(x: (B, S, D)) -> (B, S, D)``; ``probs(x) -> (B, H, S, S)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        gta: GTA | None = None,
        relation_bias: RelationBias | None = None,
        bias: bool = True,
        orthogonal_vo: bool = False,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
        self.gta = gta
        self.relation_bias = relation_bias
        self.orthogonal_vo = orthogonal_vo
        if orthogonal_vo:
            parametrize.register_parametrization(self.qkv, "weight", OrthogonalRows(2 * dim, dim))
            parametrize.register_parametrization(self.out, "weight", OrthogonalRows(0, dim))

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Scaled queries, keys, values with positions applied: each ``(B, H, S, D_H)``."""
        b, s, _ = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.heads, self.head_dim)
        if self.gta is not None:
            qkv = self.gta.apply_qkv(qkv, q_scale=self.scale)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            q = q * self.scale
        return q, k, v

    def _bias(self) -> Tensor | None:
        return None if self.relation_bias is None else self.relation_bias()

    def _merge(self, o: Tensor) -> Tensor:
        """Heads ``(B, H, S, D_H)`` -> ``(B, S, D)`` through GTA's output blocks and ``out``."""
        b, _, s, _ = o.shape
        o = o.transpose(1, 2)  # (B, S, H, D_H)
        if self.gta is not None:
            o = self.gta.apply_out(o)
        return self.out(o.reshape(b, s, self.dim))

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x: (B, S, D) -> (MSA(x): (B, S, D), probs: (B, H, S, S))``."""
        q, k, v = self._qkv(x)
        o, probs = softmax_attention(q, k, v, self._bias())
        return self._merge(o), probs

    def forward(self, x: Tensor) -> Tensor:
        if not _FUSED:
            return self.attend(x)[0]
        q, k, v = self._qkv(x)
        device = q.device.type
        if torch.is_autocast_enabled(device):  # one dtype for q, k, v and the mask
            low = torch.get_autocast_dtype(device)
            q, k, v = q.to(low), k.to(low), v.to(low)
        bias = self._bias()
        mask = None if bias is None else bias.to(q.dtype)
        # the 1/sqrt(D_H) scale is already in q
        return self._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0))

    def probs(self, x: Tensor) -> Tensor:
        """The softmax matrices ``P_h``: ``(B, H, S, S)``."""
        q, k, _ = self._qkv(x)
        logits = torch.matmul(q, k.transpose(-1, -2))
        bias = self._bias()
        return torch.softmax(logits if bias is None else logits + bias, dim=-1)

    def value_output_matrices(self) -> Tensor:
        """``W^V_h W^O_h`` for every head in the paper's row convention: ``(H, D, D)``.

        (GTA blocks, which act per position between the two, are not included.)
        """
        h, d, e = self.heads, self.dim, self.head_dim
        wv = self.qkv.weight[2 * d :].view(h, e, d)  # rows of W^V_h^T
        wo = self.out.weight.view(d, h, e).permute(1, 2, 0)  # (H, D_H, D) = W^O_h
        return wv.transpose(1, 2) @ wo

    def extra_repr(self) -> str:
        extra = ", orthogonal_vo=True" if self.orthogonal_vo else ""
        return f"dim={self.dim}, heads={self.heads}{extra}"
