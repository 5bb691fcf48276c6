"""Self-attention whose weights satisfy the energy conditions of paper.md §2.3 and §2.7 by
construction (a parametrization, not a penalty). Layout ``x: (B, S, D)``.

All three are instances of one *symmetrized bilinear* attention. With per-head features
``a = F x`` and ``b = G x`` (and optional cell rotations ``R_i``: fixed GTA rotations), the score
is ``s_ij = beta <R_i a_i, R_j b_j> (+ bias_ij)`` and the value passed from token j to token i is
``(F^T R_i^T R_j b_j + G^T R_i^T R_j a_j) / 2``: the symmetric part of the pair's bilinear form.
Without rotations that is ``softmax(beta X A X^T) X W^V`` with ``A = F^T G`` and
``W^V = (A + A^T) / 2``. The rotations are orthogonal and the relation bias is symmetric in
(i, j), so both keep the interaction kernel symmetric; learnable (non-orthogonal) GTA blocks
would not, and are refused.

- :class:`SymmetricAttention` (symmetric SA, Eqs. 3-4): ``A = W^T diag(sigma) W`` symmetric,
  ``W^V = A``; ``W: (r, D)``, ``sigma`` one learnable scale per channel pair (it must commute
  with the rotations), initial 1. ``energy(x)`` is its Lyapunov function.
- :class:`GenSymSingleAttention` (Prop 4.1): ``A = W^Q^T W^K`` free (asymmetric),
  ``W^V = (A + A^T) / 2``.
- :class:`GenSymMultiAttention` (Prop 4.2, as reconstructed in paper.md §2.7): ``H`` heads with
  ``A_h = U_{1,h} M_h U_{2,h}^T`` (rank <= D/(2H), asymmetric), ``W^V_h = (A_h + A_h^T) / 2``,
  where the ``U_{k,h}`` are disjoint column blocks of one orthogonal ``D x D`` matrix (so heads
  live in mutually orthogonal subspaces and every cross-head product vanishes) and ``M_h`` is a
  free ``d x d`` core, initial identity (``A_h = U_1 U_2^T``, the reconstructed form).

``dense_matrices()`` returns ``(A, W^V)``, each ``(H, D, D)`` in the paper's convention
(score ``x_i^T A_h x_j``, output row ``sum_j P_ij x_j^T W^V_h``), for tests and probes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from sadyn.nn.positional import GTA, RelationBias


def _check_rotation(gta: GTA | None) -> None:
    if gta is not None and gta.learnable:
        raise ValueError(
            "constrained attention needs exact (orthogonal) GTA rotations: GTA(learnable=False)"
        )


class _SymmetrizedAttention(nn.Module):
    """Shared machinery; subclasses define the features ``a, b: (B, S, H, d)`` and the map of
    the aggregated values back to the width D."""

    heads: int
    feat_dim: int

    def __init__(self, gta: GTA | None, relation_bias: RelationBias | None):
        super().__init__()
        _check_rotation(gta)
        self.gta = gta
        self.relation_bias = relation_bias

    # -- to implement ------------------------------------------------------------------------
    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x: (B, S, D) -> a, b: (B, S, H, d)`` (before rotation)."""
        raise NotImplementedError

    def combine(self, oa: Tensor, ob: Tensor) -> Tensor:
        """``oa = R^T P R b``, ``ob = R^T P R a`` (each ``(B, S, H, d)``) -> ``(B, S, D)``."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    @property
    def scale(self) -> float:
        return self.feat_dim**-0.5

    def _rotate(self, t: Tensor, inverse: bool = False) -> Tensor:
        return t if self.gta is None else self.gta.rotate(t, inverse=inverse)

    def _logits(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rotated ``a, b: (B, H, S, d)`` and the logits ``(B, H, S, S)``."""
        a, b = self.features(x)
        h = a.shape[2]
        ab = self._rotate(torch.cat((a, b), 2)).transpose(1, 2)  # (B, 2H, S, d)
        a, b = ab[:, :h], ab[:, h:]
        logits = torch.matmul(a * self.scale, b.transpose(-1, -2))
        if self.relation_bias is not None:
            logits = logits + self.relation_bias()
        return a, b, logits

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x: (B, S, D) -> (output (B, S, D), probs (B, H, S, S))``."""
        a, b, logits = self._logits(x)
        probs = torch.softmax(logits, dim=-1)
        d = self.feat_dim
        o = torch.matmul(probs, torch.cat((b, a), -1))  # (B, H, S, 2d): [P b, P a]
        o = o.transpose(1, 2).unflatten(-1, (2, d)).flatten(2, 3)  # (B, S, 2H, d)
        o = self._rotate(o, inverse=True).unflatten(2, (-1, 2))  # (B, S, H, 2, d)
        return self.combine(o[..., 0, :], o[..., 1, :]), probs

    def forward(self, x: Tensor) -> Tensor:
        return self.attend(x)[0]

    def probs(self, x: Tensor) -> Tensor:
        """``(B, H, S, S)``."""
        return torch.softmax(self._logits(x)[2], dim=-1)


class SymmetricAttention(_SymmetrizedAttention):
    """Single-head symmetric SA: ``A = W^T diag(sigma) W = W^V``. ``W: (rank, D)``.

    With ``A`` symmetric ``b = sigma * a`` and the two halves of the symmetrized value coincide,
    so the output is ``W^T R^T P R (sigma * W x)``.
    """

    def __init__(
        self,
        dim: int,
        rank: int | None = None,
        *,
        gta: GTA | None = None,
        relation_bias: RelationBias | None = None,
    ):
        super().__init__(gta, relation_bias)
        rank = dim if rank is None else rank
        if rank % 2:
            raise ValueError(f"symmetric attention needs an even rank, got {rank}")
        self.dim, self.heads, self.feat_dim = dim, 1, rank
        self.proj = nn.Linear(dim, rank, bias=False)
        self.sigma = nn.Parameter(torch.ones(rank // 2))

    def _sigma(self) -> Tensor:
        return self.sigma[:, None].expand(-1, 2).reshape(-1)  # one value per channel pair

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a = self.proj(x).unsqueeze(2)  # (B, S, 1, r)
        return a, a * self._sigma()

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, b, logits = self._logits(x)
        probs = torch.softmax(logits, dim=-1)
        o = self._rotate(torch.matmul(probs, b).transpose(1, 2), inverse=True)  # (B, S, 1, r)
        return F.linear(o.squeeze(2), self.proj.weight.t()), probs

    def combine(self, oa: Tensor, ob: Tensor) -> Tensor:  # not used: attend is specialized
        return 0.5 * F.linear((oa + ob * self._sigma()).squeeze(2), self.proj.weight.t())

    def energy(self, x: Tensor) -> Tensor:
        """The energy per board ``(B,)``:
        ``E(X) = -(1 / 2 beta) sum_ij exp(beta <R_i a_i, R_j b_j> + bias_ij)``.

        Along ``dX/dt = Proj_X(SA(X))`` on the unit sphere, ``dE/dt = -sum_i Z_i |Proj SA_i|^2
        <= 0`` (the classical result; requires the symmetric kernel this class guarantees).
        """
        logits = self._logits(x)[2]
        return -torch.exp(torch.logsumexp(logits.flatten(1), dim=-1)) / (2.0 * self.scale)

    def dense_matrices(self) -> tuple[Tensor, Tensor]:
        w = self.proj.weight
        a = w.t() @ (self._sigma()[:, None] * w)
        return a[None], a[None]


class GenSymSingleAttention(_SymmetrizedAttention):
    """Prop 4.1: one head, ``A = W^Q^T W^K`` free, ``W^V = (A + A^T)/2``.

    ``qk.weight: (2 rank, D)`` holds ``[W^Q; W^K]`` (features ``q = W^Q x``, ``k = W^K x``).
    """

    def __init__(
        self,
        dim: int,
        rank: int | None = None,
        *,
        gta: GTA | None = None,
        relation_bias: RelationBias | None = None,
    ):
        super().__init__(gta, relation_bias)
        rank = dim if rank is None else rank
        if gta is not None and rank % 2:
            raise ValueError(f"GTA needs an even rank, got {rank}")
        self.dim, self.heads, self.feat_dim = dim, 1, rank
        self.qk = nn.Linear(dim, 2 * rank, bias=False)

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        qk = self.qk(x).unflatten(-1, (2, self.feat_dim))  # (B, S, 2, r)
        return qk[:, :, :1], qk[:, :, 1:]

    def combine(self, oa: Tensor, ob: Tensor) -> Tensor:
        o = torch.cat((oa, ob), -1).flatten(2)  # (B, S, 2r): pairs with [W^Q; W^K]
        return 0.5 * F.linear(o, self.qk.weight.t())

    def dense_matrices(self) -> tuple[Tensor, Tensor]:
        wq, wk = self.qk.weight[: self.feat_dim], self.qk.weight[self.feat_dim :]
        a = wq.t() @ wk
        return a[None], (0.5 * (a + a.t()))[None]


class GenSymMultiAttention(_SymmetrizedAttention):
    """Prop 4.2: ``H`` heads of rank ``d = D / (2H)`` in mutually orthogonal subspaces.

    ``basis`` is a ``D x D`` Linear with PyTorch's orthogonal parametrization (rows
    ``(2h + k) d : (2h + k + 1) d`` of its weight are ``U_{k,h}^T``); ``core: (H, d, d)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        gta: GTA | None = None,
        relation_bias: RelationBias | None = None,
    ):
        super().__init__(gta, relation_bias)
        if dim % (2 * heads):
            raise ValueError(f"Prop 4.2 attention needs 2 * heads = {2 * heads} to divide {dim}")
        d = dim // (2 * heads)
        if gta is not None and d % 2:
            raise ValueError(f"GTA needs an even per-head rank, got D/(2H) = {d}")
        self.dim, self.heads, self.feat_dim = dim, heads, d
        self.basis = parametrizations.orthogonal(nn.Linear(dim, dim, bias=False))
        self.core = nn.Parameter(torch.eye(d).repeat(heads, 1, 1))

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.basis(x).unflatten(-1, (self.heads, 2, self.feat_dim))  # (B, S, H, 2, d)
        a = torch.einsum("bshd,hde->bshe", z[..., 0, :], self.core)  # a = M_h^T u1
        return a, z[..., 1, :]

    def combine(self, oa: Tensor, ob: Tensor) -> Tensor:
        za = torch.einsum("bshe,hde->bshd", oa, self.core)  # U1 M_h (R^T P R b)
        z = torch.stack((za, ob), -2).flatten(2)  # (B, S, D) in the orthogonal basis
        return 0.5 * F.linear(z, self.basis.weight.t())

    def dense_matrices(self) -> tuple[Tensor, Tensor]:
        q = self.basis.weight.view(self.heads, 2, self.feat_dim, self.dim)  # U_{k,h}^T
        a = q[:, 0].transpose(1, 2) @ self.core @ q[:, 1]  # (H, D, D)
        return a, 0.5 * (a + a.transpose(1, 2))
