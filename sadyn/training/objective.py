"""The training objective: unroll the loop on a batch (``LoopedModel.unroll``, the loop of the
model's own ``forward``), cross-entropy at the last m readouts, plus the weighted regularizers.
An ``nn.Module`` so that ``DistributedDataParallel`` can wrap it (its forward is the whole loss,
and DDP averages the gradients of it).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sadyn.models import LoopedModel, fused_attention
from sadyn.nn.selector import board_logit
from sadyn.training.config import TrainConfig
from sadyn.training.regularizers import (
    SpectralPenalty,
    e_multi_penalty,
    e_single_penalty,
    jacobian_penalty,
    lyapunov_penalty,
)


class Objective(nn.Module):
    """Loss of ``model`` on a batch under ``config`` (loop count, loss steps, regularizers)."""

    def __init__(
        self,
        model: LoopedModel,
        config: TrainConfig,
        reg_generator: torch.Generator | None = None,
        *,
        fused: bool = False,
    ) -> None:
        """``fused``: unroll the loss through the fused attention kernel (the
        regularizers, which take forward-mode derivatives, never are)."""
        super().__init__()
        self.model = model
        self.config = config
        self.reg_generator = reg_generator
        self.fused = fused
        self.spec = SpectralPenalty(reg_generator) if config.reg_spec > 0 else None
        # the loop step, compiled for fixed shapes when asked (the model's step is untouched)
        self.step = torch.compile(model.step, dynamic=False) if config.compile else model.step

    def forward(
        self,
        quizzes: torch.Tensor,
        solutions: torch.Tensor,
        shard: slice,
        steps: int,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """quizzes, solutions: (B, 81) long, the *global* batch; ``shard`` selects this
        process's rows. The initial state is drawn for the global batch (so every process
        consumes the generator identically) and then cut to the shard.

        Returns (total loss, parts) where parts holds detached scalars (``ce``, each
        regularizer, and diagnostics).
        """
        cfg, model = self.config, self.model
        m = steps if cfg.loss_steps == 0 else min(cfg.loss_steps, steps)
        lyapunov_start = max(steps - cfg.lyapunov_steps, 0)
        with fused_attention(self.fused):
            cond_all = model.encode(quizzes)  # (B, S, D)
            x0_all = model.init_state(
                cond_all, quizzes > 0, generator=generator, deterministic=cfg.fixed_noise
            )
            cond = cond_all[shard]
            run = model.unroll(
                x0_all[shard],
                cond,
                steps,
                readout_at=range(steps - m + 1, steps + 1),  # the last m states X_t
                states_at=(lyapunov_start, steps - 1),  # where the penalties start
                step=self.step,
            )
        target = (solutions[shard] - 1).reshape(-1)  # digits 1..9 -> classes 0..8
        ce = (
            sum(
                F.cross_entropy(run.logits_at[t].flatten(0, 1), target)
                for t in sorted(run.logits_at)
            )
            / m
        )
        total = ce
        parts: dict[str, Any] = {"ce": ce.detach()}
        kept = {t: x.detach() for t, x in run.states_at.items()}

        if cfg.reg_spec > 0:
            r = self.spec(model)
            total, parts["reg_spec"] = total + cfg.reg_spec * r, r.detach()
        if cfg.reg_e_single > 0:
            r = e_single_penalty(model)
            total, parts["reg_e_single"] = total + cfg.reg_e_single * r, r.detach()
        if cfg.reg_e_multi > 0:
            r = e_multi_penalty(model, cfg.e_multi_form)
            total, parts["reg_e_multi"] = total + cfg.reg_e_multi * r, r.detach()
        boards = min(cfg.reg_boards, cond.shape[0])
        if cfg.reg_jacobian > 0:
            r, sigma = jacobian_penalty(
                model.step,
                kept[steps - 1][:boards],
                cond[:boards],
                target=cfg.jacobian_target,
                iterations=cfg.jacobian_iters,
                generator=self.reg_generator,
            )
            total = total + cfg.reg_jacobian * r
            parts["reg_jacobian"], parts["jacobian_sigma"] = r.detach(), sigma.mean()
        if cfg.reg_lyapunov > 0:
            r, lam = lyapunov_penalty(
                model.step,
                kept[lyapunov_start][:boards],
                cond[:boards],
                k=cfg.lyapunov_k,
                steps=cfg.lyapunov_steps,
                target=cfg.lyapunov_target,
                generator=self.reg_generator,
            )
            total = total + cfg.reg_lyapunov * r
            parts["reg_lyapunov"], parts["lyapunov_top"] = r.detach(), lam.amax(1).mean()
        parts["loss"] = total.detach()
        return total, parts

    def regularizer_state(self) -> dict[str, torch.Tensor]:
        return {f"reg/spec/{k}": v for k, v in self.spec.state_dict().items()} if self.spec else {}

    def load_regularizer_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.spec is not None:
            prefix = "reg/spec/"
            self.spec.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )


def selector_loss(
    head: torch.nn.Module,
    feats: torch.Tensor,
    blank: torch.Tensor,
    cell_ok: torch.Tensor,
    board_ok: torch.Tensor,
    *,
    cell_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Binary cross-entropy of a selector head (:class:`sadyn.nn.selector.SelectorHead`) on
    board correctness, plus ``cell_weight`` x the mean cell-level BCE over blank cells.

    feats: (R, S, F) :func:`sadyn.nn.selector.selector_features`; blank, cell_ok: (R, S) bool;
    board_ok: (R,) bool. The board's logit comes from ``log P(board right) = sum_blank log
    sigmoid(z_i)``, so the two losses train the same per-cell logits."""
    z = head.cell_logits(feats.float())  # (R, S)
    log_p = head.board_log_prob(z, blank)
    board = F.binary_cross_entropy_with_logits(board_logit(log_p), board_ok.float())
    mask = blank.float()
    cell = (
        F.binary_cross_entropy_with_logits(z, cell_ok.float(), reduction="none") * mask
    ).sum() / mask.sum().clamp(min=1.0)
    total = board + cell_weight * cell
    return total, {"board_bce": board.detach(), "cell_bce": cell.detach()}
