"""EMA of the weights: the ema_pytorch schedule the AKOrN code uses, checked against
ema_pytorch's published update rule."""

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


def _ema_pytorch(values, *, beta, every, start, power):
    """``ema_pytorch.EMA(beta, update_after_step=start, update_every=every, power=power)``
    (lucidrains/ema-pytorch, ``EMA.update`` and ``get_current_decay``; inv_gamma 1, min_value
    0) on one weight that takes ``values`` in turn: the averaged weight after each call. Its
    ``update`` counts the call (``self.step += 1``) before ``get_current_decay`` reads ``step``."""
    step, average, out = 0, None, []
    for value in values:
        call = step
        step += 1
        if call % every == 0:
            if call <= start:
                average = value
            else:
                epoch = max(step - start - 1, 0)
                decay = 0.0 if epoch <= 0 else min(max(1 - (1 + epoch) ** -power, 0.0), beta)
                average = average - (average - value) * (1.0 - decay)
        out.append(average)
    return out


@pytest.mark.parametrize(("every", "start", "power"), [(10, 100, 2 / 3), (1, 0, 3 / 4), (3, 7, 1)])
def test_follows_ema_pytorch_on_a_ramp(every, start, power):
    """A weight ramping 0, 1, ..., 299: sadyn's average equals ema_pytorch's after every call
    (the off-by-one of an earlier sadyn, a decay one step behind, put them up to 0.4 apart)."""
    model = nn.Linear(1, 1).double()
    ema = EMA(model, beta=0.995, every=every, start=start, power=power)
    values = [float(i) for i in range(300)]
    expected = _ema_pytorch(values, beta=0.995, every=every, start=start, power=power)
    got = []
    for value in values:
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        got.append(ema.module.weight.item())
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_copies_until_start_then_averages_with_warmup():
    model = nn.Linear(3, 2)
    ema = EMA(model, beta=0.995, every=10, start=100, power=2 / 3)
    _run(ema, model, 101)  # calls 0..100: copies on 0, 10, ..., 100
    assert torch.equal(ema.module.weight, torch.full((2, 3), 100.0))
    _run_from(ema, model, 101, 111)  # calls 101..110: one average at n = 110
    d = 1 - (1 + 10) ** (-2 / 3)  # ema_pytorch: epoch = step - start - 1 = 111 - 100 - 1 = 10
    assert d == pytest.approx(0.7978, abs=1e-4) and ema.decay(110) == pytest.approx(d)
    assert ema.module.weight[0, 0].item() == pytest.approx(d * 100 + (1 - d) * 110, rel=1e-6)


def _run_from(ema, model, lo, hi):
    for i in range(lo, hi):
        with torch.no_grad():
            model.weight.fill_(float(i))
        ema.update(model)


def test_decay_caps_at_beta_and_power_zero_is_plain_beta():
    ema = EMA(nn.Linear(1, 1), beta=0.995, every=1, start=0, power=2 / 3)
    assert ema.decay(10**7) == 0.995
    assert ema.decay(0) == 0.0  # up to start: a copy
    assert ema.decay(1) == pytest.approx(1 - 2 ** (-2 / 3))  # the first average
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
