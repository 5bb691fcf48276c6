"""Benchmark of the tangent step, the QR spectrum and the finite-time exponents (issue 12).

Run: ``.venv/bin/python benchmarks/bench_dynamics_ftle.py --threads 1
[--out benchmarks/results/dynamics_ftle.md] [--dims 64,128,512] [--no-crossover]
[--baseline-src DIR]``. Everything is measured side by side in one run, with 1 intra-op
thread (the machine's 2 cores are shared):

(a) ``tangent="auto"``: time per QR step of the dense-Jacobian tangent step against the
    forward-mode one on small attention maps (9 tokens x width), for k = n and k = 4: where
    is the crossover?
(b) the ItrSA step (``build_model({"model": "itrsa", "dim": D, "heads": 8})`` with
    ``torch.manual_seed(0)``, 81 tokens, float32, one puzzle) at D = 64, 128, 512, T = 16,
    k = 16: T plain forward steps; the QR spectrum eager by JVP and by VJP-of-VJP, with the
    tangent product alone compiled (the QR loop eager around it) and with the whole step
    compiled (``compile=True``); compile times and the break-even. Figures are "forward steps
    per tangent": time / (time of one forward step * k).
(c) the finite-time exponents (matrix-free, default options; tol 1e-3; the old stopping rule
    and block width) as multiples of the eager JVP QR spectrum, with their error estimates
    and their errors against a tight reference; with ``--baseline-src DIR`` (a source tree of
    an earlier sadyn, e.g. ``git archive <commit> sadyn | tar -x -C DIR``) the same calls of
    that code in a subprocess of the same run, against its own QR spectrum.
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
from bench_dynamics import timeit  # the benchmarks' one timer (best of repeats)
from torch import Tensor

from sadyn.dynamics import finite_time_lyapunov, lyapunov_spectrum, math_attention


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
                t[tangent] = timeit(
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

    torch.manual_seed(0)  # the same weights in every process (the baseline subprocess too)
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


def ftle_runs(f: Callable, x0: Tensor, T: int, k: int, variants: dict) -> dict:
    """Time ``finite_time_lyapunov(..., method='subspace')`` for each named options dict
    (after a warm-up call), with its sweeps, error estimate, flag and exponents."""
    finite_time_lyapunov(f, x0, T, k, method="subspace", options={"max_iter": 1})
    out: dict = {}
    for key, opts in variants.items():
        gen = torch.Generator().manual_seed(3)
        t = time.perf_counter()
        ft = finite_time_lyapunov(f, x0, T, k, method="subspace", generator=gen, options=opts)
        out[key] = time.perf_counter() - t
        out[f"{key}_sweeps"] = ft.info["sweeps"]
        out[f"{key}_est"] = float(ft.info["error_estimate"])
        out[f"{key}_conv"] = bool(ft.converged)
        out[f"{key}_exps"] = ft.exponents.tolist()
    return out


def qr_baseline(f: Callable, x0: Tensor, T: int, k: int, repeats: int) -> tuple[float, float]:
    """One forward step and the eager JVP QR spectrum (best of repeats)."""
    q0 = torch.linalg.qr(torch.randn(x0.shape[0], k, generator=torch.Generator().manual_seed(1)))[0]

    def fwd() -> Tensor:
        z = x0
        with torch.no_grad(), math_attention():
            for _ in range(T):
                z = f(z)
        return z

    t_fwd = min(timeit(fwd, 3) for _ in range(3))
    t_qr = timeit(
        lambda: lyapunov_spectrum(f, x0, T, k, q0=q0, tangent="jvp", progress=False), repeats
    )
    return t_fwd, t_qr


def child(dim: int, T: int, k: int, repeats: int) -> None:
    """The baseline source tree's FTLE (default options, tol 1e-4 and 1e-3) and its own eager
    QR spectrum, printed as JSON (run with that tree first on ``sys.path``)."""
    import json

    import sadyn

    f, x0 = itrsa(dim)
    t_fwd, t_qr = qr_baseline(f, x0, T, k, repeats)
    out = ftle_runs(f, x0, T, k, {"ftle": {"tol": 1e-4}, "ftle3": {"tol": 1e-3}})
    out.update(fwd=t_fwd, qr_jvp=t_qr, src=str(Path(sadyn.__file__).parent))
    print("CHILD " + json.dumps(out), flush=True)


def run_child(src: str, dim: int, T: int, k: int, repeats: int, threads: int) -> dict:
    import json
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", str(dim), "--threads", str(threads)]
    cmd += ["--repeats", str(repeats)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("CHILD "))
    return json.loads(line[len("CHILD ") :])


def bench_itrsa(
    dim: int, T: int, k: int, repeats: int, ref_iters: int, baseline: str | None, threads: int
) -> dict:
    from sadyn.dynamics._common import as_batched, rounding_zero_tol
    from sadyn.dynamics.lyapunov import benettin
    from sadyn.dynamics.tangent import compiled_tangent_step

    f, x0 = itrsa(dim)
    q0 = torch.linalg.qr(torch.randn(x0.shape[0], k, generator=torch.Generator().manual_seed(1)))[0]
    out: dict = {"D": dim, "n": x0.shape[0], "T": T, "k": k}
    out["fwd"], out["qr_jvp"] = qr_baseline(f, x0, T, k, repeats)

    def qr(tangent: str, compile: bool = False) -> Callable[[], object]:
        return lambda: lyapunov_spectrum(
            f, x0, T, k, q0=q0, tangent=tangent, compile=compile, progress=False
        )

    ref_qr = qr("vjp2")()
    out["qr_vjp2"] = timeit(qr("vjp2"), repeats)
    # before: only the tangent product compiled (the QR loop eager around it)
    F, X = as_batched(f, x0, False)
    ztol = rounding_zero_tol(X.dtype, X.shape[-1])
    prod = compiled_tangent_step(F, "vjp2", owner=f)

    def product_only() -> object:
        with torch.no_grad():
            return benettin(prod, X, q0[None], T, zero_tol=ztol, show_progress=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        prod_res = product_only()
        out["compile_prod"] = time.perf_counter() - t
        out["qrc_prod"] = timeit(product_only, repeats + 1, warmup=False)
        # after: the whole step (product + QR + logs) compiled as one graph
        t = time.perf_counter()
        res = qr("vjp2", True)()
        out["compile_whole"] = time.perf_counter() - t
        out["qrc_whole"] = timeit(qr("vjp2", True), repeats + 1, warmup=False)
    scale = float(ref_qr.exponents.abs().max())
    out["diff_whole"] = float((res.exponents - ref_qr.exponents).abs().max()) / scale
    prod_exps = prod_res.exponents[0].sort(descending=True).values  # benettin: unsorted
    out["diff_prod"] = float((prod_exps - ref_qr.exponents).abs().max()) / scale
    # FTLE, matrix-free: default options, and the old stopping rule / block width for
    # comparison, against a tight reference; the baseline tree's FTLE in a subprocess
    variants = {
        "ftle": {"tol": 1e-4},
        "ftle3": {"tol": 1e-3},
        "ftle_old": {"tol": 1e-4, "stop": "change", "block": k + max(4, k // 4)},
    }
    out.update(ftle_runs(f, x0, T, k, variants))
    ref = finite_time_lyapunov(
        f, x0, T, k, method="subspace", options={"tol": 1e-9, "max_iter": ref_iters}
    )
    out["ref_est"] = float(ref.info["error_estimate"])
    if baseline:
        base = run_child(baseline, dim, T, k, repeats, threads)
        for key in ("ftle", "ftle3"):
            out[f"base_{key}"] = base[key] / base["qr_jvp"]
            out[f"base_{key}_sweeps"] = base[f"{key}_sweeps"]
            out[f"base_{key}_est"] = base[f"{key}_est"]
            got = torch.tensor(base[f"{key}_exps"], dtype=ref.exponents.dtype)
            out[f"base_{key}_err"] = float((got - ref.exponents).abs().max())
        out["base_qr_per"] = base["qr_jvp"] / (base["fwd"] * k)
    for key in variants:
        got = torch.tensor(out.pop(f"{key}_exps"), dtype=ref.exponents.dtype)
        out[f"{key}_err"] = float((got - ref.exponents).abs().max())
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
    ]
    if cross:
        lines += [
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
        "### (b) ItrSA step (81 tokens, 8 heads, float32), T = 16, k = 16: the QR spectrum",
        "",
        "Forward steps per tangent (time / (one forward step * k)). QR = "
        "`lyapunov_spectrum(f, x0, T, k, q0=...)` eager; 'product compiled' = the tangent "
        "product alone under `torch.compile` with the QR loop eager around it (the path "
        "before); 'whole step compiled' = `compile=True` now: product + QR + sign fix + logs "
        "+ NaN freeze as one graph (both VJP-of-VJP, after their compilation, whose time is "
        "listed; the inductor cache on disk may shorten it). Break-even: compile time / "
        "(eager step - compiled step), in steps of k = 16 tangents.",
        "",
        "| D | n | forward step | QR jvp | QR vjp2 | product compiled | whole step compiled "
        "| compile (product / whole) | break-even steps (whole vs eager best) "
        "| compiled - eager (rel.) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = r["fwd"] * r["k"]
        per = {key: r[key] / unit for key in ("qr_jvp", "qr_vjp2", "qrc_prod", "qrc_whole")}
        gain = (min(r["qr_jvp"], r["qr_vjp2"]) - r["qrc_whole"]) / r["T"]
        breakeven = f"{r['compile_whole'] / gain:.0f}" if gain > 0 else "never"
        lines.append(
            f"| {r['D']} | {r['n']} | {r['fwd'] / r['T'] * 1e3:.2f} ms | {per['qr_jvp']:.2f} "
            f"| {per['qr_vjp2']:.2f} | {per['qrc_prod']:.2f} | **{per['qrc_whole']:.2f}** "
            f"| {r['compile_prod']:.0f} s / {r['compile_whole']:.0f} s | {breakeven} "
            f"| {max(r['diff_whole'], r['diff_prod']):.1e} |"
        )
    has_base = all("base_ftle" in r for r in rows)
    lines += [
        "",
        "### (c) ItrSA step, T = 16, k = 16: finite-time exponents",
        "",
        "`finite_time_lyapunov(..., method='subspace')` after a warm-up call: time as a "
        "multiple of the eager JVP QR spectrum of the same map (measured in the same "
        "process), its sweeps, its error estimate and its actual error against a reference "
        "run to tol 1e-9. 'now' = default options (tol 1e-4: residual stop, blocks of k/2, "
        "forward sweeps on kept tapes); 'old rule' = the same code with the previous stop "
        "(change extrapolation) and block (k + 4)"
        + (
            "; 'before' = the previous commit's code (its tree in a subprocess of this run, "
            "against its own QR spectrum)"
            if has_base
            else ""
        )
        + ".",
        "",
        "| D | now: FTLE / QR | sweeps | est. / actual | tol 1e-3: FTLE / QR (sweeps, est. / "
        "actual) | old rule: FTLE / QR (sweeps, est. / actual) |"
        + (" before: FTLE / QR (sweeps, est. / actual) | before, tol 1e-3 |" if has_base else ""),
        "|---|---|---|---|---|---|" + ("---|---|" if has_base else ""),
    ]
    for r in rows:
        q = r["qr_jvp"]
        line = (
            f"| {r['D']} | **{r['ftle'] / q:.1f}x** | {r['ftle_sweeps']} "
            f"| {r['ftle_est']:.1e} / {r['ftle_err']:.1e} "
            f"| {r['ftle3'] / q:.1f}x ({r['ftle3_sweeps']}, {r['ftle3_est']:.1e} / "
            f"{r['ftle3_err']:.1e}) "
            f"| {r['ftle_old'] / q:.1f}x ({r['ftle_old_sweeps']}, {r['ftle_old_est']:.1e} / "
            f"{r['ftle_old_err']:.1e}) |"
        )
        if has_base:
            for key in ("ftle", "ftle3"):
                line += (
                    f" {r[f'base_{key}']:.1f}x ({r[f'base_{key}_sweeps']}, "
                    f"{r[f'base_{key}_est']:.1e} / {r[f'base_{key}_err']:.1e}) |"
                )
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/dynamics_ftle.md")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dims", default="64,128,512")
    ap.add_argument("--ref-iters", type=int, default=40)
    ap.add_argument("--no-crossover", action="store_true")
    ap.add_argument(
        "--baseline-src",
        help="a source tree of an earlier sadyn (e.g. `git archive <commit> sadyn | tar -x -C "
        "DIR`): its FTLE is measured in a subprocess of the same run, for before/after",
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, 16, 16, args.repeats)
        return
    env = {
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "cores": os.cpu_count(),
        "load": " / ".join(f"{v:.1f}" for v in os.getloadavg()),
        "cmd": "python benchmarks/bench_dynamics_ftle.py --threads "
        f"{args.threads} --dims {args.dims}"
        + (" --no-crossover" if args.no_crossover else "")
        + (" --baseline-src DIR" if args.baseline_src else ""),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            env["cpu"] = next(ln.split(":", 1)[1].strip() for ln in fh if "model name" in ln)
    except (OSError, StopIteration):
        pass
    t0 = time.perf_counter()
    cross = [] if args.no_crossover else bench_crossover(args.repeats)
    rows = [
        bench_itrsa(int(d), 16, 16, args.repeats, args.ref_iters, args.baseline_src, args.threads)
        for d in args.dims.split(",")
    ]
    text = markdown(cross, rows, env) + f"\nWhole benchmark: {time.perf_counter() - t0:.0f} s.\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
