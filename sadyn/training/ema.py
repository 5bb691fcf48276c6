"""Exponential moving average of a model's weights, as the AKOrN code does it (``ema_pytorch``).

The schedule of ``ema_pytorch.EMA(beta, update_after_step=start, update_every=every)`` with its
default warm-up (``inv_gamma`` 1, ``power`` 2/3). :meth:`update` is called once per optimizer
step. Its n-th call (n = 0, 1, ...) does nothing unless ``n % every == 0``; while ``n <= start``
it copies the online weights; afterwards it moves the average toward them with the decay
``ema_pytorch``'s ``get_current_decay`` computes once it has counted the call (its ``step`` is
then ``n + 1``): ``min(beta, 1 - (1 + epoch)^-power)`` with ``epoch = (n + 1) - start - 1``. So
with ``start = 100, every = 10`` the first average (n = 110) uses ``1 - 11^(-2/3) = 0.7978``.
Before the reference EMA fix sadyn used ``epoch = n - start - 1`` (0.7846 there): runs trained
since differ from earlier ones in their EMA weights (checkpoints store the weights, so old ones
load as they are). ``power = 0`` is sadyn's own: the plain decay ``beta`` from the first average on.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An averaged copy of ``model``: ``.module`` (no grads), updated by :meth:`update`."""

    def __init__(
        self,
        model: nn.Module,
        *,
        beta: float = 0.995,
        every: int = 10,
        start: int = 100,
        power: float = 2 / 3,
    ) -> None:
        self.module = copy.deepcopy(model).requires_grad_(False).eval()
        self.beta, self.every, self.start, self.power = beta, every, start, power
        self.num_updates = 0  # calls to update() so far (ema_pytorch's ``step``)

    def decay(self, n: int) -> float:
        """The decay the n-th update call (0-based) averages with; 0.0 (a copy) up to ``start``."""
        epoch = n - self.start  # ema_pytorch: its step (n + 1, counted first) - start - 1
        if epoch <= 0:
            return 0.0
        if self.power == 0:
            return self.beta
        return min(self.beta, 1.0 - (1.0 + epoch) ** -self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Call after every optimizer step of ``model``."""
        n = self.num_updates
        self.num_updates += 1
        if n % self.every != 0:
            return
        online = dict(model.named_parameters())
        if n <= self.start:
            for name, p in self.module.named_parameters():
                p.copy_(online[name])
        else:
            d = self.decay(n)
            for name, p in self.module.named_parameters():
                p.lerp_(online[name], 1.0 - d)
        # buffers (e.g. fixed positional tables) are copied, not averaged (ema_pytorch averages
        # its float buffers; sadyn's models never change theirs, so the two agree)
        online_b = dict(model.named_buffers())
        for name, b in self.module.named_buffers():
            b.copy_(online_b[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        self.module.load_state_dict(state)
        self.num_updates = num_updates
