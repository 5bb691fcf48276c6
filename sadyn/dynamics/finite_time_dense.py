"""The dense chain of the finite-time exponents: materialised float64 Jacobians as sweep factors.

Memory is ``O(n^2)`` per row, not ``O(T n^2)``: the Jacobians are kept for the sweeps only
while all ``T`` of them fit in :data:`DENSE_CHAIN_BYTES`; beyond, each sweep recomputes
``J(x_t)`` from the stored trajectory (``O(T n)``) as it goes, trading about one Jacobian
evaluation per step and sweep for the memory. The start vectors (the right singular vectors
of the rescaled product) are accumulated as the Jacobians are first computed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sadyn.dynamics._common import OnNonFinite, progress_bar, report_nonfinite
from sadyn.dynamics.jacobian import value_and_jacobian
from sadyn.dynamics.propagator import Propagator

#: The dense chain keeps its ``T`` Jacobians (float64, ``B T n^2`` values) up to this many
#: bytes; beyond, every sweep recomputes them (memory ``O(B n^2)``).
DENSE_CHAIN_BYTES = 256 * 2**20
#: Horizons from which the first pass over the Jacobians shows a progress bar.
PROGRESS_MIN_STEPS = 100


def dense_chain_bytes(b: int, n: int, steps: int) -> int:
    """Bytes the ``steps`` float64 Jacobians of ``b`` rows of size ``n`` would take."""
    return 8 * b * n * n * steps


def keeps_jacobians(b: int, n: int, steps: int) -> bool:
    """Whether the dense chain keeps all its Jacobians (they fit in ``DENSE_CHAIN_BYTES``)."""
    return dense_chain_bytes(b, n, steps) <= DENSE_CHAIN_BYTES


class DenseChain:
    """The Jacobians ``J(x_t): (B, n, n)`` along the trajectory, float64, as sweep factors.

    Args:
        prop: the trajectory (its ``states`` and batched map).
        bad: ``(B,)`` rows already non-finite (copied; rows whose Jacobian is non-finite
            are added, reported once, and given an identity factor: their results are NaN).
        keep: keep the Jacobians (else recompute them per sweep; see the module docstring).
        progress: a progress bar over the first pass at long horizons.
    """

    def __init__(
        self,
        prop: Propagator,
        bad: Tensor,
        on_nonfinite: OnNonFinite,
        batched: bool,
        *,
        keep: bool = True,
        progress: bool = False,
    ):
        self.prop = prop
        self.bad = bad.clone()
        self.keep = keep
        self.J: list[Tensor] = []
        b, n = prop.states[0].shape
        dev = prop.states[0].device
        M = torch.eye(n, dtype=torch.float64, device=dev).expand(b, n, n).clone()
        show = progress and prop.steps >= PROGRESS_MIN_STEPS
        steps = range(prop.steps)
        for t in progress_bar(steps, prop.steps, show, "finite-time exponents, Jacobians"):
            J = value_and_jacobian(prop._F, prop.states[t])[1].to(torch.float64)
            new_bad = ~torch.isfinite(J).flatten(1).all(-1) & ~self.bad
            if bool(new_bad.any()):
                rows = new_bad.nonzero().flatten().tolist()
                report_nonfinite("finite_time_lyapunov", rows, t + 1, batched, on_nonfinite)
                self.bad |= new_bad
            J = self._guard(J)
            if keep:
                self.J.append(J)
            M = J @ M  # the rescaled product, for the start vectors
            M = M / M.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
        self._product = torch.where(torch.isfinite(M), M, 0.0)

    def _guard(self, J: Tensor) -> Tensor:
        """Frozen rows get a harmless identity (their results are set to NaN)."""
        if not bool(self.bad.any()):
            return J
        eye = torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
        return torch.where(self.bad[:, None, None], eye, J)

    def jacobian(self, t: int) -> Tensor:
        """``J(x_t): (B, n, n)`` float64, kept or recomputed."""
        if self.keep:
            return self.J[t]
        J = value_and_jacobian(self.prop._F, self.prop.states[t])[1].to(torch.float64)
        return self._guard(torch.where(torch.isfinite(J), J, 0.0))

    def step(self, t: int, V: Tensor) -> Tensor:
        return self.jacobian(t) @ V

    def step_t(self, t: int, U: Tensor) -> Tensor:
        return self.jacobian(t).mT @ U

    def start_vectors(self, p: int) -> Tensor:
        """Right singular vectors ``(B, n, p)`` of the rescaled product (exact for short T)."""
        _, _, vh = torch.linalg.svd(self._product)
        return vh[:, :p, :].mT
