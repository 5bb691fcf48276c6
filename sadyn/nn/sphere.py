"""Projection onto the tangent space of the sphere, per group of N channels."""

from __future__ import annotations

import torch
from torch import Tensor

from sadyn.nn.norms import UNIT_EPS, sphere_normalize


def tangent_project(y: Tensor, x: Tensor, group: int, *, unit: bool = True) -> Tensor:
    """``Proj_x(y) = y - <y, x_hat> x_hat`` per group of ``group`` channels.

    ``y, x: (..., D)``. With ``unit=True`` the groups of ``x`` are taken to have norm 1 already
    (AKOrN's sphere states; saves a normalization); otherwise the direction ``x_hat = x / ||x||``
    is used, so the result stays a projection when ``x`` is off the unit sphere (e.g. after an
    RMSNorm with a learned gain). The result is orthogonal to ``x`` in every group.
    """
    xh = x if unit else sphere_normalize(x, group, UNIT_EPS)
    yg = y.unflatten(-1, (-1, group))
    xg = xh.unflatten(-1, (-1, group))
    inner = (yg * xg).sum(-1, keepdim=True)
    return torch.addcmul(yg, inner, xg, value=-1.0).flatten(-2)
