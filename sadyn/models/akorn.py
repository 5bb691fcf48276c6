"""AKOrN, SA-connectivity variant (paper Eqs. 7-8; Miyato et al., ICLR 2025, reference code
``autonomousvision/akorn``, ``source/models/sudoku/knet.py``):

``X_{t+1} = Pi_osc(X_t + eta (Omega X_t + Proj_X(C + MSA(X_t))))``   (:meth:`AKOrN.step`)

with oscillators of ``N = norm_group`` channels (default 4), one learnable global frequency
(``omega_init`` 0.5), the tangent projection per oscillator, learnable eta (1.0), GTA blocks in
the attention, blank cells from noise, raw C, and the reference readout with ``readout_n = N``.
``project=False`` drops Proj (the drive enters as it is), ``omega=False`` drops ``Omega X``.

**AKOrN + RMSNorm** is ``norm="rms_unit"`` (oscillator-wise unit RMSNorm with gain gamma in R^D)
or ``norm="rms"``: the state then leaves the unit sphere by the gain, and the tangent projection
uses the direction ``x / ||x||`` per oscillator, so it stays a projection.

Parameters against the reference code: identical, except that the reference declares an unused
``x0`` parameter of ``D * 81`` entries, which is left out here (2,940,940 vs 2,982,412 at D=512,
H=8).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sadyn.models.config import check_bool, check_float, require
from sadyn.models.itrsa import ItrSA, ItrSAConfig
from sadyn.nn.omega import Omega


@dataclass
class AKOrNConfig(ItrSAConfig):
    """ItrSA's options with AKOrN's defaults (the sphere per oscillator of N = 4), plus its own
    terms: the tangent projection (``project``) and the natural frequencies Omega (``omega``,
    ``omega_init``, ``omega_learnable``, ``global_omega``: one frequency or one per pair)."""

    norm: str = "sphere"
    norm_group: int | None = 4
    project: bool = True
    omega: bool = True
    omega_init: float = 0.5
    omega_learnable: bool = True
    global_omega: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("project", "omega", "omega_learnable", "global_omega"):
            check_bool(name, getattr(self, name))
        self.omega_init = check_float("omega_init", self.omega_init)
        require(not self.omega or self.dim % 2 == 0, "omega needs an even dim")

    @property
    def readout_group(self) -> int:
        """``readout_n``, by default the oscillator size N, as the reference."""
        return self.group if self.readout_n is None else self.readout_n


class AKOrN(ItrSA):
    """AKOrN (see the module docstring). ``pseudo_energy`` is the reference's logged energy
    ``-sum x * (C + MSA(x))`` of the state before the step."""

    name = "akorn"
    Config = AKOrNConfig
    cfg: AKOrNConfig

    def _build_step_terms(self, cfg: AKOrNConfig) -> None:  # type: ignore[override]
        self.omega = (
            Omega(
                cfg.dim,
                cfg.omega_init,
                learnable=cfg.omega_learnable,
                global_omega=cfg.global_omega,
            )
            if cfg.omega
            else None
        )

    # -- the step (paper Eqs. 7-8) -----------------------------------------------------------
    def step(self, x: Tensor, cond: Tensor, *, drive: Tensor | None = None) -> Tensor:
        """``X_{t+1} = Pi_osc(X_t + eta (Omega X_t + Proj_X(C + MSA(X_t))))``:
        ``(B, S, D), (B, S, D) -> (B, S, D)``. ``drive``: ``C + MSA(X_t)`` when the caller has
        it (see ``LoopedModel.unroll``)."""
        y = self.drive(x, cond) if drive is None else drive  # C + MSA(X)
        return self.norm(x + self.eta * self.increment(x, y))

    def increment(self, x: Tensor, y: Tensor) -> Tensor:
        """Eq. 7, ``Delta X = Omega X + Proj_X(Y)`` from the drive ``Y = C + MSA(X)`` (each term
        as switched on: ``omega``, ``project``). ``(B, S, D), (B, S, D) -> (B, S, D)``."""
        delta = self.project(x, y) if self.cfg.project else y
        return delta if self.omega is None else delta + self.omega(x)

    def update(self, x: Tensor, cond: Tensor) -> Tensor:
        """``Delta X = Omega X + Proj_X(C + MSA(X))``: ``(B, S, D)``."""
        return self.increment(x, self.drive(x, cond))
