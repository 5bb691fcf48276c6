"""Normalizations of the state, token-wise or per group of N channels ("oscillator-wise").

Every function here acts on the last axis of ``y: (..., D)``, split into ``D // N`` consecutive
groups of ``N`` channels; ``N = D`` is the token-wise case. All are plain differentiable torch
expressions, so they work under ``torch.func.jvp`` / ``vmap``.

RMS normalizations run as ``F.rms_norm`` (one fused kernel on a GPU) outside ``torch.func``
transforms and as the explicit formula ``y * rsqrt(mean(y^2) + eps)`` inside them: the fused
kernel's backward (``aten::_fused_rms_norm_backward``) has no ``vmap`` batching rule, so a
vmapped JVP/VJP through it falls back to a per-sample loop with a warning on CUDA.

Kinds (``Normalization(kind, ...)``):

- ``"rms_unit"``: the paper's theory form ``gamma * y / ||y||`` per group (Prop. 5.1), gain
  ``gamma`` in R^D, initial 1.
- ``"rms"``: standard RMSNorm ``gamma * y / sqrt(mean(y^2) + eps)`` per group: the unit form
  times ``sqrt(N)``.
- ``"layernorm"``: LayerNorm per group, gain and bias in R^D.
- ``"sphere"``: ``y / ||y||`` per group, no parameters (AKOrN's projection onto the sphere).
- ``"none"``: identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sadyn.errors import ShapeError

NORM_KINDS = ("rms_unit", "rms", "layernorm", "sphere", "none")

# eps inside the square root. The unit forms use a negligible one (the theory has none); the
# standard forms use the customary values of RMSNorm / LayerNorm.
UNIT_EPS = 1e-12
RMS_EPS = 1e-6
LN_EPS = 1e-5


def _under_transform() -> bool:
    """Whether a ``torch.func`` transform (vmap, jvp, vjp, grad) is active."""
    try:
        return torch._C._functorch.maybe_current_level() is not None
    except AttributeError:  # no such query in this torch: the explicit formula is always safe
        return True


def _rms_norm(y: Tensor, n: int, weight: Tensor | None, eps: float) -> Tensor:
    """``F.rms_norm(y, (n,), weight, eps)`` over the last axis (``y: (..., n)``), written out
    under ``torch.func`` transforms (module docstring)."""
    if not _under_transform():
        return F.rms_norm(y, (n,), weight=weight, eps=eps)
    out = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps)
    return out if weight is None else out * weight


def _groups(y: Tensor, group: int) -> Tensor:
    """View ``y: (..., D)`` as ``(..., D // N, N)``."""
    if y.shape[-1] % group:
        raise ShapeError(f"width {y.shape[-1]} is not a multiple of the group size {group}")
    return y.unflatten(-1, (y.shape[-1] // group, group))


def group_norms(y: Tensor, group: int) -> Tensor:
    """Euclidean norm of each group: ``y: (..., D) -> (..., D // N)``."""
    return torch.linalg.vector_norm(_groups(y, group), dim=-1)


def sphere_normalize(
    y: Tensor, group: int, eps: float = UNIT_EPS, gain: Tensor | None = None
) -> Tensor:
    """``gain * y / ||y||`` per group of ``group`` channels (the paper's Pi when ``gain`` is None;
    the unit RMSNorm otherwise). ``y: (..., D)``, ``gain: (D,)``.

    Written as an RMS norm (one fused kernel): ``y / ||y|| = rms_norm(y) / sqrt(N)``.
    """
    d = y.shape[-1]
    if group == d:
        w = y.new_full((d,), d**-0.5) if gain is None else gain * d**-0.5
        return _rms_norm(y, d, w, eps / d)
    out = _rms_norm(
        _groups(y, group), group, y.new_full((group,), group**-0.5), eps / group
    ).flatten(-2)
    return out if gain is None else out * gain


def rms_normalize(
    y: Tensor, group: int, eps: float = RMS_EPS, gain: Tensor | None = None
) -> Tensor:
    """Standard RMSNorm ``gain * y / sqrt(mean(y^2) + eps)`` per group. ``y: (..., D)``."""
    d = y.shape[-1]
    if group == d:
        return _rms_norm(y, d, gain, eps)
    out = _rms_norm(_groups(y, group), group, None, eps).flatten(-2)
    return out if gain is None else out * gain


def layer_normalize(
    y: Tensor,
    group: int,
    eps: float = LN_EPS,
    gain: Tensor | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """LayerNorm per group: zero mean, unit variance, then ``gain * . + bias``. ``y: (..., D)``."""
    d = y.shape[-1]
    if group == d:
        return F.layer_norm(y, (d,), weight=gain, bias=bias, eps=eps)
    out = F.layer_norm(_groups(y, group), (group,), eps=eps).flatten(-2)
    if gain is not None:
        out = out * gain
    return out if bias is None else out + bias


class Normalization(nn.Module):
    """One of :data:`NORM_KINDS` applied per group of ``group`` channels of a width-``dim`` state.

    ``forward(y: (..., D)) -> (..., D)``. ``gain`` is the learnable ``gamma`` (``(D,)``) or None.
    """

    def __init__(self, kind: str, dim: int, group: int | None = None):
        super().__init__()
        if kind not in NORM_KINDS:
            raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORM_KINDS)}")
        group = dim if group is None else group
        if group < 1 or dim % group:
            raise ValueError(f"norm group {group} must divide the width {dim}")
        self.kind, self.dim, self.group = kind, dim, group
        if kind in ("rms_unit", "rms", "layernorm"):
            self.weight = nn.Parameter(torch.ones(dim))
        if kind == "layernorm":
            self.bias = nn.Parameter(torch.zeros(dim))

    @property
    def gain(self) -> Tensor | None:
        """The learnable gain gamma: ``(D,)``, or None for ``sphere`` / ``none``."""
        return getattr(self, "weight", None)

    def forward(self, y: Tensor) -> Tensor:
        kind, n = self.kind, self.group
        if kind == "none":
            return y
        if kind == "sphere":
            return sphere_normalize(y, n)
        if kind == "rms_unit":
            return sphere_normalize(y, n, gain=self.weight)
        if kind == "rms":
            return rms_normalize(y, n, gain=self.weight)
        return layer_normalize(y, n, gain=self.weight, bias=self.bias)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, dim={self.dim}, group={self.group}"
