"""Benchmark of the tangent step, the QR spectrum and the finite-time exponents (issue 12).

Run: ``.venv/bin/python benchmarks/bench_dynamics_ftle.py --threads 1
[--out benchmarks/results/dynamics_ftle.md] [--dims 64,128,512]``. Everything is measured
side by side in one run, with 1 intra-op thread (the machine's 2 cores are shared):

(a) ``tangent="auto"``: time per QR step of the dense-Jacobian tangent step against the
    forward-mode one on small attention maps (9 tokens x width), for k = n and k = 4: where
    is the crossover?
(b) the ItrSA step (``build_model({"model": "itrsa", "dim": D, "heads": 8})``, 81 tokens,
    float32, one puzzle) at D = 64, 128, 512, T = 16, k = 16: T plain forward steps; the QR
    spectrum eager by JVP and by VJP-of-VJP, and compiled (``compile=True``: first call with
    compilation, then warm); the finite-time exponents (matrix-free, default options) with
    their error estimate and their error against a tight reference. Figures are "forward
    steps per tangent": time / (time of one forward step * k).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from sadyn.dynamics import finite_time_lyapunov, lyapunov_spectrum, math_attention


def best(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Least-disturbed wall time of ``repeats`` calls (after a warm-up call)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def small_attention(tokens: int, width: int, seed: int = 0) -> tuple[Callable, Tensor]:
    """A normalised attention step on ``(tokens * width,)`` (as in tests/dynamics)."""
    g = torch.Generator().manual_seed(seed)
    heads = 2 if width % 2 == 0 else 1
    w_qkv = torch.randn(3 * width, width, generator=g, dtype=torch.float64) / width**0.5
    w_out = torch.randn(width, width, generator=g, dtype=torch.float64) / width**0.5
    cond = torch.randn(tokens, width, generator=g, dtype=torch.float64)
    dh = width // heads

    def f(v: Tensor) -> Tensor:
        x = v.reshape(*v.shape[:-1], tokens, width)
        qkv = (x @ w_qkv.T).reshape(*x.shape[:-1], 3, heads, dh)
        q, k, val = qkv.movedim(-3, 0).transpose(-3, -2)
        att = F.scaled_dot_product_attention(q, k, val)
        y = x + 0.5 * (cond + att.transpose(-3, -2).reshape(x.shape) @ w_out.T)
        return (y / y.norm(dim=-1, keepdim=True)).reshape(v.shape)

    x0 = torch.randn(tokens * width, generator=g, dtype=torch.float64)
    return f, f(x0)


def bench_crossover(repeats: int) -> list[dict]:
    from sadyn.dynamics import systems

    maps = [("attention", *small_attention(8, w)) for w in (1, 2, 3, 4, 5, 6, 8, 12, 16)]
    for n in (8, 16, 32, 40, 64, 96, 128):
        m = systems.random_tanh_rnn(n, 2.0, seed=0)
        maps.append(("tanh RNN", m.f, m.x0))
    rows = []
    for family, f, x0 in maps:
        n = x0.shape[0]
        for k in sorted({n, min(4, n)}):
            t = {}
            for tangent in ("dense", "jvp"):
                t[tangent] = best(
                    lambda f=f, x0=x0, k=k, tangent=tangent: lyapunov_spectrum(
                        f, x0, 10, k, tangent=tangent, progress=False
                    ),
                    repeats,
                )
            rows.append({"map": family, "n": n, "k": k, **t})
            print(f"crossover n={n} k={k}: dense {t['dense']:.4f}s jvp {t['jvp']:.4f}s", flush=True)
    return rows


def itrsa(dim: int) -> tuple[Callable, Tensor]:
    from sadyn.models import build_model

    model = build_model({"model": "itrsa", "dim": dim, "heads": 8}).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    q = torch.randint(0, 10, (1, 81), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), math_attention():
        cond = model.encode(q)
        x = model.init_state(cond, q > 0, generator=torch.Generator().manual_seed(0))

    def f(v: Tensor) -> Tensor:
        return model.step(v.view(1, 81, dim), cond).reshape(-1)

    return f, x.reshape(-1)


def bench_itrsa(dim: int, T: int, k: int, repeats: int, ref_iters: int) -> dict:
    f, x0 = itrsa(dim)
    q0 = torch.linalg.qr(torch.randn(x0.shape[0], k, generator=torch.Generator().manual_seed(1)))[0]

    def fwd() -> Tensor:
        z = x0
        with torch.no_grad(), math_attention():
            for _ in range(T):
                z = f(z)
        return z

    out: dict = {"D": dim, "n": x0.shape[0], "T": T, "k": k}
    out["fwd"] = min(best(fwd, 3) for _ in range(3))

    def qr(tangent: str, compile: bool = False) -> Callable[[], object]:
        return lambda: lyapunov_spectrum(
            f, x0, T, k, q0=q0, tangent=tangent, compile=compile, progress=False
        )

    ref_qr = qr("jvp")()
    out["qr_jvp"] = best(qr("jvp"), repeats)
    out["qr_vjp2"] = best(qr("vjp2"), repeats)
    for tangent in ("jvp", "vjp2"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            res = qr(tangent, True)()
            out[f"compile_{tangent}"] = time.perf_counter() - t
            out[f"qrc_{tangent}"] = best(qr(tangent, True), repeats, warmup=False)
        out[f"diff_{tangent}"] = float((res.exponents - ref_qr.exponents).abs().max())
    # FTLE, matrix-free, default options (tol 1e-4) and the probes' tol 1e-3, against a tight
    # reference; a warm-up call first (one-off costs of the first VJP-of-VJP and tapes)
    finite_time_lyapunov(f, x0, T, k, method="subspace", options={"max_iter": 1})
    for key, tol in (("ftle", 1e-4), ("ftle3", 1e-3)):
        gen = torch.Generator().manual_seed(3)
        t = time.perf_counter()
        opts = {"tol": tol}
        ft = finite_time_lyapunov(f, x0, T, k, method="subspace", generator=gen, options=opts)
        out[key] = time.perf_counter() - t
        out[f"{key}_sweeps"] = ft.info["sweeps"]
        out[f"{key}_est"] = float(ft.info["error_estimate"])
        out[f"{key}_conv"] = bool(ft.converged)
        out[f"{key}_exps"] = ft.exponents
    ref = finite_time_lyapunov(
        f, x0, T, k, method="subspace", options={"tol": 1e-9, "max_iter": ref_iters}
    )
    for key in ("ftle", "ftle3"):
        out[f"{key}_err"] = float((out.pop(f"{key}_exps") - ref.exponents).abs().max())
    out["ref_est"] = float(ref.info["error_estimate"])
    out["ftle_top"] = float(ref.exponents[0])
    print(f"ItrSA {out}", flush=True)
    return out


def markdown(cross: list[dict], rows: list[dict], env: dict) -> str:
    lines = [
        "## sadyn.dynamics: tangent step, QR spectrum and finite-time exponents "
        "(`benchmarks/bench_dynamics_ftle.py`)",
        "",
        f"Machine: {env['cpu']}, **{env['threads']} thread**, torch {env['torch']}; load average "
        f"at start {env['load']} on {env['cores']} shared cores. Every figure in a table comes "
        "from the same run (best of repeats after a warm-up). Command: "
        f"`{env['cmd']}`.",
        "",
        '### (a) `tangent="auto"`: dense Jacobian vs forward mode on small maps',
        "",
        "8-token normalised attention step of width n/8, and a tanh RNN `x -> W tanh(x)`; "
        "10 QR steps, float64.",
        "",
        "| map | n | k | dense | jvp | jvp / dense |",
        "|---|---|---|---|---|---|",
    ]
    for r in cross:
        lines.append(
            f"| {r['map']} | {r['n']} | {r['k']} | {r['dense'] * 1e3:.1f} ms "
            f"| {r['jvp'] * 1e3:.1f} ms | {r['jvp'] / r['dense']:.2f} |"
        )
    lines += [
        "",
        "### (b) ItrSA step (81 tokens, 8 heads, float32), T = 16, k = 16",
        "",
        "Columns are forward steps per tangent (time / (one forward step * k)) unless marked. "
        "QR = `lyapunov_spectrum(f, x0, T, k, q0=...)`; 'compiled' = `compile=True` after the "
        "first call (compilation, whose time is listed; the inductor cache on disk may shorten "
        "it); FTLE = `finite_time_lyapunov(..., method='subspace')` after a warm-up call, with "
        "default options (tol 1e-4 in exponent units; block Krylov), its ratio to the eager JVP "
        "QR spectrum, its sweeps, its error estimate and its actual error against a reference "
        "run to tol 1e-9; then the same at the probes' tol 1e-3.",
        "",
        "| D | n | forward step | QR jvp | QR vjp2 | QR compiled jvp | QR compiled vjp2 "
        "| compile jvp / vjp2 | break-even steps (best compiled) | FTLE | FTLE / QR jvp "
        "| sweeps | error est. / actual | FTLE tol 1e-3 / QR jvp (sweeps, est. / actual) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = r["fwd"] * r["k"]  # T forward steps, k times: the cost of k tangents
        per = {key: r[key] / unit for key in ("qr_jvp", "qr_vjp2", "qrc_jvp", "qrc_vjp2")}
        fast = min(("jvp", "vjp2"), key=lambda m: r[f"qrc_{m}"])
        gain = (min(r["qr_jvp"], r["qr_vjp2"]) - r[f"qrc_{fast}"]) / r["T"]
        breakeven = f"{r[f'compile_{fast}'] / gain:.0f} ({fast})" if gain > 0 else "never"
        lines.append(
            f"| {r['D']} | {r['n']} | {r['fwd'] / r['T'] * 1e3:.2f} ms | {per['qr_jvp']:.2f} "
            f"| {per['qr_vjp2']:.2f} | {per['qrc_jvp']:.2f} | {per['qrc_vjp2']:.2f} "
            f"| {r['compile_jvp']:.0f} s / {r['compile_vjp2']:.0f} s | {breakeven} "
            f"| {r['ftle'] / unit:.1f} | {r['ftle'] / r['qr_jvp']:.1f}x | {r['ftle_sweeps']} "
            f"| {r['ftle_est']:.1e} / {r['ftle_err']:.1e} "
            f"| {r['ftle3'] / r['qr_jvp']:.1f}x ({r['ftle3_sweeps']}, "
            f"{r['ftle3_est']:.1e} / {r['ftle3_err']:.1e}) |"
        )
    lines += [
        "",
        "Compiled vs eager exponents differ by at most "
        + ", ".join(f"D={r['D']}: {max(r['diff_jvp'], r['diff_vjp2']):.1e}" for r in rows)
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/dynamics_ftle.md")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dims", default="64,128,512")
    ap.add_argument("--ref-iters", type=int, default=40)
    ap.add_argument("--no-crossover", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = {
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "cores": os.cpu_count(),
        "load": " / ".join(f"{v:.1f}" for v in os.getloadavg()),
        "cmd": "python benchmarks/bench_dynamics_ftle.py --threads "
        f"{args.threads} --dims {args.dims}",
    }
    try:
        with open("/proc/cpuinfo") as fh:
            env["cpu"] = next(ln.split(":", 1)[1].strip() for ln in fh if "model name" in ln)
    except (OSError, StopIteration):
        pass
    t0 = time.perf_counter()
    cross = [] if args.no_crossover else bench_crossover(args.repeats)
    rows = [bench_itrsa(int(d), 16, 16, args.repeats, args.ref_iters) for d in args.dims.split(",")]
    text = markdown(cross, rows, env) + f"\nWhole benchmark: {time.perf_counter() - t0:.0f} s.\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
