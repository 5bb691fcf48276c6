"""``sadyn eval``: accuracy of a trained checkpoint against the loop count, with voting.

    sadyn eval RUN_DIR|CHECKPOINT_DIR|NAME [--data id,ood|FILE] [--steps 16,32,64,128,256]
               [--votes K --vote energy|energy-last|energy-sum|energy-final|confidence|
                                 verifier|stability|all (or a comma list)]
               [--halt stable:M,valid,residual:TOL,any-valid,confident:P,any-confident:P]
               [--selector NAME] [--anchor] [--restart-noise SIGMA]
               [--attention auto|fused|explicit] [--n N] [--seed S]

Writes a results JSON (``sadyn.results`` schema) and a PNG of board accuracy against the loop
count, and prints a table and the pool of each RRN-style set. The default output file is named
by everything that changes the numbers: the sets (an RRN-style one tagged with its pool), n, K,
the vote and halting rules, the T grid, and seeds, weights or starts other than the defaults
(``RUN/eval/eval_id+ood-royle_n1000_K1_T16-32-64-128-256.json``); a file holding an evaluation
with other settings is not overwritten without ``--force``. The results record the data seed
and, for RRN-style sets, the 17-clue pool (``pool_sha256``: its SHA-256 or "fallback"; ``pool``:
its name). A run folder interrupted during training is evaluated at its last checkpoint, and
the command says so.
"""

from __future__ import annotations

import argparse
import dataclasses

from sadyn.cli._args import add_quiet, add_threads, int_list
from sadyn.cli._options import add_options, option
from sadyn.errors import SadynError
from sadyn.probes.accuracy import DEFAULT_STEPS
from sadyn.probes.evaluation import EvalSettings
from sadyn.probes.voting import VOTE_RULES, parse_rules

# the pipeline is sadyn.probes.evaluation (run_evaluation over EvalSettings), the model loaded by
# sadyn.pretrained.pipelines.evaluate_model

_int_list = int_list  # the one list syntax of every command (sadyn.cli._args)


def _vote_rules(text: str) -> str:
    try:
        return ",".join(parse_rules(text))
    except SadynError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


OPTIONS = [
    (None, [
        option("checkpoint", metavar="MODEL",
               help="a run directory (its latest checkpoint), a checkpoint directory "
               "(checkpoints/step-NNNNNNN), or a pretrained name such as small-itrsa"),
        option("--data", default="id,ood",
               help="comma-separated datasets: id (SATNet-style test), ood (RRN-style test) "
               "or puzzle files (default: id,ood)"),
        option("--steps", type=_int_list, default=list(DEFAULT_STEPS),
               help="loop counts, comma-separated (default: 16,32,64,128,256)"),
        option("--votes", type=int, default=1, help="K random restarts per board"),
        option("--vote", type=_vote_rules, default="energy",
               help="vote rule when K > 1: " + ", ".join(VOTE_RULES[1:]) + ", a comma list of "
               "them (all scored on the same restarts; the first is the headline) or all "
               "(default: energy, AKOrN's E-vote: sum of E(X_0..X_{T-1}))"),
        option("--halt", default="none",
               help="adaptive halting per board: comma list of stable:M (decoded board unchanged "
               "for M steps), valid (a valid solution keeping the givens), residual:TOL "
               "(||X_t - X_{t-1}|| / ||X_t|| <= TOL), any-valid (all K restarts of a board stop "
               "once one is a valid solution: the verifier vote and the oracle unchanged, fewer "
               "loops), confident:P / any-confident:P (a selector head, --selector, puts a "
               "restart's board at P(right) >= P: that restart / all K stop; verifier-free); "
               "each --steps value is then a budget (default: none)"),
        option("--selector", default=None,
               help="selector head for the learned vote and confident:P / any-confident:P "
               "halting: a pretrained model name (its NAME.selector.json) or a manifest path "
               "(default: the pretrained MODEL's own head, when the vote or the halting needs "
               "one)"),
        option("--anchor", action="store_true",
               help="restart 0 of every board starts from the deterministic initial state"),
        option("--restart-noise", type=float, default=None,
               help="test-time restart noise: the ItrSA init_noise sigma for this evaluation in "
               "place of the model's own (init='cond' models; default: the model's)"),
        option("--attention", choices=("auto", "fused", "explicit"), default="auto",
               help="attention kernel: fused (scaled_dot_product_attention), explicit softmax, "
               "or auto (default: fused on CUDA, explicit on CPU, where it measured faster; "
               "same math)"),
        option("--n", type=int, default=None, help="evaluate on N puzzles of each set"),
        option("--seed", type=int, default=0, help="seed of the initial-state noise"),
        option("--data-seed", type=int, default=0, help="seed of generated sets / subsets"),
        option("--batch-size", type=int, default=None,
               help="model rows (boards x votes) per forward (default: the measured size for the "
               "device, sadyn.probes.accuracy.default_rows)"),
        option("--which", choices=("latest", "best"), default="latest",
               help="checkpoint of a run directory to load"),
        option("--weights", choices=("ema", "raw"), default="ema",
               help="EMA (default, as the reference) or online weights"),
        option("--deterministic", action="store_true",
               help="deterministic initial state instead of random noise"),
        option("--out", default=None,
               help="results JSON path (default: <run>/eval/eval_<sets>_n<N>_K<votes>[_<rule>]"
               "_T<grid>[_<settings>].json, for a pretrained name out/<name>/eval/...; an "
               "RRN-style set is tagged with its pool, e.g. "
               "eval_id+ood-royle_n1000_K1_T16-32-64-128-256.json; the PNG goes beside it)"),
        option("--force", action="store_true",
               help="overwrite an existing results file that holds an evaluation with other "
               "settings"),
        option("--device", default="auto", help="auto, cpu or cuda[:i]"),
    ]),
]  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint: accuracy vs loop count, voting",
        description="Board and cell accuracy of a trained model (EMA weights by default) in and "
        "out of distribution, over a grid of loop counts from one run per batch; optional voting "
        "over K random initial states.",
    )
    add_options(p, OPTIONS)
    add_threads(p)
    add_quiet(p)
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> EvalSettings:
    """The parsed options as settings (one field per option, same names)."""
    return EvalSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EvalSettings)})


def run(args: argparse.Namespace) -> int:
    import torch

    from sadyn.pretrained.pipelines import evaluate_model
    from sadyn.probes.evaluation import summary_text

    settings = settings_from(args)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    print(summary_text(evaluate_model(settings)))
    return 0
