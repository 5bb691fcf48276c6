"""Attention-safe forward mode: what torch does with fused SDPA, and that sadyn copes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from dyn_maps import attention_block
from torch.func import jvp

from sadyn.dynamics import (
    JacobianOperator,
    eigenvalues,
    finite_time_lyapunov,
    lyapunov_spectrum,
    math_attention,
    spectral_norm,
)

F64 = torch.float64


def test_fused_sdpa_has_no_forward_derivative_outside_math_attention(attn):
    f, x0 = attn
    x0 = x0[None]  # a batch: 4-d queries, which CPU dispatches to the fused flash kernel
    with math_attention():
        pass  # loads torch's forward-AD decompositions without their deprecation warning
    try:
        jvp(f, (x0,), (torch.ones_like(x0),))
    except NotImplementedError as err:
        assert "forward AD" in str(err)
    else:
        pytest.skip(f"torch {torch.__version__}: the default SDPA kernel now has a JVP")
    with math_attention():
        _, dy = jvp(f, (x0,), (torch.ones_like(x0),))
    h = 1e-6
    fd = (f(x0 + h) - f(x0 - h)) / (2 * h)
    torch.testing.assert_close(dy, fd, rtol=0, atol=1e-8)


def test_math_backend_gives_the_fused_forward_to_rounding():
    f, x0 = attention_block(tokens=81, width=16, heads=4, dtype=torch.float32)
    fused = f(x0)
    with math_attention():
        math = f(x0)
    torch.testing.assert_close(math, fused, rtol=0, atol=1e-5)


def _backends() -> tuple[bool, bool, bool]:
    cuda = torch.backends.cuda
    return cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(), cuda.math_sdp_enabled()


def test_math_attention_nests_and_restores():
    """Inside (nested) blocks only the math backend is enabled and forward mode works; an inner
    block's exit leaves the outer one in force; after the outer block (also when it exits by
    an exception) the backend flags are what they were."""
    q = torch.randn(1, 2, 5, 4, dtype=F64)
    v = torch.randn_like(q)

    def g(x):
        return F.scaled_dot_product_attention(x, x, x)

    before = _backends()
    with math_attention():
        assert _backends() == (False, False, True)
        with math_attention():
            _, dy = jvp(g, (q,), (v,))
            assert _backends() == (False, False, True)
        assert _backends() == (False, False, True)  # the inner exit kept the outer setting
        h = 1e-6
        fd = (g(q + h * v) - g(q - h * v)) / (2 * h)
        torch.testing.assert_close(dy, fd, rtol=0, atol=1e-7)
    assert _backends() == before
    with pytest.raises(RuntimeError, match="boom"), math_attention():
        raise RuntimeError("boom")
    assert _backends() == before


def test_every_tool_works_on_an_sdpa_map_without_user_setup(attn):
    """No math_attention() here: each function enters it itself."""
    f, x0 = attn
    assert torch.isfinite(lyapunov_spectrum(f, x0, 3, 4, tangent="jvp").exponents).all()
    assert finite_time_lyapunov(f, x0, 4, 3, method="subspace").exponents.shape == (3,)
    assert spectral_norm(f, x0, method="power").value > 0
    assert eigenvalues(f, x0, 3, method="arnoldi").shape == (3,)
    op = JacobianOperator(f, x0)
    assert op.matvec(torch.ones_like(x0)).shape == x0.shape


def test_first_forward_mode_call_raises_no_warning_under_w_error(tmp_path):
    """torch 2.13's first forward-AD call warns (torch.jit.script deprecation): a fresh
    interpreter with -W error must still run sadyn's JVPs through an attention map."""
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            sys.path.insert(0, sys.argv[1])
            import torch
            from dyn_maps import attention_block
            from sadyn.dynamics import lyapunov_spectrum
            f, x0 = attention_block()
            res = lyapunov_spectrum(f, x0, 2, 2, tangent="jvp", progress=False)
            assert torch.isfinite(res.exponents).all()
            print("ok")
            """
        )
    )
    here = str(__import__("pathlib").Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-W", "error", str(script), here],
        capture_output=True,
        text=True,
        timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
