"""Training a selector head on samples of a frozen looped model's own rollouts
(:func:`sadyn.probes.selectors.collect_selector_data`: restarts of training boards, the selector
features and the board / cell correctness at a few loop counts), with
:func:`sadyn.training.objective.selector_loss`. The looped model is not changed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from sadyn.errors import SadynError
from sadyn.nn.selector import SelectorConfig, SelectorData, SelectorHead
from sadyn.training.objective import selector_loss


@dataclass
class SelectorTrainConfig:
    """hidden: the head's width; epochs over the samples; batch: samples per update; lr: Adam;
    cell_weight: the cell-level BCE's weight; seed: init and shuffling; max_minutes: a cap."""

    hidden: int = 64
    epochs: int = 8
    batch: int = 256
    lr: float = 2e-3
    cell_weight: float = 1.0
    seed: int = 0
    max_minutes: float = 30.0
    log: list[dict[str, float]] = field(default_factory=list)


def train_selector(data: SelectorData, dim: int, cfg: SelectorTrainConfig) -> SelectorHead:
    """Fit a :class:`SelectorHead` for a model of width ``dim`` to ``data`` (Adam, cosine
    schedule); the per-epoch mean losses go to ``cfg.log``."""
    if len(data) == 0:
        raise SadynError("selector training: no samples")
    torch.manual_seed(cfg.seed)
    head = SelectorHead(SelectorConfig(dim=dim, hidden=cfg.hidden))
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    per_epoch = math.ceil(len(data) / cfg.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(data), generator=gen)
        sums = {"board_bce": 0.0, "cell_bce": 0.0}
        for lo in range(0, len(data), cfg.batch):
            i = order[lo : lo + cfg.batch]
            loss, parts = selector_loss(
                head,
                data.feats[i],
                data.blank[i],
                data.cell_ok[i],
                data.board_ok[i],
                cell_weight=cfg.cell_weight,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] += float(v) * len(i) / len(data)
        cfg.log.append({"epoch": epoch + 1, **sums, "wall_s": time.perf_counter() - start})
        if time.perf_counter() - start > 60 * cfg.max_minutes:
            break
    head.eval()
    return head


__all__ = ["SelectorTrainConfig", "train_selector"]
