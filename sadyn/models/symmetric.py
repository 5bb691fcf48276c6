"""Energy-based symmetric SA and the generalized symmetric SA of Props 4.1 / 4.2.

All three run the ItrSA-family step of ``itrsa.py`` with a constrained attention from
``sadyn.nn.constrained`` (constraints by construction):

- ``symsa``: single head, ``A = W^Q W^K^T`` symmetric and ``W^V = A`` (Eqs. 3-4). Default step:
  the projected update on the unit sphere, ``X <- Pi(X + eta Proj_X(C + SA(X)))`` (``norm=
  "sphere"``, ``project=True``). ``energy(x)`` is its Lyapunov function: with ``C = 0`` and a
  small step it decreases (the classical result).
- ``gensym-single`` (Prop 4.1): single head, ``A`` asymmetric, ``W^V = (A + A^T)/2``; same
  projected step. No energy is asserted: the energy reconstructed from the paper's proof can
  increase for an asymmetric A (a numerical check of the reconstruction, docs/models.md).
- ``gensym-multi`` (Prop 4.2): ``H`` heads of rank ``D/(2H)`` in mutually orthogonal
  subspaces, symmetric ``W^V_h``; the ItrSA step (unit RMSNorm, no projection), i.e. the
  paper's "hard" E-multi constraint.

Positions: GTA here uses exact rotations (``gta_learnable`` must be false), and the relation
bias is symmetric in (i, j); both keep the interaction kernel symmetric. ``rcb`` enters C only.
No biases in the attention (they would break the symmetric form).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.utils import parametrize

from sadyn.models.config import check_bool, check_int, require
from sadyn.models.itrsa import ItrSA, ItrSAConfig
from sadyn.nn.constrained import GenSymMultiAttention, GenSymSingleAttention, SymmetricAttention
from sadyn.nn.positional import GTA, RelationBias


@dataclass
class SymSAConfig(ItrSAConfig):
    """Options of ``symsa`` / ``gensym-single``: ItrSA's plus ``project`` (the projected step,
    default; false: the ItrSA step) and ``rank`` (of the score matrix A; None: D)."""

    heads: int = 1
    norm: str = "sphere"
    project: bool = True
    gta_learnable: bool = False
    rank: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_bool("project", self.project)

    def _check_attention(self) -> None:
        require(self.heads == 1, f"single-head symmetric attention needs heads=1, got {self.heads}")
        require(
            not self.gta_learnable,
            "the symmetric models need exact GTA rotations: set gta_learnable=false",
        )
        require(
            not self.orthogonal_vo,
            "orthogonal_vo applies to unconstrained attention, not to the symmetric models",
        )
        check_int("rank", self.rank, optional=True)
        rank = self.dim if self.rank is None else self.rank
        require(rank % 2 == 0, f"the rank of A must be even, got {rank}")


@dataclass
class GenSymMultiConfig(ItrSAConfig):
    """Options of ``gensym-multi`` (ranks are D/(2H))."""

    gta_learnable: bool = False

    def _check_attention(self) -> None:
        require(
            not self.gta_learnable,
            "the symmetric models need exact GTA rotations: set gta_learnable=false",
        )
        require(
            not self.orthogonal_vo,
            "orthogonal_vo applies to unconstrained attention, not to the symmetric models",
        )
        require(
            self.dim % (2 * self.heads) == 0,
            f"gensym-multi needs dim divisible by 2 * heads, got {self.dim}, {self.heads}",
        )
        require(
            "gta" not in self.schemes or (self.dim // (2 * self.heads)) % 2 == 0,
            f"GTA needs an even per-head rank D/(2H), got {self.dim // (2 * self.heads)}",
        )


def _positions(cfg: ItrSAConfig, feat_dim: int) -> tuple[GTA | None, RelationBias | None]:
    gta = GTA(feat_dim, learnable=False) if "gta" in cfg.schemes else None
    return gta, RelationBias(cfg.heads) if cfg.relation_bias else None


class _ProjectedSA(ItrSA):
    """The single-head symmetric models' step (see the module docstring)."""

    cfg: SymSAConfig

    def step(self, x: Tensor, cond: Tensor, *, drive: Tensor | None = None) -> Tensor:
        """``X_{t+1} = Norm(X_t + eta Proj_X(C + SA(X_t)))`` (``project=False``: without Proj,
        the ItrSA step). ``(B, S, D), (B, S, D) -> (B, S, D)``."""
        y = self.drive(x, cond) if drive is None else drive  # C + SA(X)
        return self.norm(x + self.eta * (self.project(x, y) if self.cfg.project else y))

    def update(self, x: Tensor, cond: Tensor) -> Tensor:
        """``Delta X = Proj_X(C + SA(X))``: ``(B, S, D)``."""
        y = self.drive(x, cond)
        return self.project(x, y) if self.cfg.project else y


class SymmetricSA(_ProjectedSA):
    """Energy-based symmetric SA (see the module docstring)."""

    name = "symsa"
    Config = SymSAConfig

    def _build_attention(self, cfg: SymSAConfig) -> nn.Module:
        rank = cfg.dim if cfg.rank is None else cfg.rank
        gta, rb = _positions(cfg, rank)
        return SymmetricAttention(cfg.dim, rank, gta=gta, relation_bias=rb)

    def energy(self, x: Tensor) -> Tensor:
        """The attention energy ``E(X)`` per board: ``(B,)`` (see ``SymmetricAttention``)."""
        return self.attention.energy(x)


class GenSymSingleSA(_ProjectedSA):
    """Generalized symmetric SA, Prop 4.1 (see the module docstring)."""

    name = "gensym-single"
    Config = SymSAConfig

    def _build_attention(self, cfg: SymSAConfig) -> nn.Module:
        rank = cfg.dim if cfg.rank is None else cfg.rank
        gta, rb = _positions(cfg, rank)
        return GenSymSingleAttention(cfg.dim, rank, gta=gta, relation_bias=rb)


class GenSymMultiSA(ItrSA):
    """Generalized symmetric SA, Prop 4.2 (see the module docstring)."""

    name = "gensym-multi"
    Config = GenSymMultiConfig

    def _build_attention(self, cfg: GenSymMultiConfig) -> nn.Module:
        gta, rb = _positions(cfg, cfg.dim // (2 * cfg.heads))
        return GenSymMultiAttention(cfg.dim, cfg.heads, gta=gta, relation_bias=rb)

    def _unroll_context(self) -> contextlib.AbstractContextManager:
        # Compute the orthogonal basis once per unroll instead of once per step.
        return parametrize.cached()
