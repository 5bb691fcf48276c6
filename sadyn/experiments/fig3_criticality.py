"""Fig. 3: accurate looped SA sits near criticality (max Lyapunov exponent close to 0).

A family of separately trained models along the paper's axes as training hyperparameters: the
normalized ItrSA (the ``train_preset`` config), input scale, a fixed (not learned) eta, a fixed
scale on W^O and b_O (``vo_scale``), unnormalized models (1 epoch, as the paper) and
energy-based symmetric SA. Every member gets its test accuracy at T = ``loop`` and its
finite-time Lyapunov exponents (horizon ``loop``, the paper's definition) on several puzzles,
averaged over its training seeds; the figure plots accuracy against the median max and mean
exponent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from sadyn.experiments import stats
from sadyn.experiments.base import Check, Recipe, RunContext, Verdict, check
from sadyn.experiments.common import (
    TINY_TRAIN,
    accuracy_and_exponents,
    eval_puzzles,
    train_and_load,
)
from sadyn.experiments.plan import Job, at_seed, base_config, derive, seeded

KINDS = ("normalized", "unnormalized", "symmetric")


def _sweep() -> dict[str, dict[str, Any]]:
    """The trained family of the small preset: label -> {"kind", **TrainConfig overrides}
    ("model" merged). The paper's axes as hyperparameters of separately trained models: input
    scale, a fixed (not learned) eta, and a fixed scale s on W^O, b_O (``vo_scale``: MSA -> s
    MSA); plus unnormalized models (1 epoch, as the paper) and energy-based symmetric SA."""
    fixed = {"eta_learnable": False}
    return {
        "normalized": {"kind": "normalized"},
        "input x0.25": {"kind": "normalized", "model": {"input_scale": 0.25}},
        "input x4": {"kind": "normalized", "model": {"input_scale": 4.0}},
        "eta 0.25 (fixed)": {"kind": "normalized", "model": {"eta0": 0.25, **fixed}},
        "eta 1 (fixed)": {"kind": "normalized", "model": {"eta0": 1.0, **fixed}},
        "eta 4 (fixed)": {"kind": "normalized", "model": {"eta0": 4.0, **fixed}},
        "W^V,W^O x0.25": {"kind": "normalized", "model": {"vo_scale": 0.25}},
        "W^V,W^O x2": {"kind": "normalized", "model": {"vo_scale": 2.0}},
        "W^V,W^O x4": {"kind": "normalized", "model": {"vo_scale": 4.0}},
        "unnormalized": {"kind": "unnormalized", "model": {"norm": "none"}, "epochs": 1},
        "unnormalized eta 0.25 (fixed)": {
            "kind": "unnormalized",
            "model": {"norm": "none", "eta0": 0.25, **fixed},
            "epochs": 1,
        },
        "symmetric": {"kind": "symmetric", "model": {"model": "symsa", "heads": 1}},
        "symmetric eta 0.25 (fixed)": {
            "kind": "symmetric",
            "model": {"model": "symsa", "heads": 1, "eta0": 0.25, **fixed},
        },
    }


def _extras() -> dict[str, dict[str, Any]]:
    """Members added after the declared sweep was judged (the fifth revision of the small
    preset), reported beside it and never judged: symmetric SA for 1 epoch, the paper's
    protocol for it ("full training was unstable"); the declared sweep trains it for the whole
    schedule, where it learns nothing."""
    sym = {"model": "symsa", "heads": 1}
    return {
        "symmetric (1 epoch)": {"kind": "symmetric", "model": sym, "epochs": 1},
        "symmetric eta 0.25 (fixed, 1 epoch)": {
            "kind": "symmetric",
            "model": {**sym, "eta0": 0.25, "eta_learnable": False},
            "epochs": 1,
        },
    }


def _tiny_sweep() -> dict[str, dict[str, Any]]:
    return {
        "normalized": {"kind": "normalized"},
        "W^V,W^O x4": {"kind": "normalized", "model": {"vo_scale": 4.0}},
        "eta 0.25 (fixed)": {"kind": "normalized", "model": {"eta0": 0.25, "eta_learnable": False}},
        "unnormalized": {"kind": "unnormalized", "model": {"norm": "none"}},
        "symmetric": {"kind": "symmetric", "model": {"model": "symsa", "heads": 1}},
    }


@dataclass(frozen=True)
class Fig3Config:
    """Design: ``members`` (label -> {"kind": normalized|unnormalized|symmetric, **overrides
    of the ``train_preset`` config}), each trained at every seed of ``seeds``; ``reference``
    names the plain normalized model. Every member gets its test board and cell accuracy at
    T = ``loop`` (``acc_puzzles``) and its finite-time exponents (horizon ``loop``, top
    ``le_k``) on ``le_puzzles`` puzzles; a member's numbers are means over its seeds.
    ``extras`` are measured the same way, at each seed of ``extra_seeds`` (``seeds`` if
    None), and reported beside the members, never judged (they were added after the design was
    declared).

    Criterion: the most accurate quartile (``top_fraction`` of the measured members, at least
    one) has its median max exponent inside ``le_band`` (the paper: about +0.1); every
    unnormalized member lies above the band's top; every symmetric member has a median max
    exponent below the band's bottom and a lower accuracy than the reference; the Spearman
    correlation of accuracy with |max LE - ``le_centre``| is negative with a bootstrap CI
    (``boot`` resamples) and permutation p-value below ``alpha`` ("no effect" otherwise).
    Gate: the reference reaches ``min_cell_accuracy`` (cell accuracy)."""

    train_preset: str = "small"
    train_overrides: dict = field(default_factory=lambda: {"max_minutes": None})
    members: dict = field(default_factory=_sweep)
    extras: dict = field(default_factory=_extras)
    reference: str = "normalized"
    seeds: tuple[int, ...] = (0,)
    extra_seeds: tuple[int, ...] | None = None
    loop: int = 16
    acc_puzzles: int = 1000
    le_puzzles: int = 16
    le_k: int = 4
    le_tol: float = 1e-4
    le_iters: int = 20
    top_fraction: float = 0.25
    le_band: tuple[float, float] = (-0.1, 0.3)
    le_centre: float = 0.1
    alpha: float = 0.05
    boot: int = 2000
    min_cell_accuracy: float = 0.4
    min_board_accuracy: float = 0.85
    seed: int = 0


class Fig3Criticality(Recipe):
    name = "fig3-criticality"
    title = "Fig. 3: accuracy peaks near the edge of chaos"
    order = 3
    paper_ref = "Sec. 5.3, App. B.3, Fig. 3"
    claim = (
        "Lyapunov exponents computed from the Jacobians (T = 16) sit near 0 for the "
        "models with high accuracy (criticality; the best have a max exponent of about "
        "+0.1). Energy-constrained symmetric SA has negative exponents and lower accuracy; "
        "models without normalization have larger exponents and cannot be trained. "
        "Accuracy against the max and the mean exponent behave alike."
    )
    criterion = (
        "Gate: the reference (normalized) model reaches min_cell_accuracy, and for (a) "
        "min_board_accuracy (an accurate model; else inconclusive). (a) the median, over the "
        "most accurate top_fraction of the members, of their median max LE lies in le_band; "
        "(b) every unnormalized member's median max LE is above le_band; (c) every symmetric "
        "member's is below le_band with a board accuracy below the reference's; (d) across "
        "members, Spearman(board accuracy, |max LE - le_centre|) < 0 with permutation p < "
        "alpha (else no effect), with a bootstrap CI."
    )
    criterion_fields = (
        "reference",
        "top_fraction",
        "le_band",
        "le_centre",
        "alpha",
        "min_cell_accuracy",
        "min_board_accuracy",
    )
    statistic = (
        "members' numbers are means over their seeds of the median over le_puzzles puzzles; "
        "Spearman rho with a percentile bootstrap CI and a permutation p-value (boot draws)"
    )
    notes = (
        "First run: post-hoc perturbations of 4 trained models; here every member "
        "is a separately trained model (input scale, fixed eta, a fixed scale on W^O and b_O "
        "during training (vo_scale), unnormalized for 1 epoch as the paper, symmetric SA).",
        "vo_scale s multiplies MSA(X) by s (W^O and b_O scaled), i.e. ||W^V W^O|| as a "
        "hyperparameter; the paper scales ||W^V|| and ||W^O|| without saying how.",
        "Exponents are medians over le_puzzles test puzzles, not one random puzzle.",
        "Seeds: every member and extra is trained at seeds 0, 1 and 2; the table gives each "
        "member's sd across its seeds beside the means the checks use.",
        "Changed after a verdict (recorded, 2026-11-26): until then the small preset trained "
        "the 13 sweep members at seed 0 only (a declared budget cut), "
        "and that run's fail (2 pass, 2 fail) was known when seeds 1 and 2 were added (trained "
        "on an H100). Only `seeds` changed, a measurement size: no criterion field, so the "
        "hash is the same.",
    )
    Config = Fig3Config
    presets: ClassVar[dict[str, Fig3Config]] = {
        "tiny": Fig3Config(
            train_preset="tiny",
            train_overrides=TINY_TRAIN,
            members=_tiny_sweep(),
            extras={
                "symmetric (1 epoch)": {
                    "kind": "symmetric",
                    "model": {"model": "symsa", "heads": 1},
                }
            },
            loop=4,
            acc_puzzles=20,
            le_puzzles=2,
            le_k=2,
            le_tol=1e-2,
            le_iters=3,
            boot=200,
        ),
        "small": Fig3Config(acc_puzzles=300, seeds=(0, 1, 2)),
        "paper": Fig3Config(
            train_preset="paper",
            train_overrides={},
            seeds=(0, 1, 2),
            le_puzzles=32,
            le_k=16,
            le_tol=1e-5,
            le_iters=100,
        ),
    }

    def family(self, cfg: Fig3Config) -> list[tuple[str, str, Any, bool]]:
        """The trained members, then the extras: (label, kind, unseeded TrainConfig, extra)."""
        base = base_config(cfg.train_preset, cfg.train_overrides)
        return [
            (label, spec.get("kind", "normalized"), derive(base, spec, drop=("kind",)), extra)
            for extra, specs in ((False, cfg.members), (True, cfg.extras))
            for label, spec in specs.items()
        ]

    @staticmethod
    def seeds(cfg: Fig3Config, extra: bool) -> tuple[int, ...]:
        """The training seeds of a member (``extra`` False) or an extra."""
        return cfg.extra_seeds if extra and cfg.extra_seeds is not None else cfg.seeds

    def models(self, cfg: Fig3Config) -> dict[str, Any]:
        return {
            seeded(label, s): at_seed(tc, s)
            for label, _, tc, extra in self.family(cfg)
            for s in self.seeds(cfg, extra)
        }

    def jobs(self, cfg: Fig3Config) -> list[Job]:
        """The sweep at its first seed after Fig. 5's and Fig. 4's decisive models (the
        1-epoch unnormalized members, nearly free, early); further seeds (here or the
        ``paper`` preset's) last."""
        jobs = []
        for i, (label, _, tc, extra) in enumerate(self.family(cfg)):
            order = list(dict.fromkeys((*self.seeds(cfg, extra), 0, 1, 2)))
            for rank, s in enumerate(order):
                if rank == 0:
                    pri = 2.5 if tc.epochs <= 1 else 4.0
                else:
                    pri = 2.6 if tc.epochs <= 1 else 10.0 + rank
                jobs.append(Job(pri + i * 0.001, seeded(label, s), at_seed(tc, s)))
        return jobs

    def measure(self, cfg: Fig3Config, ctx: RunContext) -> dict[str, Any]:
        acc_set = eval_puzzles("id", max(cfg.acc_puzzles, cfg.le_puzzles))
        le_quizzes = torch.as_tensor(acc_set.quizzes[: cfg.le_puzzles], dtype=torch.long)
        acc_set = acc_set.subset(np.arange(cfg.acc_puzzles))
        runs: dict[str, Any] = {}
        for label, kind, tc, extra in self.family(cfg):
            for s in self.seeds(cfg, extra):
                key = seeded(label, s)
                tr = train_and_load(ctx, key, at_seed(tc, s))
                row: dict[str, Any] = {
                    "member": label,
                    "kind": kind,
                    "extra": extra,
                    "seed": s,
                    "train_status": tr.status,
                    "note": tr.note,
                    "epochs": tc.epochs,
                }
                if tr.usable:
                    row["eta"] = float(tr.model.eta.detach())
                    what = {
                        "recipe": self.name,
                        "model": tr.entry.path.name,
                        "acc": cfg.acc_puzzles,
                        "le": [cfg.le_puzzles, cfg.le_k, cfg.le_tol, cfg.le_iters],
                        "loop": cfg.loop,
                        "seed": cfg.seed,
                    }
                    row.update(
                        ctx.memo(
                            what,
                            lambda model=tr.model: accuracy_and_exponents(
                                model,
                                acc_set,
                                le_quizzes,
                                loop=cfg.loop,
                                le_k=cfg.le_k,
                                seed=cfg.seed,
                                le_tol=cfg.le_tol,
                                le_iters=cfg.le_iters,
                            ),
                        )
                    )
                runs[key] = row
                ctx.log(
                    f"{key}: board {row.get('board_accuracy')} max LE {row.get('max_le_median')}"
                )
        members = _members({k: r for k, r in runs.items() if not r["extra"]})
        extras = _members({k: r for k, r in runs.items() if r["extra"]})
        figures = {
            f"accuracy_vs_{which}": self._scatter(members, extras, which, cfg)
            for which in ("max_le", "mean_le")
        }
        table = {
            "columns": [
                "member",
                "kind",
                "seeds",
                "epochs",
                "board acc",
                "board acc sd",
                "cell acc",
                "median max LE",
                "max LE sd",
                "median mean LE",
                "eta",
            ],
            "rows": [
                [
                    m["member"],
                    m["kind"] + (" (extra, not judged)" if extra else ""),
                    m["seeds"],
                    m["epochs"],
                    m["board_accuracy"],
                    m["board_accuracy_sd"],
                    m["cell_accuracy"],
                    m["max_le"],
                    m["max_le_sd"],
                    m["mean_le"],
                    m["eta"],
                ]
                for group, extra in ((members, False), (extras, True))
                for m in group
            ],
        }
        return {
            "data": {"runs": runs, "members": members, "extras": extras},
            "figures": figures,
            "tables": {"family": table},
        }

    @staticmethod
    def _scatter(
        members: list[dict[str, Any]],
        extras: list[dict[str, Any]],
        which: str,
        cfg: Fig3Config,
    ) -> dict[str, Any]:
        series = []
        for prefix, group in (("", members), ("extra, not judged: ", extras)):
            for kind in KINDS:
                pts = [m for m in group if m["kind"] == kind and m[which] is not None]
                if not pts:
                    continue
                series.append(
                    {
                        "label": prefix + kind,
                        "x": [m[which] for m in pts],
                        "y": [m["board_accuracy"] for m in pts],
                        "text": [m["member"] for m in pts],
                    }
                )
        name = "max" if which.startswith("max") else "mean"
        lo, hi = cfg.le_band
        return {
            "kind": "scatter",
            "series": series,
            "vlines": [{"x": 0.0}, {"x": lo, "label": "band"}, {"x": hi}],
            "xlabel": f"median {name} finite-time Lyapunov exponent (T={cfg.loop})",
            "ylabel": "board accuracy (ID)",
            "caption": f"Test board accuracy against the {name} exponent, one point per "
            f"separately trained member (mean over its seeds) (Fig. 3).",
        }

    def judge(self, record: Mapping[str, Any]) -> Verdict:
        cfg, members = record["config"], record["data"]["members"]
        alpha = cfg["alpha"]
        lo, hi = cfg["le_band"]
        ref = next((m for m in members if m["member"] == cfg["reference"]), None)
        cell = None if ref is None else ref["cell_accuracy"]
        board = None if ref is None else ref["board_accuracy"]
        gate = cell is not None and cell >= cfg["min_cell_accuracy"]
        accurate = board is not None and board >= cfg["min_board_accuracy"]
        note = (
            ""
            if gate
            else (
                f"reference cell accuracy {cell} < min_cell_accuracy {cfg['min_cell_accuracy']}: "
                "not trained enough to test"
            )
        )
        acc_note = note or (
            ""
            if accurate
            else f"reference board accuracy {board} < min_board_accuracy "
            f"{cfg['min_board_accuracy']}: no accurate model to test"
        )
        scored = [m for m in members if m["max_le"] is not None and m["board_accuracy"] is not None]
        checks: list[Check] = []
        # (a) the most accurate quartile sits in the band
        k = max(1, math.ceil(cfg["top_fraction"] * len(scored)))
        top = sorted(scored, key=lambda m: m["board_accuracy"], reverse=True)[:k]
        top_le = float(np.median([m["max_le"] for m in top])) if top else None
        checks.append(
            check(
                "most accurate quartile near criticality",
                f"median over the top {cfg['top_fraction']:g} of members (by board accuracy) of "
                f"their median max LE in [{lo}, {hi}]",
                None if not (gate and accurate and top) else bool(lo <= top_le <= hi),
                {
                    "top members": [m["member"] for m in top],
                    "their board accuracy": [m["board_accuracy"] for m in top],
                    "their max LE": [m["max_le"] for m in top],
                    "median max LE": top_le,
                    "members": len(scored),
                },
                note=acc_note if not (gate and accurate) else "",
            )
        )
        # (b) unnormalized above the band, (c) symmetric below it and less accurate
        for kind, want in (("unnormalized", "above"), ("symmetric", "below")):
            # members cut from the run (not trained) say nothing; a diverged one counts as +inf
            group = [m for m in members if m["kind"] == kind and m.get("measured", True)]
            if not group or ref is None or not gate:
                checks.append(
                    check(
                        kind,
                        f"{kind} members measured",
                        None,
                        note=note or f"no measured {kind} member (not trained: cut from this run)",
                    )
                )
                continue
            les = [m["max_le"] if m["max_le"] is not None else math.inf for m in group]
            if want == "above":
                ok = all(le > hi for le in les)
                crit = f"every unnormalized member's median max LE > {hi} (above the band)"
            else:
                ok = all(le < lo for le in les) and all(
                    (m["board_accuracy"] or 0.0) < board for m in group
                )
                crit = (
                    f"every symmetric member's median max LE < {lo} (below the band) and its "
                    "board accuracy below the reference's"
                )
            checks.append(
                check(
                    kind,
                    crit,
                    ok,
                    {
                        "members": [m["member"] for m in group],
                        "max LE": les,
                        "board accuracy": [m["board_accuracy"] for m in group],
                        "reference board accuracy": board,
                    },
                )
            )
        # (d) accuracy falls away from the band's centre
        dist = [abs(m["max_le"] - cfg["le_centre"]) for m in scored]
        test = stats.spearman_test(
            [m["board_accuracy"] for m in scored], dist, alpha=alpha, boot=cfg["boot"]
        )
        checks.append(
            check(
                "accuracy falls away from criticality",
                f"Spearman(board accuracy, |max LE - {cfg['le_centre']}|) < 0: permutation "
                f"p < {alpha}; else no effect",
                stats.decide(test, "below", alpha) if gate else None,
                {
                    "spearman": test["rho"],
                    f"{100 * (1 - alpha):g}% bootstrap CI": test["ci"],
                    "p (permutation)": test["p"],
                    "members": test["n"],
                },
                note=note,
            )
        )
        return Verdict.combine(self.criterion, checks)


def _members(runs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per member: its numbers averaged over its seeds (max/mean LE: mean over seeds
    of the per-seed median over puzzles; a diverged loop counts as +inf), with the sd across
    seeds of board accuracy and max LE."""
    out: dict[str, dict[str, Any]] = {}
    for r in runs.values():
        m = out.setdefault(
            r["member"],
            {"member": r["member"], "kind": r["kind"], "epochs": r["epochs"], "rows": []},
        )
        m["rows"].append(r)
    rows = []
    for m in out.values():
        rs = m.pop("rows")

        def finite(key: str, rs: list[dict[str, Any]] = rs) -> list[float]:
            return [r[key] for r in rs if r.get(key) is not None and np.isfinite(r[key])]

        def mean(key: str) -> float | None:
            v = finite(key)
            return float(np.mean(v)) if v else None

        def sd(key: str) -> float | None:  # sample sd across seeds; None below two seeds
            v = finite(key)
            return float(np.std(v, ddof=1)) if len(v) > 1 else None

        failed = ["error" in r or r.get("train_status") == "diverged" for r in rs]
        done = [f or r.get("board_accuracy") is not None for f, r in zip(failed, rs, strict=True)]
        diverged, measured = any(failed), any(done)
        rows.append(
            {
                **m,
                "seeds": sum(done),  # seeds measured (or diverged), not seeds declared
                "board_accuracy": mean("board_accuracy"),
                "board_accuracy_sd": sd("board_accuracy"),
                "cell_accuracy": mean("cell_accuracy"),
                "max_le": math.inf
                if diverged and mean("max_le_median") is None
                else mean("max_le_median"),
                "max_le_sd": sd("max_le_median"),
                "mean_le": mean("mean_le_median"),
                "eta": mean("eta"),
                "diverged": diverged,
                "measured": measured,
            }
        )
    return rows


RECIPE = Fig3Criticality()
