"""Attention-safe differentiation: every transform in :mod:`sadyn.dynamics` runs inside
:func:`math_attention`.

What happens on torch 2.13 (CPU), checked when this module was written:

* ``F.scaled_dot_product_attention`` dispatches to ``_scaled_dot_product_flash_attention_for_cpu``
  by default. That kernel has no forward-mode derivative: ``torch.func.jvp`` (and so
  ``jacfwd``, ``linearize`` and every tangent propagation here) raises ``NotImplementedError:
  Trying to use forward AD with _scaled_dot_product_flash_attention_for_cpu``. CUDA's flash and
  memory-efficient kernels fail the same way (pytorch#117629, #128971). Reverse mode works.
* Under ``sdpa_kernel(SDPBackend.MATH)`` the call decomposes into matmul + softmax, which have
  forward and reverse derivatives; results agree with the fused kernel to rounding.
* The first forward-mode call of a process imports ``torch._decomp.decompositions_for_jvp``,
  which calls the deprecated ``torch.jit.script`` and emits a ``DeprecationWarning``; under
  ``pytest -W error`` that aborts the JVP. :func:`math_attention` performs that import once with
  exactly this warning silenced, so nothing in this package warns.

Running the *plain* forward steps under the same backend matters too: the math and fused
kernels round differently, and a trajectory advanced by one but differentiated by the other
would not be the trajectory whose Jacobians are taken.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from torch.nn.attention import SDPBackend, sdpa_kernel

P = ParamSpec("P")
R = TypeVar("R")

_forward_ad_ready = False


def _prepare_forward_ad() -> None:
    """Import torch's forward-AD decompositions once, without their deprecation warning."""
    global _forward_ad_ready
    if _forward_ad_ready:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.script.* is deprecated", category=DeprecationWarning
        )
        import torch._decomp.decompositions_for_jvp  # noqa: F401
    _forward_ad_ready = True


@contextlib.contextmanager
def math_attention() -> Iterator[None]:
    """Force PyTorch's math backend for ``scaled_dot_product_attention`` inside the block.

    Use it around your own ``torch.func.jvp``/``jacfwd`` of attention models; the functions of
    :mod:`sadyn.dynamics` already enter it. Nesting is harmless.

    Example::

        with math_attention():
            y, dy = torch.func.jvp(model_step, (x,), (v,))
    """
    _prepare_forward_ad()
    with sdpa_kernel(SDPBackend.MATH):
        yield


def attention_safe(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``fn`` inside :func:`math_attention`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with math_attention():
            return fn(*args, **kwargs)

    return wrapper
