"""Fixtures of the dynamics tests."""

from __future__ import annotations

import pytest
import torch
from dyn_maps import attention_block

from sadyn.dynamics import systems


@pytest.fixture(autouse=True)
def _single_thread():
    """These tests push tiny tensors through many small ops: intra-op threads only add
    synchronisation (on a loaded 2-core machine 2 threads ran a Henon QR loop 20x slower)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture
def attn():
    """The 9-token, 8-wide attention block with unit RMSNorm (float64)."""
    return attention_block()


@pytest.fixture
def chaotic_rnn() -> systems.ReferenceSystem:
    """A chaotic tanh RNN, n = 8, W ~ N(0, 16/n): lambda ~ 0.13, -0.72, -1.28, -2.29, ...

    Wide gaps between exponents: tangents align with the Lyapunov vectors within ~40 steps.
    """
    return systems.random_tanh_rnn(8, 4.0, seed=1)
