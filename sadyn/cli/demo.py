"""``sadyn demo --out DIR``: a trained model's dynamics in a few minutes, end to end.

1. evaluate the pretrained ``small-itrsa`` (shipped in ``sadyn/pretrained/``) in and out of
   distribution at several loop counts T (test-time scaling);
2. vote over K restarts out of distribution: with the shipped ``small-vote`` (trained with
   symmetry augmentation), restarts drawn at test time (restart noise 0.3 on the
   blank cells of Norm(C), restart 0 the deterministic run), the verifier vote (fewest Sudoku
   conflicts) and each board stopped once a restart solves it (``--halt any-valid``);
   otherwise with a pretrained model whose initial state draws noise (confidence vote). A
   model that starts from Norm(C) without restart noise gives K copies of one trajectory, and
   the demo says so instead of voting;
3. run the dynamics probes (Jacobian spectra and the Prop 5.1 bound, Lyapunov exponents,
   pseudo-energy, sensitivity) on a few puzzles with cheap settings (the contribution index,
   minutes of dense eigenproblems, is left to ``sadyn analyze``);
4. train the ``tiny`` preset now for a few seconds, to show training and its progress (a
   demonstration of the machinery: a model this small and this short is not accurate);
5. write ``DIR/report.html`` and print what was pretrained, what was trained now, and where the
   report is.

About 6 minutes on a 2-core machine shared with other jobs (measured 6 min 10 s at load 10-12;
results/demo/), less on a quiet one. ``--full-training``
instead trains the ``small`` preset here (30 epochs, about 40 minutes on one core; the time is
printed first) and evaluates and probes that model. Without the pretrained weights the demo
says so and falls back to the model it trains.
"""

from __future__ import annotations

import argparse
import dataclasses

from sadyn.cli._args import add_quiet, add_threads
from sadyn.cli._options import add_options, option
from sadyn.pretrained.demo import FULL_TRAINING_MINUTES, DemoSettings

# the pipeline is sadyn.pretrained.demo (run_demo over DemoSettings)

OPTIONS = [
    (None, [
        option("--out", metavar="DIR", default="out/demo", help="output folder"),
        option("--full-training", action="store_true",
               help=f"train the small preset here (about {FULL_TRAINING_MINUTES} min) instead of "
               "using the pretrained weights"),
        option("--n", type=int, default=None,
               help="boards per evaluated set (default 300; 100 with --fast)"),
        option("--probe-n", type=int, default=4, help="puzzles the probes run on (default 4)"),
        option("--votes", type=int, default=16, help="K restarts of the voting demo (default 16)"),
        option("--train-seconds", type=float, default=30.0,
               help="time cap of the tiny training demo (200 steps) in seconds (default 30)"),
        option("--fast", action="store_true", help="smaller sets and cheaper probes (faster)"),
        option("--seed", type=int, default=0, help="seed of the training and the probes"),
    ]),
]  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="a trained model's accuracy and dynamics in a few minutes, with an HTML report",
        description=__doc__,
    )
    add_options(p, OPTIONS)
    add_threads(p)
    add_quiet(p)
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> DemoSettings:
    """The parsed options as settings (one field per option, same names)."""
    return DemoSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DemoSettings)})


def run(args: argparse.Namespace) -> int:
    import torch

    from sadyn.pretrained.demo import run_demo, summary_lines

    settings = settings_from(args)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    result = run_demo(settings)
    print()
    print("\n".join(summary_lines(result)))
    return 0
