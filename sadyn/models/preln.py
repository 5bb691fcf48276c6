"""The pre-LayerNorm ItrSA of the AKOrN paper (Miyato et al., ICLR 2025; their
``SudokuTransformer``, ``source/models/sudoku/transformer.py`` in ``autonomousvision/akorn``),
the baseline of their table. Not the paper's ItrSA (``itrsa.py``).

``X_0 = Embed(puzzle) + P`` (P a learnable position embedding, initialized to the 2-D sinusoids,
added once), ``X_{t+1} = X_t + MSA(LN_1(X_t))``; after the loop, once,
``Z = X_T + MLP(LN_2(X_T))`` (GELU, hidden ``mlp_ratio * D``) and logits ``Linear(LN(Z))``.

There is no input injection, so within the protocol ``C`` is the embedded puzzle (the initial
state), ``step`` ignores it, the increment is ``MSA(LN_1(X))`` and the pseudo-energy is
``-Tr(X^T MSA(LN_1(X)))``. eta is a fixed 1. The post-loop MLP counts as part of ``readout``.
Parameters: 2,155,017 at D=512, H=8 (the reference's count).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sadyn.errors import ShapeError
from sadyn.models.base import DIGITS, LoopedModel, check_puzzles, check_state
from sadyn.models.config import ModelConfigError, check_bool, check_float, check_int, require
from sadyn.nn.attention import MultiHeadSelfAttention
from sadyn.nn.positional import (
    GTA,
    CellEmbedding,
    RelationBias,
    canonical_pos,
    parse_pos,
    sinusoidal_2d,
)

POS_SCHEMES = ("sin2d", "rcb", "gta")


@dataclass
class PreLNConfig:
    """Options of the pre-LN ItrSA (defaults: the reference's, D=512, H=8, MLP 2D, no GTA)."""

    dim: int = 512
    heads: int = 8
    mlp_ratio: float = 2.0
    pos: str = "sin2d"
    gta_learnable: bool = True
    relation_bias: bool = False

    def __post_init__(self) -> None:
        check_int("dim", self.dim)
        check_int("heads", self.heads)
        require(
            self.dim % self.heads == 0, f"dim {self.dim} must be divisible by heads {self.heads}"
        )
        self.mlp_ratio = check_float("mlp_ratio", self.mlp_ratio, positive=True)
        try:
            self.pos = canonical_pos(parse_pos(self.pos, POS_SCHEMES))
        except ValueError as err:
            raise ModelConfigError(str(err)) from None
        check_bool("gta_learnable", self.gta_learnable)
        check_bool("relation_bias", self.relation_bias)
        require(
            "sin2d" not in self.schemes or self.dim % 4 == 0,
            f"the sinusoidal position code needs dim divisible by 4, got {self.dim}",
        )
        require(
            "gta" not in self.schemes or (self.dim // self.heads) % 2 == 0,
            f"GTA needs an even head width, got {self.dim // self.heads}",
        )

    @property
    def schemes(self) -> frozenset[str]:
        return parse_pos(self.pos, POS_SCHEMES)


class PreLNItrSA(LoopedModel):
    """Pre-LN looped attention (see the module docstring). States ``(B, S, D)``."""

    name = "preln-itrsa"
    Config = PreLNConfig

    def __init__(self, cfg: PreLNConfig | None = None):
        cfg = PreLNConfig() if cfg is None else cfg
        super().__init__(cfg)
        d, schemes = cfg.dim, cfg.schemes
        self.embed = nn.Embedding(DIGITS, d)
        self.pos_embed = nn.Parameter(sinusoidal_2d(d)) if "sin2d" in schemes else None
        self.cells = CellEmbedding(d) if "rcb" in schemes else None
        self.ln_attn = nn.LayerNorm(d)
        gta = GTA(d // cfg.heads, learnable=cfg.gta_learnable) if "gta" in schemes else None
        rb = RelationBias(cfg.heads) if cfg.relation_bias else None
        self.attention = MultiHeadSelfAttention(d, cfg.heads, gta=gta, relation_bias=rb)
        hidden = round(cfg.mlp_ratio * d)
        self.ln_mlp = nn.LayerNorm(d)
        self.mlp_in = nn.Linear(d, hidden)
        self.mlp_out = nn.Linear(hidden, d)
        self.ln_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, self.num_classes)
        self.register_buffer("step_size", torch.tensor(1.0))

    def encode(self, puzzles: Tensor) -> Tensor:
        c = self.embed(check_puzzles(puzzles))
        if self.pos_embed is not None:
            c = c + self.pos_embed
        if self.cells is not None:
            c = c + self.cells()
        return c

    def init_state(
        self,
        cond: Tensor,
        given: Tensor,
        *,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> Tensor:
        """``X_0 = C`` (deterministic; ``given`` and ``generator`` are not used)."""
        check_state(cond, self.dim, "cond")
        if given.shape != cond.shape[:2]:
            raise ShapeError(
                f"given must have shape {tuple(cond.shape[:2])}, got {tuple(given.shape)}"
            )
        return cond

    def readout(self, x: Tensor) -> Tensor:
        z = x + self.mlp_out(F.gelu(self.mlp_in(self.ln_mlp(x))))
        return self.head(self.ln_out(z))

    def msa(self, x: Tensor) -> Tensor:
        return self.attention(self.ln_attn(x))

    def attention_probs(self, x: Tensor) -> Tensor:
        return self.attention.probs(self.ln_attn(x))

    def step(self, x: Tensor, cond: Tensor, *, drive: Tensor | None = None) -> Tensor:
        """``X_{t+1} = X_t + MSA(LN_1(X_t))`` (``cond`` is not used): ``(B, S, D) -> (B, S, D)``.
        ``drive``: ``MSA(LN_1(X_t))`` when the caller has it."""
        return x + (self.drive(x, cond) if drive is None else drive)

    def drive(self, x: Tensor, cond: Tensor) -> Tensor:
        """``MSA(LN_1(X))`` (no injected input): ``(B, S, D)``."""
        return self.msa(x)

    def update(self, x: Tensor, cond: Tensor) -> Tensor:
        """``Delta X = MSA(LN_1(X))``: ``(B, S, D)``."""
        return self.msa(x)

    @property
    def eta(self) -> Tensor:
        return self.step_size

    def attention_modules(self) -> list[nn.Module]:
        return [self.attention]
