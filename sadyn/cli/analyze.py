"""``sadyn analyze CHECKPOINT_DIR``: every dynamics probe of a trained model on N puzzles.

Writes ``OUT/results.json`` (a results file: each probe's numbers under ``probes``, a ``png``
figure spec per probe under ``figures``) and one PNG per probe beside it, and prints a summary.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

from sadyn.errors import SadynError

PROBES = ("jacobian", "lyapunov", "energy", "sensitivity", "scaling")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="run the dynamics probes on a trained checkpoint",
        description="Jacobian spectra and the Prop 5.1 bound, finite-time and QR Lyapunov "
        "exponents (distributions over puzzles), pseudo-energy and contribution index, "
        "sensitivity to a perturbation, and accuracy against loop count.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT_DIR", help="a run or checkpoint folder")
    p.add_argument(
        "--data",
        default="id",
        help="id (SATNet-style test), ood (RRN-style test) or a puzzle file (default id)",
    )
    p.add_argument("--n", type=int, default=32, help="puzzles to analyze (default 32)")
    p.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=None,
        metavar="T",
        help="loop steps at which the Jacobian is taken (default 0 and --horizon)",
    )
    p.add_argument(
        "--probes",
        nargs="+",
        default=list(PROBES),
        choices=PROBES,
        help="which probes to run (default all)",
    )
    p.add_argument(
        "--out", metavar="DIR", default=None, help="output folder (default CHECKPOINT_DIR/analysis)"
    )
    p.add_argument(
        "--which",
        default="latest",
        choices=("latest", "best"),
        help="checkpoint of a run folder to load",
    )
    p.add_argument("--weights", default="ema", choices=("ema", "raw"))
    p.add_argument(
        "--float64",
        action="store_true",
        help="analyze a float64 copy of the model (slower, more exact)",
    )
    p.add_argument("--seed", type=int, default=0, help="puzzles, noise and probe vectors")
    g = p.add_argument_group("Jacobian")
    g.add_argument("--eig-samples", type=int, default=4, help="puzzles with eigenvalues")
    g.add_argument(
        "--eig-k",
        type=int,
        default=64,
        help="eigenvalues per puzzle when n > --dense-max (matrix-free)",
    )
    g.add_argument(
        "--dense-max", type=int, default=2048, help="largest S*D done densely (all eigenvalues)"
    )
    g = p.add_argument_group("Lyapunov")
    g.add_argument("--horizon", type=int, default=16, help="T of the finite-time exponents")
    g.add_argument("--k", type=int, default=16, help="top-k exponents per puzzle")
    g.add_argument("--top-m", type=int, default=None, help="M of the mean exponent (default k)")
    g.add_argument(
        "--qr-steps", type=int, default=128, help="steps of the asymptotic QR spectrum (0 skips it)"
    )
    g.add_argument("--transient", type=int, default=32, help="QR transient steps")
    g.add_argument(
        "--ftle-iters",
        type=int,
        default=4,
        help="subspace iterations of the matrix-free finite-time solver",
    )
    g = p.add_argument_group("energy")
    g.add_argument("--ci-samples", type=int, default=1, help="puzzles with contribution index")
    g.add_argument(
        "--ci-every",
        type=int,
        default=8,
        help="contribution index every k steps "
        "(each costs about a minute per puzzle at S*D = 10,368 on one core)",
    )
    g.add_argument("--fraction", type=float, default=0.02, help="top eigenspace share")
    g.add_argument(
        "--ci-dense-max",
        type=int,
        default=12_288,
        help="largest S*D whose contribution index is dense (else ARPACK, slow)",
    )
    g = p.add_argument_group("sensitivity")
    g.add_argument("--sens-n", type=int, default=8, help="puzzles in the sensitivity test")
    g.add_argument("--sens-warmup", type=int, default=128)
    g.add_argument("--sens-steps", type=int, default=2000, help="paper: 10000")
    g.add_argument("--sens-records", type=int, default=300)
    g.add_argument("--sens-eps", type=float, default=1e-3)
    g.add_argument("--eps-is", default="std", choices=("std", "variance"))
    g = p.add_argument_group("test-time scaling")
    g.add_argument(
        "--scaling-steps",
        type=int,
        nargs="+",
        default=[16, 32, 64, 128],
        metavar="T",
        help="loop counts of the accuracy curve",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    positive = {
        "--n": args.n,
        "--horizon": args.horizon,
        "--k": args.k,
        "--ci-every": args.ci_every,
        "--sens-n": args.sens_n,
        "--sens-steps": args.sens_steps,
        "--ftle-iters": args.ftle_iters,
    }
    for name, value in positive.items():
        if value < 1:
            raise SadynError(f"{name} must be >= 1, got {value}")
    if args.steps is not None and min(args.steps) < 0:
        raise SadynError("--steps must be >= 0")
    if not 0 < args.fraction < 1:
        raise SadynError("--fraction must lie in (0, 1)")


def run(args: argparse.Namespace) -> int:
    import torch

    from sadyn.probes import figures
    from sadyn.probes.energy import energy_probe
    from sadyn.probes.jacobian import jacobian_probe
    from sadyn.probes.lyapunov import lyapunov_probe
    from sadyn.probes.sensitivity import sensitivity_probe
    from sadyn.probes.stepmap import rollout
    from sadyn.results import write_results
    from sadyn.sudoku import resolve_dataset
    from sadyn.training import load_checkpoint

    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    show = not args.quiet
    start = time.perf_counter()
    model, model_config, meta = load_checkpoint(
        args.checkpoint, which=args.which, weights=args.weights
    )
    if args.float64:
        model = copy.deepcopy(model).double()
    puzzles = resolve_dataset(args.data, n=args.n, seed=args.seed)
    if len(puzzles) == 0:
        raise SadynError(f"no puzzles in {args.data!r}")
    out = Path(args.out) if args.out else Path(args.checkpoint) / "analysis"
    out.mkdir(parents=True, exist_ok=True)

    jac_steps = sorted(set(args.steps if args.steps is not None else [0, args.horizon]))
    run_ = rollout(model, puzzles, max(args.horizon, *jac_steps), seed=args.seed)
    probes: dict[str, Any] = {}
    figs: dict[str, Any] = {}
    timings: dict[str, float] = {}

    def record(name: str, probe: Any, plot: Any) -> None:
        probes[name] = probe.to_dict()
        path = plot(probe, out / f"{name}.png")
        figs[name] = {"kind": "png", "path": path.name, "title": name}

    for name in args.probes:
        t0 = time.perf_counter()
        if name == "jacobian":
            record(
                name,
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
            )
        elif name == "lyapunov":
            record(
                name,
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
            )
        elif name == "energy":
            ci_steps = list(range(0, run_.steps + 1, args.ci_every))
            record(
                name,
                energy_probe(
                    model,
                    run_,
                    ci_steps=ci_steps,
                    samples=args.ci_samples,
                    fraction=args.fraction,
                    dense_max=args.ci_dense_max,
                    seed=args.seed,
                    show_progress=show,
                ),
                figures.plot_energy,
            )
        elif name == "sensitivity":
            record(
                name,
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
            )
        elif name == "scaling":
            _scaling(model, puzzles, args, probes, figs, out, show)
        timings[name] = time.perf_counter() - t0

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
                "puzzles": {
                    "spec": args.data,
                    "n": len(puzzles),
                    "source": getattr(puzzles, "source", None),
                },
                "state_shape": list(run_.state_shape),
                "timings_s": timings,
            },
            "probes": probes,
            "figures": figs,
        },
    )
    if show:
        print(summary_text(probes, out))
    return 0


def _scaling(
    model: Any,
    puzzles: Any,
    args: argparse.Namespace,
    probes: dict[str, Any],
    figs: dict[str, Any],
    out: Path,
    show: bool,
) -> None:
    try:
        from sadyn.probes.accuracy import evaluate, plot_accuracy
    except ImportError as exc:  # the accuracy probe is optional for the others
        print(f"sadyn analyze: skipping test-time scaling ({exc})", file=sys.stderr)
        return
    res = evaluate(model, puzzles, args.scaling_steps, seed=args.seed, progress=show)
    probes["scaling"] = res
    path = plot_accuracy({args.data: res}, out / "scaling.png")
    figs["scaling"] = {"kind": "png", "path": path.name, "title": "accuracy vs loop count"}


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
    if "scaling" in probes:
        res = probes["scaling"]
        acc = ", ".join(
            f"T={t}: {100 * a:.1f}%"
            for t, a in zip(res["steps"], res["board_accuracy"], strict=True)
        )
        lines.append(f"  board accuracy: {acc}")
    return "\n".join(lines)
