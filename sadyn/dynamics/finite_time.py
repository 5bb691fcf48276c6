"""Finite-time Lyapunov exponents: the singular values of the T-step propagator.

The paper's definition (Tomihari & Karakida, Sec. 5.3, T = 16)::

    lambda_i(T) = (1/T) log sigma_i(M),   M = J(x_{T-1}) ... J(x_1) J(x_0).

At short horizons this differs a lot from the QR sum of :func:`~sadyn.dynamics.lyapunov_spectrum`
started from random tangents (dynamics.md TL;DR 4).

How: a product SVD that never forms ``M`` (:mod:`sadyn.dynamics.product_svd`: QR sweeps
forward and back, values read in logs), accelerated at short horizons by a block Krylov space
(:mod:`sadyn.dynamics.product_svd_krylov`). This module picks the method, sets it up and
assembles the result. Methods: "dense" sweeps through the materialised float64 Jacobians
(:mod:`sadyn.dynamics.finite_time_dense`, memory ``O(n^2)``) from the right singular vectors
of the rescaled product (exact at short T, a warm start at long T); "subspace" is matrix-free
(:class:`~sadyn.dynamics.propagator.Propagator`: one batched JVP pass forward, one VJP pass
back per sweep) from a random block; "svds" starts from ARPACK's vectors (a cross-check).

Each sweep gives an estimate; the iteration stops when the estimated error is at most ``tol``
(exponent units) for every exponent: ``result.converged`` says whether it was, and a
:class:`~sadyn.dynamics.ConvergenceWarning` says when it was not. Exact zero directions give
``-inf`` by the per-step rule (``result.zero_tol``, default ``n eps``:
:func:`~sadyn.dynamics._common.rounding_zero_tol`), with one
:class:`~sadyn.dynamics.ExactZeroWarning`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, svds
from torch import Tensor

from sadyn.dynamics._common import (
    DENSE_MAX,
    ConvergenceWarning,
    ExactZeroWarning,
    Map,
    OnNonFinite,
    check_int,
    check_positive,
    default_generator,
    random_orthonormal,
    report_nonfinite,
    rounding_zero_tol,
    unbatch,
)
from sadyn.dynamics.attention import attention_safe
from sadyn.dynamics.finite_time_dense import DenseChain, dense_chain_bytes, keeps_jacobians
from sadyn.dynamics.lyapunov import LyapunovResult
from sadyn.dynamics.product_svd import SVDResult, product_svd
from sadyn.dynamics.product_svd_krylov import (
    KRYLOV_MAX_BLOCKS,
    KrylovResult,
    block_krylov,
    default_block,
    ritz_precise,
)
from sadyn.dynamics.propagator import Propagator
from sadyn.dynamics.spectra import ARPACK_MAX_ITER
from sadyn.errors import ArgumentError, ConvergenceError, ShapeError

__all__ = ["DEFAULT_OPTIONS", "Propagator", "choose_method", "finite_time_lyapunov"]

FTLEMethod = Literal["auto", "dense", "subspace", "svds"]

#: The settings of each method (``options=``), with their defaults.
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "dense": {"tol": 1e-12, "max_iter": 50, "oversample": 8},
    "subspace": {
        "tol": 1e-4,
        "max_iter": 50,
        "oversample": None,
        "krylov": "auto",
        "stop": "residual",
        "block": None,
    },
    "svds": {"tol": 1e-12, "max_iter": 1, "oversample": 0},
}
#: "auto" stays dense up to this horizon even when the Jacobians do not all fit in memory:
#: short horizons pack the singular values densely (subspace iteration gains little per
#: sweep), while the dense start is exact there.
SHORT_HORIZON = 64
#: "auto" falls back to the dense method after an unconverged subspace iteration while
#: a row's dense working set (the Jacobian, the rescaled product, their product) fits here.
DENSE_FALLBACK_BYTES = 2**30


def choose_method(n: int, steps: int, k: int, b: int = 1) -> str:
    """The method "auto" runs first, weighing ``n``, the horizon and the memory.

    Dense for ``n <= DENSE_MAX`` when all ``n`` exponents are asked for, at short horizons
    (``T <= SHORT_HORIZON``: the dense start is exact, the spectrum too dense for subspace
    iteration) or while the ``T`` Jacobians fit in memory (``DENSE_CHAIN_BYTES``: one Jacobian per
    step, once); otherwise subspace (``k + oversample`` products per step and sweep; at
    long horizons the values separate by ``exp(-T gap)`` per sweep), with the dense method
    as the fallback when it does not converge (:func:`dense_fits`).
    """
    if n > DENSE_MAX:
        return "subspace"
    fits = keeps_jacobians(b, n, steps)
    return "dense" if (k == n or steps <= SHORT_HORIZON or fits) else "subspace"


def dense_fits(b: int, n: int) -> bool:
    """Whether the dense method's ``O(n^2)`` working set fits in ``DENSE_FALLBACK_BYTES``."""
    return 3 * dense_chain_bytes(b, n, 1) <= DENSE_FALLBACK_BYTES


def _svds_vectors(prop: Propagator, k: int, generator: torch.Generator) -> Tensor:
    """Top-``k`` right singular vectors by ARPACK ``svds`` on each row's propagator."""
    x0 = prop.states[0]
    b, n = x0.shape
    if k >= n:
        raise ShapeError(f"svds needs k < n = {n}; use method='dense'")
    v0 = torch.randn(n, generator=generator, dtype=torch.float64, device=generator.device)
    rows = []
    for r in range(b):
        try:
            _, s, vt = svds(prop.to_scipy(row=r), k=k, which="LM", v0=v0.cpu().numpy(), tol=0.0,
                            maxiter=ARPACK_MAX_ITER)  # fmt: skip
        except ArpackNoConvergence as err:
            raise ConvergenceError(
                f"finite_time_lyapunov(method='svds'): ARPACK did not converge in "
                f"{ARPACK_MAX_ITER} restarts; use method='dense' or 'subspace'"
            ) from err
        order = np.argsort(-s)
        rows.append(torch.as_tensor(vt[order].T.copy()))
    return torch.stack(rows).to(device=x0.device, dtype=x0.dtype)


def _options(method: str, options: dict[str, Any] | None, legacy: dict[str, Any]) -> dict[str, Any]:
    """Merge ``options`` (and the deprecated flat keywords) over the method's defaults."""
    opts = dict(DEFAULT_OPTIONS[method])
    given = dict(options or {})
    old = {key: v for key, v in legacy.items() if v is not None}
    if old:
        warnings.warn(
            f"finite_time_lyapunov({', '.join(f'{key}=' for key in old)}...) is deprecated: "
            f"pass options={{{', '.join(repr(key) + ': ...' for key in old)}}}",
            DeprecationWarning,
            stacklevel=5,
        )
        given = {**old, **given}
    unknown = set(given) - set(opts)
    if unknown:
        raise ArgumentError(
            f"unknown option(s) {sorted(unknown)} for method {method!r}; known: {sorted(opts)}"
        )
    opts.update(given)
    opts["tol"] = check_positive(opts["tol"], "options['tol']", allow_zero=True)
    opts["max_iter"] = check_int(opts["max_iter"], "options['max_iter']", 1)
    if opts["oversample"] is not None:
        opts["oversample"] = check_int(opts["oversample"], "options['oversample']", 0)
    if opts.get("krylov", False) not in (True, False, "auto"):
        got = opts["krylov"]
        raise ArgumentError(f"options['krylov'] must be True, False or 'auto', got {got!r}")
    if opts.get("block") is not None:
        opts["block"] = check_int(opts["block"], "options['block']", 1)
    if opts.get("stop", "residual") not in ("residual", "change"):
        got = opts["stop"]
        raise ArgumentError(f"options['stop'] must be 'residual' or 'change', got {got!r}")
    return opts


@dataclass
class _Plan:
    """What one run does: the method, ``k`` exponents from a block of ``p`` columns (Krylov
    blocks of ``block``), the merged options, the zero threshold and the generator."""

    method: str
    k: int
    p: int
    block: int
    opts: dict[str, Any]
    ztol: float
    gen: torch.Generator


def _plan(
    method: str, n: int, k: int, options: dict | None, legacy: dict, ztol: float, gen
) -> _Plan:
    opts = _options(method, options, legacy)
    extra = opts["oversample"]
    if extra is None:  # Krylov spaces grow by themselves; plain subspace iteration needs more
        extra = max(4, k // 4) if opts.get("krylov", False) is not False else max(8, k // 4)
    p = min(n, k + extra)
    block = p  # columns per Krylov block
    if method == "subspace" and opts["krylov"] is not False:
        block = opts["block"] if opts["block"] is not None else default_block(k, p, n)
        block = min(n, block)
    return _Plan(method, k, p, block, opts, ztol, gen)


def _solve(
    prop: Propagator,
    plan: _Plan,
    on_nonfinite: OnNonFinite,
    batched: bool,
    keep_local: bool,
    progress: bool,
) -> SVDResult:
    """Set up the chain and start block of ``plan.method``, run the Krylov phase (subspace,
    short horizons) and the product SVD; ``out.bad`` holds every frozen row."""
    X0 = prop.states[0]
    b, n = X0.shape
    bad = prop.nonfinite.clone()
    T, k, opts = prop.steps, plan.k, plan.opts
    max_sweeps = 2 * opts["max_iter"] + 1
    chain: Any = prop
    if plan.method == "dense":
        keep = keeps_jacobians(b, n, T)
        chain = DenseChain(prop, bad, on_nonfinite, batched, keep=keep, progress=progress)
        bad, V, warm = chain.bad, chain.start_vectors(plan.p), True
    elif plan.method == "svds":
        V, warm = torch.linalg.qr(_svds_vectors(prop, k, plan.gen))[0], True
    else:
        V, warm = random_orthonormal(b, n, plan.block, X0, plan.gen), False
    kry = None
    if plan.method == "subspace" and opts["krylov"] is not False:
        kry = block_krylov(
            chain, T, V, k, tol=opts["tol"], max_iter=min(opts["max_iter"], KRYLOV_MAX_BLOCKS),
            zero_tol=plan.ztol, bad=bad, generator=plan.gen, force=opts["krylov"] is True,
            stop=opts["stop"],
        )  # fmt: skip
        if kry.used and bool((kry.converged | bad).all()):
            V, warm, max_sweeps = kry.vectors, True, 1  # values: one exact sweep
        elif not kry.used and plan.block < k:  # plain subspace iteration needs p >= k columns
            V = random_orthonormal(b, n, plan.p, X0, plan.gen)
        elif kry.used:  # the memory cap was reached: go on by subspace iteration
            V = kry.vectors
            max_sweeps = max(3, max_sweeps - kry.sweeps)
            kry = dataclasses.replace(kry, used=False)
    final = kry is not None and kry.used and bool((kry.converged | bad).all())
    if final and not keep_local and ritz_precise(kry, X0.dtype, n, T, opts["tol"]):
        return _from_krylov(kry, bad)  # the Ritz values are final: no sweep to re-read them
    out = product_svd(
        chain, T, V, k, tol=opts["tol"], max_sweeps=max_sweeps, zero_tol=plan.ztol, bad=bad,
        warm=warm, progress=progress,
    )  # fmt: skip
    if kry is not None:
        out.sweeps += kry.sweeps
        if kry.used:
            out.converged, out.error = kry.converged & ~out.bad, kry.error
    return out


def _from_krylov(kry: KrylovResult, bad: Tensor) -> SVDResult:
    """The result straight from converged, precise Ritz values (no re-reading sweep)."""
    assert kry.values is not None and kry.left is not None
    k = kry.values.shape[-1]
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=bad.device)
    return SVDResult(
        exponents=torch.where(bad[:, None], nan, kry.values),
        right=kry.vectors[..., :k],
        end=kry.left,
        local=torch.empty(0),
        sweeps=kry.sweeps,
        converged=kry.converged & ~bad,
        error=torch.where(bad, nan, kry.error),
        bad=bad,
    )


def _warn(out: SVDResult, plan: _Plan, fallback: str | None) -> None:
    """One :class:`ConvergenceWarning` for unconverged rows (naming the rounding floor when
    that is the cause) and one :class:`ExactZeroWarning` for declared zero directions."""
    ok = ~out.bad
    if bool((~out.converged & ok).any()):
        err = float(torch.where(ok, out.error, 0.0).max())
        why = (
            "the forward and backward readings have settled apart (rounding amplified by a "
            "strongly non-normal chain, or convergence slower than 0.9 per sweep: more sweeps "
            "will not help, see docs/dynamics.md)"
            if out.rounding is not None and bool(out.rounding.any())
            else "raise options['max_iter'] or use method='dense'"
        )
        warnings.warn(
            f"finite_time_lyapunov ({plan.method}{', after ' + fallback if fallback else ''}) "
            f"did not converge after {out.sweeps} sweeps: error estimate {err:.2e} > tol "
            f"{plan.opts['tol']:.1e}; {why}",
            ConvergenceWarning,
            stacklevel=5,
        )
    zeros = int(torch.isneginf(out.exponents[ok]).sum())
    if zeros:
        warnings.warn(
            f"finite_time_lyapunov: {zeros} exponent(s) are -inf: directions with a one-step "
            f"stretch at or below zero_tol = {plan.ztol:.2e} times that step's largest were "
            "declared exact zeros (pass zero_tol=0 to keep every stretch)",
            ExactZeroWarning,
            stacklevel=5,
        )


def _result(
    prop: Propagator, out: SVDResult, plan: _Plan, batched: bool, keep_local: bool, info: dict
) -> LyapunovResult:
    X0 = prop.states[0]
    ok = ~out.bad
    conv = bool(out.converged[ok].all()) if bool(ok.any()) else False
    info = {
        "iterations": (out.sweeps + 1) // 2,
        "sweeps": out.sweeps,
        "converged": conv,
        "converged_rows": unbatch(out.converged, batched),
        "error_estimate": unbatch(out.error, batched),
        "rounding_limited": unbatch(out.rounding, batched),
        "right_vectors": unbatch(out.right.to(X0.dtype), batched),
        "nonfinite_rows": out.bad.nonzero().flatten().tolist(),
        "options": plan.opts,
        **info,
    }
    local = torch.where(out.bad[:, None, None], float("nan"), out.local) if keep_local else None
    return LyapunovResult(
        exponents=unbatch(out.exponents, batched),
        local=unbatch(local, batched),
        final_state=unbatch(prop.states[-1], batched),
        steps=prop.steps,
        tangents=unbatch(out.end.to(X0.dtype), batched),
        method=f"ftle-{plan.method}",
        info=info,
        zero_tol=plan.ztol,
        converged=conv,
    )


def _resolve_k(method: str, k: int | None, n: int) -> tuple[str, int]:
    """``k`` checked (None: all ``n``, which only the dense method gives)."""
    if k is None:
        if method not in ("auto", "dense") or (method == "auto" and n > DENSE_MAX):
            raise ShapeError(
                f"k=None asks for all n = {n} exponents, which needs method='dense'; pass k"
            )
        return "dense", n
    k = check_int(k, "k")
    if not 1 <= k <= n:
        raise ShapeError(f"k must lie in 1..n = {n}, got {k}")
    return method, k


@attention_safe
@torch.no_grad()
def finite_time_lyapunov(
    f: Map,
    x0: Tensor,
    steps: int,
    k: int | None = None,
    *,
    method: FTLEMethod = "auto",
    options: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    batched: bool = False,
    transient: int = 0,
    zero_tol: float | None = None,
    keep_local: bool = False,
    on_nonfinite: OnNonFinite = "warn",
    progress: bool = True,
    tol: float | None = None,
    max_iter: int | None = None,
    oversample: int | None = None,
) -> LyapunovResult:
    """Finite-time exponents ``(1/T) log sigma_i(J_{T-1} ... J_0)``, the paper's definition.

    A product SVD in logs, never the product itself (see the module docstring), sorted
    largest first. Exact at any horizon to the error estimate, except where the chain is so
    non-normal that rounding at each step is amplified (then detected: ``converged`` False,
    a warning, ``info["rounding_limited"]``; docs/dynamics.md "Limits").

    Args:
        f, x0: the map and the initial state ``(n,)`` (batched ``(B, n)``; NumPy converted).
        steps: the horizon T (the paper: 16).
        k: number of exponents, largest first (None: all ``n``; dense only).
        method: "auto" (:func:`choose_method`: dense for ``n <= DENSE_MAX`` at short horizons
            or while the Jacobians fit in memory, else subspace, falling back to dense when
            that does not converge and fits), "dense" (materialised Jacobians, memory
            ``O(n^2)``), "subspace" (matrix-free alternating QR sweeps), "svds" (ARPACK on
            :class:`Propagator`, then the same sweeps from its vectors; a cross-check).
        options: the method's settings, defaults in :data:`DEFAULT_OPTIONS`: ``tol`` (stop
            when the estimated error of every exponent is below it; exponent units),
            ``max_iter`` (forward-backward iterations at most), ``oversample`` (extra columns
            in the block; subspace default ``max(4, k // 4)`` with Krylov, ``max(8, k // 4)``
            without), ``krylov`` (subspace only: "auto" accelerates with a block Krylov
            space when the top-``k`` values span less than ``exp(KRYLOV_SPAN)``, i.e. short
            horizons; True forces it; False never), ``stop`` (Krylov phase: "residual", the
            default, or "change"), ``block`` (columns per Krylov block; default
            ``ceil(k / 2)`` for ``k >= 8`` when ``2 (k + oversample) <= n``, else
            ``k + oversample``).
        generator: seeds the random start block of the subspace method.
        transient: steps taken before ``x_0``.
        zero_tol: per-step threshold of exact zero directions, relative to the step's
            largest stretch (default ``n eps``, the rounding level of one step's product);
            returned in ``result.zero_tol``. 0 keeps every stretch.
        keep_local: keep the per-step stretches of the last forward sweep, ``(T, k)``.
        on_nonfinite: "warn" (NaN + one :class:`NonFiniteStateWarning`) or "raise".
        progress: a progress bar over long horizons (on a terminal; lines in a log).
        tol, max_iter, oversample: deprecated spellings of ``options`` entries.
    Returns:
        a :class:`LyapunovResult` (``exponents (k,)`` / ``(B, k)`` float64, ``-inf`` for exact
        zero directions); ``converged`` and ``info["error_estimate"]`` say how far the
        iteration got; ``info["right_vectors"]`` holds the finite-time Lyapunov vectors at
        ``x_0``, ``tangents`` the matching directions at ``x_T``.
    """
    if method not in ("auto", "dense", "subspace", "svds"):
        raise ArgumentError(f"method must be auto, dense, subspace or svds, got {method!r}")
    if zero_tol is not None:
        zero_tol = check_positive(zero_tol, "zero_tol", allow_zero=True)
    prop = Propagator(f, x0, steps, batched=batched, transient=transient, on_nonfinite=on_nonfinite)
    b, n = prop.states[0].shape
    method, k = _resolve_k(method, k, n)
    auto = method == "auto"
    chosen = choose_method(n, prop.steps, k, b) if auto else method
    ztol = rounding_zero_tol(prop.dtype, n) if zero_tol is None else zero_tol
    legacy = {"tol": tol, "max_iter": max_iter, "oversample": oversample}
    plan = _plan(chosen, n, k, options, legacy, ztol, default_generator(generator))
    reported = prop.nonfinite.clone()
    out = _solve(prop, plan, on_nonfinite, batched, keep_local, progress)
    info: dict[str, Any] = {"fallback": None}
    if auto and chosen == "subspace" and not bool((out.converged | out.bad).all()):
        if dense_fits(b, n):  # subspace did not converge: the dense method does
            err = float(torch.where(out.bad, 0.0, out.error).max())
            info["fallback"] = f"subspace stopped at error {err:.1e}: dense"
            # the user's tolerance and iteration limit carry over; the rest is subspace-only
            given = {**legacy, **(options or {})}
            given = {key: given[key] for key in ("tol", "max_iter") if given.get(key) is not None}
            plan = _plan("dense", n, k, given, {}, ztol, plan.gen)
            reported = out.bad.clone()
            out = _solve(prop, plan, on_nonfinite, batched, keep_local, progress)
    late = out.bad & ~reported
    if bool(late.any()):
        rows = late.nonzero().flatten().tolist()
        report_nonfinite("finite_time_lyapunov", rows, prop.steps, batched, on_nonfinite)
    _warn(out, plan, "subspace" if info["fallback"] else None)
    return _result(prop, out, plan, batched, keep_local, info)
