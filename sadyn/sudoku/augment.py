"""Symmetry augmentation of Sudoku boards, batched on torch tensors.

Every Sudoku has 9! x 2 x 6^8 equivalents that keep it valid, its solution unique and its
difficulty the same: a relabelling of the digits 1..9, a permutation of the three bands (row
triples) and of the three rows inside each band, the same for stacks and columns, and a
transposition. :func:`random_symmetries` draws one per board (from a generator, so a seeded
stream gives the same draws on every run); :func:`apply_symmetries` applies them to
quizzes and solutions alike, so an augmented quiz keeps its augmented solution.

A symmetry is a pair ``(cells, digits)``: ``cells: (B, 81)`` long, the source cell of each
target cell (``new[b, i] = old[b, cells[b, i]]``), and ``digits: (B, 10)`` long, the new label
of each old digit with ``digits[:, 0] == 0`` (blanks stay blank).

Kinds (:data:`AUGMENT_KINDS`): ``"none"``, ``"digits"`` (relabelling only), ``"geometry"``
(band/stack/row/column permutations and transposition only), ``"full"`` (both).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sadyn.errors import SadynError, ShapeError

AUGMENT_KINDS = ("none", "digits", "geometry", "full")
CELLS = 81


def _line_perms(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """(n, 9) long: a random permutation of 0..8 that moves whole bands and rows within bands:
    ``line[b, 3*i + j] = 3 * band[b, i] + inner[b, i, j]``."""
    bands = torch.rand(n, 3, generator=generator, device=device).argsort(-1)  # (n, 3)
    inner = torch.rand(n, 3, 3, generator=generator, device=device).argsort(-1)  # (n, 3, 3)
    return (3 * bands[:, :, None] + inner).reshape(n, 9)


def identity_symmetries(n: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """``n`` copies of the identity: cells (n, 81), digits (n, 10)."""
    cells = torch.arange(CELLS, device=device).expand(n, CELLS).clone()
    digits = torch.arange(10, device=device).expand(n, 10).clone()
    return cells, digits


def random_symmetries(
    n: int,
    *,
    kind: str = "full",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """``n`` random symmetries of the given ``kind``: ``(cells (n, 81), digits (n, 10))`` long.

    Draws come from ``generator`` (on its own device; the result is moved to ``device``,
    default the generator's). Every element of the group has the same probability under
    ``"full"``: uniform band/stack orders, uniform orders inside them, a fair coin for the
    transposition, a uniform relabelling.
    """
    if kind not in AUGMENT_KINDS:
        raise SadynError(f"unknown augmentation kind {kind!r} (choose from {AUGMENT_KINDS})")
    gdev = torch.device("cpu") if generator is None else generator.device
    out_dev = gdev if device is None else torch.device(device)
    cells, digits = identity_symmetries(n, gdev)
    if kind in ("geometry", "full"):
        rows = _line_perms(n, generator, gdev)  # (n, 9)
        cols = _line_perms(n, generator, gdev)
        flip = torch.rand(n, generator=generator, device=gdev) < 0.5  # (n,)
        r = rows[:, :, None].expand(n, 9, 9)  # source row of target (r, c)
        c = cols[:, None, :].expand(n, 9, 9)  # source column of target (r, c)
        src = torch.where(flip[:, None, None], c * 9 + r, r * 9 + c)  # transposed source
        cells = src.reshape(n, CELLS)
    if kind in ("digits", "full"):
        relabel = torch.rand(n, 9, generator=generator, device=gdev).argsort(-1) + 1
        digits = torch.cat((torch.zeros(n, 1, dtype=torch.long, device=gdev), relabel), 1)
    return cells.to(out_dev), digits.to(out_dev)


def apply_symmetries(boards: Tensor, cells: Tensor, digits: Tensor) -> Tensor:
    """``boards: (B, 81)`` integer digits 0..9 -> the transformed boards ``(B, 81)`` (same dtype):
    ``new[b, i] = digits[b, boards[b, cells[b, i]]]``."""
    if boards.ndim != 2 or boards.shape[1] != CELLS:
        raise ShapeError(f"boards must have shape (B, 81), got {tuple(boards.shape)}")
    if cells.shape != boards.shape or digits.shape != (boards.shape[0], 10):
        raise ShapeError(
            f"symmetries must have shapes {tuple(boards.shape)} and ({boards.shape[0]}, 10), "
            f"got {tuple(cells.shape)} and {tuple(digits.shape)}"
        )
    moved = boards.long().gather(1, cells.to(boards.device))
    return digits.to(boards.device).gather(1, moved).to(boards.dtype)


def invert_symmetries(cells: Tensor, digits: Tensor) -> tuple[Tensor, Tensor]:
    """The inverse symmetries: ``apply(apply(x, s), invert(s)) == x``. Shapes as the inputs."""
    return cells.argsort(-1), digits.argsort(-1)


def augment(
    quizzes: Tensor,
    solutions: Tensor,
    *,
    kind: str = "full",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """One fresh random symmetry per board, applied to ``quizzes`` and ``solutions`` (both
    ``(B, 81)``, 0 = blank in quizzes); returns the transformed pair, on their device."""
    if quizzes.shape != solutions.shape:
        raise ShapeError(
            f"quizzes {tuple(quizzes.shape)} and solutions {tuple(solutions.shape)} differ"
        )
    if kind == "none":
        return quizzes, solutions
    cells, digits = random_symmetries(
        quizzes.shape[0], kind=kind, generator=generator, device=quizzes.device
    )
    return apply_symmetries(quizzes, cells, digits), apply_symmetries(solutions, cells, digits)


__all__ = [
    "AUGMENT_KINDS",
    "apply_symmetries",
    "augment",
    "identity_symmetries",
    "invert_symmetries",
    "random_symmetries",
]
