"""Benchmark of batched voting (``sadyn.probes.accuracy.evaluate``) against a per-board loop in
the reference's style, at equal K and T.

The reference (AKOrN's Sudoku evaluation, ``reference/akorn.md`` §1.6) votes one board at a
time: it repeats the board K times, runs the K restarts as one batch for T steps with the
explicit softmax attention, logs the energy of each state before its update, and keeps the
restart with the lowest sum. sadyn's ``evaluate`` runs many boards x K restarts per chunk,
scores every rule on the same trajectories, and can use the fused attention kernel
(``scaled_dot_product_attention``), which never materializes the ``(rows, H, 81, 81)``
probabilities.

Measured on the small-preset architectures (D=64, H=4, row/column/box embeddings, relation
bias; ItrSA with restart noise ``init_noise=1`` and AKOrN) with random weights (speed does not
depend on the weights), on RRN-style boards, one thread:

* the reference loop (boards/s);
* ``evaluate`` with one board per chunk (``batch_size = K``), unfused: same restarts drawn in
  the same order, so its picks must equal the reference's (checked);
* ``evaluate`` over a grid of chunk sizes, unfused and fused: boards/s and the ratio to the
  reference; the best chunk size is the measured default for the device.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_voting.py [--boards 64] [--ref-boards
16] [--votes 16] [--steps 16]``; writes ``benchmarks/results/voting.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from sadyn.models import build_model
from sadyn.pretrained import resolve_model
from sadyn.probes.accuracy import evaluate, fused_context, restart_noise_context
from sadyn.sudoku import PuzzleSet, get_dataset
from sadyn.sudoku.metrics import board_correct
from sadyn.training.presets import get_preset


def reference_vote(model, puzzles: PuzzleSet, votes: int, steps: int, seed: int) -> list[bool]:
    """One board at a time, K restarts in a batch, lowest sum of E(X_0..X_{T-1}) wins."""
    quizzes, solutions = puzzles.to_torch()
    gen = torch.Generator().manual_seed(seed)
    right = []
    with torch.no_grad():
        for q, s in zip(quizzes, solutions, strict=True):
            qk = q[None].repeat(votes, 1)
            out = model(qk, steps, generator=gen, return_energies=True)
            energy = out.energies[:steps].sum(0)  # the state before each update: X_0..X_{T-1}
            best = int(torch.argmin(energy))  # first minimum, as torch.argmin
            pred = out.logits[best].argmax(-1) + 1
            right.append(bool(board_correct(pred[None], q[None], s[None])))
    return right


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _budget(spec: str, votes: int, steps: int) -> tuple[str, int, int]:
    """``rule``, ``rule@K`` or ``rule@KxT`` -> (rule, K, T), K and T defaulting to the run's."""
    rule, _, budget = spec.partition("@")
    k, _, t = budget.partition("x")
    return rule, int(k) if k else votes, int(t) if t else steps


def bench_model(
    model, boards, ref_boards, votes, steps, configs, rounds, seed=0, noise=None, selector=None
):
    """Interleaved rounds (every method once per round, best round kept: the machine is
    shared, so the fastest round is the least disturbed one). configs: (rows per chunk,
    fused, halting rule, vote rule). The accuracy column is each method's board accuracy on
    ``boards`` (the reference's picks there from ``evaluate`` at batch = K, which picks as the
    loop does; the loop itself is timed on ``ref_boards``)."""
    with restart_noise_context(model, noise):
        reference_vote(model, ref_boards.subset(range(1)), votes, steps, seed)  # warm-up
        same = evaluate(
            model, ref_boards, [steps], votes=votes, vote="energy", batch_size=votes, seed=seed
        )
        ref = reference_vote(model, ref_boards, votes, steps, seed)
    agree = abs(same["board_accuracy"][0] - sum(ref) / len(ref)) < 1e-12
    # the reference's picks on the batched boards (evaluate at batch = K draws the restarts in
    # the loop's order, checked above): its accuracy on the same boards as every other row
    with restart_noise_context(model, noise):
        on_boards = evaluate(
            model, boards, [steps], votes=votes, vote="energy", batch_size=votes, seed=seed
        )["board_accuracy"][0]
    best: dict[str, float] = {}
    acc: dict[str, float] = {}
    loops: dict[str, float] = {}
    for _ in range(rounds):
        with restart_noise_context(model, noise):
            _, t_ref = timed(lambda: reference_vote(model, ref_boards, votes, steps, seed))
        best["ref"] = max(best.get("ref", 0.0), len(ref_boards) / t_ref)
        for chunk, fused, h, spec in configs:
            rule, k, t = _budget(spec, votes, steps)
            res = evaluate(
                model,
                boards,
                [t],
                votes=k,
                vote=rule,
                batch_size=chunk,
                seed=seed,
                fused=fused,
                halt=h,
                restart_noise=noise,
                anchor=rule == "learned",  # restart 0 the deterministic run
                selector=selector if ("learned" in rule or "confident" in h) else None,
            )
            key = f"{chunk}/{fused}/{h}/{spec}"
            best[key] = max(best.get(key, 0.0), res["boards_per_s"])
            acc[key], loops[key] = res["board_accuracy"][0], res["mean_loops"][0]
    ref_rate = best["ref"]
    rows = [
        (
            "reference loop (1 board x K per batch, explicit softmax, E-vote)",
            votes,
            "-",
            100 * on_boards,
            ref_rate,
            1.0,
        )
    ]
    for chunk, fused, h, spec in configs:
        key = f"{chunk}/{fused}/{h}/{spec}"
        rule, k, t = _budget(spec, votes, steps)
        label = f"evaluate, {'fused' if fused else 'explicit'} attention, halt {h}, vote {rule}"
        label += f", K = {k}" if k != votes else ""
        label += f", T = {t}" if t != steps else ""
        rows.append(
            (label, chunk, f"{loops[key]:.1f}", 100 * acc[key], best[key], best[key] / ref_rate)
        )
    return rows, agree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boards", type=int, default=64, help="boards for the batched runs")
    ap.add_argument("--ref-boards", type=int, default=16, help="boards for the reference loop")
    ap.add_argument("--votes", type=int, default=16)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--chunks", default="16,64,256,1024")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    ap.add_argument("--run", default=None, help="a trained run directory instead of random weights")
    ap.add_argument("--halt", default="none", help="also time this halting rule (E-vote)")
    ap.add_argument(
        "--board-halt",
        action="store_true",
        help="also time the verifier vote with any-valid halting (a board's K restarts stop "
        "when one of them is a valid solution)",
    )
    ap.add_argument(
        "--restart-noise",
        type=float,
        default=None,
        help="test-time restart noise for a trained model with a deterministic start",
    )
    ap.add_argument(
        "--selector",
        type=float,
        default=None,
        metavar="P",
        help="also time the learned vote with any-confident:P halting (the --run pretrained "
        "model's selector head: a board's K restarts stop when the head puts one at >= P)",
    )
    ap.add_argument(
        "--selector-votes",
        type=lambda text: [int(k) for k in text.split(",")],
        default=None,
        help="restart counts for the --selector runs (default: --votes), e.g. 16,4",
    )
    ap.add_argument(
        "--selector-budgets",
        type=lambda text: [tuple(int(v) for v in kt.split("x")) for kt in text.split(",")],
        default=[],
        metavar="KxT,...",
        help="also time the learned vote at these restarts x loops (fused attention, the same "
        "halting): budgets whose accuracy matches the reference's at a fraction of its loops, "
        "e.g. 4x128,4x64; given alone, the --selector-votes runs are left out",
    )
    ap.add_argument(
        "--halted-only",
        action="store_true",
        help="time only the halting configurations (--halt, --board-halt, --selector)",
    )
    ap.add_argument(
        "--data",
        default="rrn",
        choices=("rrn", "satnet", "ood"),
        help="test boards (ood: the 1,000 RRN-style boards of the verifier-free selection and "
        "test-time compute studies, Royle's pool)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "voting.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    chunks = [int(c) for c in args.chunks.split(",")]
    with fused_context(True):  # fail early if this build has no fused switch
        pass
    n = max(args.boards, args.ref_boards)
    if args.data == "ood":
        from sadyn.sudoku.datasets import resolve_dataset

        ood = resolve_dataset("ood", n=1000).subset(range(n))
    else:
        ood = get_dataset(args.data, "test", n=n, progress=False)
    boards = ood.subset(range(args.boards))
    ref_boards = ood.subset(range(args.ref_boards))
    base = get_preset("small").model
    models = {}
    selector = None
    if args.selector is not None:
        from sadyn.pretrained.selector import load_selector

        selector, _ = load_selector(args.run)
    if args.run:
        model, cfg, meta = resolve_model(args.run)
        name = meta.get("pretrained") or Path(args.run).name
        models[f"trained model {name} (step {meta.get('step')})"] = model
    else:
        for name, cfg in {
            "ItrSA small-vote (init_noise 1.0), random weights": {**base, "init_noise": 1.0},
            "AKOrN small, random weights": {**base, "model": "akorn", "init": "akorn"},
        }.items():
            torch.manual_seed(0)
            models[name] = build_model(cfg)
    lines = [
        "## Voting: batched vs the reference's per-board loop (`benchmarks/bench_voting.py`)",
        "",
        f"K = {args.votes} restarts, T = {args.steps} loops, E-vote (`energy`: sum of "
        f"E(X_0..X_{{T-1}})), RRN-style boards ({args.ref_boards} for the reference loop, "
        f"{args.boards} for the batched runs), "
        + (f"the model `{args.run}`, " if args.run else "small-preset architectures (D=64, H=4), ")
        + f"best of {args.rounds} interleaved rounds, {args.threads} thread(s), "
        f"{platform.processor() or platform.machine()},"
        f" {os.cpu_count()} CPUs, torch {torch.__version__}. Load average at start: "
        f"{os.getloadavg()[0]:.1f}. Ratios are to the reference loop measured in the same run.",
        "",
    ]
    configs = [] if args.halted_only else [(c, False, "none", "energy") for c in chunks]
    configs += [] if args.halted_only else [(c, True, "none", "energy") for c in chunks[:2]]
    if args.halt != "none":
        configs += [(chunks[0], False, args.halt, "energy")]
    if args.board_halt:
        configs += [(c, False, "any-valid", "verifier") for c in chunks[:2]]
    if args.selector is not None:
        halt = f"any-confident:{args.selector}"
        skip = args.selector_budgets and args.selector_votes is None
        for k in [] if skip else args.selector_votes or [args.votes]:
            rule = "learned" if k == args.votes else f"learned@{k}"
            configs += [(c, False, halt, rule) for c in chunks[:2]]
        configs += [(chunks[0], True, halt, f"learned@{k}x{t}") for k, t in args.selector_budgets]
    for name, model in models.items():
        model.eval()
        rows, agree = bench_model(
            model,
            boards,
            ref_boards,
            args.votes,
            args.steps,
            configs,
            args.rounds,
            noise=args.restart_noise,
            selector=selector,
        )
        lines += [
            f"### {name} ({args.data} boards"
            + (f", restart noise {args.restart_noise}" if args.restart_noise else "")
            + ")",
            "",
            "| method | rows per chunk | mean loops | board acc. (%) | boards/s | vs reference |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {m} | {c} | {lp} | {a:.1f} | {r:.2f} | {x:.2f}x |" for m, c, lp, a, r, x in rows
        ]
        fastest = max(rows[1:], key=lambda r: r[4])
        lines += [
            "",
            f"Same restarts, same picks (batch = K, explicit attention, against the reference "
            f"loop): **{'yes' if agree else 'NO'}**. Fastest: {fastest[0]}, {fastest[1]} rows "
            f"per chunk ({fastest[5]:.2f}x the reference).",
            "",
        ]
        print("\n".join(lines[-len(rows) - 6 :]), flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
