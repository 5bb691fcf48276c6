"""Accuracy of a loaded model against the loop count on named puzzle sets, written as a results
file: ``sadyn eval``'s pipeline (the exporter of pretrained weights runs it too).

:func:`run_evaluation` takes a loaded model and an :class:`EvalSettings`, in these steps:

1. sets: draws each set of ``settings.data`` (``id``, ``ood`` or puzzle files, subset to ``n``
   boards by ``data_seed``) and the 17-clue pool behind each RRN-style one (:func:`load_sets`);
2. config: the settings the results file records (:func:`evaluation_config`);
3. output path: ``settings.out``, or a name made of everything that changes the numbers
   (:func:`output_path`, :func:`output_name`), e.g.
   ``RUN/eval/eval_id+ood-royle_n1000_K1_T16-32-64-128-256.json``;
4. overwrite check: a file holding an evaluation with other settings is not replaced unless
   ``settings.force`` (:func:`check_overwrite`);
5. evaluate: :func:`sadyn.probes.accuracy.evaluate` on each set (one run per batch read out at
   every T, optional voting over K restarts and halting; :func:`evaluate_sets`);
6. write: the results JSON (``sadyn.results`` schema) and a PNG of board accuracy against T
   beside it. :func:`summary_text` is the terminal's summary.

Loading the model (``sadyn.pretrained.resolve_model``), a selector head for the learned vote or
confident halting (``sadyn.pretrained.selector.load_selector``) and the state of a training
run folder (``sadyn.pretrained.run_status``) belong to the layers that know those files; the
caller passes what they return.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sadyn.errors import SadynError
from sadyn.paths import portable_path, portable_record
from sadyn.probes.accuracy import (
    DEFAULT_STEPS,
    accuracy_figure,
    evaluate,
    format_table,
    plot_accuracy,
)
from sadyn.probes.halting import HaltRule
from sadyn.results import read_results, write_results
from sadyn.sudoku import resolve_dataset
from sadyn.sudoku.datasets import pool_fields, pool_label, pool_record, with_pool_tag
from sadyn.sudoku.rrn import ROYLE_SHA256

#: config fields that change the numbers of an evaluation: an existing results file with other
#: values for any of them is not overwritten without ``force``
NUMBER_FIELDS = (
    "checkpoint", "step", "weights", "data", "pools", "steps", "votes", "vote", "n",
    "data_seed", "seed", "deterministic", "halt", "anchor", "restart_noise",
)  # fmt: skip


@dataclass
class EvalSettings:
    """The settings of one evaluation (``sadyn eval``'s options of the same names, in their
    order). ``checkpoint`` names the model (the default selector head is its own); ``which``,
    ``device`` and ``threads`` are how the caller loads and runs it."""

    checkpoint: str | None = None
    data: str = "id,ood"
    steps: list[int] = field(default_factory=lambda: list(DEFAULT_STEPS))
    votes: int = 1
    vote: str = "energy"
    halt: str = "none"
    selector: str | None = None
    anchor: bool = False
    restart_noise: float | None = None
    attention: str = "auto"
    n: int | None = None
    seed: int = 0
    data_seed: int = 0
    batch_size: int | None = None
    which: str = "latest"
    weights: str = "ema"
    deterministic: bool = False
    out: str | None = None
    force: bool = False
    device: str = "auto"
    threads: int | None = None
    quiet: bool = False

    def check(self) -> None:
        if self.votes < 1:
            raise SadynError(f"--votes must be >= 1, got {self.votes}")
        if self.n is not None and self.n < 1:
            raise SadynError(f"--n must be >= 1, got {self.n}")

    def vote_rule(self) -> str:
        """The vote rules scored: ``none`` for a single run (K = 1)."""
        return self.vote if self.votes > 1 else "none"

    def halt_rule(self) -> HaltRule:
        return HaltRule.parse(self.halt)

    def needs_selector(self) -> bool:
        """Whether the vote (``learned``) or the halting (``confident:P``) needs a selector
        head: ``selector``, else the model's own (``checkpoint``)."""
        return "learned" in self.vote_rule().split(",") or self.halt_rule().needs_selector

    def data_specs(self) -> list[str]:
        return [s for s in self.data.split(",") if s]


@dataclass
class Evaluation:
    """What :func:`run_evaluation` wrote: the results file, its figure, the per-set results
    (``evaluate``'s dicts with ``source``, ``pool_sha256``, ``pool`` and ``data_seed``), the
    pool of each set (:func:`sadyn.sudoku.datasets.pool_record`) and the recorded config."""

    out: Path
    png: Path
    results: dict[str, dict[str, Any]]
    pools: dict[str, str | None] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def set_name(spec: str) -> str:
    """The name a set's results go under: ``id``, ``ood``, or a puzzle file's stem."""
    return spec if spec in ("id", "ood") else Path(spec).stem


def subset(puzzles: Any, n: int | None, seed: int) -> Any:
    """``n`` boards of ``puzzles`` drawn by ``seed`` (all of them if it has no more)."""
    if n is None or len(puzzles) <= n:
        return puzzles
    rng = np.random.default_rng(seed)
    return puzzles.subset(np.sort(rng.permutation(len(puzzles))[:n]))


def load_sets(settings: EvalSettings) -> dict[str, Any]:
    """Each set of ``settings.data`` by name (:func:`set_name`), ``n`` boards drawn by
    ``data_seed``."""
    s = settings
    return {
        set_name(spec): subset(resolve_dataset(spec, n=s.n, seed=s.data_seed), s.n, s.data_seed)
        for spec in s.data_specs()
    }


def output_name(
    names: list[str],
    votes: int,
    suffix: str,
    steps: list[int],
    *,
    n: int | None = None,
    pools: dict[str, str | None] | None = None,
    extras: list[str] = (),  # type: ignore[assignment]
) -> str:
    """``eval_<sets>_n<N>_K<votes><suffix>_T<grid>[_<extras>].json`` (suffix: ``_<rule>`` and a
    halt rule; an RRN-style set tagged with its pool: ``ood-royle``, ``ood-fallback``,
    ``ood-custom<sha>``; extras: seeds, weights, starts that differ from the defaults), e.g.
    ``eval_id+ood-royle_n1000_K1_T16-32-64.json``: everything that changes the numbers is in
    the name, so two evaluations that differ never share a file."""
    grid = sorted(set(steps))
    ts = "-".join(map(str, grid)) if len(grid) <= 6 else f"{grid[0]}-{grid[-1]}x{len(grid)}"
    pools = pools or {}
    sets = "+".join(f"{name}{pool_slug(pools.get(name))}" for name in names) or "none"
    size = f"_n{n}" if n is not None else "_nall"
    tail = "".join(f"_{e}" for e in extras)
    return f"eval_{sets}{size}_K{votes}{suffix}_T{ts}{tail}.json"


def pool_slug(record: str | None) -> str:
    """A set name's pool tag in a file name: ``-royle``, ``-fallback``, ``-custom<sha>``."""
    if record is None:
        return ""
    if record == "fallback":
        return "-fallback"
    return "-royle" if record == ROYLE_SHA256 else f"-custom{record[:8]}"


def name_extras(settings: EvalSettings) -> list[str]:
    """Name parts for the settings that change the numbers, where they differ from defaults."""
    s = settings
    parts = []
    if s.seed != 0:
        parts.append(f"seed{s.seed}")
    if s.data_seed != 0:
        parts.append(f"dataseed{s.data_seed}")
    if s.weights != "ema":
        parts.append(s.weights)
    if s.which != "latest":
        parts.append(s.which)
    if s.deterministic:
        parts.append("det")
    if s.anchor:
        parts.append("anchor")
    if s.restart_noise is not None:
        parts.append(f"noise{s.restart_noise:g}")
    return parts


def output_path(
    settings: EvalSettings, meta: dict[str, Any], names: list[str], pools: dict[str, str | None]
) -> Path:
    """``settings.out``, else ``<run>/eval/<output_name>`` beside the evaluated run (a
    pretrained model's under ``out/<name>/eval/``: the package folder may be read-only)."""
    s = settings
    if s.out:
        return Path(s.out)
    ckpt_dir = Path(meta["path"])
    run_dir = ckpt_dir.parent.parent if ckpt_dir.parent.name == "checkpoints" else ckpt_dir
    if meta.get("pretrained"):
        run_dir = Path("out") / str(meta["pretrained"])
    halt = s.halt_rule()
    suffix = "" if s.votes == 1 else f"_{s.vote_rule().replace(',', '+')}"
    if halt.active:
        suffix += "_halt-" + str(halt).replace(":", "").replace(",", "+")
    name = output_name(names, s.votes, suffix, s.steps, n=s.n, pools=pools, extras=name_extras(s))
    return run_dir / "eval" / name


def check_overwrite(out: Path, config: dict, force: bool) -> None:
    """Refuse to replace ``out`` when it holds an evaluation whose numbers-changing settings
    (:data:`NUMBER_FIELDS`) differ from ``config``, unless ``force``."""
    if force or not out.is_file():
        return
    try:
        old = read_results(out).get("config") or {}
    except SadynError:
        old = {}
    # compared as written: write_results stores paths relative (portable_record), so a file
    # given by its absolute path must be compared in that form, not as typed
    new = json.loads(json.dumps(portable_record(config, out.parent)))
    diff = [k for k in NUMBER_FIELDS if k in new and old.get(k) != new[k]]
    if diff:
        raise SadynError(
            f"{out} holds an evaluation with other settings ({', '.join(diff)} differ); "
            "pass --force to overwrite it, or choose another --out"
        )


def checkpoint_label(ckpt_dir: Path, meta: dict) -> str:
    """How a results file names the evaluated weights: a pretrained model by name, a checkpoint
    by its path relative to the working folder (never a machine's absolute path)."""
    if meta.get("pretrained"):
        return f"pretrained:{meta['pretrained']}"
    return portable_path(ckpt_dir)


def evaluation_config(
    settings: EvalSettings,
    model_config: dict[str, Any],
    meta: dict[str, Any],
    pools: dict[str, str | None],
    note: str | None = None,
) -> dict[str, Any]:
    """The settings a results file records (``config``); ``note``: the state of an unfinished
    training run, recorded as ``run_status``."""
    s = settings
    config = {
        "checkpoint": checkpoint_label(Path(meta["path"]), meta),
        "step": meta["step"],
        "weights": s.weights,
        "model_config": model_config,
        "data": s.data_specs(),
        "pools": {k: pool_label(v) for k, v in pools.items() if v is not None},
        "steps": s.steps,
        "votes": s.votes,
        "vote": s.vote_rule(),
        "n": s.n,
        "data_seed": s.data_seed,
        "seed": s.seed,
        "batch_size": s.batch_size,
        "deterministic": s.deterministic,
        "halt": str(s.halt_rule()),
        "anchor": s.anchor,
        "restart_noise": s.restart_noise,
        "attention": s.attention,
        "selector": s.selector,
    }
    if note:
        config["run_status"] = note
    return config


def evaluate_sets(
    model: torch.nn.Module,
    sets: dict[str, Any],
    settings: EvalSettings,
    device: torch.device | str,
    selector: torch.nn.Module | None = None,
) -> dict[str, dict[str, Any]]:
    """Accuracy on each of ``sets`` (name -> puzzles): set name -> ``evaluate``'s results, with
    the set's ``source``, pool (``pool_sha256``, ``pool``) and ``data_seed``."""
    s = settings
    fused = None if s.attention == "auto" else s.attention == "fused"
    results = {}
    for name, puzzles in sets.items():
        results[name] = evaluate(
            model,
            puzzles,
            s.steps,
            votes=s.votes,
            vote=s.vote_rule(),
            batch_size=s.batch_size,
            seed=s.seed,
            deterministic=s.deterministic,
            device=device,
            progress=not s.quiet,
            halt=s.halt_rule(),
            fused=fused,
            anchor=s.anchor,
            restart_noise=s.restart_noise,
            selector=selector,
        )
        results[name]["source"] = puzzles.source
        results[name].update(pool_fields(puzzles))  # None unless RRN-style
        results[name]["data_seed"] = s.data_seed
    return results


def run_evaluation(
    model: torch.nn.Module,
    model_config: dict[str, Any],
    meta: dict[str, Any],
    settings: EvalSettings,
    out: str | Path | None = None,
    *,
    device: torch.device | str = "cpu",
    selector: torch.nn.Module | None = None,
    note: str | None = None,
) -> Evaluation:
    """Evaluate ``model`` (loaded with its config and checkpoint ``meta``: ``path``, ``step``,
    ``pretrained`` for a shipped model) on the sets of ``settings`` and write the results file
    and its PNG beside it: ``out``, else ``settings.out``, else the name of every setting that
    changes the numbers (:func:`output_path`). ``selector``: the head the learned vote or the
    confident halting needs; ``note``: the state of an unfinished training run, recorded."""
    s = settings
    s.check()
    sets = load_sets(s)
    pools = {name: pool_record(puzzles) for name, puzzles in sets.items()}
    config = evaluation_config(s, model_config, meta, pools, note)
    out = Path(out) if out is not None else output_path(s, meta, list(sets), pools)
    check_overwrite(out, config, s.force)
    start = time.perf_counter()
    results = evaluate_sets(model, sets, s, device, selector)
    wall = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    tagged = {with_pool_tag(k, pools[k]): v for k, v in results.items()}
    png = plot_accuracy(
        tagged,
        out.with_suffix(".png"),
        title=f"{model_config.get('model', '')} step {meta['step']}",
    )
    write_results(
        out,
        {
            "name": "eval",
            "claim": "accuracy against the loop count (test-time scaling), with voting",
            "config": config,
            "seed": s.seed,
            "wall_time_s": wall,
            "data": results,
            "figures": {"accuracy_vs_loops": accuracy_figure(tagged)},
        },
    )
    return Evaluation(out, png, results, pools, config)


def summary_text(evaluation: Evaluation) -> str:
    """The terminal's summary: the accuracy table, the pool of each RRN-style set, the files."""
    lines = [format_table(evaluation.results)]
    for name, record in evaluation.pools.items():
        if record is not None:
            lines.append(f"{name}: puzzles from the {pool_label(record)}")
    lines.append(f"results: {evaluation.out}\nplot: {evaluation.png}")
    return "\n".join(lines)
