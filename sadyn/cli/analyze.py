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
import dataclasses

from sadyn.cli._args import add_quiet, add_threads, choice_list, int_list, int_list_from
from sadyn.cli._options import Option, add_options, option
from sadyn.probes.analysis import CHEAP, FULL, PROBES, AnalysisSettings

# the pipeline is sadyn.probes.analysis (run_analysis over AnalysisSettings), the model loaded by
# sadyn.pretrained.pipelines.analyze_model


def tuned(flag: str, key: str, text: str) -> Option:
    """An integer option left unset by default, filled from the cheap or ``--full`` settings."""
    return option(
        flag, type=int, default=None, help=f"{text} (default {CHEAP[key]}; --full {FULL[key]})"
    )


OPTIONS = [
    (None, [
        option("checkpoint", metavar="MODEL",
               help="a run folder, a checkpoint folder, or a pretrained name such as small-itrsa"),
        option("--data", default="id",
               help="id (SATNet-style test), ood (RRN-style test) or a puzzle file (default id)"),
        tuned("--n", "n", "puzzles to analyze"),
        option("--full", action="store_true",
               help="the documented (slower) settings for every option not given explicitly"),
        option("--steps", type=int_list_from(0), default=None, metavar="T,...",
               help="loop steps at which the Jacobian is taken, comma-separated "
               "(default 0,HORIZON)"),
        option("--probes", type=choice_list(PROBES), default=list(PROBES), metavar="NAME,...",
               help=f"probes to run, comma-separated among {','.join(PROBES)} (default all)"),
        option("--out", metavar="DIR", default=None, help="output folder (default MODEL/analysis)"),
        option("--which", default="latest", choices=("latest", "best"),
               help="checkpoint of a run folder to load (default latest)"),
        option("--weights", default="ema", choices=("ema", "raw"),
               help="EMA (default) or online weights of a run"),
        option("--float64", action="store_true",
               help="analyze a float64 copy of the model (slower, more exact)"),
        option("--seed", type=int, default=0, help="puzzles, noise and probe vectors"),
        option("--estimate-only", action="store_true",
               help="print the time estimate and exit without running the probes"),
    ]),
    ("Jacobian", [
        tuned("--eig-samples", "eig_samples", "puzzles whose eigenvalues are computed"),
        tuned("--eig-k", "eig_k", "eigenvalues per puzzle when S*D > --dense-max, matrix-free"),
        option("--dense-max", type=int, default=2048,
               help="largest S*D whose eigenvalues are all computed densely (default 2048)"),
    ]),
    ("Lyapunov", [
        option("--horizon", type=int, default=16,
               help="T of the finite-time exponents (default 16)"),
        tuned("--k", "k", "top-k exponents"),
        option("--top-m", type=int, default=None, help="M of the mean exponent (default k)"),
        tuned("--qr-steps", "qr_steps", "steps of the asymptotic QR spectrum, 0 skips it"),
        tuned("--transient", "transient", "QR steps discarded first"),
        option("--ftle-iters", type=int, default=4,
               help="subspace iterations of the matrix-free finite-time solver (default 4)"),
    ]),
    ("energy", [
        tuned("--ci-samples", "ci_samples", "puzzles with the contribution index, 0 skips it "
              "(the pseudo-energy is still computed)"),
        tuned("--ci-every", "ci_every", "contribution index every k loop steps; each costs "
              "about a minute per puzzle at S*D = 10,368 on one core"),
        option("--fraction", type=float, default=0.02, help="top eigenspace share (default 0.02)"),
        option("--ci-dense-max", type=int, default=12_288,
               help="largest S*D whose contribution index is dense, else the block solver "
               "(default 12288)"),
        option("--ci-max-minutes", type=float, default=None,
               help="CPU-time budget of each block eigenproblem above --ci-dense-max (default: "
               "until converged); a cut one is recorded as not converged"),
    ]),
    ("sensitivity", [
        tuned("--sens-n", "sens_n", "puzzles in the sensitivity test"),
        tuned("--sens-warmup", "sens_warmup", "loop steps before the perturbation"),
        tuned("--sens-steps", "sens_steps", "loop steps after it; the paper uses 10000"),
        option("--sens-records", type=int, default=300,
               help="distances recorded over the run (default 300)"),
        option("--sens-eps", type=float, default=1e-3, help="perturbation size (default 1e-3)"),
        option("--eps-is", default="std", choices=("std", "variance"),
               help="whether --sens-eps is the noise's standard deviation or its variance"),
    ]),
    ("test-time scaling and compute (K restarts x T loops)", [
        option("--scaling-steps", type=int_list, default=[16, 32, 64, 128], metavar="T,...",
               help="loop counts of the accuracy curve, comma-separated "
               "(default 16,32,64,128)"),
        option("--scaling-data", default="id,ood", metavar="SET,...",
               help="puzzle sets of the curves: id, ood or puzzle files, comma-separated "
               "(default id,ood)"),
        option("--scaling-n", type=int, default=100,
               help="boards per set for the curves (default 100)"),
        option("--votes", type=int_list, default=[1], metavar="K,...",
               help="restart counts of the test-time compute curves, comma-separated (default "
               "1: the single run only; e.g. 1,4,16,64: one run of max K restarts, each K "
               "voted over its first K)"),
        option("--vote", default="verifier,confidence,energy", metavar="RULE,...",
               help="vote rules scored on the restarts, the first drawn "
               "(default verifier,confidence,energy)"),
        option("--halt", default="none",
               help="adaptive halting of each restart (sadyn eval --halt: stable:M, valid, "
               "residual:TOL; not any-valid, which would cut the first K' restarts short)"),
        option("--restart-noise", type=float, default=None, metavar="SIGMA",
               help="test-time restart noise for a model with a deterministic start (init=cond "
               "without init_noise; default 0.3 there when K > 1); restart 0 stays the "
               "deterministic run"),
    ]),
    (None, [
        option("--device", default="cpu",
               help="where the model and the probes run: cpu (default), cuda[:i] or auto"),
    ]),
]  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="run the dynamics probes on a trained model (a few minutes by default)",
        description=__doc__,
    )
    add_options(p, OPTIONS)
    add_threads(p)
    add_quiet(p)
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> AnalysisSettings:
    """The parsed options as settings, with the unset ones filled (cheap or ``--full``)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(AnalysisSettings)}
    return AnalysisSettings(**given).resolved()


def run(args: argparse.Namespace) -> int:
    import torch

    from sadyn.pretrained.pipelines import analyze_model
    from sadyn.probes.analysis import summary_text

    settings = settings_from(args)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    result = analyze_model(settings)
    if result is not None:
        print(summary_text(result.probes, result.out))
    return 0
