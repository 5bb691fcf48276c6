"""One batched rollout of many restarts: run rows (boards x restarts) to the largest loop budget,
read out at every budget of the grid, score every vote rule on the same trajectories, and halt
rows as a rule (:mod:`sadyn.probes.halting`) says.

The loop is written on the model's primitives (``encode``, ``init_state``, ``drive``,
``step``, ``readout``), the same ones ``LoopedModel.forward`` uses. A halted row is dropped from
the batch (it costs nothing more) and keeps ``X_u``: its answer at every larger budget is the
one at its halting step ``u``; the energy rules count ``X_u`` for each remaining step, the
persistence count keeps growing (the frozen board stays unchanged), the other scores are those
at ``u``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sadyn.errors import SadynError
from sadyn.probes.halting import HaltRule, HaltTracker
from sadyn.probes.voting import ENERGY_RULES, FTLE_WINDOW, vote_scores
from sadyn.sudoku.metrics import board_correct

__all__ = ["RestartRecord", "restart_noise_context", "run_restarts"]

# random odd 40-bit weights: the hash of a decoded board (collisions: about 2^-40 per pair)
_ANSWER_CODE = (
    torch.randint(1, 2**40, (81,), generator=torch.Generator().manual_seed(11), dtype=torch.long)
    | 1
)


@contextlib.contextmanager
def restart_noise_context(model: nn.Module, sigma: float | None) -> Iterator[None]:
    """Within the block, ``model`` (an ItrSA-family model with ``init="cond"``) draws restart
    noise of scale ``sigma`` (its ``init_noise``) instead of its own; None changes nothing."""
    if sigma is None:
        yield
        return
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "init_noise") or getattr(cfg, "init", None) != "cond":
        raise SadynError(
            "restart noise needs a model with the init_noise option and init='cond' "
            f"(got {type(model).__name__} with init={getattr(cfg, 'init', None)!r})"
        )
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise SadynError(f"restart noise must be a finite sigma >= 0, got {sigma}")
    before = cfg.init_noise
    cfg.init_noise = float(sigma)
    try:
        yield
    finally:
        cfg.init_noise = before


@dataclass
class RestartRecord:
    """Per-row results of one chunk at each loop count of the grid (R rows, G counts).

    ok: (R, G) bool board right; cells: (R, G) long blank cells right; loops: (R, G) long loop
    steps the row ran (``min(halting step, T)``); scores: ``{rule: (R, G) float}``; answer:
    (R, G) long, a hash of the decoded board (equal boards, equal hashes).
    """

    ok: Tensor
    cells: Tensor
    loops: Tensor
    scores: dict[str, Tensor]
    answer: Tensor


@torch.no_grad()
def run_restarts(
    model: nn.Module,
    quizzes: Tensor,
    solutions: Tensor,
    grid: Sequence[int],
    *,
    rules: Sequence[str] = (),
    generator: torch.Generator | None = None,
    deterministic: bool = False,
    anchor: Tensor | None = None,
    halt: HaltRule | str | None = None,
    group: int = 1,
    selector: nn.Module | None = None,
) -> RestartRecord:
    """Run rows ``quizzes, solutions: (R, 81)`` to ``max(grid)`` loops and score them.

    grid: sorted loop counts >= 1. rules: vote rules to score (``none`` scores 0). anchor: (R,)
    bool rows that start from the deterministic initial state (the others draw from
    ``generator``; the generator is consumed for every row either way). halt: a halting rule.
    group: consecutive rows that are restarts of one board (``any-valid``, ``any-confident``).
    selector: a :class:`sadyn.nn.selector.SelectorHead` (the ``learned`` rule, confident
    halting).
    """
    run = _Rollout(model, quizzes, solutions, list(grid), tuple(rules), HaltRule.parse(halt))
    run.tracker = (
        HaltTracker(run.halt, run.rows, run.device, group=group) if run.halt.active else None
    )
    if ("learned" in run.rules or run.halt.needs_selector) and selector is None:
        raise SadynError("the learned vote and confident halting need a selector head")
    run.selector = selector
    given = quizzes > 0
    cond = model.encode(quizzes)
    x = model.init_state(cond, given, generator=generator, deterministic=deterministic)
    if anchor is not None and bool(anchor.any()) and not deterministic:
        x0 = model.init_state(cond, given, deterministic=True)
        x = torch.where(anchor[:, None, None], x0, x)
    run.loop(x, cond)
    return RestartRecord(run.ok, run.cells, run.loops, run.scores, run.answer)


class _Rollout:
    """The state of one :func:`run_restarts` call: per-row outputs and running signals."""

    def __init__(self, model, quizzes, solutions, grid, rules, halt):
        self.model, self.quizzes, self.solutions = model, quizzes, solutions
        self.grid, self.rules, self.halt = grid, rules, halt
        self.rows, self.device = quizzes.shape[0], quizzes.device
        self.grid_index = {t: j for j, t in enumerate(grid)}
        self.tracker: HaltTracker | None = None
        self.selector: nn.Module | None = None
        self.need_energy = any(r in ENERGY_RULES or r == "energy-slope" for r in rules)
        self.need_final_drive = (
            any(r in ("energy-sum", "energy-final", "energy-slope", "learned") for r in rules)
            or halt.needs_selector
        )
        self.need_residual = any(r in ("stability", "settling") for r in rules) or (
            halt.residual is not None
        )
        self.need_decode = halt.needs_decode or "persistence" in rules
        self.need_tangent = "ftle" in rules
        # ftle: a unit tangent vector per row and the log growths of its last FTLE_WINDOW steps
        self.tangent: Tensor | None = None
        self.growth = torch.full((self.rows, FTLE_WINDOW), math.nan, device=self.device)
        rows, g, dev = self.rows, len(grid), self.device
        self.ok = torch.zeros(rows, g, dtype=torch.bool, device=dev)
        self.cells = torch.zeros(rows, g, dtype=torch.long, device=dev)
        self.loops = torch.zeros(rows, g, dtype=torch.long, device=dev)
        self.answer = torch.zeros(rows, g, dtype=torch.long, device=dev)
        self.scores = {r: torch.zeros(rows, g, device=dev) for r in rules}
        # energies of X_0..X_{t-1} summed (reference), E(X_{t-1}), E(X_1..X_t) summed
        self.e_cum = torch.zeros(rows, device=dev)
        self.e_prev = torch.full((rows,), math.nan, device=dev)
        self.e_out = torch.zeros(rows, device=dev)
        self.residual = torch.full((rows,), math.inf, device=dev)  # ||X_t - X_{t-1}||
        self.unchanged = torch.zeros(rows, dtype=torch.long, device=dev)
        self.prev_pred = torch.zeros(rows, 81, dtype=torch.long, device=dev)

    def loop(self, x: Tensor, cond: Tensor) -> None:
        """Steps ``t = 0..max(grid)``: observe, halt, record, drop halted rows, step."""
        steps, model = self.grid[-1], self.model
        idx = torch.arange(self.rows, device=self.device)  # rows still running
        xa, ca, x_prev = x, cond, x
        for t in range(steps + 1):
            y, logits, sig = self.observe(t, idx, xa, ca, x_prev)
            stop = self.halt_now(t, idx, logits, sig, xa)
            self.record_step(t, idx, logits, sig, stop, xa)
            if stop is not None and bool(stop.any()):
                keep = ~stop
                idx, xa, ca, x_prev = idx[keep], xa[keep], ca[keep], x_prev[keep]
                y = None if y is None else y[keep]
                sig = {k: v[keep] for k, v in sig.items()}
            if t == steps or idx.numel() == 0:
                break
            if "energy" in sig:
                self.e_cum[idx] += sig["energy"]
                self.e_prev[idx] = sig["energy"]
            assert y is not None
            if self.need_tangent:
                self.push_tangent(t, idx, xa, ca)
            x_new = model.step(xa, ca, drive=y)
            if self.need_residual:
                self.residual[idx] = (x_new - xa).flatten(1).norm(dim=1)
            x_prev, xa = xa, x_new

    def observe(self, t, idx, xa, ca, x_prev) -> tuple[Tensor | None, Tensor | None, dict]:
        """The drive, the readout (when needed at t) and the selectors' signals of the running
        rows at loop count ``t``."""
        model, at_grid = self.model, t in self.grid_index
        y = model.drive(xa, ca) if t < self.grid[-1] or self.need_final_drive else None
        sig: dict[str, Tensor] = {}
        if self.need_energy and y is not None:
            sig["energy"] = -(xa * y).flatten(1).sum(-1)
            sig["energy_prev"] = self.e_prev[idx]
            if t >= 1:
                self.e_out[idx] += sig["energy"]
        want_head = self.selector is not None and (
            self.halt.needs_selector or (at_grid and "learned" in self.rules)
        )
        logits = model.readout(xa) if (at_grid or self.need_decode or want_head) else None
        if "persistence" in self.rules:
            pred = logits.argmax(-1) + 1
            if t > 0:
                same = (pred == self.prev_pred[idx]).all(-1)
                self.unchanged[idx] = torch.where(same, self.unchanged[idx] + 1, 0)
            self.prev_pred[idx] = pred
            sig["unchanged"] = self.unchanged[idx]
        if self.need_residual or self.halt.residual is not None:
            sig["norm"] = xa.flatten(1).norm(dim=1)
        if self.need_tangent:
            # mean over the steps recorded so far in the window (NaN at t = 0: none yet)
            sig["ftle"] = self.growth[idx].nanmean(dim=1)
        if want_head:
            assert self.selector is not None and y is not None
            blank = self.quizzes[idx] == 0
            sig["log_prob"] = self.selector(xa, y, logits, x_prev, blank).float()
        return y, logits, sig

    def push_tangent(self, t: int, idx: Tensor, xa: Tensor, ca: Tensor) -> None:
        """Carry the running rows' tangent vectors through the step at ``X_t`` (one JVP of
        ``model.step``, the math attention kernel, which has forward-mode AD) and record the log
        growth ``log ||J v_r||`` of each unit ``v_r`` in the window's slot ``t mod W``. The
        trajectory itself is the loop's own ``model.step``, so the other rules are unchanged."""
        from sadyn.dynamics import math_attention  # imported here: the loop needs it only for ftle

        if self.tangent is None:  # fixed seed: the same starting tangents for every chunk
            gen = torch.Generator().manual_seed(0)
            v = torch.randn(self.rows, *xa.shape[1:], generator=gen).to(xa)
            self.tangent = v / v.flatten(1).norm(dim=1)[:, None, None]
        with math_attention():
            _, jv = torch.func.jvp(lambda x: self.model.step(x, ca), (xa,), (self.tangent[idx],))
        size = jv.flatten(1).norm(dim=1)
        self.growth[idx, t % FTLE_WINDOW] = size.log().float()
        self.tangent[idx] = jv / size.clamp(min=torch.finfo(jv.dtype).tiny)[:, None, None]

    def halt_now(self, t, idx, logits, sig, xa) -> Tensor | None:
        """(A,) bool rows halting at t (all at the last budget); None without halting."""
        if self.tracker is None:
            return None
        stop = self.tracker.update(
            t,
            idx,
            pred=None if logits is None else logits.argmax(-1) + 1,
            quizzes=self.quizzes[idx],
            residual=self.residual[idx],
            norm=sig.get("norm"),
            log_prob=sig.get("log_prob"),
        )
        return torch.ones_like(stop) if t == self.grid[-1] else stop

    def record_step(self, t, idx, logits, sig, stop, xa) -> None:
        """Record the running rows at a grid budget, and halted rows at every later one."""
        if t in self.grid_index:
            keep = slice(None) if stop is None else ~stop
            if idx[keep].numel():
                sub = {k: v[keep] for k, v in sig.items()}
                self.record(idx[keep], t, logits[keep], sub, [self.grid_index[t]])
        if stop is not None and bool(stop.any()):
            later = [j for j, tj in enumerate(self.grid) if tj >= t]
            if later:
                logits = self.model.readout(xa) if logits is None else logits
                sub = {k: v[stop] for k, v in sig.items()}
                self.record(idx[stop], t, logits[stop], sub, later)

    def record(self, rid: Tensor, t: int, logits: Tensor, sig: dict, js: list[int]) -> None:
        """Answers, correctness and every rule's score of rows ``rid`` read out at ``t``, for
        the budgets ``grid[j]``, ``j in js`` (``grid[j] > t``: the row halted at ``t``)."""
        pred = logits.argmax(-1) + 1
        q, s = self.quizzes[rid], self.solutions[rid]
        right = board_correct(pred, q, s)
        blank_right = ((pred == s) & (q == 0)).sum(-1)
        code = (pred.long() * _ANSWER_CODE.to(pred.device)).sum(-1)
        for j in js:
            self.answer[rid, j], self.ok[rid, j] = code, right
            self.cells[rid, j], self.loops[rid, j] = blank_right, t
        for rule in self.rules:
            if rule == "none":
                continue
            for j in js:
                extra = self.grid[j] - t
                if rule in ENERGY_RULES:
                    sc = _energy_at(
                        rule,
                        extra,
                        self.e_cum[rid],
                        self.e_prev[rid],
                        self.e_out[rid],
                        sig.get("energy"),
                    )
                else:
                    sub = dict(sig)
                    if "unchanged" in sub:  # the frozen board stays unchanged
                        sub["unchanged"] = sub["unchanged"] + extra
                    sc = vote_scores(
                        rule, t, logits=logits, quizzes=q, residual=self.residual[rid], signals=sub
                    )
                self.scores[rule][rid, j] = sc.float()


def _energy_at(
    rule: str, extra: int, e_cum: Tensor, e_prev: Tensor, e_out: Tensor, e_now: Tensor | None
) -> Tensor:
    """An energy rule's score at the budget ``t + extra`` of a row read out at ``t`` (``extra >
    0``: the row halted at t and sits at ``X_t`` for the rest of the budget, so every later
    state is ``X_t``). e_cum: sum E(X_0..X_{t-1}); e_prev: E(X_{t-1}); e_out: sum
    E(X_1..X_t); e_now: E(X_t) (needed when ``extra > 0`` or for energy-final)."""
    if rule == "energy":  # -sum_{s < budget} E(X_s), the reference
        return -e_cum if extra == 0 else -(e_cum + extra * e_now)
    if rule == "energy-last":  # -E(X_{budget - 1})
        return -e_prev if extra == 0 else -e_now
    if rule == "energy-sum":  # -sum_{1 <= s <= budget} E(X_s)
        return -e_out if extra == 0 else -(e_out + extra * e_now)
    assert e_now is not None
    return -e_now  # energy-final: -E(X_budget)
