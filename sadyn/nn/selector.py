"""A learned selector: a small head that reads a looped model's state and predicts whether the
decoded board is right, without checking the Sudoku rules.

Per cell it reads the state ``x_i``, the drive ``y_i = C_i + MSA(X)_i`` (which has seen every
other cell through the attention), the readout's top-2 probabilities and entropy, and the
cell's relative change over the last step; a two-layer MLP maps them to a logit ``z_i`` that
the cell is right. A board is right when all its blank cells are, so the board's score is
``s = sum_{blank i} log sigmoid(z_i)`` = log P(board right) under independent cells
(:meth:`SelectorHead.board_log_prob`); it is trained with binary cross-entropy on board (and
cell) correctness (:func:`sadyn.training.objective.selector_loss`).

Shapes: ``R`` rows (boards x restarts), ``S`` = 81 cells, ``D`` state width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: per-cell features besides the state and the drive: top-1, top-2, entropy, log change, ||y||
EXTRA_FEATURES = 5


@dataclass
class SelectorData:
    """Samples of (row, loop count): feats (N, S, F) float16, blank / cell_ok (N, S) bool,
    board_ok (N,) bool, t (N,) long the loop count, board (N,) long the board index."""

    feats: Tensor
    blank: Tensor
    cell_ok: Tensor
    board_ok: Tensor
    t: Tensor
    board: Tensor

    def __len__(self) -> int:
        return int(self.board_ok.shape[0])


def selector_features(x: Tensor, drive: Tensor, logits: Tensor, x_prev: Tensor) -> Tensor:
    """Per-cell features ``(R, S, 2D + 5)`` of the state ``x: (R, S, D)``, its drive ``drive:
    (R, S, D)``, the readout ``logits: (R, S, 9)`` and the previous state ``x_prev: (R, S, D)``.

    The drive is divided by its per-cell RMS (its scale enters as ``log RMS``) so that the
    features stay O(1) whatever the input scale; the change is ``log(||x_i - x_prev_i|| /
    ||x_i|| + 1e-6)`` (1e-6: below float32 resolution of a unit-RMS state, a settled cell).
    """
    x, drive = x.float(), drive.float()
    y_rms = drive.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-12)
    probs = logits.float().softmax(-1)
    top2 = probs.topk(2, dim=-1).values  # (R, S, 2)
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum(-1, keepdim=True)
    change = (x - x_prev.float()).norm(dim=-1, keepdim=True) / x.norm(dim=-1, keepdim=True).clamp(
        min=1e-12
    )
    extra = torch.cat([top2, entropy, (change + 1e-6).log(), y_rms.log()], -1)
    return torch.cat([x, drive / y_rms, extra], -1)


@dataclass(frozen=True)
class SelectorConfig:
    """dim: the looped model's state width D; hidden: the MLP's width."""

    dim: int
    hidden: int = 64

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class SelectorHead(nn.Module):
    """Per-cell MLP ``(2D + 5) -> hidden -> 1`` over :func:`selector_features`."""

    def __init__(self, config: SelectorConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(2 * config.dim + EXTRA_FEATURES, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, 1),
        )

    def cell_logits(self, feats: Tensor) -> Tensor:
        """feats: (R, S, 2D + 5) -> (R, S) logit that each cell is right."""
        return self.net(feats).squeeze(-1)

    @staticmethod
    def board_log_prob(cell_logits: Tensor, blank: Tensor) -> Tensor:
        """log P(board right) = sum over blank cells of log sigmoid: (R, S), (R, S) bool -> (R,)
        (0 for a board without blanks)."""
        return (F.logsigmoid(cell_logits) * blank.to(cell_logits.dtype)).sum(-1)

    def forward(
        self, x: Tensor, drive: Tensor, logits: Tensor, x_prev: Tensor, blank: Tensor
    ) -> Tensor:
        """The board score ``log P(board right)``: (R,), from the tensors of
        :func:`selector_features` and the blank mask ``blank: (R, S)`` bool."""
        return self.board_log_prob(
            self.cell_logits(selector_features(x, drive, logits, x_prev)), blank
        )


def board_logit(log_prob: Tensor) -> Tensor:
    """The logit ``log p - log(1 - p)`` of a probability given as ``log p <= 0`` (R,), stably
    (``log(1 - p) = log(-expm1(log p))``; log p is capped at -1e-7, about float32's relative
    resolution near 1, so that ``1 - p`` is never rounded to 0)."""
    lp = log_prob.clamp(max=-1e-7)
    return lp - torch.log(-torch.expm1(lp))


__all__ = ["SelectorConfig", "SelectorData", "SelectorHead", "board_logit", "selector_features"]
