"""Pseudo-energy, contribution index and the time-independent approximation (paper §6, B.5.5).

Definitions, with ``x_t = vec(X_t)`` (row-major), ``n = S*D``:

* pseudo-energy ``E_t = -Tr(X_t^T (C + MSA(X_t)))`` (``model.pseudo_energy``), and its
  quadratic reading ``E_t ≈ -x_t^T J_t x_t = -x_t^T S_t x_t / 2`` with ``J_t = ∂MSA/∂X`` at
  ``X_t`` and ``S_t = J_t + J_t^T`` (C dropped, ``MSA(X_t) ≈ J_t x_t``);
* the cosine between ``vec(MSA(X_t))`` and ``J_t x_t`` (Fig. 6: how good that reading is);
* the **contribution index** ``Σ_{k<=m} (a_k)^2 / Σ_k (a_k)^2``, ``a = V^T x_t`` in the
  eigenbasis of ``S_t`` sorted by descending eigenvalue, ``m = floor(0.02 n)``: the share of
  the state in the top 2% eigenspace. Dense ``eigh`` for small n (LAPACK on the CPU, the
  device's own on a GPU); otherwise the block solver of :mod:`sadyn.dynamics.block_eigen`
  (Chebyshev-filtered subspace iteration with Rayleigh-Ritz on blocks of ``m + q`` vectors,
  each block product one vmapped JVP and VJP of ``MSA``), with its residuals, the gap at the
  cut and a Davis-Kahan bound on the index's error recorded per (step, puzzle);
* the **PV approximation** ``J ≈ Σ_h P_h ⊗ (W^V_h W^O_h)^T`` (the softmax-derivative term
  dropped), with ``P_h`` from ``model.attention_probs`` at ``X_t`` (Eq. 107) or frozen at
  ``X_0`` (Eq. 108, "time-independent"), giving approximate contribution indices and the
  approximate energy ``-x_t^T J_PV0 x_t``.

Which weights, exactly: ``model.attention_modules()`` must return one module with a fused
``.qkv`` projection (``D -> 3D``, rows ``[Q; K; V]``, heads contiguous, as
:mod:`sadyn.nn.attention`), an ``.out`` projection (``D -> D``) and ``.heads``. Head h's value
map is ``W^V_h = qkv.weight[2D + h D_h : 2D + (h+1) D_h]^T`` (``D x D_h``) and its output map
``W^O_h = out.weight[:, h D_h:(h+1) D_h]^T`` (``D_h x D``), so ``M_h = W^V_h W^O_h`` is
``D x D`` and ``vec(P_h X M_h) = (P_h ⊗ M_h^T) vec(X)``.

* **Biases** do not enter: the value bias adds ``P_h 1 b_V = 1 b_V`` (rows of P sum to 1) and
  the output bias is a constant.
* **GTA** (the module has ``.gta``): values of token j are multiplied by its block ``R_j`` and
  the output of token i by ``R_i^T`` between ``W^V_h`` and ``W^O_h``, so the value path depends
  on the token pair and ``J_PV = Σ_h Σ_ij P_h[i,j] e_i e_j^T ⊗ (W^V_h R_j R_i^T W^O_h)^T`` is
  not a Kronecker sum. It is still linear in V and is applied through the module's own
  ``gta.apply_qkv`` / ``gta.apply_out`` (the only faithful reading of "P V" for such a model;
  the paper's formula, which omits positions, would describe a different operator).
* A relation bias on the logits only changes P, which is read from ``attention_probs``.

The form is **verified, not assumed**: the path with biases must reproduce ``model.msa(X)``
(relative error below 1e-4) with P from ``attention_probs``; otherwise (several attention
modules, another layout, an unknown positional scheme) the approximation is skipped and the
probe says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator
from torch import Tensor, nn

from sadyn.dynamics.block_eigen import GUARD, EigenspaceResult, SymmetricPart
from sadyn.dynamics.block_eigen import top_eigenspace as block_top_eigenspace
from sadyn.probes.stepmap import (
    Rollout,
    analysis_mode,
    progress,
    single_msa_map,
    to_numpy,
)

__all__ = [
    "BLOCK_TOL",
    "DENSE_MAX_SYM",
    "Eigenspace",
    "EnergyProbe",
    "PVForm",
    "contribution_index",
    "eigenspace",
    "energy_probe",
    "pseudo_energy",
    "pv_form",
    "top_eigenspace",
]


#: Largest n = S*D whose contribution index is computed densely by default (81 * 128 = 10,368
#: fits: a float32 S is 0.4 GB and its top-2% eigenvectors take about a minute on one core).
DENSE_MAX_SYM = 12_288
#: Residual tolerance of the block solver, relative to ||S||: about ten times the float32
#: rounding floor of the products at paper width (eps_32 * sqrt(n) ~ 2e-5 at n = 41,472).
BLOCK_TOL = 1e-3


# --------------------------------------------------------------------------------------------
# pseudo-energy and its quadratic reading


@torch.no_grad()
def pseudo_energy(model: nn.Module, run: Rollout) -> np.ndarray:
    """``(T+1, B)``: ``E_t = model.pseudo_energy(X_t, C)`` along the rollout."""
    with analysis_mode(model):
        return np.stack([to_numpy(model.pseudo_energy(x, run.cond)) for x in run.states])


def _msa_jvp(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(MSA(X), J X)`` with ``J = ∂MSA/∂X`` at X, for ``x: (B, S, D)`` (rows independent)."""
    return torch.func.jvp(model.msa, (x,), (x,))


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    a, b = a.flatten(1), b.flatten(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)


# --------------------------------------------------------------------------------------------
# top eigenspace of a symmetric operator and the contribution index


def top_eigenspace(
    op: np.ndarray | Tensor | LinearOperator,
    m: int,
    *,
    tol: float = BLOCK_TOL,
    seed: int = 0,
) -> np.ndarray:
    """Orthonormal ``(n, m)`` basis of the eigenvectors of the m largest (algebraic)
    eigenvalues of a symmetric ``(n, n)`` matrix or LinearOperator.

    A NumPy matrix goes to LAPACK ``syevr`` for the top m only (``scipy.linalg.eigh`` with
    ``subset_by_index``), in its own precision; a torch matrix to ``torch.linalg.eigh`` on its
    device (cuSOLVER on a GPU, where the full decomposition at n = 5,184 takes well under a
    second against about 8 s for ``syevr`` on one CPU core); an operator (its ``matmat``) to
    the block solver :func:`sadyn.dynamics.block_eigen.top_eigenspace` in float64 (the
    probe itself calls :func:`eigenspace`, which keeps the solver's diagnostics).
    """
    n = op.shape[0]
    if not 1 <= m < n:
        raise ValueError(f"need 1 <= m < n, got m={m}, n={n}")
    if isinstance(op, Tensor):
        _, vecs = torch.linalg.eigh(op)  # ascending eigenvalues
        return vecs[:, n - m :].flip(1).cpu().numpy()
    if isinstance(op, np.ndarray):
        _, vecs = scipy.linalg.eigh(
            op, subset_by_index=[n - m, n - 1], driver="evr", check_finite=False
        )
        return vecs[:, ::-1]
    res = block_top_eigenspace(
        lambda v: torch.from_numpy(np.asarray(op.matmat(v.numpy()), dtype=np.float64)),
        n,
        m,
        tol=tol,
        generator=torch.Generator().manual_seed(seed),
    )
    return res.vectors.numpy()


@dataclass
class Eigenspace:
    """A top-m eigenspace of one (step, puzzle) and how well it is known.

    Attributes:
        result: the block solver's :class:`EigenspaceResult`, or None for the dense path
            (exact to LAPACK's precision).
        basis: ``(n, m)`` orthonormal basis (NumPy, dense path only).
    """

    result: EigenspaceResult | None = None
    basis: np.ndarray | None = None

    def share(self, x: np.ndarray) -> float:
        """The contribution index of ``x: (n,)``."""
        if self.result is None:
            return _share(self.basis, x)
        return self.result.share(torch.from_numpy(x))

    def info(self, x: np.ndarray) -> dict[str, Any]:
        """How the eigenspace was found and how far the index of ``x`` can be off."""
        r = self.result
        if r is None:
            return {"method": "dense"}
        low, high = r.share_range(torch.from_numpy(x))
        return {
            "method": "block",
            "converged": r.converged,
            "stalled": r.stalled,
            "max_residual": float(r.residuals[: r.m + 1].max()),
            "gap": r.gap,
            "index_error_bound": r.space_error,
            "cut_window": list(r.cut_window()),
            "index_over_cut_window": [low, high],
            "sweeps": r.sweeps,
            "residual_per_sweep": [h["max_residual"] for h in r.history],
            "locked_per_sweep": [h["locked"] for h in r.history],
            "index_per_sweep": [h["shares"][0] for h in r.history if "shares" in h],
            "products": r.products,
            "seconds": r.seconds,
            "cpu_seconds": r.cpu_seconds,
        }


def eigenspace(
    f: Any,
    x: Tensor,
    m: int,
    dense: bool,
    *,
    tol: float = BLOCK_TOL,
    seed: int = 0,
    max_seconds: float | None = None,
    show_progress: bool = False,
) -> Eigenspace:
    """Top-m eigenspace of ``(J + J^T)/2`` of the map ``f: (n,) -> (n,)`` at ``x: (n,)``:
    dense (``eigh`` of the materialised Jacobian) or by the block solver (at most
    ``max_seconds`` of sweeps; ``show_progress`` prints each sweep's largest residual)."""
    from sadyn.dynamics import jacobian

    if dense:  # in the model's precision: at n = 10^4 a float32 S is 0.4 GB, float64 0.9 GB
        j = jacobian(f, x).detach()
        return Eigenspace(basis=top_eigenspace(_on_host_or_device(j + j.T, x.device), m))
    op = SymmetricPart(f, x)
    res = block_top_eigenspace(
        op.__matmul__,
        x.numel(),
        m,
        tol=tol,
        generator=torch.Generator().manual_seed(seed),
        dtype=x.dtype,
        device=x.device,
        max_seconds=max_seconds,
        progress=_print_sweep if show_progress else None,
        track=x,
    )
    return Eigenspace(result=res)


#: CPU cost of one column of a block product ``(J + J^T) v`` over one JVP of the model's step
#: on one puzzle, roughly: on the paper-width AKOrN on one core a vmapped column of J plus J^T
#: costs about 8 ms (64 columns: 0.5 s), a lone JVP of the step about twice that (it pays the
#: primal pass and per-call overhead alone); only used for the time estimate
BLOCK_COLUMN_PER_JVP = 0.5
#: sweep cap of :func:`block_seconds` when no budget is given
BLOCK_SWEEPS = 60


def block_seconds(
    n: int, fraction: float, jvp_seconds: float, max_minutes: float | None = None
) -> float:
    """Rough seconds of one block eigenproblem: ``max_minutes`` when given (a sweep may run
    past it), else the cost of :data:`BLOCK_SWEEPS` sweeps of degree 12 on ``m + q``
    columns (an upper bound: most runs converge or stall sooner)."""
    if max_minutes is not None:
        return 60.0 * max_minutes
    m = _top_count(n, fraction)
    p = m + max(16, math.ceil(GUARD * m))
    return (40 + (1 + 12 * BLOCK_SWEEPS) * p) * BLOCK_COLUMN_PER_JVP * jvp_seconds


def _print_sweep(sweep: int, residual: float) -> None:
    print(f"  block eigensolver: sweep {sweep}, largest residual {residual:.1e} ||S||", flush=True)


def _share(basis: np.ndarray, x: np.ndarray) -> float:
    a = basis.T.astype(np.float64) @ x
    return float(a @ a / (x @ x))


def contribution_index(
    model: nn.Module,
    x: Tensor,
    *,
    fraction: float = 0.02,
    method: str = "auto",
    dense_max: int = DENSE_MAX_SYM,
    tol: float = BLOCK_TOL,
    seed: int = 0,
) -> np.ndarray:
    """Share of each state in the top ``fraction`` eigenspace of ``S = J + J^T``,
    ``J = ∂MSA/∂X`` at that state.

    Args:
        x: ``(B, S, D)`` states.
        fraction: the eigenspace has ``m = max(1, floor(fraction * n))`` dimensions.
        method: ``"auto"`` (dense when ``n <= dense_max``), ``"dense"`` or ``"matrix-free"``
            (the block solver).
        tol: the block solver's residual tolerance, relative to ``||S||``.

    Returns:
        ``(B,)`` indices in [0, 1].
    """
    n = x.shape[1] * x.shape[2]
    m = _top_count(n, fraction)
    dense = _use_dense(method, n, dense_max)
    out = []
    with analysis_mode(model):
        f = single_msa_map(model, tuple(x.shape[1:]))
        for b in range(x.shape[0]):
            space = eigenspace(f, x[b].reshape(-1), m, dense, tol=tol, seed=seed)
            out.append(space.share(to_numpy(x[b]).reshape(-1)))
    return np.array(out)


def _on_host_or_device(a: Tensor, device: torch.device) -> np.ndarray | Tensor:
    """A dense symmetric matrix for :func:`top_eigenspace`: NumPy (LAPACK's top-m ``syevr``)
    when the model runs on the CPU, a tensor on ``device`` (its ``eigh``) otherwise."""
    return a.cpu().numpy() if device.type == "cpu" else a.to(device)


def _top_count(n: int, fraction: float) -> int:
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    return max(1, int(np.floor(fraction * n)))


def _use_dense(method: str, n: int, dense_max: int) -> bool:
    if method not in ("auto", "dense", "matrix-free"):
        raise ValueError(f"method must be auto, dense or matrix-free, got {method!r}")
    return method == "dense" or (method == "auto" and n <= dense_max)


# --------------------------------------------------------------------------------------------
# the PV (time-independent) approximation


@dataclass(frozen=True)
class PVForm:
    """The attention's value path with the attention matrices frozen: ``V -> J_PV V``.

    ``J_PV V = Σ_h P_h (V W^V_h) W^O_h`` (paper Eq. 106 without the softmax-derivative term),
    and with GTA ``Σ_h R_i^T [P_h (R_j V W^V_h)]_i W^O_h`` (the module's own position blocks
    between value and output projections). Linear in V; biases are left out (constant).

    Attributes:
        attention: the attention module (``.qkv``, ``.out``, ``.heads``, optional ``.gta``).
        positional: whether GTA blocks sit on the value path (then ``J_PV`` is not a
            Kronecker sum and :meth:`value_output` alone does not describe it).
        residual: relative error of the reconstruction of ``model.msa`` on the check state.
    """

    attention: nn.Module
    positional: bool
    residual: float

    @property
    def heads(self) -> int:
        return int(self.attention.heads)

    def _path(self, probs: Tensor, v: Tensor, bias: bool) -> Tensor:
        attn = self.attention
        b, s, _ = v.shape
        qkv = attn.qkv(v) if bias else F.linear(v, attn.qkv.weight)
        qkv = qkv.view(b, s, 3, self.heads, -1)  # [Q; K; V] blocks, contiguous heads
        if self.positional:
            qkv = attn.gta.apply_qkv(qkv)
        o = (probs.to(v) @ qkv[:, :, 2].transpose(1, 2)).transpose(1, 2)  # (B, S, H, D_H)
        if self.positional:
            o = attn.gta.apply_out(o)
        o = o.reshape(b, s, -1)
        return attn.out(o) if bias else F.linear(o, attn.out.weight)

    def apply(self, probs: Tensor, v: Tensor) -> Tensor:
        """``J_PV v``. ``probs: (B, H, S, S)``, ``v: (B, S, D)`` -> ``(B, S, D)``."""
        return self._path(probs, v, bias=False)

    def apply_t(self, probs: Tensor, u: Tensor) -> Tensor:
        """``J_PV^T u`` (the VJP of the linear map)."""
        _, pull = torch.func.vjp(lambda v: self.apply(probs, v), torch.zeros_like(u))
        return pull(u)[0]

    def value_output(self) -> Tensor:
        """``M_h = W^V_h W^O_h``: ``(H, D, D)``, so that without GTA
        ``J_PV = Σ_h P_h ⊗ M_h^T`` (row-major vec)."""
        w = self.attention.qkv.weight.detach()
        d = w.shape[1]
        wv = w[2 * d :].reshape(self.heads, -1, d)  # (H, D_H, D): rows of (W^V_h)^T
        wo = self.attention.out.weight.detach().reshape(d, self.heads, -1).permute(1, 2, 0)
        return wv.transpose(1, 2) @ wo

    @torch.no_grad()
    def dense(self, probs: Tensor, chunk: int = 256) -> np.ndarray:
        """``(n, n)`` ``J_PV`` of one board (``probs: (H, S, S)``), ``chunk`` columns at a time,
        in the attention weights' precision."""
        s = probs.shape[-1]
        w = self.attention.qkv.weight
        n = s * w.shape[1]
        out = np.empty((n, n), dtype=torch.empty(0, dtype=w.dtype).numpy().dtype)
        for lo in range(0, n, chunk):
            c = min(chunk, n - lo)
            basis = torch.zeros(c, n, dtype=w.dtype, device=w.device)
            basis[torch.arange(c), torch.arange(lo, lo + c)] = 1.0
            p = probs[None].expand(c, *probs.shape)
            out[:, lo : lo + c] = self.apply(p, basis.reshape(c, s, -1)).reshape(c, n).T.cpu()
        return out

    def operator(self, probs: Tensor) -> LinearOperator:
        """``J_PV + J_PV^T`` of one board (``probs: (H, S, S)``) as a float64 LinearOperator."""
        w = self.attention.qkv.weight
        p = probs[None].to(w)
        s, d = p.shape[-1], w.shape[1]

        def mv(v: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.asarray(v).reshape(1, s, d), dtype=w.dtype, device=w.device)
            with torch.no_grad():
                forward = self.apply(p, t)
            return to_numpy(forward + self.apply_t(p, t)).reshape(-1)

        return LinearOperator((s * d, s * d), matvec=mv, rmatvec=mv, dtype=np.float64)


@torch.no_grad()
def pv_form(model: nn.Module, x: Tensor, *, rtol: float = 1e-4) -> PVForm | str:
    """Find the attention's value path and verify it on ``x: (B, S, D)``.

    The model must have exactly one attention module (``model.attention_modules()``) with a
    fused ``.qkv`` (rows ``[Q; K; V]``, heads contiguous) and ``.out`` projection, ``.heads``,
    and optionally ``.gta`` (``apply_qkv``, ``apply_out``). The path, biases included, must
    reproduce ``model.msa(x)`` with ``P = model.attention_probs(x)``.

    Returns:
        a :class:`PVForm`, or a string saying why the PV approximation does not apply.
    """
    mods = list(getattr(model, "attention_modules", list)())
    if len(mods) != 1:
        return f"the PV form needs exactly one attention module, the model has {len(mods)}"
    attn = mods[0]
    if not all(hasattr(attn, a) for a in ("qkv", "out", "heads")):
        return "the attention module has no fused .qkv / .out projections or no .heads"
    gta = getattr(attn, "gta", None)
    positional = gta is not None
    if positional and not (hasattr(gta, "apply_qkv") and hasattr(gta, "apply_out")):
        return "the attention's positional blocks have no apply_qkv / apply_out"
    form = PVForm(attn, positional, float("nan"))
    probs = model.attention_probs(x)
    target = model.msa(x)
    try:
        pred = form._path(probs, x, bias=True)
    except (RuntimeError, ValueError) as err:
        return f"the attention's value path could not be rebuilt ({err})"
    residual = float((pred - target).norm() / target.norm().clamp_min(1e-30))
    if residual > rtol:
        return (
            f"model.msa(X) is not Σ_h P_h (X W^V_h + b_V) W^O_h + b_O (relative error "
            f"{residual:.2e}): another value path or layout; the PV approximation does "
            "not apply"
        )
    return PVForm(attn, positional, residual)


# --------------------------------------------------------------------------------------------
# the probe


@dataclass
class EnergyProbe:
    """Pseudo-energy and contribution index over inference.

    Attributes:
        energy: ``(T+1, B)`` pseudo-energy ``E_t``.
        quadratic: ``(T+1, B)`` ``-x_t^T J_t x_t``.
        cosine: ``(T+1, B)`` cos(vec(MSA(X_t)), J_t x_t).
        ci_steps: loop steps of the contribution index (L of them); samples: puzzle indices.
        contribution: ``(L, len(samples))`` exact index (top ``fraction`` of ``J_t + J_t^T``).
        contribution_pv, contribution_pv0: same with ``J_PV`` at ``X_t`` / frozen at ``X_0``,
            or None when the PV form does not apply.
        quadratic_pv0: ``(T+1, B)`` ``-x_t^T J_PV0 x_t`` or None.
        pv_note: the PV form's layout, or why it was skipped.
        fraction, m, n, method: the eigenspace's share, size, the state size, dense or not.
        contribution_info: ``(L, len(samples))`` nested lists of dicts: how each exact
            index's eigenspace was found (:meth:`Eigenspace.info`: on the block path its
            convergence, residual, gap at the cut, error bound, cost).
    """

    energy: np.ndarray
    quadratic: np.ndarray
    cosine: np.ndarray
    ci_steps: list[int]
    samples: list[int]
    contribution: np.ndarray
    contribution_pv: np.ndarray | None
    contribution_pv0: np.ndarray | None
    quadratic_pv0: np.ndarray | None
    pv_note: str
    fraction: float
    m: int
    n: int
    method: str
    contribution_info: list[list[dict[str, Any]]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Start and end values (means over puzzles)."""
        out: dict[str, Any] = {
            "energy_first": float(self.energy[0].mean()),
            "energy_last": float(self.energy[-1].mean()),
            "cosine_min": float(self.cosine.min()),
            "cosine_mean": float(self.cosine.mean()),
        }
        if self.contribution.size:
            out["contribution_first"] = float(self.contribution[0].mean())
            out["contribution_last"] = float(self.contribution[-1].mean())
        if self.contribution_pv0 is not None and self.contribution_pv0.size:
            out["contribution_pv0_last"] = float(self.contribution_pv0[-1].mean())
        return out

    def to_dict(self) -> dict[str, Any]:
        def opt(a: np.ndarray | None) -> Any:
            return None if a is None else a.tolist()

        return {
            "fraction": self.fraction,
            "m": self.m,
            "n": self.n,
            "method": self.method,
            "ci_steps": self.ci_steps,
            "samples": self.samples,
            "energy": self.energy.tolist(),
            "quadratic": self.quadratic.tolist(),
            "cosine": self.cosine.tolist(),
            "contribution": self.contribution.tolist(),
            "contribution_pv": opt(self.contribution_pv),
            "contribution_pv0": opt(self.contribution_pv0),
            "quadratic_pv0": opt(self.quadratic_pv0),
            "pv_note": self.pv_note,
            "contribution_info": self.contribution_info,
            "summary": self.summary(),
        }


def energy_probe(
    model: nn.Module,
    run: Rollout,
    *,
    ci_steps: Sequence[int] | None = None,
    samples: int | Sequence[int] | None = 2,
    fraction: float = 0.02,
    method: str = "auto",
    dense_max: int = DENSE_MAX_SYM,
    approximation: bool | None = None,
    tol: float = BLOCK_TOL,
    seed: int = 0,
    max_seconds: float | None = None,
    show_progress: bool = True,
) -> EnergyProbe:
    """Pseudo-energy (every puzzle, every step) and contribution indices (some puzzles).

    Args:
        model: any LoopedModel.
        run: a :class:`Rollout` of T steps.
        ci_steps: loop steps of the contribution index (default all of 0..T).
        samples: puzzles for the contribution index: a count (the first), indices, or None
            (all). Each (step, puzzle) costs one top-m eigenproblem.
        fraction: the top share of the spectrum (paper: 2%).
        method: ``"auto"``, ``"dense"`` or ``"matrix-free"`` (the block solver) for the
            eigenproblems.
        dense_max: the largest n done densely under ``"auto"``.
        approximation: also compute the PV approximation (where the model allows it); None
            (default): on the dense path only, since on the matrix-free path it adds two
            eigenproblems per step (pass True to have them).
        tol, seed: the block solver's residual tolerance (relative to ``||S||``) and start
            block on the matrix-free path.
        max_seconds: the block solver's time budget per eigenproblem (None: until ``tol``;
            CPU seconds, ``time.process_time``); a cut one is recorded as not converged in
            ``contribution_info``.
    """
    n = run.dim
    m = _top_count(n, fraction)
    dense = _use_dense(method, n, dense_max)
    steps = list(range(run.steps + 1)) if ci_steps is None else [int(t) for t in ci_steps]
    for t in steps:
        run.state(t)  # range check
    idx = run.sample_indices(samples)
    energy = pseudo_energy(model, run)
    with analysis_mode(model):
        quad, cos = _quadratic_reading(model, run)
        if approximation is None:
            approximation = dense
        pv = pv_form(model, run.state(0)) if approximation else _no_pv_note(dense)
        ci = _ContributionLoop(model, run, idx, m, dense, tol, seed, pv)
        ci.max_seconds, ci.verbose = max_seconds, show_progress
        for t in progress(steps, enable=show_progress, desc="contribution index"):
            ci.measure(t)

    def arr(rows: list[list[float]]) -> np.ndarray:
        return np.array(rows, dtype=np.float64).reshape(len(steps), len(idx))

    has_pv = isinstance(pv, PVForm)
    return EnergyProbe(
        energy=energy,
        quadratic=quad,
        cosine=cos,
        ci_steps=steps,
        samples=idx,
        contribution=arr(ci.exact),
        contribution_pv=arr(ci.approx) if has_pv else None,
        contribution_pv0=arr(ci.approx0) if has_pv else None,
        quadratic_pv0=ci.quad_pv0,
        pv_note=_pv_note(pv),
        fraction=fraction,
        m=m,
        n=n,
        method="dense" if dense else "matrix-free",
        contribution_info=ci.info,
    )


def _quadratic_reading(model: nn.Module, run: Rollout) -> tuple[np.ndarray, np.ndarray]:
    """``(T+1, B)`` each: ``-x_t^T J_t x_t`` and cos(vec MSA(X_t), J_t x_t)."""
    quad, cos = [], []
    for x in run.states:
        msa, jx = _msa_jvp(model, x)
        quad.append(to_numpy(-(x * jx).flatten(1).sum(1)))
        cos.append(to_numpy(_cosine(msa, jx)))
    return np.stack(quad), np.stack(cos)


def _no_pv_note(dense: bool) -> str:
    if dense:
        return "not requested"
    return (
        "not computed on the matrix-free path (two more eigenproblems per step; "
        "pass approximation=True)"
    )


def _pv_note(pv: PVForm | str) -> str:
    if isinstance(pv, str):
        return pv
    blocks = "with GTA blocks on the value path, " if pv.positional else ""
    return f"applies ({blocks}reconstruction error {pv.residual:.1e})"


class _ContributionLoop:
    """The exact (and, with a :class:`PVForm`, approximate) contribution indices of the
    sampled puzzles, one loop step at a time; rows accumulate in ``exact``, ``approx``,
    ``approx0`` and ``info``."""

    def __init__(
        self,
        model: nn.Module,
        run: Rollout,
        idx: list[int],
        m: int,
        dense: bool,
        tol: float,
        seed: int,
        pv: PVForm | str,
    ):
        self.model, self.run, self.idx, self.m, self.dense = model, run, idx, m, dense
        self.tol, self.seed, self.pv = tol, seed, pv
        self.max_seconds: float | None = None
        self.verbose = False
        self.exact: list[list[float]] = []
        self.approx: list[list[float]] = []
        self.approx0: list[list[float]] = []
        self.info: list[list[dict[str, Any]]] = []
        self.quad_pv0: np.ndarray | None = None
        self.f = single_msa_map(model, run.state_shape)
        if isinstance(pv, PVForm):
            with torch.no_grad():
                self.p0 = model.attention_probs(run.state(0))
                self.quad_pv0 = np.stack(
                    [to_numpy(-(x * pv.apply(self.p0, x)).flatten(1).sum(1)) for x in run.states]
                )
            self.basis0 = {b: self._pv_space(self.p0[b]) for b in idx}

    def _pv_space(self, probs: Tensor) -> Eigenspace:
        return _pv_basis(self.pv, probs, self.m, self.dense, self.tol, self.seed)

    def measure(self, t: int) -> None:
        x = self.run.state(t)
        vecs = {b: to_numpy(x[b]).reshape(-1) for b in self.idx}
        spaces = {
            b: eigenspace(
                self.f,
                x[b].reshape(-1),
                self.m,
                self.dense,
                tol=self.tol,
                seed=self.seed,
                max_seconds=self.max_seconds,
                show_progress=self.verbose,
            )
            for b in self.idx
        }
        self.exact.append([spaces[b].share(vecs[b]) for b in self.idx])
        self.info.append([spaces[b].info(vecs[b]) for b in self.idx])
        if not isinstance(self.pv, PVForm):
            return
        self.approx0.append([self.basis0[b].share(vecs[b]) for b in self.idx])
        if t == 0:  # P(X_t) is P(X_0): the same operator
            self.approx.append(self.approx0[-1])
            return
        with torch.no_grad():
            pt = self.model.attention_probs(x)
        self.approx.append([self._pv_space(pt[b]).share(vecs[b]) for b in self.idx])


def _pv_basis(pv: PVForm, probs: Tensor, m: int, dense: bool, tol: float, seed: int) -> Eigenspace:
    """Top-m eigenspace of ``J_PV + J_PV^T`` of one board (``probs: (H, S, S)``)."""
    if dense:
        j = pv.dense(probs)
        return Eigenspace(
            basis=top_eigenspace(_on_host_or_device(torch.from_numpy(j + j.T), probs.device), m)
        )
    w = pv.attention.qkv.weight
    s, d = probs.shape[-1], w.shape[1]
    p = probs[None].to(w)

    def f(v: Tensor) -> Tensor:  # the linear map J_PV: its Jacobian is itself
        return pv.apply(p, v.reshape(1, s, d)).reshape(s * d)

    return eigenspace(
        f, torch.zeros(s * d, dtype=w.dtype, device=w.device), m, False, tol=tol, seed=seed
    )
