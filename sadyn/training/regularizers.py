"""Regularizers of the paper (Sec. 6.2, App. B.2) and two Jacobian-based ones beyond it.

Conventions. The attention modules (``model.attention_modules()``) hold a fused ``qkv``
``nn.Linear(D, 3D)`` whose weight rows are ``[Q; K; V]`` and an ``out`` ``nn.Linear(D, D)``;
head h uses rows ``h*d:(h+1)*d`` of each of Q, K, V and columns ``h*d:(h+1)*d`` of ``out``
(d = D/H). In the paper's row-vector notation (``x W``), ``W^Q_h = Q_h^T`` (D x d),
``W^O_h = O_h^T`` (d x D) with ``O_h = out.weight[:, h*d:(h+1)*d]``, so
``A_h = W^Q_h W^K_h^T = Q_h^T K_h`` and the value-output product is
``M_h = W^V_h W^O_h = V_h^T O_h^T`` (both D x D).

- **Spec** (Eq. 21, after Lewandowski et al. 2025): ``sum_W (sigma_max(W)^2 - 1)^2 +
  sum_b ||b||^4`` over W in {Q, K, V, O} of every attention module (the fused qkv weight
  counts as its three D x D blocks) and b their biases (likewise split). ``sigma_max`` comes
  from power iteration with persistent vectors, one step per call, as in Lewandowski et al.:
  ``v <- W^T u / ||.||``, ``u <- W v / ||.||`` (no grad), then ``sigma = u^T W v`` (grad through
  W only; at convergence that is the exact gradient of sigma_max).
- **E-single** (Prop. 4.1 condition as a penalty; reconstructed, paper.md §5):
  ``sum_h ||M_h - (A_h + A_h^T)/2||_F^2`` (H = 1 in the paper). A is unscaled: the Prop. 4.1
  condition ``W^V = sym(W^Q W^K^T)`` does not carry the softmax temperature.
- **E-multi** (Eq. 20, reconstructed): ``form="product"`` (default):
  ``sum_h ||M_h - M_h^T||_F^2``, zero iff every head's value-output product is symmetric;
  computed from d x d Gram matrices, ``2 tr((V_h V_h^T)(O_h^T O_h)) - 2 tr((O_h^T V_h^T)^2)``.
  ``form="transpose"``: ``||W^V - W^O^T||_F^2`` (with orthogonal W^V, W^O this makes
  ``M_h = W^V_h W^V_h^T``). The paper adds an orthogonal parametrization of W^V and W^O: the
  model option ``orthogonal_vo`` (``sadyn.nn.attention``); the penalty does not impose it.
- **Jacobian** (beyond the paper): ``mean_b relu(sigma_b - target)^2`` with ``sigma_b`` the
  spectral norm of the step map's Jacobian at a board's state (power iteration with JVP/VJP,
  a few steps, no grad; then ``sigma = u^T J v`` through one differentiable VJP).
- **Lyapunov** (beyond the paper; gradient flossing, Engelken 2023): the top-k QR (Benettin)
  Lyapunov exponents over L steps from a state (k tangent vectors pushed with JVPs, a QR per
  step), all differentiable, computed by :func:`sadyn.dynamics.lyapunov_spectrum` with
  ``differentiable=True``; penalty ``mean_b sum_i (lambda_i - target)^2``. (Over L steps from
  random tangents these are *not* the paper's finite-time exponents, the singular values of
  the propagator: :func:`sadyn.dynamics.finite_time_lyapunov`.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sadyn.dynamics import JacobianOperator, lyapunov_spectrum, math_attention
from sadyn.errors import SadynError


# ---------------------------------------------------------------------------- weight access
def attention_modules(model: nn.Module, penalty: str) -> list[nn.Module]:
    """``model.attention_modules()``, or a clear error when it has none to penalize."""
    modules = list(model.attention_modules())
    if not modules:
        raise SadynError(
            f"{type(model).__name__} has no unconstrained attention modules (qkv/out weights), "
            f"so the {penalty} penalty does not apply to it"
        )
    return modules


def attention_heads(module: nn.Module) -> int:
    for name in ("heads", "num_heads", "n_heads"):
        if hasattr(module, name):
            return int(getattr(module, name))
    raise SadynError(f"{type(module).__name__} does not say how many heads it has")


def qkvo(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Q, K, V, O) weights of one attention module, nn.Linear layout (out x in), each D x D."""
    q, k, v = module.qkv.weight.chunk(3, dim=0)
    return q, k, v, module.out.weight


def attention_biases(module: nn.Module) -> list[torch.Tensor]:
    biases = []
    if module.qkv.bias is not None:
        biases.extend(module.qkv.bias.chunk(3))
    if module.out.bias is not None:
        biases.append(module.out.bias)
    return biases


def head_blocks(module: nn.Module) -> list[tuple[torch.Tensor, ...]]:
    """Per head h: (Q_h, K_h, V_h, O_h) with Q_h, K_h, V_h: (d, D) rows and O_h: (D, d)."""
    q, k, v, o = qkvo(module)
    heads = attention_heads(module)
    d = q.shape[0] // heads
    return [
        (
            q[h * d : (h + 1) * d],
            k[h * d : (h + 1) * d],
            v[h * d : (h + 1) * d],
            o[:, h * d : (h + 1) * d],
        )
        for h in range(heads)
    ]


# ---------------------------------------------------------------------------- Spec
class SpectralPenalty:
    """R_Spec with persistent power-iteration vectors (one step per call).

    The vectors are state (saved in checkpoints through :meth:`state_dict`), created on first
    use from ``generator``.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator
        self.u: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []

    def matrices(self, model: nn.Module) -> list[torch.Tensor]:
        mats = []
        for m in attention_modules(model, "Spec"):
            mats.extend(qkvo(m))
        return mats

    def _init(self, mats: list[torch.Tensor]) -> None:
        for w in mats:
            u = torch.randn(w.shape[0], generator=self.generator, dtype=torch.float64)
            v = torch.randn(w.shape[1], generator=self.generator, dtype=torch.float64)
            self.u.append(F.normalize(u, dim=0).to(w))
            self.v.append(F.normalize(v, dim=0).to(w))

    def sigmas(self, model: nn.Module, *, iterations: int = 1) -> list[torch.Tensor]:
        """sigma_max estimate of every matrix (differentiable in the weights)."""
        mats = self.matrices(model)
        if not self.u:
            self._init(mats)
        if len(self.u) != len(mats):
            raise SadynError("the model's attention weights changed under the Spec penalty")
        out = []
        for i, w in enumerate(mats):
            with torch.no_grad():
                u, v = self.u[i].to(w), self.v[i].to(w)
                for _ in range(iterations):
                    v = F.normalize(w.t() @ u, dim=0)
                    u = F.normalize(w @ v, dim=0)
                self.u[i], self.v[i] = u, v
            out.append(u @ w @ v)
        return out

    def __call__(self, model: nn.Module) -> torch.Tensor:
        sig = self.sigmas(model)
        weights = torch.stack([(s * s - 1.0) ** 2 for s in sig]).sum()
        biases = [
            b.pow(2).sum().pow(2) for m in model.attention_modules() for b in attention_biases(m)
        ]
        return weights + (torch.stack(biases).sum() if biases else 0.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"u{i}": u for i, u in enumerate(self.u)}
        state.update({f"v{i}": v for i, v in enumerate(self.v)})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        n = len([k for k in state if k.startswith("u")])
        self.u = [state[f"u{i}"] for i in range(n)]
        self.v = [state[f"v{i}"] for i in range(n)]


# ---------------------------------------------------------------------------- energy-based
def e_single_penalty(model: nn.Module) -> torch.Tensor:
    """sum over modules and heads of ||M_h - sym(A_h)||_F^2 (Prop. 4.1 condition)."""
    total = []
    for m in attention_modules(model, "E-single"):
        for q, k, v, o in head_blocks(m):
            a = q.t() @ k  # A_h = W^Q_h W^K_h^T   (D x D)
            vo = v.t() @ o.t()  # M_h = W^V_h W^O_h     (D x D)
            total.append((vo - 0.5 * (a + a.t())).pow(2).sum())
    return torch.stack(total).sum()


def e_multi_penalty(model: nn.Module, form: str = "product") -> torch.Tensor:
    """E-multi: sum_h ||M_h - M_h^T||_F^2 (``product``) or ||W^V - W^O^T||_F^2 (``transpose``)."""
    total = []
    for m in attention_modules(model, "E-multi"):
        if form == "transpose":
            _, _, v, o = qkvo(m)
            total.append((v - o.t()).pow(2).sum())  # W^V = v^T, W^O^T = o: same norm
            continue
        for _, _, v, o in head_blocks(m):
            gram = (v @ v.t()) * (o.t() @ o)  # elementwise product of d x d Grams
            ov = o.t() @ v.t()  # (d x d): tr(M^2) = tr((O_h^T V_h^T)^2)
            total.append(2.0 * gram.sum() - 2.0 * (ov * ov.t()).sum())
    return torch.stack(total).sum()


# ---------------------------------------------------------------------------- Jacobian-based
StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _randn_like(x: torch.Tensor, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    # drawn on the CPU so one CPU generator serves any device
    size = shape or tuple(x.shape)
    return torch.randn(size, generator=generator, dtype=x.dtype).to(x.device)


def jacobian_spectral_norm(
    step: StepFn,
    x: torch.Tensor,
    cond: torch.Tensor,
    *,
    iterations: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-board spectral norm of the Jacobian of ``x -> step(x, cond)`` at ``x``.

    step: the batched step map (boards independent); x, cond: (B, S, D). Power iteration on
    J^T J (JVP then VJP, no grad) for ``iterations`` steps from a random start; then one
    differentiable VJP gives ``sigma_b = u_b^T J_b v_b`` with ``u = Jv / ||Jv||``, which is
    differentiable in the parameters (and ``cond``). Returns sigma: (B,).
    """
    x = x.detach()
    b = x.shape[0]

    def f(z: torch.Tensor) -> torch.Tensor:
        return step(z, cond)

    def f_flat(z: torch.Tensor) -> torch.Tensor:  # (B, n) -> (B, n), for sadyn.dynamics
        return step(z.view_as(x), cond.detach()).reshape(b, -1)

    op = JacobianOperator(f_flat, x.reshape(b, -1), batched=True)
    v = F.normalize(_randn_like(x, generator).reshape(b, -1), dim=1)
    with torch.no_grad():
        for _ in range(iterations):
            v = F.normalize(op.rmatvec(op.matvec(v)), dim=1)
        u = F.normalize(op.matvec(v), dim=1).view_as(x)
    v = v.view_as(x)
    xg = x.clone().requires_grad_(True)
    with math_attention():
        (jtu,) = torch.autograd.grad(f(xg), xg, grad_outputs=u, create_graph=True)
    return (jtu * v).flatten(1).sum(1)


def jacobian_penalty(
    step: StepFn,
    x: torch.Tensor,
    cond: torch.Tensor,
    *,
    target: float = 1.0,
    iterations: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean_b relu(sigma_b - target)^2``; returns (penalty, sigma (B,) detached)."""
    sigma = jacobian_spectral_norm(step, x, cond, iterations=iterations, generator=generator)
    return F.relu(sigma - target).pow(2).mean(), sigma.detach()


def lyapunov_penalty(
    step: StepFn,
    x: torch.Tensor,
    cond: torch.Tensor,
    *,
    k: int = 4,
    steps: int = 4,
    target: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean_b sum_i (lambda_i - target)^2``; returns (penalty, exponents (B, k) detached).

    ``lambda: (B, k)`` are the top-``k`` QR (Benettin) exponents of ``x -> step(x, cond)``
    over ``steps`` steps from ``x: (B, S, D)``, from random orthonormal tangents drawn from
    ``generator``: :func:`sadyn.dynamics.lyapunov_spectrum` with ``differentiable=True`` (the
    trajectory, the tangents and the QR factors stay in the autograd graph: gradient
    flossing), in ``x``'s dtype.
    """
    b, n = x.shape[0], x[0].numel()
    if k > n:
        raise SadynError(f"lyapunov_k={k} exceeds the state dimension {n}")
    shape = x.shape

    def f(z: torch.Tensor) -> torch.Tensor:  # (B, n) -> (B, n), boards independent
        return step(z.reshape(shape), cond).reshape(b, n)

    lam = lyapunov_spectrum(
        f,
        x.detach().reshape(b, n),
        steps,
        k,
        batched=True,
        generator=generator,
        tangent="jvp",
        differentiable=True,
        progress=False,
    ).exponents.to(x.dtype)
    return (lam - target).pow(2).sum(1).mean(), lam.detach()
