"""Post-hoc knobs that move a trained model along the paper's Fig. 3 axes.

The paper spreads its Fig. 3 family by varying the step size eta, the input scaling and the
norms of W^V and W^O. Here each knob acts on a *copy* of a trained model:

* ``value``: ``W^V_h, b^V_h <- f W^V_h, f b^V_h`` (the V rows of every fused ``qkv``);
* ``output``: ``W^O, b^O <- f W^O, f b^O`` (so ``MSA <- f MSA`` exactly);
* ``input``: ``C <- f C`` (the injected input; ``encode`` is wrapped on the copy);
* ``eta``: ``eta <- f eta``.

A knob that a model does not expose (e.g. the tied weights of symmetric SA have no separate
W^V) returns None.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

KNOBS = ("value", "output", "input", "eta")


def perturbed(model: nn.Module, knob: str, factor: float) -> nn.Module | None:
    """A copy of ``model`` with ``knob`` scaled by ``factor`` (None if not applicable)."""
    if knob not in KNOBS:
        raise ValueError(f"unknown knob {knob!r} (known: {', '.join(KNOBS)})")
    new = copy.deepcopy(model)
    with torch.no_grad():
        if knob in ("value", "output"):
            mods = [
                m
                for m in new.attention_modules()
                if isinstance(getattr(m, "qkv", None), nn.Linear)
                and isinstance(getattr(m, "out", None), nn.Linear)
                # a parametrized (orthogonal) weight cannot be scaled in place
                and not parametrize.is_parametrized(m.qkv)
                and not parametrize.is_parametrized(m.out)
            ]
            if not mods:
                return None
            for m in mods:
                if knob == "value":
                    d = m.qkv.weight.shape[0] // 3  # rows [Q; K; V]
                    m.qkv.weight[2 * d :].mul_(factor)
                    if m.qkv.bias is not None:
                        m.qkv.bias[2 * d :].mul_(factor)
                else:
                    m.out.weight.mul_(factor)
                    if m.out.bias is not None:
                        m.out.bias.mul_(factor)
        elif knob == "input":
            inner = new.encode

            def encode(puzzles: torch.Tensor, _inner: Any = inner) -> torch.Tensor:
                return factor * _inner(puzzles)

            # an instance attribute shadows the method, so forward() and the probes see it
            object.__setattr__(new, "encode", encode)
        else:
            eta = new.eta
            if not isinstance(eta, torch.Tensor) or eta.numel() != 1 or not eta.is_leaf:
                return None
            before = float(eta.detach())
            eta.mul_(factor)
            if abs(float(new.eta.detach()) - before * factor) > 1e-6 * max(abs(before), 1.0):
                return None  # eta is derived, not stored: cannot be set this way
    return new
