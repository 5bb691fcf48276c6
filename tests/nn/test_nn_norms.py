"""Normalizations against their formulas, and the sphere normalization's Jacobian (Lemma A.2)."""

import pytest
import torch
from torch.func import jacfwd

from sadyn.errors import ShapeError
from sadyn.nn.norms import (
    Normalization,
    group_norms,
    layer_normalize,
    rms_normalize,
    sphere_normalize,
)
from sadyn.nn.sphere import tangent_project

D = 12


def _grouped(y, n):
    return y.unflatten(-1, (D // n, n))


@pytest.mark.parametrize("n", [D, 4, 2])
def test_formulas(n):
    y = torch.randn(3, 5, D, dtype=torch.float64)
    g = torch.randn(D, dtype=torch.float64)
    b = torch.randn(D, dtype=torch.float64)
    yg = _grouped(y, n)
    unit = (yg / yg.norm(dim=-1, keepdim=True)).flatten(-2)
    rms = (yg / (yg.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt()).flatten(-2)
    ln = (
        (yg - yg.mean(-1, keepdim=True)) / (yg.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    ).flatten(-2)
    torch.testing.assert_close(sphere_normalize(y, n), unit)
    torch.testing.assert_close(sphere_normalize(y, n, gain=g), g * unit)
    torch.testing.assert_close(rms_normalize(y, n, gain=g), g * rms)
    torch.testing.assert_close(layer_normalize(y, n, gain=g, bias=b), g * ln + b)
    torch.testing.assert_close(group_norms(unit, n), torch.ones(3, 5, D // n, dtype=y.dtype))


@pytest.mark.parametrize("kind", ["rms_unit", "rms", "layernorm", "sphere", "none"])
def test_module_kinds(kind):
    norm = Normalization(kind, D, 4).double()
    y = torch.randn(2, 7, D, dtype=torch.float64)
    out = norm(y)
    if kind == "none":
        torch.testing.assert_close(out, y)
        assert norm.gain is None
        return
    if kind == "sphere":
        assert norm.gain is None and not list(norm.parameters())
    else:
        assert norm.gain.shape == (D,)
    # at initialization (gain 1, bias 0) every group has its kind's norm
    expected = {"rms_unit": 1.0, "sphere": 1.0, "rms": 2.0, "layernorm": 2.0}[kind]
    tol = {"layernorm": 1e-2, "rms": 1e-3}.get(kind, 1e-9)  # eps inside the square root
    torch.testing.assert_close(
        group_norms(out, 4), torch.full((2, 7, 3), expected, dtype=y.dtype), atol=0, rtol=tol
    )


def test_bad_groups():
    with pytest.raises(ValueError, match="divide"):
        Normalization("rms_unit", D, 5)
    with pytest.raises(ValueError, match="unknown norm"):
        Normalization("batchnorm", D)
    with pytest.raises(ShapeError):
        sphere_normalize(torch.randn(2, 10), 4)


@pytest.mark.parametrize("n", [D, 4])
def test_sphere_jacobian_is_lemma_a2(n):
    """J of y -> y/||y|| is block-diagonal with blocks (I - u u^T) / ||y|| (paper Lemma A.2)."""
    y = torch.randn(D, dtype=torch.float64)
    jac = jacfwd(lambda v: sphere_normalize(v, n))(y)
    expected = torch.zeros(D, D, dtype=torch.float64)
    for k in range(D // n):
        s = slice(k * n, (k + 1) * n)
        u, r = y[s] / y[s].norm(), y[s].norm()
        expected[s, s] = (torch.eye(n, dtype=torch.float64) - torch.outer(u, u)) / r
    torch.testing.assert_close(jac, expected)


def test_tangent_projection():
    x = sphere_normalize(torch.randn(4, 9, D, dtype=torch.float64), 4)
    y = torch.randn_like(x)
    p = tangent_project(y, x, 4)
    inner = (_grouped(p, 4) * _grouped(x, 4)).sum(-1)
    torch.testing.assert_close(inner, torch.zeros_like(inner))
    torch.testing.assert_close(tangent_project(p, x, 4), p)  # idempotent
    # unit=False: the projection along x/||x|| for a state off the sphere
    x3 = 3.0 * x
    torch.testing.assert_close(tangent_project(y, x3, 4, unit=False), p)


# -- batched derivatives through the RMS norms --------------------------------------------------
@pytest.mark.parametrize("kind,group", [("rms_unit", 8), ("rms_unit", 2), ("rms", 8), ("rms", 4)])
def test_vmapped_jvp_and_vjp_through_the_norm_match_the_loop_without_the_fused_kernel(
    kind, group, monkeypatch
):
    import warnings

    import torch.nn.functional as F
    from torch.func import jvp, vjp, vmap

    import sadyn.nn.norms as norms

    torch.manual_seed(0)
    norm = norms.Normalization(kind, 8, group).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 8, dtype=torch.float64)
    vs = torch.randn(5, 3, 8, dtype=torch.float64)
    fused_calls = []
    real = F.rms_norm

    def spy(*args, **kwargs):  # the fused op: its backward has no vmap batching rule (CUDA)
        fused_calls.append(torch._C._functorch.maybe_current_level() is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(norms.F, "rms_norm", spy)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*(batching rule|fallback).*")
        batched_j = vmap(lambda v: jvp(norm, (x,), (v,))[1])(vs)
        _, pull = vjp(norm, x)
        batched_t = vmap(lambda u: pull(u)[0])(vs)
    loop_j = torch.stack([jvp(norm, (x,), (v,))[1] for v in vs])
    loop_t = torch.stack([pull(u)[0] for u in vs])
    # float64, one normalization: the formula and the loop agree to a few eps64
    torch.testing.assert_close(batched_j, loop_j, rtol=0, atol=1e-13)
    torch.testing.assert_close(batched_t, loop_t, rtol=0, atol=1e-13)
    assert not any(fused_calls)  # under transforms the explicit formula ran
    # outside transforms the fused op runs, and both forms give the same values
    assert norm(x).shape == x.shape and fused_calls == [False]
    monkeypatch.setattr(norms, "_under_transform", lambda: True)
    torch.testing.assert_close(norm(x), real_forward(norm, x), rtol=0, atol=1e-14)


def real_forward(norm, x):
    """The norm by its definition: ``gain * y / ||y||`` (unit) or ``gain * y / rms(y)``, each
    with its eps inside the square root."""
    from sadyn.nn.norms import UNIT_EPS

    g = x.unflatten(-1, (-1, norm.group))
    scale = (g.pow(2).sum(-1, keepdim=True) + UNIT_EPS).sqrt()
    if norm.kind == "rms":
        scale = (g.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt()
    return (g / scale).flatten(-2) * norm.weight
