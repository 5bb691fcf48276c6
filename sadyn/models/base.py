"""The looped-model protocol (DESIGN.md): a map ``X_{t+1} = F(X_t; C)`` iterated T times.

Every model implements three primitives, from which ``step``, ``update``, ``pseudo_energy`` and
``forward`` are derived once, here:

- ``_drive(x, cond) -> Y``: the injected input plus attention, ``Y = C + MSA(X)`` (the ``Y`` of
  the pseudo-energy ``-Tr(X^T Y)``);
- ``_increment(x, Y) -> Delta X``: the pre-norm increment (ItrSA: ``Y``; AKOrN:
  ``Omega X + Proj_X(Y)``);
- ``_advance(x, Y) -> X_{t+1}``: the rest of the step (ItrSA: ``Norm(X + eta Delta X)``).

so that ``forward`` gets each step's pseudo-energy from the ``Y`` the step computes anyway.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sadyn.errors import DataFormatError, ShapeError

CELLS = 81
DIGITS = 10  # 0 = blank, 1..9


@dataclass
class LoopOutput:
    """What ``LoopedModel.forward`` returns.

    logits: ``(B, S, 9)`` readout of the final state ``X_T``.
    logits_at: readouts ``(B, S, 9)`` at the requested steps ``t`` (of ``X_t``, ``0 <= t <= T``).
    states: ``(T+1, B, S, D)`` the trajectory ``X_0..X_T``, or None.
    energies: ``(T+1, B)`` the pseudo-energies ``-Tr(X_t^T (C + MSA(X_t)))``, or None.
    """

    logits: Tensor
    logits_at: dict[int, Tensor] = field(default_factory=dict)
    states: Tensor | None = None
    energies: Tensor | None = None


def check_puzzles(puzzles: Tensor) -> Tensor:
    """Validate a batch of boards: ``(B, 81)`` integers in 0..9 (0 = blank). Returns it as long."""
    if not isinstance(puzzles, Tensor):
        raise ShapeError(f"puzzles must be a torch tensor, got {type(puzzles).__name__}")
    if puzzles.ndim != 2 or puzzles.shape[1] != CELLS:
        raise ShapeError(f"puzzles must have shape (B, 81), got {tuple(puzzles.shape)}")
    if puzzles.dtype.is_floating_point or puzzles.dtype.is_complex or puzzles.dtype == torch.bool:
        raise DataFormatError(f"puzzles must hold integer digits, got dtype {puzzles.dtype}")
    if puzzles.numel() and (int(puzzles.min()) < 0 or int(puzzles.max()) > 9):
        raise DataFormatError(
            f"puzzle digits must be in 0..9 (0 = blank), got values in "
            f"[{int(puzzles.min())}, {int(puzzles.max())}]"
        )
    return puzzles.long()


def check_state(x: Tensor, dim: int, name: str = "state") -> None:
    if x.ndim != 3 or x.shape[1] != CELLS or x.shape[2] != dim:
        raise ShapeError(f"{name} must have shape (B, 81, {dim}), got {tuple(x.shape)}")


class LoopedModel(nn.Module):
    """Base class of every looped model (see the module docstring and DESIGN.md).

    Subclasses set ``name`` and ``Config`` (a dataclass) and implement ``encode``,
    ``init_state``, ``readout``, ``msa``, ``attention_probs``, ``_drive``, ``_increment``,
    ``_advance`` and ``eta``.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    num_classes: ClassVar[int] = 9

    def __init__(self, cfg: Any):
        super().__init__()
        self.cfg = cfg
        self.dim: int = cfg.dim

    @property
    def config(self) -> dict[str, Any]:
        """The JSON-able dict that rebuilds this model with ``build_model``."""
        return {"model": self.name, **dataclasses.asdict(self.cfg)}

    # -- the map (to implement) --------------------------------------------------------------
    def encode(self, puzzles: Tensor) -> Tensor:
        """``puzzles: (B, 81)`` long 0..9 -> the injected input ``C: (B, S, D)``."""
        raise NotImplementedError

    def init_state(
        self,
        cond: Tensor,
        given: Tensor,
        *,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> Tensor:
        """``cond: (B, S, D)``, ``given: (B, S)`` bool -> ``X_0: (B, S, D)``."""
        raise NotImplementedError

    def readout(self, x: Tensor) -> Tensor:
        """``x: (B, S, D)`` -> logits ``(B, S, 9)``."""
        raise NotImplementedError

    def msa(self, x: Tensor) -> Tensor:
        """The attention term alone: ``(B, S, D) -> (B, S, D)``."""
        raise NotImplementedError

    def attention_probs(self, x: Tensor) -> Tensor:
        """The softmax matrices ``P_h``: ``(B, H, S, S)``."""
        raise NotImplementedError

    def _drive(self, x: Tensor, cond: Tensor) -> Tensor:
        raise NotImplementedError

    def _increment(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _advance(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def eta(self) -> Tensor:
        """The step size (a scalar tensor)."""
        raise NotImplementedError

    @property
    def norm_gain(self) -> Tensor | None:
        """The state normalization's gain gamma ``(D,)``, or None."""
        return None

    def attention_modules(self) -> list[nn.Module]:
        """The unconstrained attention modules (each with ``.qkv`` and ``.out`` nn.Linear)."""
        return []

    def _loop_context(self) -> contextlib.AbstractContextManager:
        """Context entered around a whole ``forward`` (e.g. to cache parametrized weights)."""
        return contextlib.nullcontext()

    # -- derived -----------------------------------------------------------------------------
    def step(self, x: Tensor, cond: Tensor) -> Tensor:
        """``X_{t+1} = F(X_t; C)``: ``(B, S, D), (B, S, D) -> (B, S, D)``. Pure: no randomness,
        no hidden state; works under ``torch.func.jvp`` / ``vjp`` / ``vmap``."""
        return self._advance(x, self._drive(x, cond))

    def update(self, x: Tensor, cond: Tensor) -> Tensor:
        """The pre-norm increment ``Delta X``: ``(B, S, D)``."""
        return self._increment(x, self._drive(x, cond))

    def pseudo_energy(self, x: Tensor, cond: Tensor) -> Tensor:
        """``-Tr(X^T (C + MSA(X)))`` per board: ``(B,)``."""
        return _pseudo_energy(x, self._drive(x, cond))

    def forward(
        self,
        puzzles: Tensor,
        steps: int,
        *,
        given: Tensor | None = None,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        readout_at: Sequence[int] | None = None,
        return_states: bool = False,
        return_energies: bool = False,
    ) -> LoopOutput:
        """Encode, initialize, iterate ``steps`` times, read out.

        ``puzzles: (B, 81)`` long 0..9; ``given: (B, 81)`` bool (default ``puzzles > 0``).
        ``generator`` / ``deterministic`` go to ``init_state``. ``readout_at``: steps ``t`` in
        ``0..steps`` whose states are also read out. Energies are those of ``X_0..X_T``.
        """
        puzzles = check_puzzles(puzzles)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        at = sorted({int(t) for t in (readout_at or ())})
        if at and (at[0] < 0 or at[-1] > steps):
            raise ValueError(f"readout_at must lie in 0..{steps}, got {list(readout_at or ())}")
        if given is None:
            given = puzzles > 0
        with self._loop_context():
            cond = self.encode(puzzles)
            x = self.init_state(cond, given, generator=generator, deterministic=deterministic)
            states = [x] if return_states else None
            energies: list[Tensor] | None = [] if return_energies else None
            logits_at: dict[int, Tensor] = {}
            for t in range(steps):
                if t in at:
                    logits_at[t] = self.readout(x)
                y = self._drive(x, cond)
                if energies is not None:
                    energies.append(_pseudo_energy(x, y))
                x = self._advance(x, y)
                if states is not None:
                    states.append(x)
            if energies is not None:
                energies.append(self.pseudo_energy(x, cond))
            logits = self.readout(x)
        if steps in at:
            logits_at[steps] = logits
        return LoopOutput(
            logits=logits,
            logits_at=logits_at,
            states=None if states is None else torch.stack(states),
            energies=None if energies is None else torch.stack(energies),
        )

    def trajectory(self, x: Tensor, cond: Tensor, steps: int) -> Iterator[Tensor]:
        """Yield ``X_1..X_steps`` from ``x`` (no readout): a convenience for probes."""
        for _ in range(steps):
            x = self.step(x, cond)
            yield x


def _pseudo_energy(x: Tensor, y: Tensor) -> Tensor:
    return -(x * y).flatten(1).sum(-1)
