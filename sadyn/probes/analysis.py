"""Every dynamics probe of a trained model on N puzzles (``sadyn analyze``): the pipeline.

:func:`run_analysis` takes a loaded model and an :class:`AnalysisSettings`: it draws the
puzzles, rolls them out, times the model's step on this machine and prints a rough estimate
(:func:`estimate_seconds`), runs the probes of :data:`PROBES` that were asked for from one table
(name -> probe and figure), then writes ``OUT/results.json`` (a results file: each probe's
numbers under ``probes``, a ``png`` figure spec per probe under ``figures``, the settings under
``config``) and one PNG per probe beside it. :func:`summary_text` is the terminal's summary.

Settings left unset (None) take the cheap defaults :data:`CHEAP`, or the documented analysis
:data:`FULL` with ``full=True`` (:meth:`AnalysisSettings.resolved`).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sadyn.errors import SadynError
from sadyn.progress import format_seconds
from sadyn.sudoku.datasets import pool_fields, with_pool_tag

PROBES = ("jacobian", "lyapunov", "energy", "sensitivity", "scaling")

#: settings of the cheap default analysis and of ``--full`` (the documented one)
CHEAP: dict[str, Any] = {
    "n": 16,
    "eig_samples": 2,
    "eig_k": 32,
    "k": 8,
    "qr_steps": 64,
    "transient": 16,
    "ci_samples": 1,
    "ci_every": 16,
    "sens_n": 4,
    "sens_warmup": 64,
    "sens_steps": 1000,
}
FULL: dict[str, Any] = {
    "n": 16,
    "eig_samples": 4,
    "eig_k": 64,
    "k": 16,
    "qr_steps": 128,
    "transient": 32,
    "ci_samples": 2,
    "ci_every": 4,
    "sens_n": 8,
    "sens_warmup": 128,
    "sens_steps": 2000,
}


@dataclass
class AnalysisSettings:
    """What to analyze and how (the ``sadyn analyze`` options, one field each, in their order;
    None: from :data:`CHEAP` / :data:`FULL`). ``checkpoint`` names the model, for the record
    and the default output folder ``MODEL/analysis``."""

    checkpoint: str
    data: str = "id"
    n: int | None = None
    full: bool = False
    steps: list[int] | None = None
    probes: list[str] = field(default_factory=lambda: list(PROBES))
    out: str | None = None
    which: str = "latest"
    weights: str = "ema"
    float64: bool = False
    seed: int = 0
    estimate_only: bool = False
    eig_samples: int | None = None
    eig_k: int | None = None
    dense_max: int = 2048
    horizon: int = 16
    k: int | None = None
    top_m: int | None = None
    qr_steps: int | None = None
    transient: int | None = None
    ftle_iters: int = 4
    ci_samples: int | None = None
    ci_every: int | None = None
    fraction: float = 0.02
    ci_dense_max: int = 12_288
    ci_max_minutes: float | None = None
    sens_n: int | None = None
    sens_warmup: int | None = None
    sens_steps: int | None = None
    sens_records: int = 300
    sens_eps: float = 1e-3
    eps_is: str = "std"
    scaling_steps: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    scaling_data: str = "id,ood"
    scaling_n: int = 100
    votes: list[int] = field(default_factory=lambda: [1])
    vote: str = "verifier,confidence,energy"
    halt: str = "none"
    restart_noise: float | None = None
    device: str = "cpu"
    threads: int | None = None
    quiet: bool = False

    def resolved(self) -> AnalysisSettings:
        """A copy with the options left unset filled from :data:`CHEAP` (or :data:`FULL`)."""
        table = FULL if self.full else CHEAP
        unset = {key: value for key, value in table.items() if getattr(self, key) is None}
        return dataclasses.replace(self, **unset)

    def config(self) -> dict[str, Any]:
        """The settings as the results file records them (``command`` first, as the command
        line's namespace had it)."""
        return {"command": "analyze", **dataclasses.asdict(self)}

    def scaling_sets(self) -> list[str]:
        return [d.strip() for d in self.scaling_data.split(",") if d.strip()]

    def jacobian_steps(self) -> list[int]:
        return sorted(set(self.steps if self.steps is not None else [0, self.horizon]))

    def check(self) -> None:
        """Clear errors for impossible settings, before anything runs (on resolved ones)."""
        positive = {
            "--n": self.n,
            "--horizon": self.horizon,
            "--k": self.k,
            "--ci-every": self.ci_every,
            "--sens-n": self.sens_n,
            "--sens-steps": self.sens_steps,
            "--ftle-iters": self.ftle_iters,
            "--eig-samples": self.eig_samples,
            "--eig-k": self.eig_k,
            "--scaling-n": self.scaling_n,
        }
        if "scaling" in self.probes:
            from sadyn.probes.halting import HaltRule
            from sadyn.probes.voting import parse_rules

            parse_rules(self.vote)  # clear errors before any probe runs
            if HaltRule.parse(self.halt).any_valid and len(set(self.votes)) > 1:
                raise SadynError("--halt any-valid cannot be combined with several --votes counts")
            if not self.scaling_sets():
                raise SadynError("--scaling-data names no puzzle set")
        for name, value in positive.items():
            if value < 1:
                raise SadynError(f"{name} must be >= 1, got {value}")
        for name, value in {
            "--qr-steps": self.qr_steps,
            "--transient": self.transient,
            "--sens-warmup": self.sens_warmup,
            "--ci-samples": self.ci_samples,
        }.items():
            if value < 0:
                raise SadynError(f"{name} must be >= 0, got {value}")
        if not 0 < self.fraction < 1:
            raise SadynError("--fraction must lie in (0, 1)")


# ----------------------------------------------------------------------------- estimate
@dataclass
class Units:
    """Measured unit costs on this machine (seconds): one loop step of one puzzle, one
    Jacobian-vector product of it, and a dense symmetric eigenproblem of size 1000."""

    step: float
    jvp: float
    eigh_1000: float


def measure_units(model: Any, cond: Any, x: Any) -> Units:
    """Time the unit costs on the first puzzle (a fraction of a second)."""
    import numpy as np
    import torch

    c1, x1 = cond[:1], x[:1]

    def best(fn: Any, reps: int = 3) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    with torch.no_grad():
        t_step = best(lambda: model.step(x1, c1))
    v = torch.randn_like(x1)
    t_jvp = best(lambda: torch.func.jvp(lambda y: model.step(y, c1), (x1,), (v,)))
    a = np.random.default_rng(0).standard_normal((400, 400))
    a = a + a.T
    t_eigh = best(lambda: np.linalg.eigh(a), reps=2) * (1000 / 400) ** 3
    return Units(t_step, max(t_jvp, t_step), t_eigh)


def estimate_seconds(settings: AnalysisSettings, units: Units, n_dim: int) -> dict[str, float]:
    """Rough seconds per probe from the (resolved) settings and the measured unit costs. The
    constants were fitted on the tiny (S*D = 2,592) and small (5,184) ItrSA on this project's
    2-core CPU; expect errors up to about 2x (ARPACK's iteration count depends on the
    spectrum)."""
    s = settings
    n, j = s.n, units.jvp
    steps = s.steps if s.steps is not None else [0, s.horizon]
    dense = n_dim <= s.dense_max
    eig = n_dim * j + units.eigh_1000 * (n_dim / 1000) ** 3 if dense else (6 * s.eig_k + 60) * j
    ftle = 2 * s.horizon * s.ftle_iters + s.qr_steps + s.transient
    eigh = units.eigh_1000 * (n_dim / 1000) ** 3
    ci_steps = len(range(0, s.horizon + 1, s.ci_every)) + 1
    est = {
        "jacobian": 2.7 * len(steps) * (60 * n * j + s.eig_samples * eig),
        "lyapunov": 0.19 * n * s.k * ftle * j,
        "energy": _energy_seconds(s, n_dim, j, eigh, ci_steps),
        "sensitivity": 2.2 * s.sens_n * (s.sens_warmup + s.sens_steps) * units.step,
        "scaling": 1.25
        * s.scaling_n
        * len(s.scaling_sets())
        * max(s.votes)
        * max(s.scaling_steps)
        * units.step,
    }
    return {name: est[name] for name in s.probes}


# ----------------------------------------------------------------------------- run
@dataclass
class Analysis:
    """What :func:`run_analysis` made: the output folder, each probe's numbers (``to_dict``
    form), the figure specs, and the seconds each probe took and was estimated to take."""

    out: Path
    probes: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    estimated_s: dict[str, float] = field(default_factory=dict)


def run_analysis(
    settings: AnalysisSettings,
    model: Any,
    model_config: dict[str, Any],
    meta: dict[str, Any],
    *,
    started: float | None = None,
) -> Analysis | None:
    """Run the probes of ``settings`` (resolved and checked) on ``model`` (loaded from
    ``settings.checkpoint`` with its config and checkpoint ``meta``) and write the results;
    None with ``estimate_only`` (the estimate printed, nothing written). ``started`` (a
    ``time.perf_counter()``, default now) starts the recorded wall time."""
    from sadyn.probes.stepmap import rollout
    from sadyn.sudoku import resolve_dataset

    s = settings
    start = time.perf_counter() if started is None else started
    if s.float64:
        model = copy.deepcopy(model).double()
    puzzles = resolve_dataset(s.data, n=s.n, seed=s.seed)
    if len(puzzles) == 0:
        raise SadynError(f"no puzzles in {s.data!r}")
    if meta.get("pretrained"):
        default_out = Path("out") / "analysis" / str(meta["pretrained"])
    else:
        default_out = Path(s.checkpoint) / "analysis"
    result = Analysis(Path(s.out) if s.out else default_out)
    run_ = rollout(model, puzzles, max(s.horizon, *s.jacobian_steps()), seed=s.seed)
    units = measure_units(model, run_.cond, run_.states[0])
    result.estimated_s = estimate_seconds(s, units, run_.dim)
    if not s.quiet or s.estimate_only:
        _announce(s, len(puzzles), run_.dim, result.estimated_s)
    if s.estimate_only:
        return None
    result.out.mkdir(parents=True, exist_ok=True)
    table = _probe_table(s, model, run_, result)
    for i, name in enumerate(s.probes, 1):
        if not s.quiet:
            est = format_seconds(result.estimated_s[name])
            print(f"analyze: [{i}/{len(s.probes)}] {name} (estimated {est})", flush=True)
        t0 = time.perf_counter()
        table[name]()
        result.timings_s[name] = time.perf_counter() - t0
        if not s.quiet:
            took = format_seconds(result.timings_s[name])
            print(f"analyze: {name} took {took}", flush=True)
    _write(s, result, model_config, meta, puzzles, run_, time.perf_counter() - start)
    return result


def _energy_seconds(s: AnalysisSettings, n_dim: int, j: float, eigh: float, ci_steps: int) -> float:
    """The energy probe's estimate: dense eigh up to ``ci_dense_max``, else the block solver's
    budget (or its sweep cap) per (puzzle, step)."""
    if n_dim <= s.ci_dense_max:
        return 0.3 * s.ci_samples * ci_steps * (n_dim * j / 4 + 1.5 * eigh)
    from sadyn.probes.energy import block_seconds

    return s.ci_samples * (ci_steps - 1) * block_seconds(n_dim, s.fraction, j, s.ci_max_minutes)


def _announce(s: AnalysisSettings, n: int, dim: int, est: dict[str, float]) -> None:
    """The time estimate."""
    print(
        f"analyze: {n} puzzles, S*D = {dim}, probes {', '.join(s.probes)}; "
        f"estimated {format_seconds(sum(est.values()))} on this machine (rough; "
        + ", ".join(f"{k} {format_seconds(v)}" for k, v in est.items())
        + ("; --full is slower" if not s.full else "")
        + ")",
        flush=True,
    )


def _probe_table(
    s: AnalysisSettings, model: Any, run_: Any, result: Analysis
) -> dict[str, Callable[[], None]]:
    """Probe name -> a call that runs it and records its numbers and figure in ``result``."""
    from sadyn.probes import figures
    from sadyn.probes.energy import energy_probe
    from sadyn.probes.jacobian import jacobian_probe
    from sadyn.probes.lyapunov import lyapunov_probe
    from sadyn.probes.sensitivity import sensitivity_probe

    show, out = not s.quiet, result.out

    def record(name: str, probe: Any, plot: Any) -> None:
        result.probes[name] = probe.to_dict()
        path = plot(probe, out / f"{name}.png")
        result.figures[name] = {"kind": "png", "path": path.name, "title": name}

    def jacobian() -> None:
        probe = jacobian_probe(model, run_, s.jacobian_steps(), samples=s.eig_samples,
                               k=s.eig_k, dense_max=s.dense_max, seed=s.seed,
                               show_progress=show)  # fmt: skip
        record("jacobian", probe, figures.plot_jacobian)

    def lyapunov() -> None:
        probe = lyapunov_probe(model, run_, horizon=s.horizon, k=s.k, top_m=s.top_m,
                               asymptotic_steps=s.qr_steps, transient=s.transient, seed=s.seed,
                               max_iter=s.ftle_iters, show_progress=show)  # fmt: skip
        record("lyapunov", probe, figures.plot_lyapunov)

    def energy() -> None:
        probe = energy_probe(model, run_, ci_steps=list(range(0, run_.steps + 1, s.ci_every)),
                             samples=s.ci_samples, fraction=s.fraction,
                             dense_max=s.ci_dense_max, seed=s.seed,
                             max_seconds=None if s.ci_max_minutes is None
                             else 60 * s.ci_max_minutes,
                             show_progress=show)  # fmt: skip
        record("energy", probe, figures.plot_energy)

    def sensitivity() -> None:
        probe = sensitivity_probe(model, run_.subset(slice(0, s.sens_n)),
                                  warmup=s.sens_warmup, steps=s.sens_steps,
                                  records=s.sens_records, eps=s.sens_eps, eps_is=s.eps_is,
                                  seed=s.seed, show_progress=show)  # fmt: skip
        record("sensitivity", probe, figures.plot_sensitivity)

    return {
        "jacobian": jacobian,
        "lyapunov": lyapunov,
        "energy": energy,
        "sensitivity": sensitivity,
        "scaling": lambda: _scaling(model, s, result, show),
    }


def _write(
    s: AnalysisSettings,
    result: Analysis,
    model_config: dict[str, Any],
    meta: dict[str, Any],
    puzzles: Any,
    run_: Any,
    wall: float,
) -> None:
    from sadyn.results import write_results

    write_results(
        result.out / "results.json",
        {
            "name": "analyze",
            "claim": None,
            "config": s.config(),
            "seed": s.seed,
            "wall_time_s": wall,
            "data": {
                "checkpoint": str(s.checkpoint),
                "model_config": model_config,
                "train_step": meta.get("step"),
                "pretrained": meta.get("pretrained"),
                "puzzles": {
                    "spec": s.data,
                    "n": len(puzzles),
                    "source": getattr(puzzles, "source", None),
                    **pool_fields(puzzles),
                },
                "state_shape": list(run_.state_shape),
                "timings_s": result.timings_s,
                "estimated_s": result.estimated_s,
            },
            "probes": result.probes,
            "figures": result.figures,
        },
    )


def _scaling(model: Any, s: AnalysisSettings, result: Analysis, show: bool) -> None:
    """Board accuracy against the loop budget T on each set of ``scaling_data``; with K > 1
    restarts, one run of max K restarts per set and every K of ``votes`` voted over its first
    K (``evaluate(vote_grid=...)``): the test-time compute curves, one figure per set."""
    from sadyn.probes.accuracy import (
        DEFAULT_RESTART_NOISE,
        compute_figure,
        evaluate,
        plot_accuracy,
        plot_line_spec,
        split_by_votes,
    )
    from sadyn.sudoku import resolve_dataset

    out, figs = result.out, result.figures
    k_max = max(s.votes)
    cfg = getattr(model, "cfg", None)
    cond_start = getattr(cfg, "init", None) == "cond"
    noise = s.restart_noise
    if noise is None and k_max > 1 and cond_start and not getattr(cfg, "init_noise", 0):
        noise = DEFAULT_RESTART_NOISE
    results: dict[str, Any] = {}
    for name in s.scaling_sets():
        puzzles = resolve_dataset(name, n=s.scaling_n, seed=s.seed)
        results[name] = evaluate(
            model,
            puzzles,
            s.scaling_steps,
            votes=k_max,
            vote=s.vote if k_max > 1 else "none",
            vote_grid=s.votes,
            batch_size=None,  # the measured chunk size of the device
            seed=s.seed,
            anchor=k_max > 1 and cond_start,
            halt=s.halt,
            restart_noise=noise if k_max > 1 else None,
            progress=show,
        )
        results[name].update(pool_fields(puzzles))
        if k_max > 1:
            spec = compute_figure(
                split_by_votes(results[name]), title=f"test-time compute ({name})"
            )
            path = plot_line_spec(spec, out / f"compute-{_slug(name)}.png")
            figs[f"compute-{name}"] = {
                "kind": "png",
                "path": path.name,
                "title": f"accuracy vs K restarts and T loops ({name})",
            }
    result.probes["scaling"] = results
    # the accuracy curve of the fewest restarts (K=1: restart 0, the deterministic run)
    single = {
        with_pool_tag(name, res.get("pool_sha256")): split_by_votes(res)[min(s.votes)]
        for name, res in results.items()
    }
    path = plot_accuracy(single, out / "scaling.png")
    figs["scaling"] = {"kind": "png", "path": path.name, "title": "accuracy vs loop count"}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).name)


def summary_text(probes: dict[str, Any], out: Path) -> str:
    """A few lines per probe, for the terminal."""
    lines = [f"analysis written to {out}/results.json (+ figures)"]
    if "jacobian" in probes:
        for t, row in probes["jacobian"]["summary"].items():
            text = (
                f"  jacobian {t}: ||J|| median {row['spectral_norm_median']:.4g}, "
                f"radius median {row['spectral_radius_median']:.4g}"
            )
            if "bound_median" in row:
                text += (
                    f", Prop 5.1 bound median {row['bound_median']:.4g} "
                    f"({row.get('bound_status', 'holds' if row['bound_holds'] else 'VIOLATED')})"
                )
            lines.append(text)
    if "lyapunov" in probes:
        s = probes["lyapunov"]["summary"]
        h = probes["lyapunov"]["horizon"]
        for key, label in (
            ("max_ftle", f"max FTLE (T={h})"),
            ("mean_ftle", "mean FTLE"),
            ("max_qr", "max QR"),
            ("mean_qr", "mean QR"),
        ):
            if key in s and "median" in s[key]:
                d = s[key]
                lines.append(
                    f"  {label}: median {d['median']:+.4f} "
                    f"[5%: {d['q05']:+.4f}, 95%: {d['q95']:+.4f}] over {d['count']}"
                )
    if "energy" in probes:
        s = probes["energy"]["summary"]
        text = (
            f"  pseudo-energy {s['energy_first']:.4g} -> {s['energy_last']:.4g}; "
            f"cos(MSA, Jx) mean {s['cosine_mean']:.3f}"
        )
        if "contribution_first" in s:
            text += (
                f"; contribution index {s['contribution_first']:.3f} -> "
                f"{s['contribution_last']:.3f}"
            )
        lines.append(text)
    if "sensitivity" in probes:
        s = probes["sensitivity"]["summary"]
        rate = s["growth_rate_median"]
        lines.append(
            f"  sensitivity: L1 {s['l1_initial_median']:.3g} -> "
            f"{s['l1_final_median']:.3g}; growth rate "
            f"{'n/a' if rate is None else f'{rate:+.4f}'} per step"
        )
    from sadyn.probes.accuracy import split_by_votes

    for name, res in probes.get("scaling", {}).items():
        for k, row in sorted(split_by_votes(res).items()):
            acc = ", ".join(
                f"T={t}: {100 * a:.1f}%"
                for t, a in zip(row["steps"], row["board_accuracy"], strict=True)
            )
            what = "single run" if k == 1 else f"K={k} {row['vote']}"
            pool = f", pool: {res['pool']}" if res.get("pool") else ""
            lines.append(f"  board accuracy ({name}{pool}, {what}): {acc}")
    return "\n".join(lines)
