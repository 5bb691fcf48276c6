"""Benchmark of sadyn.dynamics on a looped attention step (81 tokens, unit RMSNorm).

Run: ``.venv/bin/python benchmarks/bench_dynamics.py [--out benchmarks/results/dynamics.md]``.
Measures, side by side in one run (2 threads, float32):

(a) the top-k QR Lyapunov spectrum over T steps (``lyapunov_spectrum``: one batched JVP pass
    per step + QR) divided by the time of T plain forward steps, for widths 128 and 512 and
    k in {1, 16, 64} (target: at most 1.0 x k), and against k separate single-tangent JVP
    passes per step (what batching the tangents must beat);
(b) the matrix-free QR step vs the same step with the dense Jacobian (n = 81 x 128 = 10,368;
    target: at least 100x faster);
(c) whether ``torch.compile`` of the batched JVP step pays on CPU (compile time, per-step
    speed-up, agreement with eager).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import jvp

from sadyn.dynamics import lyapunov_spectrum, math_attention
from sadyn.dynamics._common import rounding_zero_tol
from sadyn.dynamics.jacobian import push_forward
from sadyn.dynamics.lyapunov import qr_log

TOKENS = 81


class AttentionStep(nn.Module):
    """``x' = gamma * y / ||y||`` per token, ``y = x + eta (c + MSA(x))``: the ItrSA step.

    Fused qkv ``Linear(D, 3D)``, ``H`` heads through ``F.scaled_dot_product_attention``, an
    output ``Linear(D, D)``, a fixed input injection ``c: (S, D)``.
    """

    def __init__(self, width: int, heads: int, eta: float = 1.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.heads, self.eta = heads, eta
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.register_buffer("cond", torch.randn(TOKENS, width, generator=g))
        self.gamma = nn.Parameter(torch.ones(width))
        self.requires_grad_(False)
        self.eval()

    def forward(self, v: Tensor) -> Tensor:
        """``v: (..., S*D) -> (..., S*D)``."""
        s, d = self.cond.shape
        x = v.reshape(*v.shape[:-1], s, d)
        qkv = self.qkv(x).reshape(*x.shape[:-1], 3, self.heads, d // self.heads)
        q, k, val = qkv.movedim(-3, 0).transpose(-3, -2)  # (..., H, S, Dh) each
        att = F.scaled_dot_product_attention(q, k, val)
        y = x + self.eta * (self.cond + self.out(att.transpose(-3, -2).reshape(x.shape)))
        return (self.gamma * y / torch.linalg.vector_norm(y, dim=-1, keepdim=True)).reshape(v.shape)


def timeit(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Best wall time of ``repeats`` calls (after a warm-up call): on a shared machine the
    least-disturbed run is the best estimate of the cost."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def forward_steps(f: Callable[[Tensor], Tensor], x: Tensor, steps: int) -> Callable[[], Tensor]:
    def run() -> Tensor:
        z = x
        with torch.no_grad():
            for _ in range(steps):
                z = f(z)
        return z

    return run


def separate_passes(f: Callable, x: Tensor, q0: Tensor, steps: int) -> Callable[[], Tensor]:
    """The same QR spectrum with k separate single-tangent JVPs per step (no vmap)."""

    def run() -> Tensor:
        z, Q = x[None], q0[None]
        acc = torch.zeros(Q.shape[-1], dtype=torch.float64)
        tol = rounding_zero_tol(x.dtype, x.shape[-1])
        with math_attention():
            for _ in range(steps):
                cols = [jvp(f, (z[0],), (Q[0, :, j],)) for j in range(Q.shape[-1])]
                z = cols[0][0][None]
                Q, logr = qr_log(torch.stack([c[1] for c in cols], dim=-1)[None], tol)
                acc += logr[0]
        return acc / steps

    return run


def qr_run(f: Callable, x0: Tensor, steps: int, q0: Tensor) -> Callable[[], object]:
    """The library call: top-k QR spectrum with one batched JVP pass per step."""
    k = q0.shape[-1]
    return lambda: lyapunov_spectrum(f, x0, steps, k, q0=q0, tangent="jvp", progress=False)


def bench_ratios(widths: list[int], ks: list[int], steps: dict[int, int], repeats: int) -> list:
    rows = []
    for width in widths:
        heads = 4 if width <= 128 else 8
        f = AttentionStep(width, heads)
        n = TOKENS * width
        x0 = f(torch.randn(n, generator=torch.Generator().manual_seed(1)))
        T = steps[width]
        # Forward steps are cheap and the machine is noisy: many interleaved repeats.
        t_fwd, t_fwd_math = math.inf, math.inf
        for _ in range(5):
            t_fwd = min(t_fwd, timeit(forward_steps(f, x0, T), 3))
            with math_attention():
                t_fwd_math = min(t_fwd_math, timeit(forward_steps(f, x0, T), 3))
        for k in ks:
            q0 = torch.linalg.qr(torch.randn(n, k, generator=torch.Generator().manual_seed(2)))[0]

            t_qr = timeit(qr_run(f, x0, T, q0), repeats)
            # k single-tangent passes cost k times a JVP pass: time one step, scale to T.
            t_sep = T * timeit(separate_passes(f, x0, q0, 1), 1, warmup=False)
            rows.append(
                {
                    "width": width,
                    "heads": heads,
                    "n": n,
                    "T": T,
                    "k": k,
                    "fwd": t_fwd,
                    "fwd_math": t_fwd_math,
                    "qr": t_qr,
                    "sep": t_sep,
                }
            )
            print(
                f"D={width} k={k}: fwd {t_fwd * 1e3:.1f} ms, QR {t_qr * 1e3:.1f} ms "
                f"({t_qr / t_fwd / k:.2f} x k), separate {t_sep * 1e3:.1f} ms",
                flush=True,
            )
    return rows


def bench_dense(width: int, k: int) -> dict:
    f = AttentionStep(width, 4)
    n = TOKENS * width
    x0 = f(torch.randn(n, generator=torch.Generator().manual_seed(1)))
    q0 = torch.linalg.qr(torch.randn(n, k, generator=torch.Generator().manual_seed(2)))[0]

    def run(tangent: str) -> Callable[[], object]:
        return lambda: lyapunov_spectrum(f, x0, 1, k, q0=q0, tangent=tangent, progress=False)

    t_jvp = timeit(run("jvp"), 3)
    t = time.perf_counter()
    dense = run("dense")()
    t_dense = time.perf_counter() - t
    free = run("jvp")()
    diff = float((dense.exponents - free.exponents).abs().max())
    print(f"dense {t_dense:.2f} s vs matrix-free {t_jvp * 1e3:.1f} ms per step", flush=True)
    return {"n": n, "k": k, "dense": t_dense, "jvp": t_jvp, "diff": diff}


def bench_compile(width: int, k: int, steps: int) -> dict:
    f = AttentionStep(width, 4)
    n = TOKENS * width
    x = f(torch.randn(1, n, generator=torch.Generator().manual_seed(1)))
    Q = torch.linalg.qr(torch.randn(1, n, k, generator=torch.Generator().manual_seed(2)))[0]

    def step(x: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        return push_forward(f, x, Q)

    out: dict = {"width": width, "k": k}
    with math_attention():
        eager = timeit(lambda: step(x, Q), steps)
        ref = step(x, Q)[1]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compiled = torch.compile(step)
                t = time.perf_counter()
                got = compiled(x, Q)[1]
                out["compile_s"] = time.perf_counter() - t
                out["compiled"] = timeit(lambda: compiled(x, Q), steps)
            out["diff"] = float((got - ref).abs().max())
        except Exception as err:  # report, don't crash the benchmark
            out["error"] = f"{type(err).__name__}: {str(err)[:200]}"
    out["eager"] = eager
    print(f"compile: {out}", flush=True)
    return out


def markdown(rows: list, dense: dict, comp: dict, env: dict) -> str:
    lines = [
        "## sadyn.dynamics: QR Lyapunov spectra on a looped attention step",
        "",
        f"Machine: {env['cpu']}, {env['threads']} threads, torch {env['torch']}, float32; "
        f"load average at start {env['load']} on {env['cores']} cores (**shared and "
        "contended**: other jobs ran during the measurement, so absolute times are noisy; "
        "ratios come from the same run, interleaved). Map: 81 tokens, fused qkv Linear, "
        "H heads, output Linear, `y = x + eta (c + msa(x))` (eta = 1), `x' = gamma y / ||y||` "
        "per token. "
        "Best of repeated runs after a warm-up.",
        "",
        "### (a) top-k QR spectrum vs T plain forward steps",
        "",
        "`lyapunov_spectrum(f, x0, T, k, tangent='jvp')` (one batched JVP pass over the k "
        "tangents per step, QR every step) against T forward steps under `no_grad` with the "
        "default (fused) SDPA. 'separate' runs k single-tangent JVPs per step instead (timed "
        "over one step and scaled to T).",
        "",
        "| width | n | T | k | forward (T steps) | QR spectrum | ratio | ratio / k "
        "| k separate passes | batched speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["qr"] / r["fwd"]
        lines.append(
            f"| {r['width']} ({r['heads']} heads) | {r['n']} | {r['T']} | {r['k']} "
            f"| {r['fwd'] * 1e3:.1f} ms | {r['qr'] * 1e3:.1f} ms | {ratio:.1f}x "
            f"| {ratio / r['k']:.2f} | {r['sep'] * 1e3:.0f} ms | {r['sep'] / r['qr']:.1f}x |"
        )
    lines += [
        "",
        "Forward steps with the math SDPA backend (which every JVP must use): "
        + ", ".join(
            f"D={r['width']}: {r['fwd_math'] / r['fwd']:.2f}x the fused time"
            for r in rows
            if r["k"] == rows[0]["k"]
        )
        + ".",
        "",
        "### (b) matrix-free vs dense-Jacobian QR step",
        "",
        f"n = {dense['n']}, k = {dense['k']}, one step (JVP pass + QR vs reverse-mode dense "
        f"Jacobian + J @ Q + QR): dense {dense['dense']:.2f} s, matrix-free "
        f"{dense['jvp'] * 1e3:.1f} ms: **{dense['dense'] / dense['jvp']:.0f}x** faster "
        f"(target >= 100x). Exponents agree to {dense['diff']:.1e}.",
        "",
        "### (c) torch.compile of the batched JVP step (CPU)",
        "",
    ]
    if "error" not in comp:
        gain = comp["eager"] - comp["compiled"]
        comp["break_even"] = f"~{comp['compile_s'] / gain:.0f} steps" if gain > 0 else "never"
    if "error" in comp:
        lines.append(f"torch.compile failed: `{comp['error']}`.")
    else:
        lines.append(
            f"D = {comp['width']}, k = {comp['k']}: eager {comp['eager'] * 1e3:.1f} ms/step, "
            f"compiled {comp['compiled'] * 1e3:.1f} ms/step "
            f"(**{comp['eager'] / comp['compiled']:.1f}x**), first call (compilation) "
            f"{comp['compile_s']:.0f} s; max difference to eager {comp['diff']:.1e}. "
            f"Break-even: {comp['break_even']}; every new shape (k, batch, width) recompiles."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/dynamics.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip (c)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = {
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "cores": os.cpu_count(),
        "load": " / ".join(f"{v:.1f}" for v in os.getloadavg()),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            env["cpu"] = next(ln.split(":", 1)[1].strip() for ln in fh if "model name" in ln)
    except (OSError, StopIteration):
        pass
    t0 = time.perf_counter()
    rows = bench_ratios([128, 512], [1, 16, 64], {128: 8, 512: 4}, args.repeats)
    dense = bench_dense(128, 16)
    comp = {"width": 128, "k": 16, "error": "skipped (--no-compile)"}
    if not args.no_compile:
        comp = bench_compile(128, 16, 5)
    text = markdown(rows, dense, comp, env)
    text += f"\nWhole benchmark: {time.perf_counter() - t0:.0f} s.\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
