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
from sadyn.probes.halting import HaltRule
from sadyn.probes.restarts import RestartRecord, restart_noise_context, run_restarts
from sadyn.probes.selectors import auroc
from sadyn.probes.voting import parse_rules, select_votes
from sadyn.progress import progress as progress_bar
from sadyn.sudoku import PuzzleSet

DEFAULT_STEPS = (16, 32, 64, 128, 256)

#: test-time restart noise for a model with a deterministic Norm(C) start: the sigma of the
#: K=64 tables of results/test-time-compute/ (small-vote, 200 OOD boards, K=16 verifier at
#: T=256: 42 / 47 / 49% for sigma 0.1 / 0.3 / 0.6)
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


@dataclass(frozen=True)
class VoteSettings:
    """How an evaluation spends test-time compute: restarts, the vote, halting, the noise.

    votes: K restarts per board (K > 1 needs a ``vote`` rule). vote: one rule, a
    comma-separated list or ``"all"`` (:data:`sadyn.probes.voting.VOTE_RULES`); every listed
    rule is scored on the same restarts and the first is the headline. halt: an adaptive
    halting rule (:class:`sadyn.probes.halting.HaltRule` or its text, e.g. ``"stable:4,valid"``);
    each loop count is then a budget. anchor: restart 0 of every board starts from the
    deterministic state. restart_noise: the ItrSA ``init_noise`` sigma used in place of the
    model's own (``init="cond"``). deterministic: every restart from the deterministic state.
    vote_grid: restart counts ``K' <= votes`` also voted over, each on the first ``K'`` restarts
    of every board (the same trajectories); not with board-level halting (``any-valid``,
    ``any-confident``), which cuts earlier restarts short when a later one fires. selector: a
    :class:`sadyn.nn.selector.SelectorHead` for the ``learned`` vote and confident halting.
    """

    votes: int = 1
    vote: str | Sequence[str] = "none"
    halt: HaltRule | str | None = None
    anchor: bool = False
    restart_noise: float | None = None
    deterministic: bool = False
    vote_grid: Sequence[int] | None = None
    selector: nn.Module | None = None

    def checked(self) -> tuple[tuple[str, ...], HaltRule, list[int]]:
        """The validated (rules, halting rule, sorted restart counts of the grid)."""
        if self.votes < 1:
            raise SadynError(f"votes must be >= 1, got {self.votes}")
        rules = parse_rules(self.vote)
        if self.votes > 1 and rules == ("none",):
            raise SadynError("votes > 1 needs a vote rule (e.g. energy, confidence, verifier)")
        if self.votes == 1:
            rules = ("none",)
        halt = HaltRule.parse(self.halt)
        ks = sorted({self.votes, *(int(k) for k in (self.vote_grid or ()))})
        if ks[0] < 1 or ks[-1] > self.votes:
            raise SadynError(
                f"vote_grid counts must lie in 1..votes={self.votes}, got {list(self.vote_grid)}"
            )
        if halt.board_level and len(ks) > 1:
            raise SadynError(
                "vote_grid cannot be combined with board-level halting (any-valid, "
                "any-confident: a later restart that fires stops the earlier ones, so a vote "
                "over the first K' is not what it says)"
            )
        if ("learned" in rules or halt.needs_selector) and self.selector is None:
            raise SadynError("the learned vote and confident halting need a selector head")
        return rules, halt, ks


def _warn_deterministic(model: nn.Module, settings: VoteSettings) -> None:
    cfg = getattr(model, "cfg", None)
    if (
        settings.votes > 1
        and settings.restart_noise is None
        and not settings.deterministic
        and getattr(cfg, "init", None) == "cond"
        and getattr(cfg, "init_noise", None) == 0
    ):
        warnings.warn(
            "votes > 1 on a model whose initial state is deterministic (init='cond', no "
            "init_noise): every restart is the same run; pass restart_noise (--restart-noise)",
            stacklevel=3,
        )


class _Tally:
    """Per restart count K' and rule, the best score so far per board and its correctness;
    solving restarts, distinct answers, loops run, and every row's scores (for the AUROC)."""

    def __init__(self, n: int, g: int, votes: int, ks: list[int], rules, device):
        self.n, self.g, self.votes, self.ks, self.rules = n, g, votes, ks, rules
        self.best = {
            (kk, r): (
                torch.full((n, g), -math.inf, device=device),
                torch.zeros(n, g, dtype=torch.bool, device=device),
                torch.zeros(n, g, dtype=torch.long, device=device),
            )
            for kk in ks
            for r in rules
        }
        self.right = {kk: torch.zeros(n, g, dtype=torch.long, device=device) for kk in ks}
        self.loop_sum = {kk: torch.zeros(g, dtype=torch.float64, device=device) for kk in ks}
        self.distinct = torch.zeros(g, dtype=torch.float64, device=device)
        self.distinct_boards = 0
        self.row_scores: dict[str, list[Tensor]] = {r: [] for r in rules if r != "none"}
        self.row_ok: list[Tensor] = []

    def add(self, rec: RestartRecord, boards: slice, v0: int, v1: int) -> None:
        """Fold one chunk's record (boards x restarts ``v0..v1-1``) into the tallies."""
        k, g = v1 - v0, self.g
        b = rec.ok.shape[0] // k
        if k == self.votes:  # all restarts of these boards in this chunk
            codes = rec.answer.view(b, k, g).sort(1).values
            self.distinct += ((codes[:, 1:] != codes[:, :-1]).sum(1) + 1).sum(0).double()
            self.distinct_boards += b
        self.row_ok.append(rec.ok)
        for r in self.row_scores:
            self.row_scores[r].append(rec.scores[r])
        ok, cells = rec.ok.view(b, k, g), rec.cells.view(b, k, g)
        for kk in self.ks:
            m = min(v1, kk) - v0  # this chunk's restarts among the first kk
            if m <= 0:
                continue
            self.right[kk][boards] += ok[:, :m].sum(1)
            self.loop_sum[kk] += rec.loops.view(b, k, g)[:, :m].sum((0, 1)).double()
            for rule in self.rules:
                self._vote(kk, rule, rec, boards, b, k, m, ok, cells)

    def _vote(self, kk, rule, rec, boards, b, k, m, ok, cells) -> None:
        """Keep, per board and budget, the better of the best so far and this chunk's pick."""
        g, dev = self.g, ok.device
        rows = torch.arange(b, device=dev)[:, None]
        cols = torch.arange(g, device=dev)[None, :]
        ok_m, cells_m = ok[:, :m].transpose(1, 2), cells[:, :m].transpose(1, 2)  # (b, g, m)
        score = (
            rec.scores[rule].view(b, k, g)[:, :m].transpose(1, 2)
            if rule != "none"
            else torch.zeros(b, g, m, device=dev)
        )
        pick = select_votes(score.reshape(b * g, m)).view(b, g)
        top = score[rows, cols, pick]
        b_score, b_ok, b_cells = self.best[kk, rule]
        better = top > b_score[boards]  # strict: earlier restarts win ties
        b_score[boards] = torch.where(better, top, b_score[boards])
        b_ok[boards] = torch.where(better, ok_m[rows, cols, pick], b_ok[boards])
        b_cells[boards] = torch.where(better, cells_m[rows, cols, pick], b_cells[boards])

    def auroc(self) -> dict[str, list[float]]:
        """Per rule and budget, the AUROC of every restart's score against its correctness."""
        if not self.row_ok:
            return {}
        ok = torch.cat(self.row_ok)
        out = {}
        for r, parts in self.row_scores.items():
            sc = torch.cat(parts)
            out[r] = [auroc(sc[:, j], ok[:, j]) for j in range(self.g)]
        return out

    def summary(self, grid, blank: Tensor) -> dict[str, Any]:
        """The accuracy part of :func:`evaluate`'s result."""
        n, votes, head = self.n, self.votes, self.rules[0]
        best_board, best_cells = self.best[votes, head][1], self.best[votes, head][2]
        n_blank = blank.sum().clamp(min=1)
        out: dict[str, Any] = {
            "board_accuracy": best_board.float().mean(0).tolist(),
            "cell_accuracy": (best_cells.sum(0).float() / n_blank).tolist(),
        }
        if votes > 1:
            out["mean_board_accuracy"] = (self.right[votes].float() / votes).mean(0).tolist()
            out["oracle_board_accuracy"] = (self.right[votes] > 0).float().mean(0).tolist()
            if self.distinct_boards:  # mean number of different decoded boards among K
                out["distinct_answers"] = (self.distinct / self.distinct_boards).tolist()
            out["rules"] = {
                r: {
                    "board_accuracy": self.best[votes, r][1].float().mean(0).tolist(),
                    "cell_accuracy": (self.best[votes, r][2].sum(0).float() / n_blank).tolist(),
                }
                for r in self.rules
            }
            out["auroc"] = self.auroc()
        if len(self.ks) > 1:
            out["by_votes"] = {
                str(kk): {
                    "oracle_board_accuracy": (self.right[kk] > 0).float().mean(0).tolist(),
                    "mean_board_accuracy": (self.right[kk].float() / kk).mean(0).tolist(),
                    "mean_loops": (self.loop_sum[kk] / (n * kk)).tolist(),
                    "rules": {r: self.best[kk, r][1].float().mean(0).tolist() for r in self.rules},
                }
                for kk in self.ks
            }
        out["mean_loops"] = (self.loop_sum[votes] / (n * votes)).tolist()
        givens = (~blank).sum(1)
        levels = sorted(set(givens.tolist()))
        out["by_givens"] = {
            "givens": levels,
            "count": [int((givens == v).sum()) for v in levels],
            "board_accuracy": [best_board[givens == v].float().mean(0).tolist() for v in levels],
        }
        return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    puzzles: PuzzleSet,
    steps: Sequence[int] = DEFAULT_STEPS,
    settings: VoteSettings | None = None,
    *,
    batch_size: int | None = 1000,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
    fused: bool | None = False,
    **vote_settings: Any,
) -> dict[str, Any]:
    """Board and cell accuracy of ``model`` on ``puzzles`` at each loop count in ``steps``.

    settings: the restarts, vote, halting and noise (:class:`VoteSettings`); its fields may
    also be passed as keywords (``votes=16, vote="confidence", halt="valid"``), not both.
    batch_size: model rows (boards x votes) per chunk (None: :func:`default_rows` of the
    device). The restarts draw from one generator seeded with ``seed``: same seed and batch
    size, same numbers. fused: the fused attention kernel (None: on CUDA when available, off
    on CPU, where the explicit softmax measured faster).

    Returns a JSON-able dict: ``steps``, ``n``, ``votes``, ``vote``, ``board_accuracy`` and
    ``cell_accuracy`` (lists aligned with ``steps``; of the voted answer when K > 1), with K > 1
    also ``mean_board_accuracy`` (a single restart, averaged over the K), ``oracle_board_accuracy``
    (any restart right), ``rules`` (``{rule: {board_accuracy, cell_accuracy}}`` for every
    scored rule) and ``auroc`` (``{rule: [AUROC of every restart's score against its
    correctness, per budget]}``); ``mean_loops`` (loop steps per row at each budget, = ``steps``
    without halting), ``halt``, ``by_givens`` (board accuracy per number of givens),
    ``wall_time_s``, ``cpu_time_s`` and ``boards_per_s``; with ``vote_grid``, ``by_votes``:
    ``{K': {"oracle_board_accuracy", "mean_board_accuracy", "mean_loops", "rules": {rule:
    board accuracy list}}}`` (K' as a string key).
    """
    if settings is None:
        settings = VoteSettings(**vote_settings)
    elif vote_settings:
        raise SadynError(f"pass settings or {sorted(vote_settings)}, not both")
    grid = sorted(set(int(t) for t in steps))
    if not grid or grid[0] < 1:
        raise SadynError(f"loop counts must be positive integers, got {list(steps)}")
    rules, halt, ks = settings.checked()
    if len(puzzles) == 0:
        raise SadynError("no puzzles to evaluate")
    _warn_deterministic(model, settings)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    batch_size = default_rows(device) if batch_size is None else batch_size
    if fused is None:
        fused = device.type == "cuda" and fused_available()
    quizzes, solutions = (t.to(device) for t in puzzles.to_torch())
    votes, n = settings.votes, len(quizzes)
    tally = _Tally(n, len(grid), votes, ks, rules, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    start, cpu0 = time.perf_counter(), time.process_time()
    chunks = list(_chunks(n, votes, max(batch_size, 1)))
    with fused_context(fused), restart_noise_context(model, settings.restart_noise):
        for boards, v0, v1 in progress_bar(chunks, desc="eval", unit="batch", enable=progress):
            k = v1 - v0
            q = quizzes[boards].repeat_interleave(k, 0)  # (b*k, S): board-major, votes inner
            s = solutions[boards].repeat_interleave(k, 0)
            first = None
            if settings.anchor and v0 == 0:
                first = (torch.arange(q.shape[0], device=device) % k) == 0
            rec = run_restarts(
                model,
                q,
                s,
                grid,
                rules=rules,
                generator=gen,
                deterministic=settings.deterministic,
                anchor=first,
                halt=halt,
                group=k,
                selector=settings.selector,
            )
            tally.add(rec, boards, v0, v1)
    model.train(was_training)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    result: dict[str, Any] = {"steps": grid, "n": n, "votes": votes, "vote": rules[0], "seed": seed}
    result.update(tally.summary(grid, quizzes == 0))
    result.update(
        halt=str(halt),
        anchor=settings.anchor,
        restart_noise=settings.restart_noise,
        batch_size=batch_size,
        fused=fused,
        wall_time_s=wall,
        cpu_time_s=cpu,
        boards_per_s=n / wall if wall > 0 else math.inf,
    )
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
