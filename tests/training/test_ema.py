"""EMA of the weights: the ema_pytorch schedule the AKOrN code uses."""

import pytest
import torch
from torch import nn

from sadyn.training.ema import EMA


def _run(ema: EMA, model: nn.Linear, n: int) -> list[torch.Tensor]:
    """Set the model's weight to n (a distinct constant per call), then update; record both."""
    seen = []
    for i in range(n):
        with torch.no_grad():
            model.weight.fill_(float(i))
        seen.append(model.weight.detach().clone())
        ema.update(model)
    return seen


def test_copies_until_start_then_averages_with_warmup():
    model = nn.Linear(3, 2)
    ema = EMA(model, beta=0.995, every=10, start=100, power=2 / 3)
    _run(ema, model, 101)  # calls 0..100: copies on 0, 10, ..., 100
    assert torch.equal(ema.module.weight, torch.full((2, 3), 100.0))
    _run_from(ema, model, 101, 111)  # calls 101..110: one average at n = 110
    d = 1 - (1 + 9) ** (-2 / 3)  # ema_pytorch: k = n - start - 1 = 9
    assert ema.module.weight[0, 0].item() == pytest.approx(d * 100 + (1 - d) * 110, rel=1e-6)


def _run_from(ema, model, lo, hi):
    for i in range(lo, hi):
        with torch.no_grad():
            model.weight.fill_(float(i))
        ema.update(model)


def test_decay_caps_at_beta_and_power_zero_is_plain_beta():
    ema = EMA(nn.Linear(1, 1), beta=0.995, every=1, start=0, power=2 / 3)
    assert ema.decay(10**7) == 0.995
    assert ema.decay(1) == 0.0  # first average after start copies
    plain = EMA(nn.Linear(1, 1), beta=0.9, every=1, start=0, power=0)
    assert plain.decay(5) == 0.9


def test_state_round_trip_continues_identically():
    torch.manual_seed(0)
    model = nn.Linear(4, 4)
    a = EMA(model, beta=0.9, every=2, start=3)
    _run(a, model, 9)
    b = EMA(model, beta=0.9, every=2, start=3)
    b.load_state_dict({k: v.clone() for k, v in a.state_dict().items()}, a.num_updates)
    _run_from(a, model, 9, 20)
    _run_from(b, model, 9, 20)
    assert torch.equal(a.module.weight, b.module.weight)
    assert not a.module.weight.requires_grad
