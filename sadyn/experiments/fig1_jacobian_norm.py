"""Fig. 1 / Prop 5.1: normalization bounds the Jacobian of an SA layer, whatever the length.

An *initialized* (untrained) ItrSA step ``X -> RMSNorm(X + eta (C + MSA(X)))`` with ``C = 0``
(the SA layer alone), no positional encoding (so any token count S works), evaluated at random
token states of norm R. For each S and each sample the recipe measures, by power iteration on
JVP/VJP products:

* ``||J_norm||_2``: the normalized step (the paper's "with normalization");
* ``||I + eta J_MSA||_2``: the same step without the RMSNorm ("without normalization");
* ``||J_MSA||_2`` and the Prop 5.1 bound ``max|gamma| / R_min (1 + eta ||J_MSA||_2)`` with
  ``R_min = min_i ||X_i + eta Delta X_i||`` (``sadyn.probes.jacobian.prop51_bound``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from sadyn.experiments.base import Check, ExperimentError, Recipe, RunContext, Verdict, check
from sadyn.experiments.common import median_band_series
from sadyn.experiments.stats import loglog_fit


@dataclass(frozen=True)
class Fig1Config:
    """tokens: the S grid; samples: random states per S (in chunks of ``batch``), except
    where ``samples_at`` (S -> n) says otherwise (the large S cost minutes per state on a
    CPU); radius: R, the norm of every token; ``bound_rtol``: slack for power-iteration error
    in the bounds (``tol`` bounds the relative error of a norm by tol / 2, and typically its
    square, far below 1e-2); ``alpha``: level of the log-log slope CIs.

    O(1) in S at large S: the least-squares log-log slope of the normalized norm over every
    sample at S >= ``large_s`` must have its upper (1 - alpha) confidence limit below
    ``slope_max`` (0.1: less than a doubling over a 1000x range of S, 2^(1/3) per decade);
    fail when its lower limit is above it; inconclusive between.

    Large-eta limit (paper Eq. 15): at ``eta_tokens`` tokens of norm ``eta_radius`` (a
    normalized state, ||X_i|| <= max|gamma|), ``eta_samples`` states, eta over ``eta_grid``:
    the normalized ||J|| must obey ``max|gamma| (1 + eta ||J_MSA||) / (eta eps - max|gamma|)``
    (eps = min_i ||Delta X_i||) wherever eta eps > max|gamma|, stay below the limit
    ``(max|gamma| / eps) ||J_MSA||`` at the largest eta and change by at most
    ``converge_rtol`` (median, relative) over the last decade of eta; the unnormalized norm
    must grow linearly (log-log slope over the last three etas within ``linear_tol`` of 1)."""

    dim: int = 64
    heads: int = 4
    tokens: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
    samples: int = 20
    samples_at: dict = field(default_factory=lambda: {512: 5, 1024: 5})
    batch: int = 20
    large_s: int = 256
    slope_max: float = 0.1
    radius: float = 100.0
    tol: float = 1e-4
    max_iter: int = 200
    bound_rtol: float = 1e-2
    alpha: float = 0.05
    eta_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4)
    eta_tokens: int = 64
    eta_samples: int = 20
    eta_radius: float = 1.0
    converge_rtol: float = 0.02
    linear_tol: float = 0.05
    seed: int = 0


class Fig1JacobianNorm(Recipe):
    name = "fig1-jacobian-norm"
    title = "Fig. 1: normalization bounds the Jacobian norm (Prop 5.1)"
    order = 1
    paper_ref = "Sec. 5.1, Prop 5.1, Fig. 1, App. B.4"
    claim = (
        "If ||X_i + eta Delta X_i|| >= R for every token, the Jacobian of the RMSNorm "
        "update obeys ||J||_2 <= (max_j |gamma_j| / R)(1 + eta ||J_MSA(X)||_2). "
        "Empirically, for an initialized SA (token norm R = 100, D = 256, 500 samples), "
        "normalization reduces the spectral norm a lot and keeps it O(1) as the number "
        "of tokens grows."
    )
    criterion = (
        "(a) every sample obeys the Prop 5.1 bound (measured <= bound * (1 + bound_rtol)); "
        "(b) O(1) in S at large S: the log-log slope of the normalized norm over the samples "
        "at S >= large_s has its 1 - alpha t interval below slope_max (pass), above it "
        "(fail) or straddling it (inconclusive); "
        "(c) large eta (eta_grid, Eq. 15): every normalized norm obeys the large-eta bound "
        "where it applies, at the largest eta it is below (max|gamma|/eps)||J_MSA|| "
        "(* (1 + bound_rtol)) and its median changed by <= converge_rtol over the last "
        "decade, while the unnormalized norm grows linearly in eta (slope within linear_tol "
        "of 1). Reported, not judged: the ratio of the medians without / with normalization "
        "at every S (about R by construction, so it cannot fail), the slopes in S of both "
        "curves over the whole grid and between neighbouring S, and the unnormalized slope "
        "at large S."
    )
    criterion_fields = (
        "bound_rtol",
        "alpha",
        "large_s",
        "slope_max",
        "eta_grid",
        "converge_rtol",
        "linear_tol",
    )
    statistic = (
        "exact bounds per sample (power-iteration norms); least-squares log-log slopes over "
        "all samples with t intervals"
    )
    notes = (
        "Random token directions instead of embedded arXiv text (the paper's CCDV data), "
        "and an ItrSA layer without positional encoding.",
        "First run judged 'O(1) in S' against an absolute ceiling that could not "
        "fail; the normalized norm grows with S at about the same log-log slope as the "
        "unnormalized one (100x lower). That growth is now reported with CIs and the "
        "verdict text, and the paper's large-eta statement (Eq. 15) is judged instead.",
        "A later audit found the S-slope pooled 80 samples at 4 values of S while the median "
        "curve flattened (local slopes 0.83, 0.21, 0.16), and check (b) 'median normalized < "
        "median unnormalized' near-trivial (the ratio is about R by construction). This "
        "design (declared 2026-12-07, before its run) tests O(1) at large S (S >= large_s) "
        "against a declared slope_max, on 7 values of S up to 1024, and reports the ratio. "
        "Samples: 20 per S up to 256 and 5 at S = 512 and 1024 (the paper: 500), because one "
        "state at S = 1024 costs about 6 minutes of one shared CPU core (three power "
        "iterations of 200 steps at 0.6 s each).",
    )
    Config = Fig1Config
    presets: ClassVar[dict[str, Fig1Config]] = {
        "tiny": Fig1Config(
            dim=16,
            heads=2,
            tokens=(2, 8, 32),
            samples=3,
            samples_at={32: 2},
            batch=3,
            large_s=8,
            tol=1e-6,
            max_iter=200,
            eta_tokens=8,
            eta_samples=3,
        ),
        "small": Fig1Config(),
        "paper": Fig1Config(
            dim=256,
            heads=8,
            tokens=(16, 32, 64, 128, 256, 512, 1024),
            samples=500,
            samples_at={},
            batch=25,
            tol=1e-5,
        ),
    }
    trains = False

    def measure(self, cfg: Fig1Config, ctx: RunContext) -> dict[str, Any]:
        from sadyn.models import build_model

        torch.manual_seed(cfg.seed)  # the layer's initialization
        model = build_model(
            {"model": "itrsa", "dim": cfg.dim, "heads": cfg.heads, "pos": "none", "readout": "mlp"}
        ).to(ctx.device)
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # states drawn on the CPU: same numbers
        radius_min: list[float] = []
        rows: dict[str, list[list[float]]] = {
            k: [] for k in ("normalized", "unnormalized", "msa", "bound")
        }
        for s in cfg.tokens:
            per: dict[str, list[float]] = {k: [] for k in (*rows, "radius")}
            n = samples_at(cfg.samples_at, s, cfg.samples)
            for lo in range(0, n, cfg.batch):
                b = min(cfg.batch, n - lo)
                x = torch.randn(b, s, cfg.dim, generator=gen)
                x = (cfg.radius * x / x.norm(dim=-1, keepdim=True)).to(ctx.device)
                for k, v in _norms(model, x, cfg, seed=cfg.seed + lo).items():
                    per[k] += v.tolist()
            radius_min.append(min(per.pop("radius")))
            for k in rows:
                rows[k].append(per[k])
            ctx.log(
                f"S={s}: median normalized {np.median(per['normalized']):.3g}, "
                f"unnormalized {np.median(per['unnormalized']):.3g}"
            )

        tokens = list(cfg.tokens)
        med = {k: [float(np.median(v)) for v in rows[k]] for k in rows}
        labels = {
            "normalized": "with RMSNorm",
            "unnormalized": "without normalization",
            "msa": "||J_MSA||",
            "bound": "Prop 5.1 bound",
        }
        figure = {
            "kind": "line",
            "xscale": "log",
            "yscale": "log",
            "xlabel": "number of tokens S",
            "xticks": tokens,
            "ylabel": "spectral norm of the Jacobian",
            "series": [median_band_series(labels[k], tokens, rows[k]) for k in rows],
            "caption": f"Initialized SA layer, D={cfg.dim}, H={cfg.heads}, token norm "
            f"R={cfg.radius:g}; median over "
            + ", ".join(f"{len(v)}" for v in rows["normalized"])
            + " random states per S (band: 5-95% range).",
        }
        table = _norm_table(tokens, med, rows)
        large = _large_eta(model, cfg, gen, ctx)
        data = {
            "tokens": tokens,
            "samples": rows,
            "median": med,
            "min_pre_norm_radius": min(radius_min),
            "eta": float(model.eta.detach()),
            "max_gain": float(model.norm_gain.detach().abs().max()),
            "large_eta": large,
        }
        etas = large["eta"]
        eta_fig = {
            "kind": "line",
            "xscale": "log",
            "yscale": "log",
            "xlabel": "step size eta",
            "ylabel": "spectral norm of the Jacobian",
            "xticks": etas,
            "series": [
                median_band_series("with RMSNorm", etas, large["normalized"]),
                median_band_series("without normalization", etas, large["unnormalized"]),
                median_band_series(
                    "(max|gamma|/eps) ||J_MSA|| (Eq. 15 limit)", etas, large["limit"]
                ),
            ],
            "caption": f"Large-eta limit (Eq. 15): S={cfg.eta_tokens}, token norm "
            f"{cfg.eta_radius:g}, {cfg.eta_samples} random states; median and 5-95% band.",
        }
        return {
            "data": data,
            "figures": {"jacobian_norm": figure, "large_eta": eta_fig},
            "tables": {"norms": table},
        }

    def judge(self, record: Mapping[str, Any]) -> Verdict:
        cfg, data = record["config"], record["data"]
        samples, med, tokens = data["samples"], data["median"], data["tokens"]
        alpha = cfg["alpha"]
        if "slope_max" not in cfg:
            return Verdict.combine(
                self.criterion,
                [check("O(1) at large S", "recorded before this design", None)],
            )
        ratio = max(
            max(n / b for n, b in zip(ns, bs, strict=True))
            for ns, bs in zip(samples["normalized"], samples["bound"], strict=True)
        )
        fits = {k: _slope(tokens, samples[k], alpha) for k in ("normalized", "unnormalized")}
        large = {
            k: _slope(tokens, samples[k], alpha, at_least=cfg["large_s"])
            for k in ("normalized", "unnormalized")
        }
        ln = large["normalized"]
        lo, hi = ln["ci"]
        if not (np.isfinite(lo) and np.isfinite(hi)):
            o1 = None  # too few samples at large S to fit a slope
        else:
            o1 = True if hi < cfg["slope_max"] else False if lo > cfg["slope_max"] else None
        checks = [
            check(
                "Prop 5.1 bound",
                "measured / bound <= 1 + bound_rtol for every sample",
                ratio <= 1 + cfg["bound_rtol"],
                {"max measured/bound": ratio},
            ),
            check(
                "O(1) in S at large S",
                f"log-log slope of the normalized norm over S >= {cfg['large_s']}: "
                f"{100 * (1 - alpha):g}% CI below {cfg['slope_max']} (above: fail; "
                "straddling: inconclusive)",
                o1,
                {
                    "slope normalized (large S)": ln["slope"],
                    "slope normalized (large S) CI": ln["ci"],
                    "S used": [t for t in tokens if t >= cfg["large_s"]],
                    "samples used": ln["n"],
                    "slope unnormalized (large S)": large["unnormalized"]["slope"],
                    "slope unnormalized (large S) CI": large["unnormalized"]["ci"],
                },
            ),
            *_large_eta_checks(data.get("large_eta"), cfg),
            check(
                "normalization reduces the norm (reported)",
                "shown: the ratio of the medians without / with normalization per S (about R "
                "by construction: the norm divides by the token norm)",
                None,
                {
                    "ratio of medians (unnormalized / normalized)": [
                        u / n for n, u in zip(med["normalized"], med["unnormalized"], strict=True)
                    ],
                    "token norm R": cfg["radius"],
                },
                required=False,
            ),
            check(
                "slopes over the whole grid (reported)",
                "shown: log-log slopes in S over every sample, and between neighbouring S "
                "(medians)",
                None,
                {
                    "slope normalized (all S)": fits["normalized"]["slope"],
                    "slope normalized (all S) CI": fits["normalized"]["ci"],
                    "slope unnormalized (all S)": fits["unnormalized"]["slope"],
                    "slope unnormalized (all S) CI": fits["unnormalized"]["ci"],
                    "local slopes normalized (medians)": _local_slopes(tokens, med["normalized"]),
                    "local slopes unnormalized (medians)": _local_slopes(
                        tokens, med["unnormalized"]
                    ),
                },
                required=False,
            ),
        ]
        verdict = Verdict.combine(self.criterion, checks)
        reason = (
            f"{verdict.reason}; normalized log-log slope over S >= {cfg['large_s']}: "
            f"{ln['slope']:.3f} [{lo:.3f}, {hi:.3f}] (slope_max {cfg['slope_max']}), over all S "
            f"{fits['normalized']['slope']:.3f}"
        )
        return Verdict(verdict.status, verdict.criterion, reason, verdict.checks)


def _norm_table(
    tokens: list[int], med: Mapping[str, list[float]], rows: Mapping[str, list[list[float]]]
) -> dict[str, Any]:
    """Per S: the medians of the four norms and the largest measured / bound."""
    return {
        "columns": [
            "S",
            "median normalized",
            "median unnormalized",
            "median ||J_MSA||",
            "median bound",
            "max measured/bound",
        ],
        "rows": [
            [
                s,
                med["normalized"][i],
                med["unnormalized"][i],
                med["msa"][i],
                med["bound"][i],
                float(np.max(np.divide(rows["normalized"][i], rows["bound"][i]))),
            ]
            for i, s in enumerate(tokens)
        ],
    }


def samples_at(table: Mapping[Any, int], s: int, default: int) -> int:
    """The sample count at S = ``s``: ``table[s]`` (keys may be JSON strings) or ``default``."""
    for k, v in table.items():
        if int(k) == s:
            return int(v)
    return default


def _slope(
    tokens: list[int], samples: list[list[float]], alpha: float, at_least: int = 0
) -> dict[str, Any]:
    """Least-squares log-log slope over every sample at S >= ``at_least`` (t interval)."""
    pairs = [(t, x) for t, v in zip(tokens, samples, strict=True) if t >= at_least for x in v]
    return loglog_fit([t for t, _ in pairs], [x for _, x in pairs], alpha)


def _local_slopes(tokens: list[int], medians: list[float]) -> list[float]:
    """log(m_{k+1} / m_k) / log(S_{k+1} / S_k) between neighbouring S."""
    return [
        float(np.log(m1 / m0) / np.log(s1 / s0))
        for s0, s1, m0, m1 in zip(tokens, tokens[1:], medians, medians[1:], strict=False)
    ]


def _large_eta(
    model: torch.nn.Module, cfg: Fig1Config, gen: torch.Generator, ctx: RunContext
) -> dict[str, Any]:
    """Per eta of ``cfg.eta_grid``, per sample: the normalized and unnormalized ||J||, the
    large-eta bound of Eq. 15 (NaN where eta eps <= max|gamma|), its limit and eps."""
    s, d, b = cfg.eta_tokens, cfg.dim, cfg.eta_samples
    x = torch.randn(b, s, d, generator=gen)
    x = (cfg.eta_radius * x / x.norm(dim=-1, keepdim=True)).to(ctx.device)
    cond = torch.zeros_like(x)
    gmax = float(model.norm_gain.detach().abs().max())
    out: dict[str, list[Any]] = {
        k: [] for k in ("eta", "normalized", "unnormalized", "msa", "bound", "limit", "eps")
    }
    saved = model.step_size.detach().clone()
    try:
        for eta in cfg.eta_grid:
            with torch.no_grad():
                model.step_size.fill_(eta)
                eps = model.update(x, cond).norm(dim=-1).amin(dim=1).cpu().numpy()
            sub = Fig1Config(**{**cfg.__dict__, "batch": b})
            norms = _norms(model, x, sub, seed=cfg.seed)
            msa = np.asarray(norms["msa"], float)
            denom = eta * eps - gmax
            bound = np.where(
                denom > 0, gmax * (1 + eta * msa) / np.where(denom > 0, denom, 1), np.nan
            )
            out["eta"].append(float(eta))
            out["normalized"].append(norms["normalized"].tolist())
            out["unnormalized"].append(norms["unnormalized"].tolist())
            out["msa"].append(msa.tolist())
            out["bound"].append(bound.tolist())
            out["limit"].append((gmax / eps * msa).tolist())
            out["eps"].append(eps.tolist())
            ctx.log(
                f"eta={eta:g}: median normalized {np.median(norms['normalized']):.3g}, "
                f"unnormalized {np.median(norms['unnormalized']):.3g}"
            )
    finally:
        with torch.no_grad():
            model.step_size.copy_(saved)
    return out


def _large_eta_checks(large: Mapping[str, Any] | None, cfg: Mapping[str, Any]) -> list[Check]:
    crit = (
        "normalized ||J|| <= large-eta bound (Eq. 15) where eta eps > max|gamma|; at the "
        "largest eta <= (max|gamma|/eps)||J_MSA|| and converged (median change over the last "
        f"decade <= {cfg['converge_rtol']}); unnormalized slope in eta within "
        f"{cfg['linear_tol']} of 1"
    )
    if not large or len(large.get("eta", [])) < 3:
        return [check("large-eta limit (Eq. 15)", crit, None, note="not measured")]
    rtol = cfg["bound_rtol"]
    n, u = large["normalized"], large["unnormalized"]
    ratios = [
        v / bd
        for vs, bs in zip(n, large["bound"], strict=True)
        for v, bd in zip(vs, bs, strict=True)
        if bd is not None and np.isfinite(bd)
    ]
    within = (max(ratios) if ratios else 0.0) <= 1 + rtol
    last = np.asarray(n[-1], float)
    to_limit = float(np.max(last / np.asarray(large["limit"][-1], float)))
    med = [float(np.median(v)) for v in n]
    change = abs(med[-1] - med[-2]) / med[-1]
    slope = loglog_fit(
        [e for e, v in zip(large["eta"][-3:], u[-3:], strict=True) for _ in v],
        [x for v in u[-3:] for x in v],
        0.05,
    )["slope"]
    linear = abs(slope - 1) <= cfg["linear_tol"]
    return [
        check(
            "large-eta limit (Eq. 15)",
            crit,
            within and to_limit <= 1 + rtol and change <= cfg["converge_rtol"] and linear,
            {
                "max measured / large-eta bound": max(ratios) if ratios else None,
                "samples where the bound applies": len(ratios),
                "max measured / limit at the largest eta": to_limit,
                "median normalized ||J|| per eta": med,
                "relative change over the last decade": change,
                "median unnormalized ||J|| per eta": [float(np.median(v)) for v in u],
                "unnormalized slope in eta (last three)": slope,
            },
        )
    ]


def _norms(
    model: torch.nn.Module, x: torch.Tensor, cfg: Fig1Config, seed: int
) -> dict[str, np.ndarray]:
    """Per sample of ``x: (B, S, D)`` (C = 0): ``||J||`` of the normalized step, of the same
    step without the norm (``X + eta (C + MSA(X))``), ``||J_MSA||``, the Prop 5.1 bound and
    R (the smallest pre-norm token norm). Each ``(B,)``."""
    from sadyn.dynamics import spectral_norm
    from sadyn.probes.jacobian import prop51_bound
    from sadyn.probes.stepmap import analysis_mode

    b, s, d = x.shape
    cond = torch.zeros_like(x)
    res = prop51_bound(model, x, cond, tol=cfg.tol, max_iter=cfg.max_iter, seed=seed)
    if res.bound is None:
        raise ExperimentError(f"Prop 5.1 bound not applicable to the layer: {res.note}")
    with analysis_mode(model):
        eta = model.eta

        def plain(v: torch.Tensor) -> torch.Tensor:
            xx = v.reshape(b, s, d)
            return (xx + eta * model.update(xx, cond)).reshape(b, s * d)

        un = spectral_norm(
            plain,
            x.reshape(b, s * d),
            tol=cfg.tol,
            max_iter=cfg.max_iter,
            batched=True,
            generator=torch.Generator(device=x.device).manual_seed(seed),
        )
    return {
        "normalized": res.measured,
        "unnormalized": np.asarray(un.value, float).reshape(-1),
        "msa": res.msa_norm,
        "bound": res.bound,
        "radius": res.radius,
    }


RECIPE = Fig1JacobianNorm()
