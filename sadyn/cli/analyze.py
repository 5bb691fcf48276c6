"""``sadyn analyze MODEL``: every dynamics probe of a trained model on N puzzles.

MODEL is a run folder, a checkpoint folder or a pretrained name (``small-itrsa``). Writes
``OUT/results.json`` (a results file: each probe's numbers under ``probes``, a ``png`` figure
spec per probe under ``figures``) and one PNG per probe beside it, and prints a summary.

The defaults are cheap (a few minutes on the ``small`` model on one CPU core): 16 puzzles, the
contribution index at t = 0 and T only, short sensitivity runs. ``--full`` selects the settings
of the documented analysis (about 5 minutes on one idle core at D = 64, more under load); any
single option can also be set. Before starting, the command prints a rough time estimate from a
timing of the model's step on this machine; after each probe it prints the time it took.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sadyn.cli._args import add_quiet, add_threads, choice_list, int_list, int_list_from
from sadyn.errors import SadynError
from sadyn.progress import format_seconds

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


def _default(key: str) -> str:
    return f"default {CHEAP[key]}; --full {FULL[key]}"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="run the dynamics probes on a trained model (a few minutes by default)",
        description=__doc__,
    )
    p.add_argument(
        "checkpoint",
        metavar="MODEL",
        help="a run folder, a checkpoint folder, or a pretrained name such as small-itrsa",
    )
    p.add_argument(
        "--data",
        default="id",
        help="id (SATNet-style test), ood (RRN-style test) or a puzzle file (default id)",
    )
    p.add_argument("--n", type=int, default=None, help=f"puzzles to analyze ({_default('n')})")
    p.add_argument(
        "--full",
        action="store_true",
        help="the documented (slower) settings for every option not given explicitly",
    )
    p.add_argument(
        "--steps",
        type=int_list_from(0),
        default=None,
        metavar="T,...",
        help="loop steps at which the Jacobian is taken, comma-separated (default 0,HORIZON)",
    )
    p.add_argument(
        "--probes",
        type=choice_list(PROBES),
        default=list(PROBES),
        metavar="NAME,...",
        help=f"probes to run, comma-separated among {','.join(PROBES)} (default all)",
    )
    p.add_argument(
        "--out", metavar="DIR", default=None, help="output folder (default MODEL/analysis)"
    )
    p.add_argument(
        "--which",
        default="latest",
        choices=("latest", "best"),
        help="checkpoint of a run folder to load (default latest)",
    )
    p.add_argument(
        "--weights",
        default="ema",
        choices=("ema", "raw"),
        help="EMA (default) or online weights of a run",
    )
    p.add_argument(
        "--float64",
        action="store_true",
        help="analyze a float64 copy of the model (slower, more exact)",
    )
    p.add_argument("--seed", type=int, default=0, help="puzzles, noise and probe vectors")
    p.add_argument(
        "--estimate-only",
        action="store_true",
        help="print the time estimate and exit without running the probes",
    )
    g = p.add_argument_group("Jacobian")
    g.add_argument(
        "--eig-samples",
        type=int,
        default=None,
        help=f"puzzles whose eigenvalues are computed ({_default('eig_samples')})",
    )
    g.add_argument(
        "--eig-k",
        type=int,
        default=None,
        help=f"eigenvalues per puzzle when S*D > --dense-max, matrix-free ({_default('eig_k')})",
    )
    g.add_argument(
        "--dense-max",
        type=int,
        default=2048,
        help="largest S*D whose eigenvalues are all computed densely (default 2048)",
    )
    g = p.add_argument_group("Lyapunov")
    g.add_argument(
        "--horizon", type=int, default=16, help="T of the finite-time exponents (default 16)"
    )
    g.add_argument("--k", type=int, default=None, help=f"top-k exponents ({_default('k')})")
    g.add_argument("--top-m", type=int, default=None, help="M of the mean exponent (default k)")
    g.add_argument(
        "--qr-steps",
        type=int,
        default=None,
        help=f"steps of the asymptotic QR spectrum, 0 skips it ({_default('qr_steps')})",
    )
    g.add_argument(
        "--transient",
        type=int,
        default=None,
        help=f"QR steps discarded first ({_default('transient')})",
    )
    g.add_argument(
        "--ftle-iters",
        type=int,
        default=4,
        help="subspace iterations of the matrix-free finite-time solver (default 4)",
    )
    g = p.add_argument_group("energy")
    g.add_argument(
        "--ci-samples",
        type=int,
        default=None,
        help="puzzles with the contribution index, 0 skips it (the pseudo-energy is still "
        f"computed) ({_default('ci_samples')})",
    )
    g.add_argument(
        "--ci-every",
        type=int,
        default=None,
        help="contribution index every k loop steps; each costs about a minute per puzzle at "
        f"S*D = 10,368 on one core ({_default('ci_every')})",
    )
    g.add_argument(
        "--fraction", type=float, default=0.02, help="top eigenspace share (default 0.02)"
    )
    g.add_argument(
        "--ci-dense-max",
        type=int,
        default=12_288,
        help="largest S*D whose contribution index is dense, else the block solver (default 12288)",
    )
    g.add_argument(
        "--ci-max-minutes",
        type=float,
        default=None,
        help="CPU-time budget of each block eigenproblem above --ci-dense-max (default: "
        "until converged); a cut one is recorded as not converged",
    )
    g = p.add_argument_group("sensitivity")
    g.add_argument(
        "--sens-n",
        type=int,
        default=None,
        help=f"puzzles in the sensitivity test ({_default('sens_n')})",
    )
    g.add_argument(
        "--sens-warmup",
        type=int,
        default=None,
        help=f"loop steps before the perturbation ({_default('sens_warmup')})",
    )
    g.add_argument(
        "--sens-steps",
        type=int,
        default=None,
        help=f"loop steps after it; the paper uses 10000 ({_default('sens_steps')})",
    )
    g.add_argument(
        "--sens-records",
        type=int,
        default=300,
        help="distances recorded over the run (default 300)",
    )
    g.add_argument("--sens-eps", type=float, default=1e-3, help="perturbation size (default 1e-3)")
    g.add_argument(
        "--eps-is",
        default="std",
        choices=("std", "variance"),
        help="whether --sens-eps is the noise's standard deviation or its variance",
    )
    g = p.add_argument_group("test-time scaling and compute (K restarts x T loops)")
    g.add_argument(
        "--scaling-steps",
        type=int_list,
        default=[16, 32, 64, 128],
        metavar="T,...",
        help="loop counts of the accuracy curve, comma-separated (default 16,32,64,128)",
    )
    g.add_argument(
        "--scaling-data",
        default="id,ood",
        metavar="SET,...",
        help="puzzle sets of the curves: id, ood or puzzle files, comma-separated (default id,ood)",
    )
    g.add_argument(
        "--scaling-n",
        type=int,
        default=100,
        help="boards per set for the curves (default 100)",
    )
    g.add_argument(
        "--votes",
        type=int_list,
        default=[1],
        metavar="K,...",
        help="restart counts of the test-time compute curves, comma-separated (default 1: the "
        "single run only; e.g. 1,4,16,64: one run of max K restarts, each K voted over its "
        "first K)",
    )
    g.add_argument(
        "--vote",
        default="verifier,confidence,energy",
        metavar="RULE,...",
        help="vote rules scored on the restarts, the first drawn "
        "(default verifier,confidence,energy)",
    )
    g.add_argument(
        "--halt",
        default="none",
        help="adaptive halting of each restart (sadyn eval --halt: stable:M, valid, "
        "residual:TOL; not any-valid, which would cut the first K' restarts short)",
    )
    g.add_argument(
        "--restart-noise",
        type=float,
        default=None,
        metavar="SIGMA",
        help="test-time restart noise for a model with a deterministic start (init=cond without "
        "init_noise; default 0.3 there when K > 1); restart 0 stays the deterministic run",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="where the model and the probes run: cpu (default), cuda[:i] or auto",
    )
    add_threads(p)
    add_quiet(p)
    p.set_defaults(func=run)


def resolve_settings(args: argparse.Namespace) -> None:
    """Fill the options left unset from :data:`CHEAP` (or :data:`FULL` with ``--full``)."""
    table = FULL if args.full else CHEAP
    for key, value in table.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def _check(args: argparse.Namespace) -> None:
    positive = {
        "--n": args.n,
        "--horizon": args.horizon,
        "--k": args.k,
        "--ci-every": args.ci_every,
        "--sens-n": args.sens_n,
        "--sens-steps": args.sens_steps,
        "--ftle-iters": args.ftle_iters,
        "--eig-samples": args.eig_samples,
        "--eig-k": args.eig_k,
        "--scaling-n": args.scaling_n,
    }
    if "scaling" in args.probes:
        from sadyn.probes.halting import HaltRule
        from sadyn.probes.voting import parse_rules

        parse_rules(args.vote)  # clear errors before any probe runs
        if HaltRule.parse(args.halt).any_valid and len(set(args.votes)) > 1:
            raise SadynError("--halt any-valid cannot be combined with several --votes counts")
        if not _scaling_sets(args):
            raise SadynError("--scaling-data names no puzzle set")
    for name, value in positive.items():
        if value < 1:
            raise SadynError(f"{name} must be >= 1, got {value}")
    for name, value in {
        "--qr-steps": args.qr_steps,
        "--transient": args.transient,
        "--sens-warmup": args.sens_warmup,
        "--ci-samples": args.ci_samples,
    }.items():
        if value < 0:
            raise SadynError(f"{name} must be >= 0, got {value}")
    if not 0 < args.fraction < 1:
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


def estimate_seconds(args: argparse.Namespace, units: Units, n_dim: int) -> dict[str, float]:
    """Rough seconds per probe from the settings and the measured unit costs. The constants
    were fitted on the tiny (S*D = 2,592) and small (5,184) ItrSA on this project's 2-core CPU;
    expect errors up to about 2x (ARPACK's iteration count depends on the spectrum)."""
    n, j = args.n, units.jvp
    steps = args.steps if args.steps is not None else [0, args.horizon]
    dense = n_dim <= args.dense_max
    eig = n_dim * j + units.eigh_1000 * (n_dim / 1000) ** 3 if dense else (6 * args.eig_k + 60) * j
    ftle = 2 * args.horizon * args.ftle_iters + args.qr_steps + args.transient
    eigh = units.eigh_1000 * (n_dim / 1000) ** 3
    ci_steps = len(range(0, args.horizon + 1, args.ci_every)) + 1
    energy = 0.3 * args.ci_samples * ci_steps * (n_dim * j / 4 + 1.5 * eigh)
    if n_dim > args.ci_dense_max:  # the block solver: its budget, or its sweep cap
        from sadyn.probes.energy import block_seconds

        energy = (
            args.ci_samples
            * (ci_steps - 1)
            * block_seconds(n_dim, args.fraction, j, args.ci_max_minutes)
        )
    est = {
        "jacobian": 2.7 * len(steps) * (60 * n * j + args.eig_samples * eig),
        "lyapunov": 0.19 * n * args.k * ftle * j,
        "energy": energy,
        "sensitivity": 2.2 * args.sens_n * (args.sens_warmup + args.sens_steps) * units.step,
        "scaling": 1.25
        * args.scaling_n
        * len(_scaling_sets(args))
        * max(args.votes)
        * max(args.scaling_steps)
        * units.step,
    }
    return {name: est[name] for name in args.probes}


# ----------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    import torch

    from sadyn.pretrained import resolve_model
    from sadyn.probes import figures
    from sadyn.probes.energy import energy_probe
    from sadyn.probes.jacobian import jacobian_probe
    from sadyn.probes.lyapunov import lyapunov_probe
    from sadyn.probes.sensitivity import sensitivity_probe
    from sadyn.probes.stepmap import rollout
    from sadyn.results import write_results
    from sadyn.sudoku import resolve_dataset

    resolve_settings(args)
    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    show = not args.quiet
    start = time.perf_counter()
    from sadyn.training.distributed import resolve_device

    model, model_config, meta = resolve_model(
        args.checkpoint, which=args.which, weights=args.weights, device=resolve_device(args.device)
    )
    if args.float64:
        model = copy.deepcopy(model).double()
    puzzles = resolve_dataset(args.data, n=args.n, seed=args.seed)
    if len(puzzles) == 0:
        raise SadynError(f"no puzzles in {args.data!r}")
    if meta.get("pretrained"):
        default_out = Path("out") / "analysis" / str(meta["pretrained"])
    else:
        default_out = Path(args.checkpoint) / "analysis"
    out = Path(args.out) if args.out else default_out

    jac_steps = sorted(set(args.steps if args.steps is not None else [0, args.horizon]))
    run_ = rollout(model, puzzles, max(args.horizon, *jac_steps), seed=args.seed)
    units = measure_units(model, run_.cond, run_.states[0])
    est = estimate_seconds(args, units, run_.dim)
    if show or args.estimate_only:
        print(
            f"analyze: {len(puzzles)} puzzles, S*D = {run_.dim}, probes {', '.join(args.probes)}; "
            f"estimated {format_seconds(sum(est.values()))} on this machine (rough; "
            + ", ".join(f"{k} {format_seconds(v)}" for k, v in est.items())
            + ("; --full is slower" if not args.full else "")
            + ")",
            flush=True,
        )
        load, cores = _load(), os.cpu_count() or 1
        if args.threads is None and cores > 1 and load > cores:
            print(
                f"analyze: note: load average {load:.1f} on {cores} cores; --threads 1 avoids "
                "oversubscribing them (often several times faster on a busy machine)",
                flush=True,
            )
    if args.estimate_only:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    probes: dict[str, Any] = {}
    figs: dict[str, Any] = {}
    timings: dict[str, float] = {}

    def record(name: str, probe: Any, plot: Any) -> None:
        probes[name] = probe.to_dict()
        path = plot(probe, out / f"{name}.png")
        figs[name] = {"kind": "png", "path": path.name, "title": name}

    table = {
        "jacobian": lambda: record(
            "jacobian",
            jacobian_probe(
                model,
                run_,
                jac_steps,
                samples=args.eig_samples,
                k=args.eig_k,
                dense_max=args.dense_max,
                seed=args.seed,
                show_progress=show,
            ),
            figures.plot_jacobian,
        ),
        "lyapunov": lambda: record(
            "lyapunov",
            lyapunov_probe(
                model,
                run_,
                horizon=args.horizon,
                k=args.k,
                top_m=args.top_m,
                asymptotic_steps=args.qr_steps,
                transient=args.transient,
                seed=args.seed,
                max_iter=args.ftle_iters,
                show_progress=show,
            ),
            figures.plot_lyapunov,
        ),
        "energy": lambda: record(
            "energy",
            energy_probe(
                model,
                run_,
                ci_steps=list(range(0, run_.steps + 1, args.ci_every)),
                samples=args.ci_samples,
                fraction=args.fraction,
                dense_max=args.ci_dense_max,
                seed=args.seed,
                max_seconds=None if args.ci_max_minutes is None else 60 * args.ci_max_minutes,
                show_progress=show,
            ),
            figures.plot_energy,
        ),
        "sensitivity": lambda: record(
            "sensitivity",
            sensitivity_probe(
                model,
                run_.subset(slice(0, args.sens_n)),
                warmup=args.sens_warmup,
                steps=args.sens_steps,
                records=args.sens_records,
                eps=args.sens_eps,
                eps_is=args.eps_is,
                seed=args.seed,
                show_progress=show,
            ),
            figures.plot_sensitivity,
        ),
        "scaling": lambda: _scaling(model, args, probes, figs, out, show),
    }
    for i, name in enumerate(args.probes, 1):
        if show:
            print(
                f"analyze: [{i}/{len(args.probes)}] {name} (estimated {format_seconds(est[name])})",
                flush=True,
            )
        t0 = time.perf_counter()
        table[name]()
        timings[name] = time.perf_counter() - t0
        if show:
            print(f"analyze: {name} took {format_seconds(timings[name])}", flush=True)

    config = {k: v for k, v in vars(args).items() if k != "func"}
    write_results(
        out / "results.json",
        {
            "name": "analyze",
            "claim": None,
            "config": config,
            "seed": args.seed,
            "wall_time_s": time.perf_counter() - start,
            "data": {
                "checkpoint": str(args.checkpoint),
                "model_config": model_config,
                "train_step": meta.get("step"),
                "pretrained": meta.get("pretrained"),
                "puzzles": {
                    "spec": args.data,
                    "n": len(puzzles),
                    "source": getattr(puzzles, "source", None),
                    "pool_sha256": pool_record(puzzles),
                },
                "state_shape": list(run_.state_shape),
                "timings_s": timings,
                "estimated_s": est,
            },
            "probes": probes,
            "figures": figs,
        },
    )
    print(summary_text(probes, out))
    return 0


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def pool_record(puzzles: Any) -> str | None:
    """The 17-clue pool behind an RRN-style set: its SHA-256, ``"fallback"``, or None for a
    set that does not come from a pool."""
    meta = getattr(puzzles, "meta", {}) or {}
    if meta.get("kind") != "rrn" and "pool" not in meta:
        return None
    if str(meta.get("pool", "")).startswith("fallback"):
        return "fallback"
    return meta.get("pool_sha256")


def _scaling_sets(args: argparse.Namespace) -> list[str]:
    return [d.strip() for d in args.scaling_data.split(",") if d.strip()]


def _scaling(
    model: Any,
    args: argparse.Namespace,
    probes: dict[str, Any],
    figs: dict[str, Any],
    out: Path,
    show: bool,
) -> None:
    """Board accuracy against the loop budget T on each set of ``--scaling-data``; with K > 1
    restarts, one run of max K restarts per set and every K of ``--votes`` voted over its first
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

    k_max = max(args.votes)
    cfg = getattr(model, "cfg", None)
    cond_start = getattr(cfg, "init", None) == "cond"
    noise = args.restart_noise
    if noise is None and k_max > 1 and cond_start and not getattr(cfg, "init_noise", 0):
        noise = DEFAULT_RESTART_NOISE
    results: dict[str, Any] = {}
    for name in _scaling_sets(args):
        puzzles = resolve_dataset(name, n=args.scaling_n, seed=args.seed)
        results[name] = evaluate(
            model,
            puzzles,
            args.scaling_steps,
            votes=k_max,
            vote=args.vote if k_max > 1 else "none",
            vote_grid=args.votes,
            batch_size=None,  # the measured chunk size of the device
            seed=args.seed,
            anchor=k_max > 1 and cond_start,
            halt=args.halt,
            restart_noise=noise if k_max > 1 else None,
            progress=show,
        )
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
    probes["scaling"] = results
    # the accuracy curve of the fewest restarts (K=1: restart 0, the deterministic run)
    single = {name: split_by_votes(res)[min(args.votes)] for name, res in results.items()}
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
                    f"({'holds' if row['bound_holds'] else 'VIOLATED'})"
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
            lines.append(f"  board accuracy ({name}, {what}): {acc}")
    return "\n".join(lines)
