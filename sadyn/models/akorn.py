"""AKOrN, SA-connectivity variant (paper Eqs. 7-8; akorn.md §1.4):

``X_{t+1} = Pi_osc(X_t + eta (Omega X_t + Proj_osc_{X_t}(C + MSA(X_t))))``

with oscillators of ``N = norm_group`` channels (default 4), one learnable global frequency
(``omega_init`` 0.5), the tangent projection per oscillator, learnable eta (1.0), GTA blocks in
the attention, blank cells from noise, raw C, and the reference readout with ``readout_n = N``.

**AKOrN + RMSNorm** is ``norm="rms_unit"`` (oscillator-wise unit RMSNorm with gain gamma in R^D)
or ``norm="rms"``: the state then leaves the unit sphere by the gain, and the tangent projection
uses the direction ``x / ||x||`` per oscillator, so it stays a projection.

Parameters against the reference code (``autonomousvision/akorn``): identical, except that the
reference declares an unused ``x0`` parameter of ``D * 81`` entries, which is left out here
(2,940,940 vs 2,982,412 at D=512, H=8).
"""

from __future__ import annotations

from dataclasses import dataclass

from sadyn.models.itrsa import ItrSA, ItrSAConfig


@dataclass
class AKOrNConfig(ItrSAConfig):
    """ItrSA options with AKOrN's defaults."""

    norm: str = "sphere"
    norm_group: int | None = 4
    project: bool = True
    omega: bool = True


class AKOrN(ItrSA):
    """AKOrN (see the module docstring). ``pseudo_energy`` is the reference's logged energy
    ``-sum x * (C + MSA(x))`` of the state before the step."""

    name = "akorn"
    Config = AKOrNConfig
    _readout_n_follows_group = True
