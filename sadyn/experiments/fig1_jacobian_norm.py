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
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from sadyn.experiments.base import ExperimentError, Recipe, RunContext, Verdict, check
from sadyn.experiments.common import loglog_slope, median_band_series


@dataclass(frozen=True)
class Fig1Config:
    """tokens: the S grid; samples: random states per S (in chunks of ``batch``); radius: R,
    the norm of every token; ``bound_rtol``: slack for power-iteration error in the bound
    check; ``ceiling``: the largest median normalized norm still called O(1)."""

    dim: int = 64
    heads: int = 4
    tokens: tuple[int, ...] = (4, 16, 64, 256)
    samples: int = 20
    batch: int = 20
    radius: float = 100.0
    tol: float = 1e-5
    max_iter: int = 200
    bound_rtol: float = 1e-2
    ceiling: float = 1.0
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
        "(a) every sample obeys the Prop 5.1 bound (measured <= bound * (1 + "
        "bound_rtol)); (b) at every S the median normalized norm is below the median "
        "unnormalized one; (c) at every S the median normalized norm is <= ceiling "
        "(O(1)). The growth of the unnormalized norm with S is reported, not judged."
    )
    notes = (
        "Random token directions instead of embedded arXiv text (the paper's CCDV data), "
        "and an ItrSA layer without positional encoding.",
    )
    Config = Fig1Config
    presets: ClassVar[dict[str, Fig1Config]] = {
        "tiny": Fig1Config(
            dim=16, heads=2, tokens=(2, 8, 32), samples=3, batch=3, tol=1e-6, max_iter=200
        ),
        "small": Fig1Config(),
        "paper": Fig1Config(
            dim=256, heads=8, tokens=(16, 32, 64, 128, 256, 512, 1024), samples=500, batch=25
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
            for lo in range(0, cfg.samples, cfg.batch):
                b = min(cfg.batch, cfg.samples - lo)
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
            f"R={cfg.radius:g}; median over {cfg.samples} random states "
            "(band: 5-95% range).",
        }
        table = {
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
        data = {
            "tokens": tokens,
            "samples": rows,
            "median": med,
            "min_pre_norm_radius": min(radius_min),
            "eta": float(model.eta.detach()),
            "max_gain": float(model.norm_gain.detach().abs().max()),
        }
        return {"data": data, "figures": {"jacobian_norm": figure}, "tables": {"norms": table}}

    def judge(self, record: Mapping[str, Any]) -> Verdict:
        cfg, data = record["config"], record["data"]
        samples, med = data["samples"], data["median"]
        ratio = max(
            max(n / b for n, b in zip(ns, bs, strict=True))
            for ns, bs in zip(samples["normalized"], samples["bound"], strict=True)
        )
        reduced = [n < u for n, u in zip(med["normalized"], med["unnormalized"], strict=True)]
        tokens = data["tokens"]
        checks = [
            check(
                "Prop 5.1 bound",
                "measured / bound <= 1 + bound_rtol for every sample",
                ratio <= 1 + cfg["bound_rtol"],
                {"max measured/bound": ratio},
            ),
            check(
                "normalization reduces the norm",
                "median normalized < median unnormalized at every S",
                all(reduced),
                {"S where reduced": [s for s, r in zip(tokens, reduced, strict=True) if r]},
            ),
            check(
                "O(1) in S",
                f"median normalized <= ceiling ({cfg['ceiling']:g}) at every S",
                max(med["normalized"]) <= cfg["ceiling"],
                {"max median normalized": max(med["normalized"])},
            ),
            check(
                "growth with S (context)",
                "log-log slope of the medians",
                None,
                {
                    "slope normalized": loglog_slope(tokens, med["normalized"]),
                    "slope unnormalized": loglog_slope(tokens, med["unnormalized"]),
                },
                required=False,
            ),
        ]
        return Verdict.combine(self.criterion, checks)


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
