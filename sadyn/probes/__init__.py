"""sadyn.probes: analyses of a looped model on puzzles.

Every probe takes any module implementing the LoopedModel protocol plus a :class:`Rollout`
(puzzles encoded and looped), returns a small dataclass of numbers with ``to_dict()`` (JSON-
ready) and has a figure function in :mod:`sadyn.probes.figures`::

    run = rollout(model, puzzles, steps=16, seed=0)
    jac = jacobian_probe(model, run, steps=[0, 16])      # spectra, norms, Prop 5.1 bound
    lya = lyapunov_probe(model, run, horizon=16, k=16)   # finite-time (+ QR) exponents
    eng = energy_probe(model, run)                       # pseudo-energy, contribution index
    sen = sensitivity_probe(model, run)                  # perturbed-trajectory distance

Accuracy and voting (``sadyn.probes.accuracy``, ``sadyn.probes.voting``) live beside these.
"""

from sadyn.probes.energy import (
    EnergyProbe,
    PVForm,
    contribution_index,
    energy_probe,
    pseudo_energy,
    pv_form,
    top_eigenspace,
)
from sadyn.probes.jacobian import (
    BoundCheck,
    JacobianProbe,
    NormForm,
    detect_normalization,
    jacobian_probe,
    prop51_bound,
)
from sadyn.probes.lyapunov import LyapunovProbe, distribution, lyapunov_probe
from sadyn.probes.sensitivity import SensitivityProbe, growth_rate, sensitivity_probe
from sadyn.probes.settling import step_changes
from sadyn.probes.stepmap import (
    Rollout,
    analysis_mode,
    msa_map,
    rollout,
    single_msa_map,
    single_step_map,
    step_map,
)

__all__ = [
    "BoundCheck",
    "EnergyProbe",
    "JacobianProbe",
    "LyapunovProbe",
    "NormForm",
    "PVForm",
    "Rollout",
    "SensitivityProbe",
    "analysis_mode",
    "contribution_index",
    "detect_normalization",
    "distribution",
    "energy_probe",
    "growth_rate",
    "jacobian_probe",
    "lyapunov_probe",
    "msa_map",
    "prop51_bound",
    "pseudo_energy",
    "pv_form",
    "rollout",
    "sensitivity_probe",
    "single_msa_map",
    "single_step_map",
    "step_changes",
    "step_map",
    "top_eigenspace",
]
