"""Sudoku accuracy of a looped model against the loop count, with voting over restarts and
adaptive halting.

One batched trajectory per chunk of rows reads out at every requested loop count, so the whole
test-time-scaling curve costs one run up to the largest count. Voting over K initial states
repeats each board K times inside the batch (one forward for boards x votes, no Python loop over
boards) and keeps, per board, loop count and vote rule, the restart the rule prefers
(:mod:`sadyn.probes.voting`); every requested rule is scored on the same trajectories, so rules
compare on equal restarts. Adaptive halting (:mod:`sadyn.probes.halting`) freezes each row when
its rule fires and drops it from the batch, so a halted row costs nothing more.

The loop is written on the model's primitives (``encode``, ``init_state``, ``drive``,
``step``, ``readout``), the same ones ``LoopedModel.forward`` uses, so a plain evaluation
(``votes=1``, no halting, ``fused=False``) gives the numbers of ``forward``. ``fused=True`` runs
the attention through the fused kernel (``sadyn.nn.attention.fused_attention``): same math, no
``(rows, H, 81, 81)`` probabilities materialized, and no Jacobian taken here.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sadyn.errors import SadynError
from sadyn.probes.halting import HaltRule, HaltTracker
from sadyn.probes.voting import ENERGY_RULES, parse_rules, select_votes, vote_scores
from sadyn.progress import progress as progress_bar
from sadyn.sudoku import PuzzleSet
from sadyn.sudoku.metrics import board_correct

DEFAULT_STEPS = (16, 32, 64, 128, 256)

#: test-time restart noise for a model with a deterministic Norm(C) start: the sigma of issue
#: 11's K=64 tables (small-vote, 200 OOD boards, K=16 verifier at T=256: 42 / 47 / 49% for
#: sigma 0.1 / 0.3 / 0.6; results/test-time-compute/)
DEFAULT_RESTART_NOISE = 0.3


def _chunks(n: int, votes: int, rows: int) -> Iterator[tuple[slice, int, int]]:
    """(boards, first vote, last vote + 1) chunks of at most ``rows`` model rows: whole boards
    when K <= rows, otherwise one board at a time with its votes split."""
    if votes <= rows:
        per = rows // votes
        for lo in range(0, n, per):
            yield slice(lo, min(lo + per, n)), 0, votes
    else:
        for b in range(n):
            for v in range(0, votes, rows):
                yield slice(b, b + 1), v, min(v + rows, votes)


#: model rows (boards x restarts) per chunk by device type, measured with
#: ``benchmarks/bench_voting.py`` (CPU: per-row cost grows past a few dozen rows, the
#: ``(rows, H, 81, 81)`` attention probabilities leave the cache); CUDA: not measured here
DEFAULT_ROWS = {"cpu": 64, "cuda": 4096}


def default_rows(device: torch.device | str) -> int:
    """The default chunk size (model rows) for ``device``."""
    return DEFAULT_ROWS.get(torch.device(device).type, 1024)


def fused_available() -> bool:
    """Whether :mod:`sadyn.nn.attention` has the fused-attention switch."""
    from sadyn.nn import attention

    return hasattr(attention, "fused_attention")


def fused_context(enabled: bool) -> contextlib.AbstractContextManager:
    """The fused-attention switch of :mod:`sadyn.nn.attention` when ``enabled`` (an error if
    this build has none), else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    from sadyn.nn import attention

    switch = getattr(attention, "fused_attention", None)
    if switch is None:
        raise SadynError("this build of sadyn.nn.attention has no fused_attention switch")
    return switch()


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
) -> RestartRecord:
    """Run rows ``quizzes, solutions: (R, 81)`` to ``max(grid)`` loops and score them.

    grid: sorted loop counts >= 1. rules: vote rules to score (``none`` scores 0). anchor: (R,)
    bool rows that start from the deterministic initial state (the others draw from
    ``generator``; the generator is consumed for every row either way). halt: a halting rule.
    group: consecutive rows that are restarts of one board (for ``any-valid`` halting).
    """
    halt = HaltRule.parse(halt)
    grid = list(grid)
    steps, g = grid[-1], len(grid)
    rows, device = quizzes.shape[0], quizzes.device
    need_energy = any(r in ENERGY_RULES for r in rules)
    need_final_energy = any(r in ("energy-sum", "energy-final") for r in rules)
    given = quizzes > 0
    cond = model.encode(quizzes)
    x = model.init_state(cond, given, generator=generator, deterministic=deterministic)
    if anchor is not None and bool(anchor.any()) and not deterministic:
        x0 = model.init_state(cond, given, deterministic=True)
        x = torch.where(anchor[:, None, None], x0, x)

    ok = torch.zeros(rows, g, dtype=torch.bool, device=device)
    cells = torch.zeros(rows, g, dtype=torch.long, device=device)
    loops = torch.zeros(rows, g, dtype=torch.long, device=device)
    answer = torch.zeros(rows, g, dtype=torch.long, device=device)
    scores = {r: torch.zeros(rows, g, device=device) for r in rules}
    # energies of X_0..X_{t-1} summed (reference), E(X_{t-1}), E(X_1..X_t) summed, E(X_t)
    e_cum = torch.zeros(rows, device=device)
    e_prev = torch.full((rows,), math.nan, device=device)
    e_out = torch.zeros(rows, device=device)
    residual = torch.full((rows,), math.inf, device=device)  # ||X_t - X_{t-1}||
    tracker = HaltTracker(halt, rows, device, group=group) if halt.active else None
    idx = torch.arange(rows, device=device)  # rows still running
    grid_index = {t: j for j, t in enumerate(grid)}

    def record(rid: Tensor, t: int, logits: Tensor, e_now: Tensor | None, js: list[int]) -> None:
        pred = logits.argmax(-1) + 1
        q, s = quizzes[rid], solutions[rid]
        right = board_correct(pred, q, s)
        blank_right = ((pred == s) & (q == 0)).sum(-1)
        code = (pred.long() * _ANSWER_CODE.to(pred.device)).sum(-1)
        for j in js:
            answer[rid, j] = code
            ok[rid, j] = right
            cells[rid, j] = blank_right
            loops[rid, j] = t
        for rule in rules:
            if rule == "none":
                continue
            if rule in ENERGY_RULES:
                for j in js:
                    scores[rule][rid, j] = _energy_at(
                        rule, grid[j] - t, e_cum[rid], e_prev[rid], e_out[rid], e_now
                    ).float()
                continue
            sc = vote_scores(rule, t, logits=logits, quizzes=q, residual=residual[rid])
            for j in js:
                scores[rule][rid, j] = sc.float()

    need_residual = "stability" in rules or halt.residual is not None
    xa, ca = x, cond  # the running rows' states and inputs (halted rows are dropped)
    for t in range(steps + 1):
        y = None
        if t < steps or (need_energy and need_final_energy):
            y = model.drive(xa, ca)
        e_now = -(xa * y).flatten(1).sum(-1) if (need_energy and y is not None) else None
        if t >= 1 and need_energy and e_now is not None:
            e_out[idx] += e_now
        at_grid = t in grid_index
        logits = model.readout(xa) if (at_grid or (tracker and halt.needs_decode)) else None
        stop = None
        if tracker is not None:
            pred = None if logits is None else logits.argmax(-1) + 1
            stop = tracker.update(
                t,
                idx,
                pred=pred,
                quizzes=quizzes[idx],
                residual=residual[idx],
                norm=xa.flatten(1).norm(dim=1) if halt.residual is not None else None,
            )
            if t == steps:
                stop = torch.ones_like(stop)
        if at_grid:
            assert logits is not None
            keep = idx if stop is None else idx[~stop]
            if keep.numel():
                sel = slice(None) if stop is None else ~stop
                record(keep, t, logits[sel], None if e_now is None else e_now[sel], [grid_index[t]])
        if stop is not None and bool(stop.any()):
            later = [j for j, tj in enumerate(grid) if tj >= t]
            if later:
                if logits is None:
                    logits = model.readout(xa)
                record(idx[stop], t, logits[stop], None if e_now is None else e_now[stop], later)
            running = ~stop
            idx, xa, ca = idx[running], xa[running], ca[running]
            y = None if y is None else y[running]
            e_now = None if e_now is None else e_now[running]
        if t == steps or idx.numel() == 0:
            break
        if need_energy and e_now is not None:
            e_cum[idx] += e_now
            e_prev[idx] = e_now
        assert y is not None
        x_new = model.step(xa, ca, drive=y)
        if need_residual:
            residual[idx] = (x_new - xa).flatten(1).norm(dim=1)
        xa = x_new
    return RestartRecord(ok, cells, loops, scores, answer)


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


@torch.no_grad()
def evaluate(
    model: nn.Module,
    puzzles: PuzzleSet,
    steps: Sequence[int] = DEFAULT_STEPS,
    *,
    votes: int = 1,
    vote: str | Sequence[str] = "none",
    batch_size: int | None = 1000,
    seed: int = 0,
    deterministic: bool = False,
    device: torch.device | str | None = None,
    progress: bool = False,
    halt: HaltRule | str | None = None,
    fused: bool | None = False,
    anchor: bool = False,
    restart_noise: float | None = None,
    vote_grid: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Board and cell accuracy of ``model`` on ``puzzles`` at each loop count in ``steps``.

    votes: K restarts per board (K > 1 needs a ``vote`` rule). vote: one rule, a
        comma-separated list or ``"all"`` (:data:`sadyn.probes.voting.VOTE_RULES`); every listed
        rule is scored on the same restarts and the first is the headline. batch_size: model
        rows (boards x votes) per chunk (None: :func:`default_rows` of the device). The
        restarts draw from one generator seeded with ``seed``: same seed and batch size, same
        numbers. halt: an adaptive halting rule
        (:class:`sadyn.probes.halting.HaltRule` or its text, e.g. ``"stable:4,valid"``); each
        loop count of ``steps`` is then a budget. fused: the fused attention kernel (None: on
        CUDA when available, off on CPU, where the explicit softmax measured faster).
        anchor: restart 0 of every board starts from the deterministic state.
        restart_noise: the ItrSA ``init_noise`` sigma used for this evaluation in place of the
        model's own (test-time restart noise for a model trained without it; ``init="cond"``).
        vote_grid: restart counts ``K' <= votes`` also voted over, each on the first ``K'``
        restarts of every board (the same trajectories), for test-time compute curves; not
        with ``any-valid`` halting, which cuts earlier restarts short when a later one solves.
    Returns a JSON-able dict: ``steps``, ``n``, ``votes``, ``vote``, ``board_accuracy`` and
    ``cell_accuracy`` (lists aligned with ``steps``; of the voted answer when K > 1), with K > 1
    also ``mean_board_accuracy`` (a single restart, averaged over the K), ``oracle_board_accuracy``
    (any restart right) and ``rules`` (``{rule: {board_accuracy, cell_accuracy}}`` for every
    scored rule); ``mean_loops`` (loop steps per row at each budget, = ``steps`` without
    halting), ``halt``, ``by_givens`` (board accuracy per number of givens), ``wall_time_s`` and
    ``boards_per_s``; with ``vote_grid``, ``by_votes``: ``{K': {"oracle_board_accuracy",
    "mean_board_accuracy", "rules": {rule: board accuracy list}}}`` (K' as a string key).
    """
    grid = sorted(set(int(t) for t in steps))
    if not grid or grid[0] < 1:
        raise SadynError(f"loop counts must be positive integers, got {list(steps)}")
    if votes < 1:
        raise SadynError(f"votes must be >= 1, got {votes}")
    rules = parse_rules(vote)
    if votes > 1 and rules == ("none",):
        raise SadynError("votes > 1 needs a vote rule (e.g. energy, confidence, verifier)")
    if votes == 1:
        rules = ("none",)
    if len(puzzles) == 0:
        raise SadynError("no puzzles to evaluate")
    halt_rule = HaltRule.parse(halt)
    ks = sorted({votes, *(int(k) for k in (vote_grid or ()))})
    if ks[0] < 1 or ks[-1] > votes:
        raise SadynError(f"vote_grid counts must lie in 1..votes={votes}, got {list(vote_grid)}")
    if halt_rule.any_valid and len(ks) > 1:
        raise SadynError(
            "vote_grid cannot be combined with any-valid halting (a later restart that solves "
            "the board stops the earlier ones, so a vote over the first K' is not what it says)"
        )
    cfg = getattr(model, "cfg", None)
    if (
        votes > 1
        and restart_noise is None
        and not deterministic
        and getattr(cfg, "init", None) == "cond"
        and getattr(cfg, "init_noise", None) == 0
    ):
        warnings.warn(
            "votes > 1 on a model whose initial state is deterministic (init='cond', no "
            "init_noise): every restart is the same run; pass restart_noise (--restart-noise)",
            stacklevel=2,
        )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if batch_size is None:
        batch_size = default_rows(device)
    if fused is None:
        fused = device.type == "cuda" and fused_available()

    quizzes, solutions = (t.to(device) for t in puzzles.to_torch())
    n, g = len(quizzes), len(grid)
    gen = torch.Generator(device=device).manual_seed(seed)
    # per restart count K' and rule: the best score so far, its board right, its cells right
    best = {
        (kk, r): (
            torch.full((n, g), -math.inf, device=device),
            torch.zeros(n, g, dtype=torch.bool, device=device),
            torch.zeros(n, g, dtype=torch.long, device=device),
        )
        for kk in ks
        for r in rules
    }
    right = {kk: torch.zeros(n, g, dtype=torch.long, device=device) for kk in ks}  # solving
    distinct = torch.zeros(g, dtype=torch.float64, device=device)  # distinct answers, summed
    distinct_boards = 0
    loop_sum = torch.zeros(g, dtype=torch.float64, device=device)
    blank = quizzes == 0

    was_training = model.training
    model.eval()
    start = time.perf_counter()
    chunks = list(_chunks(n, votes, max(batch_size, 1)))
    with fused_context(fused), restart_noise_context(model, restart_noise):
        for boards, v0, v1 in progress_bar(chunks, desc="eval", unit="batch", enable=progress):
            k = v1 - v0
            q = quizzes[boards].repeat_interleave(k, 0)  # (b*k, S): board-major, votes inner
            s = solutions[boards].repeat_interleave(k, 0)
            b = q.shape[0] // k
            first = None
            if anchor and v0 == 0:
                first = (torch.arange(b * k, device=device) % k) == 0
            rec = run_restarts(
                model,
                q,
                s,
                grid,
                rules=rules,
                generator=gen,
                deterministic=deterministic,
                anchor=first,
                halt=halt_rule,
                group=k,
            )
            if k == votes:  # all restarts of these boards in this chunk
                codes = rec.answer.view(b, k, g).sort(1).values
                distinct += ((codes[:, 1:] != codes[:, :-1]).sum(1) + 1).sum(0).double()
                distinct_boards += b
            loop_sum += rec.loops.sum(0).double()
            rows = torch.arange(b, device=device)[:, None]
            cols = torch.arange(g, device=device)[None, :]
            ok, cells = rec.ok.view(b, k, g), rec.cells.view(b, k, g)
            for kk in ks:
                m = min(v1, kk) - v0  # this chunk's restarts among the first kk
                if m <= 0:
                    continue
                right[kk][boards] += ok[:, :m].sum(1)
                ok_m, cells_m = ok[:, :m].transpose(1, 2), cells[:, :m].transpose(1, 2)  # (b, g, m)
                for rule in rules:
                    score = (
                        rec.scores[rule].view(b, k, g)[:, :m].transpose(1, 2)
                        if rule != "none"
                        else torch.zeros(b, g, m, device=device)
                    )
                    pick = select_votes(score.reshape(b * g, m)).view(b, g)
                    top = score[rows, cols, pick]
                    b_score, b_ok, b_cells = best[kk, rule]
                    better = top > b_score[boards]  # strict: earlier restarts win ties
                    b_score[boards] = torch.where(better, top, b_score[boards])
                    b_ok[boards] = torch.where(better, ok_m[rows, cols, pick], b_ok[boards])
                    b_cells[boards] = torch.where(
                        better, cells_m[rows, cols, pick], b_cells[boards]
                    )
    model.train(was_training)
    wall = time.perf_counter() - start

    head = rules[0]
    best_board, best_cells = best[votes, head][1], best[votes, head][2]
    n_blank = blank.sum().clamp(min=1)
    result: dict[str, Any] = {
        "steps": grid,
        "n": n,
        "votes": votes,
        "vote": head,
        "seed": seed,
        "board_accuracy": best_board.float().mean(0).tolist(),
        "cell_accuracy": (best_cells.sum(0).float() / n_blank).tolist(),
    }
    if votes > 1:
        result["mean_board_accuracy"] = (right[votes].float() / votes).mean(0).tolist()
        result["oracle_board_accuracy"] = (right[votes] > 0).float().mean(0).tolist()
        if distinct_boards:  # mean number of different decoded boards among the K restarts
            result["distinct_answers"] = (distinct / distinct_boards).tolist()
        result["rules"] = {
            r: {
                "board_accuracy": best[votes, r][1].float().mean(0).tolist(),
                "cell_accuracy": (best[votes, r][2].sum(0).float() / n_blank).tolist(),
            }
            for r in rules
        }
    if len(ks) > 1:
        result["by_votes"] = {
            str(kk): {
                "oracle_board_accuracy": (right[kk] > 0).float().mean(0).tolist(),
                "mean_board_accuracy": (right[kk].float() / kk).mean(0).tolist(),
                "rules": {r: best[kk, r][1].float().mean(0).tolist() for r in rules},
            }
            for kk in ks
        }
    result["halt"] = str(halt_rule)
    result["mean_loops"] = (loop_sum / (n * votes)).tolist()
    result["anchor"] = anchor
    result["restart_noise"] = restart_noise
    result["batch_size"] = batch_size
    result["fused"] = fused
    givens = (~blank).sum(1)
    levels = sorted(set(givens.tolist()))
    result["by_givens"] = {
        "givens": levels,
        "count": [int((givens == v).sum()) for v in levels],
        "board_accuracy": [best_board[givens == v].float().mean(0).tolist() for v in levels],
    }
    result["wall_time_s"] = wall
    result["boards_per_s"] = n / wall if wall > 0 else math.inf
    return result


def accuracy_figure(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A ``line`` figure spec (results-file format): board accuracy (%) vs loop count, one
    series per dataset name in ``results``."""
    series = []
    for name, res in results.items():
        series.append(
            {
                "label": f"{name} board",
                "x": res["steps"],
                "y": [100 * a for a in res["board_accuracy"]],
                "marker": "o",
            }
        )
        if "oracle_board_accuracy" in res:
            series.append(
                {
                    "label": f"{name} oracle (any of {res['votes']})",
                    "x": res["steps"],
                    "y": [100 * a for a in res["oracle_board_accuracy"]],
                    "linestyle": "--",
                }
            )
    return {
        "kind": "line",
        "series": series,
        "xlabel": "loop count T",
        "xscale": "log",
        "ylabel": "board accuracy (%)",
        "title": "accuracy vs loop count",
    }


def split_by_votes(result: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """An :func:`evaluate` result with ``by_votes`` -> ``{K': result-like dict}`` (``steps``,
    ``vote``, ``board_accuracy`` of the headline rule, ``rules``, the oracle and the mean), the
    form :func:`compute_figure` draws."""
    if "by_votes" not in result:
        return {int(result["votes"]): result}
    out = {}
    for key, row in result["by_votes"].items():
        out[int(key)] = {
            "steps": result["steps"],
            "votes": int(key),
            "vote": result["vote"],
            "board_accuracy": row["rules"][result["vote"]],
            "rules": {r: {"board_accuracy": acc} for r, acc in row["rules"].items()},
            "oracle_board_accuracy": row["oracle_board_accuracy"],
            "mean_board_accuracy": row["mean_board_accuracy"],
        }
    return out


def compute_figure(
    results: dict[int, dict[str, Any]], *, rule: str | None = None, title: str | None = None
) -> dict[str, Any]:
    """A ``line`` figure spec of test-time compute: board accuracy (%) against the loop budget
    T, one series per K (``results``: ``{K: evaluate(...) result}`` on one data set), the
    voted accuracy of ``rule`` (default: each result's headline rule) solid and the oracle
    dashed."""
    series = []
    for i, k in enumerate(sorted(results)):
        res = results[k]
        name = rule or res["vote"]
        acc = res.get("rules", {}).get(name, {}).get("board_accuracy", res["board_accuracy"])
        label = "single run" if k == 1 else f"K={k} {name}"
        color = f"C{i}"  # one colour per K: the vote solid, its oracle dashed
        series.append(
            {
                "label": label,
                "x": res["steps"],
                "y": [100 * a for a in acc],
                "color": color,
                "marker": "o",
            }
        )
        if "oracle_board_accuracy" in res and k > 1:
            series.append(
                {
                    "label": f"K={k} oracle",
                    "x": res["steps"],
                    "y": [100 * a for a in res["oracle_board_accuracy"]],
                    "linestyle": "--",
                    "color": color,
                }
            )
    return {
        "kind": "line",
        "series": series,
        "xlabel": "loop budget T",
        "xscale": "log",
        "ylabel": "board accuracy (%)",
        "title": title or "test-time compute: K restarts x T loops",
    }


def plot_accuracy(
    results: dict[str, dict[str, Any]], out_png: str | Path, *, title: str | None = None
) -> Path:
    """Draw :func:`accuracy_figure` to ``out_png`` (matplotlib, Agg)."""
    return plot_line_spec(accuracy_figure(results), out_png, title=title)


def plot_line_spec(spec: dict[str, Any], out_png: str | Path, *, title: str | None = None) -> Path:
    """Draw a ``line`` figure spec (:func:`accuracy_figure`, :func:`compute_figure`) to
    ``out_png`` (matplotlib, Agg; log2 x axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for s in spec["series"]:
        ax.plot(
            s["x"],
            s["y"],
            marker=s.get("marker"),
            linestyle=s.get("linestyle", "-"),
            color=s.get("color"),
            label=s["label"],
        )
    ax.set_xscale("log", base=2)
    ax.set(xlabel=spec["xlabel"], ylabel=spec["ylabel"], title=title or spec["title"])
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per (dataset, loop count); with voting, the single-restart
    mean, the oracle and every scored rule; with halting, the mean loop count."""
    first = next(iter(results.values()))
    voted = any("oracle_board_accuracy" in r for r in results.values())
    halted = any(r.get("halt", "none") != "none" for r in results.values())
    extra = [r for r in first.get("rules", {}) if r != first.get("vote")] if voted else []
    lines = [f"{'data':<12} {'T':>5} {'board %':>8} {'cell %':>8}"]
    distinct = voted and "distinct_answers" in first
    if voted:
        lines[0] += f" {'single %':>9} {'oracle %':>9}" + "".join(f" {r:>13}" for r in extra)
    if distinct:
        lines[0] += f" {'distinct':>8}"
    if halted:
        lines[0] += f" {'loops':>7}"
    for name, res in results.items():
        for j, t in enumerate(res["steps"]):
            row = (
                f"{name:<12} {t:>5} {100 * res['board_accuracy'][j]:>8.2f} "
                f"{100 * res['cell_accuracy'][j]:>8.2f}"
            )
            if "oracle_board_accuracy" in res:
                row += (
                    f" {100 * res['mean_board_accuracy'][j]:>9.2f}"
                    f" {100 * res['oracle_board_accuracy'][j]:>9.2f}"
                )
                for r in extra:
                    acc = res.get("rules", {}).get(r, {}).get("board_accuracy")
                    row += f" {100 * acc[j]:>13.2f}" if acc else f" {'-':>13}"
            if distinct:
                d = res.get("distinct_answers")
                row += f" {d[j]:>8.2f}" if d else f" {'-':>8}"
            if halted:
                row += f" {res['mean_loops'][j]:>7.2f}"
            lines.append(row)
    return "\n".join(lines)
