"""check_step_map: passes good maps, and names the check a bad map fails."""

from __future__ import annotations

import pytest
import torch
from dyn_maps import attention_block

from sadyn.dynamics import StepMapError, check_step_map, systems
from sadyn.errors import SadynError

F64 = torch.float64


def test_good_maps_pass(attn, chaotic_rnn):
    for f, x in (attn, (chaotic_rnn.f, chaotic_rnn.x0)):
        rep = check_step_map(f, x, strict=True)
        assert rep.passed
        assert rep["finite-differences"].passed
        assert "float64" in rep["finite-differences"].detail
        assert rep["dense-jacobian"].error < 1e-12
        assert rep["jvp-vjp"].error < 1e-12


def test_float32_map_falls_back_to_float32_differences():
    f, x0 = attention_block(dtype=torch.float32)
    rep = check_step_map(f, x0)
    assert rep.passed, str(rep)
    assert "float32" in rep["finite-differences"].detail


def test_impure_map_fails_purity():
    g = torch.Generator().manual_seed(0)

    def noisy(x):
        return torch.tanh(x) + 1e-3 * torch.randn(x.shape, generator=g, dtype=x.dtype)

    rep = check_step_map(noisy, torch.zeros(4, dtype=F64))
    assert rep["purity"].passed is False
    assert not rep.passed
    with pytest.raises(StepMapError, match="purity"):
        check_step_map(noisy, torch.zeros(4, dtype=F64), strict=True)


def test_wrong_backward_is_caught():
    """A custom op with a right forward derivative and a wrong reverse one."""

    class BadTanh(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return torch.tanh(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (1 - torch.tanh(x))  # wrong: should be 1 - tanh^2

        @staticmethod
        def jvp(ctx, t):
            (x,) = ctx.saved_tensors
            return t * (1 - torch.tanh(x) ** 2)

    x = torch.linspace(-1, 1, 6, dtype=F64)
    rep = check_step_map(BadTanh.apply, x)
    assert rep["jvp"].passed and rep["vjp"].passed
    assert rep["finite-differences"].passed  # finite differences agree with the JVP
    assert rep["jvp-vjp"].passed is False
    assert rep["dense-jacobian"].passed is False
    with pytest.raises(SadynError, match="jvp-vjp") as err:
        check_step_map(BadTanh.apply, x, strict=True)
    assert "error" in str(err.value)


def test_wrong_shape_and_in_place_mutation():
    rep = check_step_map(lambda x: x[:-1], torch.zeros(3, dtype=F64))
    assert rep["shape"].passed is False and not rep.passed

    def mutating(x):
        x.mul_(0.5)  # in place on the caller's tensor
        return x.clone()

    rep = check_step_map(mutating, torch.ones(3, dtype=F64))
    assert rep["no-mutation"].passed is False


def test_batched_rows_must_be_independent():
    def mixing(x):  # batch-norm-like: rows share statistics
        return x - x.mean(0, keepdim=True)

    xs = torch.randn(3, 4, dtype=F64)
    assert not check_step_map(mixing, xs, batched=True)["row-independence"].passed
    m = systems.henon()
    ok = check_step_map(m.f, torch.stack([m.x0, m.x0 + 0.1]), batched=True)
    assert ok.passed and ok["row-independence"].passed


def test_report_prints_every_check(attn):
    text = str(check_step_map(*attn))
    for name in ("shape", "purity", "jvp-vjp", "dense-jacobian", "finite-differences"):
        assert name in text
