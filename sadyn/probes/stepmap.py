"""Turn a looped model and a batch of puzzles into maps for :mod:`sadyn.dynamics`.

A looped model iterates ``X_{t+1} = model.step(X_t, C)`` with the conditioning ``C`` fixed, so
for each puzzle the loop is an autonomous map on ``R^n``, ``n = S * D``. The probes hand
``sadyn.dynamics`` either

* a **batched** map ``f: (B, n) -> (B, n)`` whose rows are the B puzzles (independent
  systems; one JVP of ``f`` gives every puzzle's JVP), or
* a **single** map ``f: (n,) -> (n,)`` for one puzzle (ARPACK, dense Jacobians).

States are flattened row-major: ``x = X.reshape(-1)``, so ``x[i * D + d] = X[i, d]``, which is
the ``vec`` convention under which ``vec(A X B) = (A ⊗ B^T) vec(X)`` (paper §3.1, B.5.5).

Everything here relies only on the LoopedModel protocol (``encode``, ``init_state``, ``step``,
``msa``, ``update``, ...); nothing checks the model's class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sadyn.errors import DivergenceError, ShapeError
from sadyn.models import check_puzzles

Map = Callable[[Tensor], Tensor]

__all__ = [
    "Rollout",
    "analysis_mode",
    "as_puzzle_tensor",
    "msa_map",
    "progress",
    "rollout",
    "single_msa_map",
    "single_step_map",
    "step_map",
    "to_numpy",
]


def as_puzzle_tensor(puzzles: Any, device: torch.device | None = None) -> Tensor:
    """Puzzles as a ``(B, 81)`` long tensor of digits 0..9 (0 = blank), checked by
    :func:`sadyn.models.check_puzzles` (the models' own check: ``ShapeError`` for a shape other
    than ``(B, 81)``, ``DataFormatError`` for non-integer values or digits outside 0..9).

    Accepts a ``sadyn.sudoku.PuzzleSet`` (anything with ``.quizzes``), a numpy array or a
    tensor; one board ``(81,)`` becomes a batch of one.
    """
    quizzes = getattr(puzzles, "quizzes", puzzles)
    q = quizzes if isinstance(quizzes, Tensor) else torch.as_tensor(np.asarray(quizzes))
    if q.dim() == 1:
        q = q[None]
    return check_puzzles(q).to(device)


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.get_default_dtype()


@contextlib.contextmanager
def analysis_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in the state the probes need, and restore it afterwards.

    ``eval()`` (no dropout, so ``step`` is pure), parameters frozen (the probes differentiate
    with respect to the state only; frozen weights keep autograd from taping every forward)
    and the math attention backend (fused SDPA kernels have no forward-mode AD).
    """
    from sadyn.dynamics import math_attention

    was_training = model.training
    grads = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        with math_attention():
            yield model
    finally:
        for p, flag in grads:
            p.requires_grad_(flag)
        model.train(was_training)


@dataclass
class Rollout:
    """A batch of puzzles run through the loop.

    Attributes:
        puzzles: ``(B, 81)`` long, the quizzes.
        cond: ``(B, S, D)``, the injected input ``C = model.encode(puzzles)``.
        states: ``(T+1, B, S, D)``, ``X_0 .. X_T``.
        seed: the seed of the initial-state noise.
    """

    puzzles: Tensor
    cond: Tensor
    states: Tensor
    seed: int

    @property
    def steps(self) -> int:
        """T, the number of loop steps taken."""
        return self.states.shape[0] - 1

    @property
    def batch(self) -> int:
        return self.cond.shape[0]

    @property
    def state_shape(self) -> tuple[int, int]:
        """``(S, D)``."""
        return tuple(self.cond.shape[1:])  # type: ignore[return-value]

    @property
    def dim(self) -> int:
        """``n = S * D``, the dimension of the map."""
        return int(self.cond.shape[1] * self.cond.shape[2])

    def state(self, t: int) -> Tensor:
        """``X_t``: ``(B, S, D)``."""
        if not 0 <= t <= self.steps:
            raise ShapeError(f"loop step {t} outside the rollout's 0..{self.steps}")
        return self.states[t]

    def sample_indices(self, samples: int | list[int] | tuple[int, ...] | None) -> list[int]:
        """The puzzles a probe samples: a count (the first ones), indices, or None (all);
        indices must lie in the batch (negative ones count from its end)."""
        if samples is None:
            idx = list(range(self.batch))
        elif isinstance(samples, int):
            idx = list(range(min(samples, self.batch)))
        else:
            idx = [int(i) for i in samples]
        if not all(-self.batch <= i < self.batch for i in idx):
            raise ValueError(f"samples must index the {self.batch} puzzles, got {idx}")
        return idx

    def subset(self, index: slice | list[int] | Tensor) -> Rollout:
        """The rollout restricted to some puzzles."""
        return Rollout(self.puzzles[index], self.cond[index], self.states[:, index], self.seed)


def rollout(
    model: nn.Module,
    puzzles: Any,
    steps: int,
    *,
    seed: int = 0,
    deterministic: bool = False,
) -> Rollout:
    """Encode ``puzzles`` and iterate the model's step ``steps`` times.

    Args:
        model: any LoopedModel.
        puzzles: ``(B, 81)`` digits (or a ``PuzzleSet``).
        steps: T.
        seed: seeds the initial-state noise (``init_state(..., generator=...)``).
        deterministic: passed to ``init_state`` (no noise at all, where the model supports it).

    Returns:
        a :class:`Rollout` with ``states: (T+1, B, S, D)``.

    Raises:
        DivergenceError: the trajectory became non-finite.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    device, dtype = _model_device_dtype(model)
    quizzes = as_puzzle_tensor(puzzles, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad(), analysis_mode(model):
        cond = model.encode(quizzes).to(dtype)
        x = model.init_state(cond, quizzes > 0, generator=gen, deterministic=deterministic)
        states = [x.to(dtype)]
        for _ in range(steps):
            states.append(model.step(states[-1], cond))
    out = torch.stack(states)
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).flatten(1).any(1).nonzero()[0])
        raise DivergenceError(f"the loop produced non-finite states at step {bad}")
    return Rollout(quizzes, cond, out, seed)


def step_map(model: nn.Module, cond: Tensor) -> Map:
    """The batched step map ``f: (B, n) -> (B, n)``, ``f(x) = vec(step(X, C))`` per row.

    Args:
        cond: ``(B, S, D)``; row b of ``x`` is puzzle b's flattened state.
    """
    b, s, d = cond.shape

    def f(v: Tensor) -> Tensor:
        return model.step(v.reshape(b, s, d), cond).reshape(b, s * d)

    return f


def single_step_map(model: nn.Module, cond: Tensor, index: int) -> Map:
    """Puzzle ``index``'s step map ``f: (n,) -> (n,)``."""
    c = cond[index : index + 1]
    s, d = cond.shape[1:]

    def f(v: Tensor) -> Tensor:
        return model.step(v.reshape(1, s, d), c).reshape(s * d)

    return f


def msa_map(model: nn.Module, shape: tuple[int, int, int]) -> Map:
    """The batched attention map ``x -> vec(model.msa(X))``, ``(B, n) -> (B, n)``.

    Args:
        shape: ``(B, S, D)``.
    """
    b, s, d = shape

    def f(v: Tensor) -> Tensor:
        return model.msa(v.reshape(b, s, d)).reshape(b, s * d)

    return f


def single_msa_map(model: nn.Module, shape: tuple[int, int]) -> Map:
    """One board's attention map ``(n,) -> (n,)``. ``shape`` is ``(S, D)``."""
    s, d = shape

    def f(v: Tensor) -> Tensor:
        return model.msa(v.reshape(1, s, d)).reshape(s * d)

    return f


def progress(iterable: Any, *, enable: bool, desc: str, total: int | None = None) -> Any:
    """Progress over ``iterable`` when asked for (:func:`sadyn.progress.progress`: a bar on a
    terminal, periodic lines with rate and ETA otherwise); else the iterable."""
    if not enable:
        return iterable
    from sadyn.progress import progress as _progress

    return _progress(iterable, desc=desc, total=total)


def to_numpy(x: Tensor | float) -> np.ndarray:
    """A detached float64 (or complex128) numpy copy."""
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        return x.numpy().astype(np.complex128 if x.is_complex() else np.float64)
    return np.asarray(x, dtype=np.float64)
