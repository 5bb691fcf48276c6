"""Jacobian of the loop step at chosen loop steps: spectra, norms and the Prop 5.1 bound.

For each chosen loop step t and each puzzle b the probe measures, for ``J_t = ∂F/∂x`` at
``X_t`` (``F`` = ``model.step`` with ``C`` fixed):

* the spectral norm ``||J_t||_2`` (power iteration on ``J^T J``, batched over puzzles);
* the eigenvalues (all of them, dense, when ``n = S*D <= dense_max``; otherwise the top ``k``
  by modulus, matrix-free by Arnoldi) and the spectral radius ``max |λ|``;
* the Prop 5.1 bound (paper §3.2)::

      ||J_t||_2 <= c * max_j |γ_j| / R * (1 + |η| ||J_MSA(X_t)||_2),
      R = min over tokens (or norm groups) of ||X_t + η ΔX_t||

  where ``c`` is the normalisation's scale (1 for the paper's unit RMSNorm ``γ ⊙ y/||y||``,
  ``sqrt(g)`` for the standard ``γ ⊙ y/rms(y)`` over groups of g features).

The bound's premise is checked on the model rather than assumed from its class:
:func:`detect_normalization` verifies numerically that ``step(X) = c γ ⊙ Π_g(X + η ΔX)`` with
``ΔX = model.update(X, C)`` for some group size g. If no g fits (an unnormalised model) the bound
is reported as not applicable. When ``ΔX`` is not ``C + MSA(X)`` (AKOrN: Omega and the tangent
projection), the same chain-rule argument holds with ``J_MSA`` replaced by ``J_ΔX = ∂ΔX/∂X``,
and that is what is used (``bound_form = "J_update"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sadyn.probes.stepmap import (
    Rollout,
    analysis_mode,
    msa_map,
    progress,
    single_step_map,
    step_map,
    to_numpy,
)

__all__ = [
    "BoundCheck",
    "JacobianProbe",
    "NormForm",
    "detect_normalization",
    "jacobian_probe",
    "prop51_bound",
]


@dataclass(frozen=True)
class NormForm:
    """The normalisation a step map was found to apply: ``step = scale * γ ⊙ y/||y||_g``.

    Attributes:
        group: g, the size of the feature groups normalised separately (D = whole token,
            N = oscillator-wise).
        scale: c (1 for unit RMSNorm / sphere projection, ``sqrt(g)`` for standard RMSNorm).
        gain_max: ``max_j |γ_j|`` (1 when the model has no gain).
        residual: relative residual of the fit (how exactly the form holds).
    """

    group: int
    scale: float
    gain_max: float
    residual: float


def step_size(model: nn.Module) -> float:
    """The model's step size η as a float (``model.eta`` may be a parameter)."""
    eta = model.eta
    return float(eta.detach()) if isinstance(eta, Tensor) else float(eta)


def _divisors_desc(d: int) -> list[int]:
    return [g for g in range(d, 1, -1) if d % g == 0]


def _gain_vector(model: nn.Module, d: int, g: int, like: Tensor) -> Tensor | None:
    gain = getattr(model, "norm_gain", None)
    if gain is None:
        return torch.ones(d, dtype=like.dtype, device=like.device)
    gain = gain.detach().to(like).reshape(-1)
    if gain.numel() == 1:
        return gain.expand(d)
    if gain.numel() == d:
        return gain
    if gain.numel() == g:
        return gain.repeat(d // g)
    return None


@torch.no_grad()
def detect_normalization(
    model: nn.Module, x: Tensor, cond: Tensor, *, rtol: float = 1e-4
) -> NormForm | None:
    """Find g and c such that ``model.step(X, C) = c γ ⊙ Π_g(X + η ΔX)``, or None.

    Args:
        x: ``(B, S, D)`` states; cond: ``(B, S, D)``.
        rtol: largest relative residual accepted (eps inside an RMSNorm leaves a tiny one).

    Tries the whole token first, then every smaller divisor of D (oscillator-wise norms).
    """
    d = x.shape[-1]
    eta = step_size(model)
    y = x + eta * model.update(x, cond)
    out = model.step(x, cond)
    hint = getattr(model, "norm_group", None)
    candidates = [int(hint)] if isinstance(hint, int) and d % hint == 0 else []
    candidates += [g for g in _divisors_desc(d) if g not in candidates]
    for g in candidates:
        gamma = _gain_vector(model, d, g, x)
        if gamma is None:
            continue
        yg = y.reshape(*y.shape[:-1], d // g, g)
        unit = (yg / yg.norm(dim=-1, keepdim=True)).reshape(y.shape) * gamma
        scale = float((out * unit).sum() / (unit * unit).sum())
        residual = float((out - scale * unit).norm() / out.norm().clamp_min(1e-30))
        if scale > 0 and residual < rtol:
            return NormForm(g, scale, float(gamma.abs().max()), residual)
    return None


@dataclass
class BoundCheck:
    """Prop 5.1 at one loop step, per puzzle.

    Attributes:
        measured: ``(B,)`` ``||J||_2`` of the step map.
        msa_norm: ``(B,)`` ``||J_MSA||_2``.
        bound: ``(B,)`` the right-hand side, or None where the premise fails.
        radius: ``(B,)`` R, the smallest pre-normalisation group norm, or None.
        form: ``"J_MSA"`` (the paper's), ``"J_update"`` (ΔX != C + MSA) or ``"n/a"``.
        note: why the bound is or is not applicable.
        measured_converged, inner_converged: ``(B,)`` bool, whether the power iterations of
            ``||J||`` and of the bound's inner norm (``||J_MSA||`` or ``||∂ΔX/∂X||``)
            converged; an unconverged one is a lower bound of the norm (None: all converged).
    """

    measured: np.ndarray
    msa_norm: np.ndarray
    bound: np.ndarray | None
    radius: np.ndarray | None
    form: str
    note: str
    norm: NormForm | None = None
    measured_converged: np.ndarray | None = None
    inner_converged: np.ndarray | None = None


def _norms(
    f: Any, x: Tensor, tol: float, max_iter: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(B,)`` spectral norms and ``(B,)`` bool whether each converged (exact, or power
    iteration to ``tol``; an unconverged value is a lower bound)."""
    from sadyn.dynamics import spectral_norm

    gen = torch.Generator(device=x.device).manual_seed(seed)
    res = spectral_norm(f, x, tol=tol, max_iter=max_iter, generator=gen, batched=True)
    value = to_numpy(res.value).reshape(-1)
    converged = np.broadcast_to(to_numpy(torch.as_tensor(res.converged)).astype(bool), value.shape)
    return value, converged.copy()


def prop51_bound(
    model: nn.Module,
    x: Tensor,
    cond: Tensor,
    *,
    tol: float = 1e-5,
    max_iter: int = 300,
    seed: int = 0,
) -> BoundCheck:
    """The measured ``||J||_2`` of the step at ``X`` beside the Prop 5.1 bound, per puzzle.

    Args:
        x: ``(B, S, D)`` states (e.g. ``X_t`` of a rollout); cond: ``(B, S, D)``.
        tol, max_iter: power-iteration settings of the norm estimates (the norm's error is
            second order in ``tol``); n <= ``sadyn.dynamics.DENSE_MAX`` is exact (SVD).
    """
    b, s, d = x.shape
    flat = x.reshape(b, s * d)
    with analysis_mode(model):
        measured, measured_ok = _norms(step_map(model, cond), flat, tol, max_iter, seed)
        msa_norm, msa_ok = _norms(msa_map(model, (b, s, d)), flat, tol, max_iter, seed + 1)
        form = detect_normalization(model, x, cond)
        if form is None:
            note = (
                "step(X) is not c*γ⊙Π_g(X + ηΔX) for any group size g: no normalisation, "
                "or not an RMS/sphere one (e.g. LayerNorm)"
            )
            return BoundCheck(
                measured, msa_norm, None, None, "n/a", note, measured_converged=measured_ok
            )
        with torch.no_grad():
            eta = step_size(model)
            delta = model.update(x, cond)
            y = x + eta * delta
            r = y.reshape(b, s, d // form.group, form.group).norm(dim=-1).flatten(1).amin(1)
            injected = cond + model.msa(x)
            is_msa = float((delta - injected).norm() / delta.norm().clamp_min(1e-30)) < 1e-4
        if is_msa:
            inner, inner_ok, kind = msa_norm, msa_ok, "J_MSA"
            note = "ΔX = C + MSA(X): the paper's Prop 5.1"
        else:
            inner, inner_ok = _norms(_update_map(model, cond), flat, tol, max_iter, seed + 2)
            kind = "J_update"
            note = "ΔX != C + MSA(X) (e.g. AKOrN's projection/Omega): bound uses ||∂ΔX/∂X||"
        note += f"; normalisation over groups of {form.group}, scale {form.scale:.4g}"
        radius = to_numpy(r)
        bound = form.scale * form.gain_max / radius * (1.0 + abs(eta) * inner)
    return BoundCheck(measured, msa_norm, bound, radius, kind, note, form, measured_ok, inner_ok)


def _update_map(model: nn.Module, cond: Tensor) -> Any:
    b, s, d = cond.shape

    def f(v: Tensor) -> Tensor:
        return model.update(v.reshape(b, s, d), cond).reshape(b, s * d)

    return f


@dataclass
class JacobianProbe:
    """Jacobian spectra of the loop step at several loop steps.

    Attributes:
        steps: the loop steps t probed (L of them).
        n: S*D, the dimension of the map.
        method: ``"dense"`` (all n eigenvalues) or ``"matrix-free"`` (top ``k`` by modulus).
        k: eigenvalues per sample kept (n for dense).
        samples: indices of the puzzles whose eigenvalues were computed.
        eigenvalues: ``(L, len(samples), k)`` complex.
        spectral_radius: ``(L, len(samples))``.
        spectral_norm: ``(L, B)``, ``||J_t||_2`` per puzzle.
        msa_norm: ``(L, B)``, ``||J_MSA(X_t)||_2``.
        bound: ``(L, B)`` Prop 5.1 right-hand side, or None (not applicable).
        bound_radius: ``(L, B)``, R, or None.
        bound_form, bound_note: which bound, and why (see :func:`prop51_bound`).
        eta: the model's step size.
        norm_converged, inner_converged: ``(L, B)`` bool, whether ``||J_t||`` and the bound's
            inner norm converged (None: all did); see :meth:`summary`.
    """

    steps: list[int]
    n: int
    method: str
    k: int
    samples: list[int]
    eigenvalues: np.ndarray
    spectral_radius: np.ndarray
    spectral_norm: np.ndarray
    msa_norm: np.ndarray
    bound: np.ndarray | None
    bound_radius: np.ndarray | None
    bound_form: str
    bound_note: str
    eta: float
    extra: dict[str, Any] = field(default_factory=dict)
    norm_converged: np.ndarray | None = None
    inner_converged: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        """Per loop step: medians of the norm, radius, bound, and whether the bound held."""
        out: dict[str, Any] = {}
        for i, t in enumerate(self.steps):
            row = {
                "spectral_norm_median": float(np.median(self.spectral_norm[i])),
                "spectral_norm_max": float(np.max(self.spectral_norm[i])),
                "spectral_radius_median": float(np.median(self.spectral_radius[i])),
                "spectral_radius_max": float(np.max(self.spectral_radius[i])),
                "msa_norm_median": float(np.median(self.msa_norm[i])),
            }
            norm_ok = _all_true(self.norm_converged, i, self.spectral_norm.shape[1])
            row["spectral_norm_converged"] = bool(norm_ok.all())
            if self.bound is not None:
                row["bound_median"] = float(np.median(self.bound[i]))
                row.update(bound_verdict(
                    self.spectral_norm[i], self.bound[i], norm_ok,
                    _all_true(self.inner_converged, i, self.spectral_norm.shape[1]),
                ))  # fmt: skip
            out[f"t={t}"] = row
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: eigenvalues as ``{"re": ..., "im": ...}`` nested lists."""
        return {
            "steps": self.steps,
            "n": self.n,
            "method": self.method,
            "k": self.k,
            "samples": self.samples,
            "eta": self.eta,
            "eigenvalues": {
                "re": self.eigenvalues.real.tolist(),
                "im": self.eigenvalues.imag.tolist(),
            },
            "spectral_radius": self.spectral_radius.tolist(),
            "spectral_norm": self.spectral_norm.tolist(),
            "msa_norm": self.msa_norm.tolist(),
            "bound": None if self.bound is None else self.bound.tolist(),
            "bound_radius": None if self.bound_radius is None else self.bound_radius.tolist(),
            "bound_form": self.bound_form,
            "bound_note": self.bound_note,
            "spectral_norm_converged": _as_list(self.norm_converged),
            "bound_inner_converged": _as_list(self.inner_converged),
            "summary": self.summary(),
            **self.extra,
        }


def _all_true(flags: np.ndarray | None, i: int, b: int) -> np.ndarray:
    """Row ``i`` of ``(L, B)`` convergence flags; all True when none were recorded."""
    return np.ones(b, dtype=bool) if flags is None else np.asarray(flags[i], dtype=bool)


def _as_list(flags: np.ndarray | None) -> list | None:
    return None if flags is None else np.asarray(flags, dtype=bool).tolist()


def bound_verdict(
    measured: np.ndarray, bound: np.ndarray, measured_ok: np.ndarray, inner_ok: np.ndarray
) -> dict[str, Any]:
    """Whether ``||J|| <= bound`` is shown, per step over its puzzles (all ``(B,)``).

    An unconverged power iteration is a lower bound of its norm: ``||J||`` below the bound then
    shows nothing, and a bound built on a lower-bounded inner norm is itself a lower bound, so
    ``||J||`` above it shows nothing either. ``bound_holds`` is True only where every puzzle's
    ``||J||`` converged and lies within the bound (relative slack 1e-4: the power iteration's
    stopping tolerance 1e-5 on ``s^2`` leaves a relative error of about 5e-6 on ``s``, and
    float32 products another few 1e-7; 1e-4 covers both with room); ``bound_status`` says
    ``holds``, ``violated`` (a converged inner norm and ``||J||`` above the bound, on some
    puzzle) or ``not determined`` (with the count of unconverged norms)."""
    below = measured <= bound * (1.0 + 1e-4)
    holds = bool(np.all(below & measured_ok))
    violated = bool(np.any(~below & inner_ok))
    if holds:
        status = "holds"
    elif violated:
        status = "violated"
    else:
        bad = int((~measured_ok).sum() + (~inner_ok).sum())
        status = f"not determined ({bad} norm(s) unconverged: lower bounds)"
    return {"bound_holds": holds, "bound_status": status}


def _eigs_one(
    model: nn.Module, run: Rollout, x: Tensor, i: int, k: int | None, tol: float, seed: int
) -> np.ndarray:
    """Eigenvalues of puzzle i's step Jacobian at ``x[i]``: all (``k=None``, dense) or the
    top k by modulus (ARPACK), sorted by modulus, largest first."""
    from sadyn.dynamics import eigenvalues

    f = single_step_map(model, run.cond, i)
    gen = torch.Generator().manual_seed(seed)
    method = "dense" if k is None else "arnoldi"
    eigs = eigenvalues(f, x[i].reshape(-1), k, method=method, tol=tol, generator=gen)
    eigs = np.asarray(eigs, dtype=np.complex128)
    return eigs[np.argsort(-np.abs(eigs), kind="stable")]


def jacobian_probe(
    model: nn.Module,
    run: Rollout,
    steps: Sequence[int] | None = None,
    *,
    samples: int | Sequence[int] | None = 4,
    k: int = 64,
    dense_max: int = 2048,
    method: str = "auto",
    tol: float = 1e-5,
    max_iter: int = 300,
    eig_tol: float = 1e-8,
    seed: int = 0,
    show_progress: bool = True,
) -> JacobianProbe:
    """Jacobian spectra, norms and the Prop 5.1 bound at the loop steps ``steps``.

    Args:
        model: any LoopedModel.
        run: a :class:`Rollout` (its states ``X_t`` are where the Jacobians are taken).
        steps: loop steps t (default ``(0, T)``).
        samples: which puzzles get eigenvalues: a count (the first ones), indices, or None
            (all). Norms and bounds are computed for every puzzle (batched).
        k: eigenvalues kept per sample on the matrix-free path.
        dense_max: the largest n for which all eigenvalues are computed densely.
        method: ``"auto"``, ``"dense"`` or ``"matrix-free"``.
        tol, max_iter: power iteration of the norms (batched over puzzles); norms are exact
            (dense SVD) when ``sadyn.dynamics`` finds n small enough.
        eig_tol: ARPACK's relative accuracy on the matrix-free path.
    """
    steps = [0, run.steps] if steps is None else [int(t) for t in steps]
    steps = list(dict.fromkeys(steps))
    if method not in ("auto", "dense", "matrix-free"):
        raise ValueError(f"method must be auto, dense or matrix-free, got {method!r}")
    n = run.dim
    dense = method == "dense" or (method == "auto" and n <= dense_max)
    idx = run.sample_indices(samples)
    if not idx:
        raise ValueError(f"samples must name at least one of the {run.batch} puzzles, got {idx}")
    keep = n if dense else min(k, n - 2)

    eig_rows, rad_rows, norm_rows, msa_rows, bound_rows, r_rows = [], [], [], [], [], []
    ok_rows: list[np.ndarray] = []
    inner_rows: list[np.ndarray] = []
    check: BoundCheck | None = None
    with analysis_mode(model):
        for t in progress(steps, enable=show_progress, desc="jacobian"):
            x = run.state(t)
            check = prop51_bound(model, x, run.cond, tol=tol, max_iter=max_iter, seed=seed + t)
            norm_rows.append(check.measured)
            ones = np.ones(len(check.measured), dtype=bool)
            ok_rows.append(ones if check.measured_converged is None else check.measured_converged)
            inner_rows.append(ones if check.inner_converged is None else check.inner_converged)
            msa_rows.append(check.msa_norm)
            bound_rows.append(check.bound)
            r_rows.append(check.radius)
            eigs = [
                _eigs_one(model, run, x, i, None if dense else keep, eig_tol, seed)[:keep]
                for i in idx
            ]
            eig_rows.append(np.stack(eigs) if eigs else np.zeros((0, keep), np.complex128))
            rad_rows.append(np.array([np.abs(e).max() for e in eigs]))
    assert check is not None
    has_bound = all(b is not None for b in bound_rows)
    return JacobianProbe(
        steps=steps,
        n=n,
        method="dense" if dense else "matrix-free",
        k=keep,
        samples=idx,
        eigenvalues=np.stack(eig_rows),
        spectral_radius=np.stack(rad_rows),
        spectral_norm=np.stack(norm_rows),
        msa_norm=np.stack(msa_rows),
        bound=np.stack(bound_rows) if has_bound else None,
        bound_radius=np.stack(r_rows) if has_bound else None,
        bound_form=check.form,
        bound_note=check.note,
        eta=step_size(model),
        norm_converged=np.stack(ok_rows),
        inner_converged=np.stack(inner_rows),
    )
