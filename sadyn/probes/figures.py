"""One figure per probe, drawn from the probe's numbers alone.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``: no global state, no display needed, safe in threads and tests. Each function
writes ``path`` (PNG, or whatever its suffix names) and returns it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sadyn.probes.energy import EnergyProbe
from sadyn.probes.jacobian import JacobianProbe
from sadyn.probes.lyapunov import LyapunovProbe
from sadyn.probes.sensitivity import SensitivityProbe

__all__ = ["plot_eigenvalues", "plot_energy", "plot_jacobian", "plot_lyapunov", "plot_sensitivity"]


def _figure(ncols: int, width: float = 4.2, height: float = 3.6) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _band(ax: Axes, x: np.ndarray, y: np.ndarray, label: str, color: str | None = None) -> None:
    """Median over columns with a 5-95% band. ``y: (len(x), samples)``."""
    y = np.asarray(y, dtype=np.float64)
    med = np.median(y, axis=1)
    (line,) = ax.plot(x, med, label=label, color=color)
    if y.shape[1] > 1:
        lo, hi = np.quantile(y, [0.05, 0.95], axis=1)
        ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color(), linewidth=0)


def plot_eigenvalues(
    eigs: np.ndarray | torch.Tensor,
    ax: Axes | None = None,
    *,
    label: str | None = None,
    unit_circle: bool = True,
    **scatter_kwargs,
) -> Axes:
    """Scatter eigenvalues in the complex plane, with the unit circle (stability of a map).

    (Moved here from ``sadyn.dynamics``, which no longer imports matplotlib.)

    Args:
        eigs: complex values, any shape (flattened), e.g. from
            :func:`sadyn.dynamics.eigenvalues`.
        ax: axes to draw on (default: a new Agg figure's axes, no pyplot).
        label: legend label of the points.
        unit_circle: draw ``|z| = 1`` (a map is linearly stable inside it).
        scatter_kwargs: passed to ``ax.scatter`` (e.g. ``s``, ``alpha``, ``color``).
    Returns:
        the axes (``ax.figure`` to save it).
    """
    z = np.asarray(eigs.detach().cpu() if isinstance(eigs, torch.Tensor) else eigs).ravel()
    if ax is None:
        ax = _figure(1, 4.5, 4.5)[1][0]
    if unit_circle:
        t = np.linspace(0.0, 2.0 * np.pi, 400)
        ax.plot(np.cos(t), np.sin(t), color="0.5", lw=1.0, ls="--", zorder=0)
    kw = {"s": 12, "alpha": 0.8, **scatter_kwargs}
    ax.scatter(z.real, z.imag, label=label, **kw)
    ax.axhline(0.0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0.0, color="0.85", lw=0.6, zorder=0)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    if label is not None:
        ax.legend(loc="best")
    return ax


def plot_jacobian(probe: JacobianProbe, path: str | Path) -> Path:
    """Eigenvalues in the complex plane (per loop step, all samples) and, per loop step, the
    spectral norm and radius beside the Prop 5.1 bound."""
    fig, (ax_eig, ax_norm) = _figure(2)
    theta = np.linspace(0, 2 * np.pi, 400)
    ax_eig.plot(np.cos(theta), np.sin(theta), color="0.5", lw=0.8, ls="--", label="|λ| = 1")
    for i, t in enumerate(probe.steps):
        e = probe.eigenvalues[i].reshape(-1)
        ax_eig.scatter(e.real, e.imag, s=5, alpha=0.6, label=f"t = {t}")
    ax_eig.set_aspect("equal", adjustable="datalim")
    ax_eig.set_xlabel("Re λ")
    ax_eig.set_ylabel("Im λ")
    what = "all" if probe.method == "dense" else f"top {probe.k}"
    ax_eig.set_title(f"eigenvalues of J_t ({what}, {len(probe.samples)} puzzles)")
    ax_eig.legend(fontsize=7, loc="best")

    pos = np.arange(len(probe.steps))
    series = [("||J_t||₂", probe.spectral_norm), ("ρ(J_t)", probe.spectral_radius)]
    if probe.bound is not None:
        series.append(("Prop 5.1 bound", probe.bound))
    width = 0.8 / len(series)
    for j, (label, values) in enumerate(series):
        ax_norm.boxplot(
            [np.asarray(v, dtype=np.float64) for v in values],
            positions=pos + (j - (len(series) - 1) / 2) * width,
            widths=width * 0.9,
            patch_artist=True,
            boxprops={"facecolor": f"C{j}", "alpha": 0.5},
            medianprops={"color": "k"},
            showfliers=False,
        )
        ax_norm.plot([], [], color=f"C{j}", lw=6, alpha=0.5, label=label)
    ax_norm.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax_norm.set_xticks(pos, [f"t = {t}" for t in probe.steps])
    ax_norm.set_yscale("log")
    ax_norm.set_title(f"norm, radius, bound over puzzles (η = {probe.eta:.3g})")
    ax_norm.legend(fontsize=7)
    return _save(fig, path)


def plot_lyapunov(probe: LyapunovProbe, path: str | Path) -> Path:
    """Distributions over puzzles of the max and mean exponents, and the top-k spectrum."""
    fig, (ax_hist, ax_spec) = _figure(2)
    series = [
        (f"max, T={probe.horizon}", probe.max_ftle),
        (f"mean top-{probe.top_m}, T={probe.horizon}", probe.mean_ftle),
    ]
    if probe.asymptotic is not None:
        series += [("max, QR", probe.max_qr), (f"mean top-{probe.top_m}, QR", probe.mean_qr)]
    finite = [v[np.isfinite(v)] for _, v in series]
    allv = np.concatenate(finite) if finite else np.zeros(0)
    bins = np.linspace(allv.min(), allv.max(), 25) if allv.size and np.ptp(allv) > 0 else 10
    for (label, _), v in zip(series, finite, strict=True):
        ax_hist.hist(v, bins=bins, alpha=0.5, label=label)
    ax_hist.axvline(0.0, color="k", lw=0.8)
    ax_hist.set_xlabel("exponent (per loop step)")
    ax_hist.set_ylabel("puzzles")
    ax_hist.set_title(f"Lyapunov exponents over {probe.finite_time.shape[0]} puzzles")
    ax_hist.legend(fontsize=7)

    idx = np.arange(1, probe.k + 1)
    for label, exps in (("finite-time", probe.finite_time), ("QR", probe.asymptotic)):
        if exps is not None:
            _band(ax_spec, idx, np.where(np.isfinite(exps), exps, np.nan).T, label)
    ax_spec.axhline(0.0, color="k", lw=0.8)
    ax_spec.set_xlabel("index i")
    ax_spec.set_ylabel("λ_i (median, 5-95%)")
    ax_spec.set_title("top-k spectrum")
    ax_spec.legend(fontsize=7)
    return _save(fig, path)


def plot_energy(probe: EnergyProbe, path: str | Path) -> Path:
    """Pseudo-energy over loops, contribution index (exact and PV), and the cosine between
    MSA(X_t) and J_t x_t (the paper's Fig. 6 and S.6)."""
    fig, (ax_e, ax_ci, ax_cos) = _figure(3)
    t = np.arange(probe.energy.shape[0])
    _band(ax_e, t, probe.energy, "E_pseudo")
    _band(ax_e, t, probe.quadratic, "-xᵀJ_t x")
    if probe.quadratic_pv0 is not None:
        _band(ax_e, t, probe.quadratic_pv0, "-xᵀJ_PV(0) x")
    ax_e.set_xlabel("loop step t")
    ax_e.set_title("pseudo-energy")
    ax_e.legend(fontsize=7)

    steps = np.asarray(probe.ci_steps)
    if probe.contribution.size:
        _band(ax_ci, steps, probe.contribution, "J_t + J_tᵀ")
    if probe.contribution_pv is not None and probe.contribution_pv.size:
        _band(ax_ci, steps, probe.contribution_pv, "PV")
        _band(ax_ci, steps, probe.contribution_pv0, "PV (T = 0)")
    ax_ci.set_ylim(0, 1)
    ax_ci.set_xlabel("loop step t")
    ax_ci.set_title(f"contribution index (top {probe.fraction:.0%}, m = {probe.m})")
    if ax_ci.get_legend_handles_labels()[0]:
        ax_ci.legend(fontsize=7)
    else:  # --ci-samples 0: not computed
        ax_ci.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax_ci.transAxes)

    _band(ax_cos, t, probe.cosine, "cos(MSA(X_t), J_t x_t)")
    ax_cos.set_ylim(min(0.0, float(probe.cosine.min())), 1.02)
    ax_cos.set_xlabel("loop step t")
    ax_cos.set_title("linear reading of MSA")
    return _save(fig, path)


def plot_sensitivity(probe: SensitivityProbe, path: str | Path) -> Path:
    """L1 distance between each trajectory and its perturbed copy (log scale), and a few
    coordinates of both trajectories of the first puzzle (Fig. S.5)."""
    fig, (ax_d, ax_tr) = _figure(2)
    for b in range(probe.l1.shape[1]):
        ax_d.plot(probe.times, probe.l1[:, b], color="C0", alpha=0.25, lw=0.8)
    ax_d.plot(probe.times, np.median(probe.l1, axis=1), color="k", label="median")
    ax_d.set_yscale("log")
    ax_d.set_xlabel(f"step after {probe.warmup} warm-up steps")
    ax_d.set_ylabel("||X_t - X'_t||₁")
    ax_d.set_title(f"sensitivity, ε = {probe.eps:g} ({probe.eps_is})")
    ax_d.legend(fontsize=7)

    for c in range(min(probe.traces.shape[-1], 5)):
        ax_tr.plot(probe.times, probe.traces[:, 0, 0, c], color=f"C{c}", lw=0.8)
        ax_tr.plot(probe.times, probe.traces[:, 1, 0, c], color=f"C{c}", lw=0.8, ls=":")
    ax_tr.set_xlabel("step")
    ax_tr.set_title("coordinates, puzzle 0 (solid: original, dotted: perturbed)")
    return _save(fig, path)
