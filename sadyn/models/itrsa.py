"""ItrSA, the paper's looped self-attention (Eq. 9), and the machinery AKOrN and the symmetric
models share with it:

``X_{t+1} = Norm(X_t + eta (C + MSA(X_t)))``   (:meth:`ItrSA.step`)

AKOrN (``akorn.py``) adds Omega and the tangent projection and normalizes onto the sphere per
oscillator; the symmetric models (``symmetric.py``) swap the attention (and project).

Choices where the paper is silent (its reconstructed equations leave them open; listed in
docs/models.md, "Choices where the paper is silent"), each an option:

- Norm (``norm``): the unit form ``gamma * y / ||y||`` (the theory's, default), standard RMSNorm,
  LayerNorm, the plain sphere, or none; per group of ``norm_group`` channels (None: token-wise).
  gamma is a vector in R^D.
- Positions (``pos``): AKOrN's GTA blocks in the attention (default; learnable 2x2 blocks as in
  the reference, ``gta_learnable``), learned row/column/box embeddings added into C (``rcb``),
  or none, combinable (``"gta+rcb"``); plus an optional per-head Sudoku relation bias on the
  attention logits (``relation_bias``), optionally started on row/column/box
  (``relation_bias_init``).
- Input scale (``input_scale``): ``"raw"`` (the embedding as is, the reference) or a float s:
  every group of ``norm_group`` channels of C is scaled to norm s.
- Initial state (``init``): ``"akorn"`` (given cells start at C, blanks from Gaussian noise drawn
  from the generator) or ``"cond"`` (C itself), then normalized by the step's own Norm (the
  plain sphere when ``norm="none"``), so X_0 lies in the set the map keeps states in.
  ``deterministic=True`` replaces the noise by one fixed (seed 42) ``(S, D)`` draw shared by all
  boards (the reference's ``fixed_noise``, made independent of the batch composition).
- Readout (``readout``): AKOrN's norm readout + head with its own group size ``readout_n``
  (default 4, a setting separate from ``norm_group``; AKOrN: N), or a Linear-ReLU-Linear MLP.
- Step size: learnable (``eta_learnable``) from ``eta0`` (1.0), as in the AKOrN code.
- ``orthogonal_vo``: W^V and W^O parametrized as orthogonal D x D matrices, the setting in which
  the paper applies its E-multi regularizer (App. B.2).
- ``vo_scale``: a fixed (not learned) factor s on W^O and b_O, so ``MSA(X) -> s MSA(X)``: the
  paper's ||W^V||, ||W^O|| axis as a training hyperparameter (Fig. 3; 1.0 = off).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sadyn.errors import ShapeError
from sadyn.models.base import DIGITS, LoopedModel, check_puzzles, check_state
from sadyn.models.config import (
    ANY,
    ModelConfigError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    parse_input_scale,
    require,
)
from sadyn.nn.attention import MultiHeadSelfAttention
from sadyn.nn.norms import NORM_KINDS, Normalization, sphere_normalize
from sadyn.nn.positional import GTA, CellEmbedding, RelationBias, canonical_pos, parse_pos
from sadyn.nn.readout import AKOrNReadout, MLPReadout
from sadyn.nn.sphere import tangent_project

FIXED_NOISE_SEED = 42
POS_SCHEMES = ("gta", "rcb")

# Keys every ItrSA-family config carried before AKOrN's terms moved AKOrN's terms (Omega, the
# tangent projection) into ``AKOrNConfig``: an old ``config.json`` still loads when they hold a
# value that leaves the step as it is now (``ANY``: any value, the key switched nothing on).
AKORN_ONLY_KEYS: dict[str, Any] = {
    "project": False,
    "omega": False,
    "omega_init": ANY,
    "omega_learnable": ANY,
    "global_omega": ANY,
}


@dataclass
class ItrSAConfig:
    """Options of the ItrSA family (defaults: the paper's ItrSA at D=512, H=8, N=512)."""

    # keys of older configs that are accepted and dropped (see AKORN_ONLY_KEYS)
    legacy_keys: ClassVar[dict[str, Any]] = AKORN_ONLY_KEYS

    dim: int = 512
    heads: int = 8
    norm: str = "rms_unit"
    norm_group: int | None = None
    pos: str = "gta"
    gta_learnable: bool = True
    relation_bias: bool = False
    relation_bias_init: float = 0.0
    input_scale: str | float = "raw"
    eta0: float = 1.0
    eta_learnable: bool = True
    init: str = "akorn"
    init_noise: float = 0.0
    init_noise_dist: str = "fixed"
    readout: str = "akorn"
    readout_n: int | None = None
    orthogonal_vo: bool = False
    vo_scale: float = 1.0

    def __post_init__(self) -> None:
        check_int("dim", self.dim)
        check_int("heads", self.heads)
        check_choice("norm", self.norm, NORM_KINDS)
        check_int("norm_group", self.norm_group, optional=True)
        require(
            self.norm_group is None or self.dim % self.norm_group == 0,
            f"norm_group {self.norm_group} must divide dim {self.dim}",
        )
        try:
            self.pos = canonical_pos(parse_pos(self.pos, POS_SCHEMES))
        except ValueError as err:
            raise ModelConfigError(str(err)) from None
        for name in ("gta_learnable", "relation_bias", "eta_learnable", "orthogonal_vo"):
            check_bool(name, getattr(self, name))
        self._check_attention()
        self.relation_bias_init = check_float("relation_bias_init", self.relation_bias_init)
        self.input_scale = parse_input_scale(self.input_scale)
        self.eta0 = check_float("eta0", self.eta0)
        self.vo_scale = check_float("vo_scale", self.vo_scale)
        require(self.vo_scale > 0, f"vo_scale must be positive, got {self.vo_scale}")
        check_choice("init", self.init, ("akorn", "cond"))
        self.init_noise = check_float("init_noise", self.init_noise)
        require(self.init_noise >= 0, f"init_noise must be >= 0, got {self.init_noise}")
        require(
            self.init_noise == 0 or self.init == "cond",
            "init_noise applies to init='cond' (init='akorn' draws the blanks from noise already)",
        )
        check_choice("init_noise_dist", self.init_noise_dist, ("fixed", "uniform"))
        check_choice("readout", self.readout, ("akorn", "mlp"))
        check_int("readout_n", self.readout_n, optional=True)

    def _check_attention(self) -> None:
        """Shape constraints of the attention (overridden by the constrained models)."""
        require(
            self.dim % self.heads == 0, f"dim {self.dim} must be divisible by heads {self.heads}"
        )
        width = self.dim // self.heads
        require(
            "gta" not in self.schemes or width % 2 == 0,
            f"GTA needs an even head width, got {width}",
        )

    @property
    def schemes(self) -> frozenset[str]:
        return parse_pos(self.pos, POS_SCHEMES)

    @property
    def group(self) -> int:
        """The resolved group size N of the state normalization."""
        return self.dim if self.norm_group is None else self.norm_group

    @property
    def readout_group(self) -> int:
        """The resolved group size of AKOrN's norm readout: ``readout_n``, by default 4 (ItrSA's
        own small readout N; AKOrN ties it to the oscillator size)."""
        return 4 if self.readout_n is None else self.readout_n


class ItrSA(LoopedModel):
    """The paper's ItrSA (Eq. 9): ``X_{t+1} = Norm(X_t + eta (C + MSA(X_t)))``; see the module
    docstring for the options.

    Shapes: puzzles ``(B, 81)``, states and C ``(B, S, D)``, logits ``(B, S, 9)``.
    """

    name = "itrsa"
    Config = ItrSAConfig

    def __init__(self, cfg: ItrSAConfig | None = None):
        cfg = self.Config() if cfg is None else cfg
        super().__init__(cfg)
        d, schemes = cfg.dim, cfg.schemes
        self.group = cfg.group
        self.embed = nn.Embedding(DIGITS, d)
        self.cells = CellEmbedding(d) if "rcb" in schemes else None
        self.attention = self._build_attention(cfg)
        self.norm = Normalization(cfg.norm, d, self.group)
        self._build_step_terms(cfg)
        eta = torch.tensor(cfg.eta0)
        if cfg.eta_learnable:
            self.step_size = nn.Parameter(eta)
        else:
            self.register_buffer("step_size", eta)
        self.head = (
            AKOrNReadout(d, cfg.readout_group, self.num_classes)
            if cfg.readout == "akorn"
            else MLPReadout(d, self.num_classes)
        )

    # -- the step (paper Eq. 9) --------------------------------------------------------------
    def step(self, x: Tensor, cond: Tensor, *, drive: Tensor | None = None) -> Tensor:
        """``X_{t+1} = Norm(X_t + eta (C + MSA(X_t)))``: ``(B, S, D), (B, S, D) -> (B, S, D)``.
        ``drive``: ``C + MSA(X_t)`` when the caller has it (see ``LoopedModel.unroll``)."""
        y = self.drive(x, cond) if drive is None else drive  # C + MSA(X)
        return self.norm(x + self.eta * y)

    def drive(self, x: Tensor, cond: Tensor) -> Tensor:
        """``Y = C + MSA(X)``: ``(B, S, D)``."""
        return cond + self.msa(x)

    def update(self, x: Tensor, cond: Tensor) -> Tensor:
        """``Delta X = C + MSA(X)``, the increment inside the Norm: ``(B, S, D)``."""
        return self.drive(x, cond)

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        """``Proj_X(Y)``: ``Y`` less its component along ``X``, per group of N channels (the
        tangent projection of AKOrN and of the symmetric models' projected steps; on the sphere
        the state's groups are unit already, otherwise the direction ``X / ||X||`` is used).
        ``(B, S, D), (B, S, D) -> (B, S, D)``."""
        return tangent_project(y, x, self.group, unit=self.norm.kind == "sphere")

    # -- construction hooks ------------------------------------------------------------------
    def _build_attention(self, cfg: ItrSAConfig) -> nn.Module:
        schemes = cfg.schemes
        gta = GTA(cfg.dim // cfg.heads, learnable=cfg.gta_learnable) if "gta" in schemes else None
        rb = RelationBias(cfg.heads, cfg.relation_bias_init) if cfg.relation_bias else None
        return MultiHeadSelfAttention(
            cfg.dim, cfg.heads, gta=gta, relation_bias=rb, orthogonal_vo=cfg.orthogonal_vo
        )

    def _build_step_terms(self, cfg: ItrSAConfig) -> None:
        """Modules of a subclass's extra step terms (AKOrN's Omega), registered before the
        readout so that the parameter order, which checkpoints record, stays as it was."""

    def _unroll_context(self) -> contextlib.AbstractContextManager:
        # Build the orthogonal W^V, W^O once per unroll instead of once per loop step.
        return parametrize.cached() if self.cfg.orthogonal_vo else contextlib.nullcontext()

    # -- protocol ----------------------------------------------------------------------------
    def encode(self, puzzles: Tensor) -> Tensor:
        c = self.embed(check_puzzles(puzzles))
        if self.cells is not None:
            c = c + self.cells()
        if self.cfg.input_scale != "raw":
            c = self.cfg.input_scale * sphere_normalize(c, self.group)
        return c

    def init_state(
        self,
        cond: Tensor,
        given: Tensor,
        *,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> Tensor:
        check_state(cond, self.dim, "cond")
        if given.shape != cond.shape[:2] or given.dtype != torch.bool:
            raise ShapeError(
                f"given must be a bool tensor of shape {tuple(cond.shape[:2])}, "
                f"got {given.dtype} {tuple(given.shape)}"
            )
        if self.cfg.init == "cond":
            raw = cond
            if self.cfg.init_noise > 0 and not deterministic:
                raw = torch.where(given[..., None], cond, cond + self._cond_noise(cond, generator))
        else:
            raw = torch.where(given[..., None], cond, self._noise(cond, generator, deterministic))
        if self.norm.kind == "none":
            return sphere_normalize(raw, self.group)
        return self.norm(raw)

    @staticmethod
    def _noise(cond: Tensor, generator: torch.Generator | None, deterministic: bool) -> Tensor:
        if deterministic:
            g = torch.Generator().manual_seed(FIXED_NOISE_SEED)
            noise = torch.randn(cond.shape[1:], generator=g, dtype=cond.dtype)
            return noise.to(cond.device).expand_as(cond)
        device = cond.device if generator is None else generator.device
        noise = torch.randn(cond.shape, generator=generator, dtype=cond.dtype, device=device)
        return noise.to(cond.device)

    def _cond_noise(self, cond: Tensor, generator: torch.Generator | None) -> Tensor:
        """Restart noise of ``init="cond"``: ``sigma * ||C_i|| * n_i / sqrt(D)`` per
        cell i with ``n_i ~ N(0, I_D)``, so sigma is the ratio of noise to signal norm; under
        ``init_noise_dist="uniform"`` each board draws its sigma from U(0, init_noise).
        ``(B, S, D) -> (B, S, D)``."""
        noise = self._noise(cond, generator, False)  # (B, S, D) on cond's device
        scale = cond.norm(dim=-1, keepdim=True) * (self.cfg.init_noise * self.dim**-0.5)
        if self.cfg.init_noise_dist == "uniform":
            device = cond.device if generator is None else generator.device
            u = torch.rand(
                (cond.shape[0], 1, 1), generator=generator, dtype=cond.dtype, device=device
            )
            scale = scale * u.to(cond.device)
        return scale * noise

    def readout(self, x: Tensor) -> Tensor:
        return self.head(x)

    def msa(self, x: Tensor) -> Tensor:
        out = self.attention(x)
        return out if self.cfg.vo_scale == 1.0 else self.cfg.vo_scale * out

    def attention_probs(self, x: Tensor) -> Tensor:
        return self.attention.probs(x)

    @property
    def eta(self) -> Tensor:
        return self.step_size

    @property
    def norm_gain(self) -> Tensor | None:
        return self.norm.gain

    def attention_modules(self) -> list[nn.Module]:
        return [self.attention] if isinstance(self.attention, MultiHeadSelfAttention) else []


__all__ = ["ItrSA", "ItrSAConfig"]
