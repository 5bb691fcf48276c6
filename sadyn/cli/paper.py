"""``sadyn paper --out DIR --budget-min 9``: the paper preset end to end in one command, for the
minutes a GPU session gives, within a wall-clock budget.

Stages; each is cut at its share of the budget, and what was cut is written down:

1. data: the SATNet-style training split and test set (ID) and the RRN-style test set (OOD),
   read from the data cache (``$SADYN_DATA_DIR``) or generated;
2. training, in parallel processes sharing the device: the ``paper`` ItrSA (and the ``paper``
   AKOrN with N=4, ``--models itrsa,akorn``) with bf16 autocast, a compiled loop step and the
   fused attention kernel, plus any extra training jobs (``--jobs FILE``: a JSON list of
   ``{"name", "preset", "overrides"}`` or ``{"name", "config"}``) on ``--workers`` processes.
   Every run stops at the training deadline with a checkpoint (``max_minutes``) and is still
   evaluated;
3. evaluation of each main model on ID and OOD at T = 16, 32, 64, 128, without and with voting
   (``--votes`` restarts, confidence vote);
4. probes of the ItrSA (``sadyn analyze``): Jacobian spectrum and the Prop 5.1 bound,
   finite-time Lyapunov exponents at T=16 over 32 puzzles, pseudo-energy and contribution index;
5. ``DIR/report.html`` and ``DIR/paper.json`` (every number, the stage times, the device).

``--dry-run`` runs the same stages at the ``tiny`` preset on the CPU in about a minute (the test
suite does, so the command cannot rot). Nothing touches the network.
"""

from __future__ import annotations

import argparse
import sys

from sadyn.cli._options import add_options, option

# the pipeline is sadyn.experiments.paper (run_paper), its training jobs sadyn.training.jobs
OPTIONS = [
    (
        None,
        [
            option("--out", required=True, metavar="DIR", help="output folder (created)"),
            option(
                "--budget-min",
                type=float,
                default=9.0,
                help="wall-clock budget in minutes (default 9)",
            ),
            option(
                "--models",
                default="itrsa",
                help="main models, comma-separated: itrsa, akorn (default itrsa)",
            ),
            option(
                "--jobs",
                action="append",
                default=[],
                metavar="FILE",
                help="JSON list of extra training jobs to run beside the main models (repeatable)",
            ),
            option("--workers", type=int, default=3, help="parallel processes for --jobs"),
            option(
                "--compile-jobs",
                action="store_true",
                help="compile the loop step of the --jobs runs too (pays off past about a "
                "minute of training; the math is unchanged)",
            ),
            option("--votes", type=int, default=16, help="restarts of the voting evaluation"),
            option("--n-eval", type=int, default=1000, help="puzzles per evaluation set"),
            option("--n-probe", type=int, default=32, help="puzzles of the probes"),
            option("--device", default="auto", help="auto, cpu or cuda[:i]"),
            option(
                "--dry-run",
                action="store_true",
                help="the same stages at the tiny preset on the CPU (about a minute)",
            ),
        ],
    )
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "paper",
        help="train, evaluate and probe the paper preset within a wall-clock budget (a GPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, OPTIONS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from sadyn.experiments.paper import PaperSettings, run_paper, summary_lines

    given = {f.name: getattr(args, f.name) for f in fields(PaperSettings) if f.name != "command"}
    settings = PaperSettings(**given, command="sadyn paper " + " ".join(sys.argv[2:]))
    record = run_paper(settings)
    for line in summary_lines(record):
        print(line)
    return 0
