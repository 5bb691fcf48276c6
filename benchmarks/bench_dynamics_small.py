"""Benchmark of the QR Lyapunov spectrum on tiny maps (a user's first call).

Run: ``.venv/bin/python benchmarks/bench_dynamics_small.py --threads 1
[--out benchmarks/results/dynamics_small.md] [--baseline-src DIR]``. Side by side in one run:

(a) steps per second of the full QR spectrum on Hénon (n = 2), the logistic map (n = 1), a
    chaotic tanh RNN (n = 8, 32) and a normalised toy oscillator (n = 16), by
    ``lyapunov_spectrum`` with ``tangent="auto"`` (the dense step that looks ahead: the
    Jacobians of up to 256 coming steps in one vmapped call), by the same QR loop with the
    per-step dense step (what "auto" ran before), by forward mode (``tangent="jvp"``), by a
    hand-written loop of ``torch.func.jacrev`` + QR, and by the hand-written Jacobian + QR
    (Hénon only: the floor of any autodiff method); the exponents of each against "auto";
(b) the README's tour call, ``lyapunov_spectrum(henon.f, henon.x0, 3_000, transient=100)``,
    in a fresh process (imports and the first autograd call included) and warm; with
    ``--baseline-src DIR`` (``git archive <commit> sadyn | tar -x -C DIR``) the same call of
    that code in a subprocess of the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from bench_dynamics import timeit  # the benchmarks' one timer (best of repeats)
from torch import Tensor
from torch.func import jacrev

from sadyn.dynamics import lyapunov_spectrum, math_attention, systems
from sadyn.dynamics._common import as_batched, rounding_zero_tol
from sadyn.dynamics.lyapunov import benettin, initial_tangents, qr_log
from sadyn.dynamics.tangent import dense_tangent_step

TOUR = """
import time, torch
t0 = time.perf_counter()
from sadyn.dynamics import lyapunov_spectrum, systems
h = systems.henon()
t1 = time.perf_counter()
r = lyapunov_spectrum(h.f, h.x0, 3_000, transient=100, progress=False)
t2 = time.perf_counter()
r = lyapunov_spectrum(h.f, h.x0, 3_000, transient=100, progress=False)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, *r.exponents.tolist())
"""


def per_step_dense(f: Callable, x0: Tensor, steps: int) -> Tensor:
    """The QR loop with one reverse-mode Jacobian per step (the old "auto" for small n)."""
    F, X = as_batched(f, x0, False)
    Q = initial_tangents(X, None, None, None, False)
    ztol = rounding_zero_tol(X.dtype, X.shape[-1])
    with math_attention(), torch.no_grad():
        res = benettin(dense_tangent_step(F), X, Q, steps, zero_tol=ztol, show_progress=False)
    return res.exponents[0].sort(descending=True).values


def hand_loop(jac: Callable[[Tensor], Tensor], f: Callable, x0: Tensor, steps: int) -> Tensor:
    """A user's loop: ``Q, R = qr(J(x) Q)`` with ``J`` from ``jac``, no bookkeeping."""
    x, n = x0, x0.shape[-1]
    Q = torch.eye(n, dtype=x0.dtype)
    acc = torch.zeros(n, dtype=torch.float64)
    for _ in range(steps):
        Q, R = torch.linalg.qr(jac(x) @ Q)
        acc += R.diagonal().abs().log()
        x = f(x)
    return (acc / steps).sort(descending=True).values


def measure(name: str, f: Callable, x0: Tensor, steps: int, repeats: int, jac=None) -> dict:
    """Steps per second of each method on one map, and its exponents' gap to "auto"."""
    auto = lyapunov_spectrum(f, x0, steps, progress=False).exponents
    ways: dict[str, Callable[[], Tensor]] = {
        "auto (look-ahead)": lambda: lyapunov_spectrum(f, x0, steps, progress=False).exponents,
        "per-step dense": lambda: per_step_dense(f, x0, steps),
        "jvp": lambda: lyapunov_spectrum(f, x0, steps, tangent="jvp", progress=False).exponents,
        "jacrev loop": lambda: hand_loop(jacrev(f), f, x0, steps),
    }
    if jac is not None:
        ways["hand-written J"] = lambda: hand_loop(jac, f, x0, steps)
    row = {"map": name, "n": x0.shape[-1], "steps": steps}
    for way, fn in ways.items():
        row[way] = steps / timeit(fn, repeats)
        gap = (fn() - auto).abs()
        row[way + " gap"] = float(gap[torch.isfinite(gap)].max()) if gap.numel() else 0.0
    _ = qr_log  # the loop's QR is the package's (imported to keep the comparison honest)
    return row


def tour(src: str | None) -> list[float]:
    """The README's tour call in a fresh process: import, first call, warm call (seconds)."""
    env = dict(os.environ)
    args = [sys.executable, "-c", TOUR]
    if src:
        env["PYTHONPATH"] = src
        args.insert(1, "-P")  # the source tree, not the checkout's sadyn
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-src", default=None)
    ap.add_argument("--out", default="benchmarks/results/dynamics_small.md")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    h = systems.henon()
    maps = [
        ("Hénon", h.f, h.x0, h.jacobian),
        ("logistic r=4", systems.logistic(4.0).f, systems.logistic(4.0).x0, None),
        ("tanh RNN", *(lambda s: (s.f, s.x0))(systems.random_tanh_rnn(8, 4.0, seed=1)), None),
        ("tanh RNN", *(lambda s: (s.f, s.x0))(systems.random_tanh_rnn(32, 4.0, seed=1)), None),
        (
            "toy oscillator, normalised",
            *(lambda s: (s.f, s.x0))(
                systems.toy_oscillator([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], normalize=True)
            ),
            None,
        ),
    ]
    rows = [measure(name, f, x0, a.steps, a.repeats, jac) for name, f, x0, jac in maps]
    tours = {"this code": tour(None)}
    if a.baseline_src:
        tours["baseline"] = tour(a.baseline_src)
    write(a, rows, tours)


def write(a: argparse.Namespace, rows: list[dict], tours: dict[str, list[float]]) -> None:
    ways = [k for k in rows[0] if k not in ("map", "n", "steps") and not k.endswith("gap")]
    ways += ["hand-written J"] if "hand-written J" not in ways else []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "## sadyn.dynamics: tiny maps (`benchmarks/bench_dynamics_small.py`)",
        "",
        f"{a.threads} thread(s), float64, {a.steps} QR steps (full spectrum), best of "
        f"{a.repeats} after a warm-up; torch {torch.__version__}, {platform.machine()}, load "
        f"average {load:.1f} at the end. Steps per second; in brackets the ratio to the "
        'per-step dense step (what `tangent="auto"` ran before) and the largest gap of the '
        'exponents to "auto".',
        "",
        "| map | n | " + " | ".join(ways) + " |",
        "|---|---|" + "---|" * len(ways),
    ]
    for r in rows:
        base = r["per-step dense"]
        cells = []
        for w in ways:
            if w not in r:
                cells.append("")
                continue
            cells.append(f"{r[w]:,.0f} ({r[w] / base:.1f}x; {r[w + ' gap']:.0e})")
        lines.append(f"| {r['map']} | {r['n']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "README tour call, `lyapunov_spectrum(henon.f, henon.x0, 3_000, transient=100)`, in a "
        "fresh process (seconds):",
        "",
        "| code | import | first call | warm call | exponents |",
        "|---|---|---|---|---|",
    ]
    for name, (imp, first, warm, *exps) in tours.items():
        e = ", ".join(f"{v:.6f}" for v in exps)
        lines.append(f"| {name} | {imp:.2f} | {first:.2f} | {warm:.2f} | {e} |")
    Path(a.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
