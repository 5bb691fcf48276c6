"""sadyn.dynamics: the mathematics of any map ``f: R^n -> R^n`` written in PyTorch.

Jacobians (dense, or matrix-free by JVP/VJP), spectra (spectral norm, eigenvalues, singular
values), Lyapunov exponents (the asymptotic QR/Benettin spectrum, the paper's finite-time
exponents, the two-trajectory check), divergence of nearby trajectories, a step-map checker,
and reference maps with known exponents (:mod:`sadyn.dynamics.systems`).

Maps act on one state ``(n,)``; with ``batched=True`` on a batch ``(B, n)`` of independent
states, and results gain a leading ``B`` axis. Nothing here knows about models or Sudoku.
"""

from sadyn.dynamics import systems
from sadyn.dynamics._common import (
    DENSE_MAX,
    ConvergenceWarning,
    ExactZeroWarning,
    NonFiniteStateWarning,
)
from sadyn.dynamics.attention import math_attention
from sadyn.dynamics.checks import CheckResult, StepMapError, StepMapReport, check_step_map
from sadyn.dynamics.divergence import DivergenceResult, divergence, max_lyapunov_two_trajectory
from sadyn.dynamics.finite_time import Propagator, finite_time_lyapunov
from sadyn.dynamics.jacobian import JacobianOperator, jacobian
from sadyn.dynamics.lyapunov import LyapunovResult, lyapunov_spectrum
from sadyn.dynamics.spectra import (
    SpectralNormResult,
    eigenvalues,
    singular_values,
    spectral_norm,
)

__all__ = [
    "DENSE_MAX",
    "CheckResult",
    "ConvergenceWarning",
    "DivergenceResult",
    "ExactZeroWarning",
    "JacobianOperator",
    "LyapunovResult",
    "NonFiniteStateWarning",
    "Propagator",
    "SpectralNormResult",
    "StepMapError",
    "StepMapReport",
    "check_step_map",
    "divergence",
    "eigenvalues",
    "finite_time_lyapunov",
    "jacobian",
    "lyapunov_spectrum",
    "math_attention",
    "max_lyapunov_two_trajectory",
    "singular_values",
    "spectral_norm",
    "systems",
]
