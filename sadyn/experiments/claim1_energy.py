"""Claim 1 (Sec. 4): symmetric self-attention dynamics keep an energy (a Lyapunov function).

Continuous-time particle dynamics on token states x_i in R^D with the interaction energy

    E(X) = -(1 / 2 beta) sum_h sum_{i,j} exp(beta x_i^T A_h x_j)

and the velocity of SA (row-wise softmax, values V_h):

    single head, projected (Prop 4.1 setting):
        dx_i/dt = P_{x_i} sum_j softmax_j(beta x_i^T A x_j) V x_j
    multi-head, unprojected (Prop 4.2 setting):
        dx_i/dt = sum_h sum_j softmax_j(beta x_i^T A_h x_j) V_h x_j

With A symmetric and V = A, -dE/dt = sum_i ||P_i grad_i E||^2 / Z_i >= 0 (classical). With
symmetric A_h living in mutually orthogonal subspaces (A_h A_h' = 0), the cross-head terms vanish
and -dE/dt = sum_i sum_h ||grad_i E_h||^2 / Z_i^h >= 0: the provable core of Prop 4.2.
dE/dt = <grad E, dX/dt> is computed exactly by autograd at random states (float64).

Prop 4.1's asymmetric case (W^V = sym(W^Q W^K^T)) needs the paper's energy, which the
available sources do not give (reference notes, Sec. 2.7); with the reconstructed E above the
derivative is measured and shown, but not judged.

The recipe judges every case over a declared sweep of the weight scale, beta and the shape
(S, D, H), so a pass cannot come from a mild setting where the softmax is nearly uniform, and
two controls show that the measurement can see a rise: a random W^V (at every sweep point) and
the near miss of Prop 4.1's asymmetric A with W^V = sym(A) under the reconstructed energy
(somewhere in the sweep). Symmetric heads whose subspaces overlap (the cross-head terms Prop
4.2's orthogonality removes) are reported beside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from sadyn.experiments.base import Check, ExperimentError, Recipe, RunContext, Verdict, check

Velocity = Callable[[Tensor], Tensor]
SYM = "symmetric (single head, projected)"
HEADS = "orthogonal symmetric heads (unprojected)"
P41 = "Prop 4.1: asymmetric A, W^V = sym(A)"
P42 = "Prop 4.2: low-rank asymmetric A_h, orthogonal heads, W^V_h = sym(A_h)"
CTRL = "control: random W^V"
OVERLAP = "control: overlapping symmetric heads (unprojected)"
CASES = (SYM, HEADS, P42, P41, OVERLAP, CTRL)
# float64 rounding of the normalized dE/dt: each of the S*D products of the inner product
# carries a relative error of about eps * (1 + |logit|) (exp of a rounded logit), so the
# computed value is within S * D * eps * (1 + max|logit|) of the exact one; the declared tol
# (1e-9) must exceed it at every sweep point, which the recipe records and the judge checks
EPS64 = 2.220446049250313e-16


@dataclass(frozen=True)
class Claim1Config:
    """The sweep: every ``(S, D, H)`` of ``shapes`` x every ``weight_scales`` x every
    ``betas``; at each point and for each case, ``states`` random states (unit tokens), each
    with freshly drawn weights of spectral scale ~``weight_scale``, and ``flows`` Euler flows
    of ``traj_steps`` steps from random states. A flow's step moves the state by at most
    ``traj_dt`` of its norm (``h = traj_dt min(1, |X| / |dX/dt|)``, a change of time that
    keeps the path), so an unprojected flow that grows is followed, not cut after a few steps.
    ``tol``: largest normalized dE/dt = <grad E, v> / (|grad E| |v|) still called "not
    rising" (above the float64 rounding bound of every point, see ``EPS64``)."""

    shapes: tuple[tuple[int, int, int], ...] = ((4, 8, 1), (8, 8, 2), (16, 32, 4), (16, 64, 8))
    weight_scales: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
    betas: tuple[float, ...] = (0.3, 1.0, 3.0)
    states: int = 400
    flows: int = 2
    traj_steps: int = 300
    traj_dt: float = 0.01
    tol: float = 1e-9
    seed: int = 0


# ---------------------------------------------------------------------------------------------
# the math (float64 throughout)


def energy(x: Tensor, mats: list[Tensor], beta: float) -> Tensor:
    """E(X) = -(1/2beta) sum_h sum_ij exp(beta x_i^T A_h x_j).  x: (S, D), A_h: (D, D)."""
    return -sum(torch.exp(beta * x @ a @ x.T).sum() for a in mats) / (2 * beta)


def sa_velocity(
    x: Tensor, qk: list[Tensor], vals: list[Tensor], beta: float, project: bool
) -> Tensor:
    """sum_h softmax(beta X A_h X^T) X V_h^T, optionally projected on each token's tangent
    space.  x: (S, D) -> (S, D)."""
    v = sum(
        torch.softmax(beta * x @ a @ x.T, dim=-1) @ x @ w.T for a, w in zip(qk, vals, strict=True)
    )
    if project:
        v = v - (v * x).sum(-1, keepdim=True) * x / (x * x).sum(-1, keepdim=True)
    return v


def normalized_dedt(
    x: Tensor, mats: list[Tensor], beta: float, velocity: Velocity, tangent: bool = False
) -> float:
    """<grad E(x), v(x)> / (|grad E| |v|): the sign of dE/dt, scale-free.

    ``tangent``: v is tangent to the sphere at every token, so the inner product is taken
    with the tangent part of the gradient (equal in exact arithmetic). Evaluated naively, the
    large radial part of grad E meets the rounding error of v's radial part, which dominates
    where v itself is tiny (a flow at a fixed point, |v| / |grad E| ~ 1e-29) and can show any
    sign there."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x, mats, beta), x)
    v = velocity(x.detach())
    norm = (grad.norm() * v.norm()).clamp_min(1e-300)
    if tangent:
        xd = x.detach()
        grad = grad - (grad * xd).sum(-1, keepdim=True) * xd / (xd * xd).sum(-1, keepdim=True)
    return float((grad * v).sum() / norm)


def sphere_states(n: int, s: int, d: int, gen: torch.Generator) -> Tensor:
    """n random states of s unit tokens.  -> (n, s, d) float64."""
    x = torch.randn(n, s, d, generator=gen, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def random_symmetric(d: int, gen: torch.Generator) -> Tensor:
    a = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    return (a + a.T) / 2


def orthogonal_head_matrices(d: int, heads: int, gen: torch.Generator) -> list[Tensor]:
    """A_h = U_h M_h U_h^T, symmetric M_h, U_h orthonormal (D, D/H) blocks of one random
    orthogonal matrix, so the heads occupy mutually orthogonal subspaces (A_h A_h' = 0)."""
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    r = d // heads
    return [
        q[:, h * r : (h + 1) * r] @ random_symmetric(r, gen) @ q[:, h * r : (h + 1) * r].T
        for h in range(heads)
    ]


BLOWUP = 1e3


def lowrank_head_matrices(
    d: int, heads: int, gen: torch.Generator
) -> tuple[list[Tensor], list[Tensor]]:
    """Prop 4.2 as reconstructed (paper.md §2.7, ``sadyn.nn.constrained.GenSymMultiAttention``):
    ``A_h = U_{1,h} M_h U_{2,h}^T`` (rank D/(2H), asymmetric; the U blocks disjoint columns of
    one random orthogonal matrix, ``M_h`` a random core) and ``W^V_h = (A_h + A_h^T)/2``.
    Returns ``(A list, W^V list)``, each ``(D, D)``, unit spectral scale ~1."""
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    k = d // (2 * heads)
    if k < 1:
        raise ValueError(f"dim {d} too small for {heads} heads of rank >= 1")
    qk, vals = [], []
    for h in range(heads):
        u1, u2 = q[:, 2 * h * k : (2 * h + 1) * k], q[:, (2 * h + 1) * k : (2 * h + 2) * k]
        m = torch.randn(k, k, generator=gen, dtype=torch.float64) / k**0.5
        a = u1 @ m @ u2.T
        qk.append(a)
        vals.append((a + a.T) / 2)
    return qk, vals


def flow(
    x0: Tensor,
    mats: list[Tensor],
    beta: float,
    velocity: Velocity,
    steps: int,
    dt: float,
    sphere: bool,
) -> dict[str, Any]:
    """An explicit Euler flow from ``x0`` with the relative step ``h = dt min(1, |X|/|v|)``
    (renormalized to the sphere when ``sphere``), cut only where the state's norm passes
    ``BLOWUP`` times its start or turns non-finite. Returns the exact normalized dE/dt and
    the energy at every point (``dedt``, ``energy``), the time reached and the steps run."""
    x, dedt, energies, t = x0.clone(), [], [], 0.0
    limit = BLOWUP * float(x0.norm())
    for _ in range(steps):
        e = float(energy(x, mats, beta))
        if not math.isfinite(e) or float(x.norm()) > limit:
            break
        energies.append(e)
        dedt.append(normalized_dedt(x, mats, beta, velocity, tangent=sphere))
        v = velocity(x)
        h = dt * min(1.0, float(x.norm() / v.norm().clamp_min(1e-300)))
        x, t = x + h * v, t + h
        if sphere:
            x = x / x.norm(dim=-1, keepdim=True)
        if not torch.isfinite(x).all():
            break
    return {"dedt": dedt, "energy": energies, "time": t, "steps": len(dedt)}


def make_case(
    label: str, d: int, heads: int, scale: float, beta: float, gen: torch.Generator
) -> tuple[list[Tensor], Velocity, bool]:
    """Fresh random weights of one case: (energy matrices A_h, velocity, on the sphere)."""
    if label == SYM:
        a = scale * random_symmetric(d, gen)
        return [a], lambda x: sa_velocity(x, [a], [a], beta, project=True), True
    if label == HEADS:
        hs = [scale * a for a in orthogonal_head_matrices(d, heads, gen)]
        return hs, lambda x: sa_velocity(x, hs, hs, beta, project=False), False
    if label == P41:
        a = scale * torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
        v = (a + a.T) / 2
        return [a], lambda x: sa_velocity(x, [a], [v], beta, project=True), True
    if label == P42:
        qk, vals = lowrank_head_matrices(d, heads, gen)
        qk, vals = [scale * a for a in qk], [scale * w for w in vals]
        return qk, lambda x: sa_velocity(x, qk, vals, beta, project=False), False
    if label == OVERLAP:  # symmetric heads, A_h = W^V_h, but in overlapping subspaces
        hs = [scale * random_symmetric(d, gen) / heads**0.5 for _ in range(heads)]
        return hs, lambda x: sa_velocity(x, hs, hs, beta, project=False), False
    if label == CTRL:
        a = scale * random_symmetric(d, gen)
        v = scale * torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
        return [a], lambda x: sa_velocity(x, [a], [v], beta, project=True), True
    raise ValueError(f"unknown case {label!r}")


def max_logit(x: Tensor, mats: list[Tensor], beta: float) -> float:
    """max_h,i,j |beta x_i^T A_h x_j|.  x: (S, D)."""
    return max(float((beta * x @ a @ x.T).abs().max()) for a in mats)


def measure_point(
    label: str,
    shape: tuple[int, int, int],
    scale: float,
    beta: float,
    cfg: Claim1Config,
    gen: torch.Generator,
) -> dict[str, Any]:
    """One case at one sweep point: the normalized dE/dt at ``cfg.states`` random states
    (new weights for each) and along ``cfg.flows`` flows; counts, extremes and the rounding
    bound of the largest logit seen."""
    s, d, heads = shape
    values, logit = [], 0.0
    for x in sphere_states(cfg.states, s, d, gen):
        mats, vel, sphere = make_case(label, d, heads, scale, beta, gen)
        values.append(normalized_dedt(x, mats, beta, vel, tangent=sphere))
        logit = max(logit, max_logit(x, mats, beta))
    flows = []
    for x in sphere_states(cfg.flows, s, d, gen):
        mats, vel, sphere = make_case(label, d, heads, scale, beta, gen)
        flows.append(flow(x, mats, beta, vel, cfg.traj_steps, cfg.traj_dt, sphere))
    along = [v for f in flows for v in f["dedt"]]
    return {
        "states": len(values),
        "rising": sum(v > cfg.tol for v in values),
        "max": max(values),
        "median": float(torch.tensor(values).median()),
        "flow_max": max(along) if along else None,
        "flow_rising": sum(v > cfg.tol for v in along),
        "flow_points": len(along),
        "flow_steps_min": min(f["steps"] for f in flows) if flows else 0,
        "flow_time_min": min(f["time"] for f in flows) if flows else 0.0,
        "rounding_bound": s * d * EPS64 * (1 + logit),
        "energy": flows[0]["energy"] if flows else [],
    }


# ---------------------------------------------------------------------------------------------
# the recipe


class Claim1Energy(Recipe):
    name = "claim1-energy"
    title = "Claim 1: symmetric self-attention has an energy"
    order = 0
    paper_ref = "Sec. 4, Props 4.1-4.2"
    claim = (
        "Energy-based views of self-attention need symmetric weights (W^Q W^K^T = W^V = "
        "W^V^T), a single head and continuous time; the energy is then a Lyapunov "
        "function. The symmetry can be relaxed (W^V the symmetric part of W^Q W^K^T, "
        "Prop 4.1) and the energy extends to multi-head SA whose heads are low-rank and "
        "occupy orthogonal subspaces (Prop 4.2): 'generalized symmetric SA'."
    )
    criterion = (
        "Over the declared sweep (every (S, D, H) of shapes x weight_scales x betas, fresh "
        "weights per state): normalized dE/dt <= tol at every random state and at every point "
        "of every Euler flow for (a) single-head SA with symmetric A = W^Q W^K^T = W^V, "
        "projected onto the sphere; (b) multi-head SA with symmetric A_h = W^V_h in mutually "
        "orthogonal subspaces, unprojected; (c) Prop 4.2's relaxation as reconstructed: "
        "low-rank asymmetric A_h = U_1h M_h U_2h^T in orthogonal subspaces with W^V_h = "
        "sym(A_h), with E_multi = sum_h E(A_h). Controls, so the check can fail either way: "
        "(d) a random non-symmetric W^V has a state with dE/dt > tol at every sweep point; (e) "
        "Prop 4.1's asymmetric A with W^V = sym(A), projected, under the reconstructed E (which "
        "no theorem makes decreasing) has a state with dE/dt > tol somewhere in the sweep. tol "
        "must exceed the float64 rounding bound S D eps (1 + max|logit|) at every point, else "
        "the checks are inconclusive. Prop 4.1 itself is not judged (the paper's E_single is "
        "not recoverable); symmetric heads in overlapping subspaces are reported, not judged."
    )
    criterion_fields = ("tol",)
    statistic = (
        "exact dE/dt = <grad E, dX/dt> by autograd in float64, normalized by |grad E| |dX/dt|; "
        "counts of states above tol per sweep point"
    )
    notes = (
        "First run judged only the classical symmetric cases; the relaxations were "
        "shown but not judged. A later run judged Prop 4.2's reconstruction at one mild "
        "setting (weight scale 3, beta 1, S=16, D=32, H=4), where an audit found the "
        "reconstruction raising the energy at weight scale 100 and at D=8, H=1-2, and the "
        "flow check cut after 46 and 142 steps; this design (declared 2026-12-07, before its "
        "run) judges every case over a sweep of weight scale, beta and shape, with a relative "
        "Euler step and two controls.",
        "The first run of this design (2026-12-07, criterion cfdae72f3e6389fa, in git history) "
        "failed the symmetric single head along flows only (211 flow points, max 0.86; 0 of "
        "24,000 random states): flows that had reached a fixed point (|v| / |grad E| ~ 1e-29), "
        "where the naive <grad E, v> is the rounding of v's radial part times the large radial "
        "gradient. The projected cases now take the tangent part of the gradient (equal in "
        "exact arithmetic; a fixed point then reads ~ -1e-16). A measurement fix after a "
        "recorded run, logged in the criteria log (measurement-changed); the criterion and "
        "its hash are unchanged.",
        "Prop 4.1/4.2's exact energies are not in the available sources; this recipe "
        "checks the provable cases (symmetric, and symmetric heads in orthogonal "
        "subspaces) with the Geshkovski-type energy E = -(1/2beta) sum exp(beta x_i^T A "
        "x_j), and Prop 4.2 as the project reconstructs it (paper.md Sec. 2.7).",
    )
    Config = Claim1Config
    presets: ClassVar[dict[str, Claim1Config]] = {
        "tiny": Claim1Config(
            shapes=((6, 8, 2),),
            weight_scales=(1.0, 10.0),
            betas=(1.0,),
            states=20,
            flows=1,
            traj_steps=30,
        ),
        "small": Claim1Config(),
        "paper": Claim1Config(
            shapes=((4, 8, 1), (8, 8, 2), (16, 32, 4), (81, 64, 8)),
            weight_scales=(1.0, 3.0, 10.0, 30.0, 100.0, 300.0),
            betas=(0.1, 0.3, 1.0, 3.0, 10.0),
            states=500,
            flows=4,
            traj_steps=500,
        ),
    }
    trains = False

    def measure(self, cfg: Claim1Config, ctx: RunContext) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(cfg.seed)
        points = []
        for shape in cfg.shapes:
            s, d, heads = shape
            if d % heads or d < 2 * heads:
                raise ExperimentError(
                    f"{self.name}: shape {shape}: D must be a multiple of H "
                    "and at least 2H (Prop 4.2's rank-D/(2H) heads)"
                )
            for scale in cfg.weight_scales:
                for beta in cfg.betas:
                    cases = {
                        label: measure_point(label, shape, scale, beta, cfg, gen) for label in CASES
                    }
                    points.append(
                        {
                            "tokens": s,
                            "dim": d,
                            "heads": heads,
                            "weight_scale": scale,
                            "beta": beta,
                            "cases": cases,
                        }
                    )
            ctx.log(
                f"S={s}, D={d}, H={heads}: "
                + ", ".join(
                    f"{k}: {sum(p['cases'][k]['rising'] for p in points if p['dim'] == d)}"
                    for k in CASES
                )
            )
        return {
            "data": {"points": points},
            "figures": _figures(points, cfg),
            "tables": {"sweep": _table(points)},
        }

    def judge(self, record: Mapping[str, Any]) -> Verdict:
        tol, data = record["config"]["tol"], record["data"]
        points = data.get("points")
        if not points:
            return Verdict.combine(
                self.criterion,
                [
                    check(
                        "sweep",
                        "results recorded in the single-setting format",
                        None,
                        note="recorded before the sweep design: re-run to judge",
                    )
                ],
            )
        rounding = max(c["rounding_bound"] for p in points for c in p["cases"].values())
        if rounding >= tol:
            return Verdict.combine(
                self.criterion,
                [
                    check(
                        "rounding",
                        f"tol ({tol:g}) above the float64 rounding bound",
                        None,
                        {"largest rounding bound": rounding},
                    )
                ],
            )
        crit = (
            f"normalized dE/dt <= tol ({tol:g}) at every random state and every flow "
            "point of every sweep point"
        )
        checks: list[Check] = [
            check(
                "symmetric single head",
                crit,
                _never_rises(points, SYM, tol),
                _summary(points, SYM, tol),
            ),
            check(
                "orthogonal symmetric heads",
                crit,
                _never_rises(points, HEADS, tol),
                _summary(points, HEADS, tol),
            ),
            check(
                "Prop 4.2 relaxation: low-rank asymmetric heads",
                crit + ", with the reconstructed E_multi = sum_h E(A_h)",
                _never_rises(points, P42, tol),
                _summary(points, P42, tol),
                note="Judged on the project's reconstruction of Prop 4.2 (paper.md §2.7): "
                "A_h = U_1h M_h U_2h^T in mutually orthogonal subspaces, W^V_h = sym(A_h).",
            ),
            check(
                "control: random W^V rises at every sweep point",
                f"every sweep point has a state with dE/dt > tol ({tol:g})",
                all(p["cases"][CTRL]["rising"] > 0 for p in points),
                _summary(points, CTRL, tol),
            ),
            check(
                "control: asymmetric A, W^V = sym(A) rises somewhere",
                f"some state of some sweep point has dE/dt > tol ({tol:g}) under the "
                "reconstructed E",
                any(p["cases"][P41]["rising"] > 0 for p in points),
                _summary(points, P41, tol),
                note="Prop 4.1's setting under the reconstructed (Geshkovski-type) energy, which "
                "no theorem makes decreasing for asymmetric A: a near miss of (a) that the sweep "
                "must be able to show rising. Prop 4.1 itself is not judged (the paper's "
                "E_single for asymmetric A is not recoverable).",
            ),
            check(
                "overlapping symmetric heads (reported)",
                "shown: symmetric heads A_h = W^V_h whose subspaces overlap (no orthogonality)",
                None,
                _summary(points, OVERLAP, tol),
                required=False,
                note="Not judged: without orthogonal subspaces the cross-head terms of dE/dt "
                "have no sign, so a rise is possible but not guaranteed at random states.",
            ),
        ]
        return Verdict.combine(self.criterion, checks)


def _never_rises(points: list[Mapping[str, Any]], label: str, tol: float) -> bool:
    """No state and no flow point of any sweep point has normalized dE/dt > tol."""
    cases = [p["cases"][label] for p in points]
    return all(c["rising"] == 0 and (c["flow_max"] is None or c["flow_max"] <= tol) for c in cases)


def _where(p: Mapping[str, Any]) -> str:
    return (
        f"S={p['tokens']} D={p['dim']} H={p['heads']} scale={p['weight_scale']:g} "
        f"beta={p['beta']:g}"
    )


def _summary(points: list[Mapping[str, Any]], label: str, tol: float) -> dict[str, Any]:
    """The numbers of one case over the sweep: states and flow points above tol, the sweep
    points where it rises (first 8), extremes and the shortest flow."""
    cases = [(p, p["cases"][label]) for p in points]
    rising = [(p, c) for p, c in cases if c["rising"] or (c["flow_max"] or -1) > tol]
    flow_max = [c["flow_max"] for _, c in cases if c["flow_max"] is not None]
    return {
        "states above tol": f"{sum(c['rising'] for _, c in cases)}/"
        f"{sum(c['states'] for _, c in cases)}",
        "sweep points with a rise": f"{len(rising)}/{len(cases)}",
        "max normalized dE/dt": max(c["max"] for _, c in cases),
        "max along flows": max(flow_max) if flow_max else None,
        "flow points above tol": sum(c["flow_rising"] for _, c in cases),
        "shortest flow (steps)": min(c["flow_steps_min"] for _, c in cases),
        "where (first 8)": [
            f"{_where(p)}: {c['rising']}/{c['states']} (max {c['max']:.3g})" for p, c in rising[:8]
        ],
    }


def _table(points: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "columns": [
            "S",
            "D",
            "H",
            "weight scale",
            "beta",
            *[f"{k}: states above tol" for k in CASES],
        ],
        "rows": [
            [
                p["tokens"],
                p["dim"],
                p["heads"],
                p["weight_scale"],
                p["beta"],
                *[f"{p['cases'][k]['rising']}/{p['cases'][k]['states']}" for k in CASES],
            ]
            for p in points
        ],
    }


def _figures(points: list[Mapping[str, Any]], cfg: Claim1Config) -> dict[str, Any]:
    scales = list(cfg.weight_scales)

    def worst(label: str, scale: float) -> float:
        return max(p["cases"][label]["max"] for p in points if p["weight_scale"] == scale)

    harsh = max(points, key=lambda p: p["weight_scale"] * p["beta"])
    return {
        "dedt": {
            "kind": "line",
            "xscale": "log",
            "xlabel": "weight scale",
            "ylabel": "max normalized dE/dt",
            "xticks": scales,
            "series": [
                {"label": k, "x": scales, "y": [worst(k, s) for s in scales]} for k in CASES
            ],
            "caption": "Largest normalized dE/dt over the random states of every beta and "
            "shape, per weight scale: the energy is a Lyapunov function where every value is "
            "<= 0 (tol).",
        },
        "trajectories": {
            "kind": "panels",
            "ncols": 2,
            "caption": f"Energy along an Euler flow at {_where(harsh)} (relative step "
            f"{cfg.traj_dt:g} of |X|; time reparametrized, path kept), one panel per case.",
            "panels": [
                {
                    "kind": "line",
                    "title": k,
                    "xlabel": "step",
                    "ylabel": "E(X)",
                    "series": [
                        {
                            "marker": "",
                            "y": harsh["cases"][k]["energy"],
                            "x": list(range(len(harsh["cases"][k]["energy"]))),
                        }
                    ],
                }
                for k in CASES
            ],
        },
    }


RECIPE = Claim1Energy()
