"""The looped-model protocol (docs/design.md): a map ``X_{t+1} = F(X_t; C)`` iterated T times.

Every model writes its step equation in one method, ``step`` (ItrSA, ``itrsa.py``:
``Norm(X + eta (C + MSA(X)))``; AKOrN, ``akorn.py``: ``Pi_osc(X + eta (Omega X + Proj_X(C +
MSA(X))))``), on top of ``drive``, the input plus attention ``Y = C + MSA(X)``. ``Y`` is also
the one in the pseudo-energy ``-Tr(X^T Y)``, so ``step`` takes it ready-made (``drive=``) when
the caller has computed it already: :meth:`LoopedModel.unroll`, the one loop over the steps
(run by ``forward`` and by the training objective), gets each step's pseudo-energy from the
``Y`` of the step itself, with no second attention call.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sadyn.errors import DataFormatError, ShapeError

CELLS = 81
DIGITS = 10  # 0 = blank, 1..9

StepFn = Callable[..., Tensor]  # (x, cond, *, drive=None) -> X_{t+1}, like LoopedModel.step


@dataclass
class LoopOutput:
    """What ``LoopedModel.forward`` and ``LoopedModel.unroll`` return.

    logits: ``(B, S, 9)`` readout of the final state ``X_T``.
    logits_at: readouts ``(B, S, 9)`` at the requested steps ``t`` (of ``X_t``, ``0 <= t <= T``).
    states: ``(T+1, B, S, D)`` the trajectory ``X_0..X_T``, or None.
    energies: ``(T+1, B)`` the pseudo-energies ``-Tr(X_t^T (C + MSA(X_t)))``, or None.
    states_at: the states ``X_t`` ``(B, S, D)`` at the steps ``unroll`` was asked to keep.
    """

    logits: Tensor
    logits_at: dict[int, Tensor] = field(default_factory=dict)
    states: Tensor | None = None
    energies: Tensor | None = None
    states_at: dict[int, Tensor] = field(default_factory=dict)


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
    """Base class of every looped model (see the module docstring and docs/design.md).

    Subclasses set ``name`` and ``Config`` (a dataclass) and implement ``encode``,
    ``init_state``, ``readout``, ``msa``, ``attention_probs``, ``drive``, ``step``, ``update``
    and ``eta``.
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

    def drive(self, x: Tensor, cond: Tensor) -> Tensor:
        """``Y = C + MSA(X)``, the input plus attention that drives the step and whose product
        with the state is the pseudo-energy: ``(B, S, D), (B, S, D) -> (B, S, D)``."""
        raise NotImplementedError

    def step(self, x: Tensor, cond: Tensor, *, drive: Tensor | None = None) -> Tensor:
        """``X_{t+1} = F(X_t; C)``: ``(B, S, D), (B, S, D) -> (B, S, D)``. Pure: no randomness,
        no hidden state; works under ``torch.func.jvp`` / ``vjp`` / ``vmap``. ``drive``: this
        state's ``drive(x, cond)`` when the caller has it already (not recomputed)."""
        raise NotImplementedError

    def update(self, x: Tensor, cond: Tensor) -> Tensor:
        """The increment ``Delta X`` inside the normalization, ``X_{t+1} = Norm(X + eta Delta X)``:
        ``(B, S, D)``."""
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

    def _unroll_context(self) -> contextlib.AbstractContextManager:
        """Context ``unroll`` enters around its loop (e.g. to build parametrized weights once
        for all the steps instead of once per step)."""
        return contextlib.nullcontext()

    # -- derived -----------------------------------------------------------------------------
    def pseudo_energy(self, x: Tensor, cond: Tensor) -> Tensor:
        """``-Tr(X^T (C + MSA(X)))`` per board: ``(B,)``."""
        return _pseudo_energy(x, self.drive(x, cond))

    def unroll(
        self,
        x: Tensor,
        cond: Tensor,
        steps: int,
        *,
        readout_at: Collection[int] = (),
        states_at: Collection[int] = (),
        energies: bool = False,
        step: StepFn | None = None,
    ) -> LoopOutput:
        """Iterate the map ``steps`` times from ``X_0 = x``: the one loop over the steps.

        ``x, cond: (B, S, D)``. Returns the readout of ``X_T`` (``logits``), the readouts of
        the states ``X_t`` for ``t`` in ``readout_at`` (``logits_at``), the states ``X_t`` for
        ``t`` in ``states_at`` (``states_at``; ``t`` in ``0..steps``), and with ``energies`` the
        pseudo-energies ``(T+1, B)`` of ``X_0..X_T`` (each from the ``Y`` its step computes).
        ``step``: the map to iterate, by default ``self.step`` (e.g. a ``torch.compile``d
        ``self.step``; it gets ``drive=`` when ``energies`` is on).
        """
        step = self.step if step is None else step
        readout_at, states_at = set(readout_at), set(states_at)
        logits_at: dict[int, Tensor] = {}
        kept: dict[int, Tensor] = {}
        history: list[Tensor] = []
        with self._unroll_context():
            for t in range(steps):
                if t in readout_at:
                    logits_at[t] = self.readout(x)
                if t in states_at:
                    kept[t] = x
                if energies:
                    y = self.drive(x, cond)  # one attention call serves the energy and the step
                    history.append(_pseudo_energy(x, y))
                    x = step(x, cond, drive=y)
                else:
                    x = step(x, cond)
            logits = self.readout(x)
            if energies:
                history.append(self.pseudo_energy(x, cond))
        if steps in readout_at:
            logits_at[steps] = logits
        if steps in states_at:
            kept[steps] = x
        return LoopOutput(
            logits=logits,
            logits_at=logits_at,
            energies=torch.stack(history) if energies else None,
            states_at=kept,
        )

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
        """Encode, initialize, iterate ``steps`` times (:meth:`unroll`), read out.

        ``puzzles: (B, 81)`` long 0..9; ``given: (B, 81)`` bool (default ``puzzles > 0``).
        ``generator`` / ``deterministic`` go to ``init_state``. ``readout_at``: steps ``t`` in
        ``0..steps`` whose states are also read out. Energies are those of ``X_0..X_T``.
        """
        puzzles = check_puzzles(puzzles)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        at = {int(t) for t in (readout_at or ())}
        if at and (min(at) < 0 or max(at) > steps):
            raise ValueError(f"readout_at must lie in 0..{steps}, got {list(readout_at or ())}")
        if given is None:
            given = puzzles > 0
        cond = self.encode(puzzles)
        x = self.init_state(cond, given, generator=generator, deterministic=deterministic)
        out = self.unroll(
            x,
            cond,
            steps,
            readout_at=at,
            states_at=range(steps + 1) if return_states else (),
            energies=return_energies,
        )
        if return_states:
            out.states = torch.stack([out.states_at.pop(t) for t in range(steps + 1)])
        return out


def _pseudo_energy(x: Tensor, y: Tensor) -> Tensor:
    return -(x * y).flatten(1).sum(-1)
