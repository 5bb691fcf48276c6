"""Reference maps with known Lyapunov exponents (dynamics.md §2), for tests and demos.

Every constructor returns a :class:`ReferenceSystem`. Its ``f`` acts on the last axis, so the
same function serves one state ``(n,)`` and a batch ``(B, n)`` (``batched=True``). States and
parameters are float64: reference values are quoted to 1e-6 and float32 cannot reach that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sadyn.errors import ShapeError

F64 = torch.float64


@dataclass(frozen=True)
class ReferenceSystem:
    """A map with reference values.

    Attributes:
        name: short name.
        f: the map, ``(..., n) -> (..., n)``.
        x0: a default initial state ``(n,)`` (float64).
        exponents: reference Lyapunov exponents ``(n,)``, natural log per step, largest first
            (``-inf`` for exact zero directions), or None where no closed form is known.
        exponent_sum: an exact identity for the sum of all exponents (``<log|det J|>``), or None.
        jacobian: the hand-written Jacobian ``J(x): (n,) -> (n, n)``, to test autodiff against.
        eigenvalues: eigenvalues of the (constant) Jacobian, where they are known, else None.
        transient: steps to discard before averaging (to reach the attractor).
        params: the parameters.
        notes: caveats.
    """

    name: str
    f: Callable[[Tensor], Tensor]
    x0: Tensor
    exponents: np.ndarray | None
    exponent_sum: float | None = None
    jacobian: Callable[[Tensor], Tensor] | None = None
    eigenvalues: np.ndarray | None = None
    transient: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def dim(self) -> int:
        """The state dimension ``n``."""
        return int(self.x0.shape[-1])


def _sorted_desc(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=np.float64))[::-1].copy()


def _matrix(a: Tensor | np.ndarray | Sequence[Sequence[float]], what: str) -> Tensor:
    m = torch.as_tensor(np.asarray(a, dtype=np.float64) if not isinstance(a, Tensor) else a)
    m = m.to(F64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ShapeError(f"{what} must be a square (n, n) matrix, got {tuple(m.shape)}")
    return m


def henon(a: float = 1.4, b: float = 0.3) -> ReferenceSystem:
    """Hénon map ``(x, y) -> (1 - a x^2 + y, b x)``.

    Reference (a=1.4, b=0.3; Sprott): ``0.419217, -1.623190``; ``det J = -b`` so the exponents
    sum to ``ln|b|`` exactly, at every step.
    """

    def f(x: Tensor) -> Tensor:
        return torch.stack((1.0 - a * x[..., 0] ** 2 + x[..., 1], b * x[..., 0]), dim=-1)

    def jac(x: Tensor) -> Tensor:
        return torch.tensor([[-2.0 * a * float(x[0]), 1.0], [b, 0.0]], dtype=F64)

    known = (a, b) == (1.4, 0.3)
    return ReferenceSystem(
        name="henon",
        f=f,
        x0=torch.tensor([0.1, 0.1], dtype=F64),
        exponents=np.array([0.419217, -1.623190]) if known else None,
        exponent_sum=math.log(abs(b)),
        jacobian=jac,
        transient=100,
        params={"a": a, "b": b},
        notes="exponents known for a=1.4, b=0.3 only (4-5 digits); the sum is exact",
    )


def _logistic_reference(r: float) -> float | None:
    """Exact exponent where known: ln 2 at r=4, ln|2-r| for the fixed point (1<r<3), and the
    mean of ln|r(1-2x)| over the attracting period-4 orbit at r=3.5."""
    if r == 4.0:
        return math.log(2.0)
    if 1.0 < r < 3.0:
        return math.log(abs(2.0 - r))
    if r == 3.5:
        x = 0.4
        for _ in range(2000):  # the 4-cycle attracts with multiplier ~0.03 per period
            x = r * x * (1.0 - x)
        orbit = []
        for _ in range(4):
            orbit.append(x)
            x = r * x * (1.0 - x)
        return float(np.mean([math.log(abs(r * (1.0 - 2.0 * v))) for v in orbit]))
    return None


def logistic(r: float = 4.0) -> ReferenceSystem:
    """Logistic map ``x -> r x (1 - x)`` on ``(1,)`` states.

    Reference: ``ln 2`` at r=4 (conjugate to the tent map), ``-0.8725`` at r=3.5 (the
    attracting period-4 orbit), ``ln|2 - r|`` for 1 < r < 3 (the fixed point ``1 - 1/r``).
    """

    def f(x: Tensor) -> Tensor:
        return r * x * (1.0 - x)

    def jac(x: Tensor) -> Tensor:
        return torch.tensor([[r * (1.0 - 2.0 * float(x[0]))]], dtype=F64)

    ref = _logistic_reference(r)
    return ReferenceSystem(
        name="logistic",
        f=f,
        x0=torch.tensor([0.4], dtype=F64),
        exponents=None if ref is None else np.array([ref]),
        jacobian=jac,
        transient=100,
        params={"r": r},
    )


def linear(A: Tensor | np.ndarray | Sequence[Sequence[float]]) -> ReferenceSystem:
    """Linear map ``x -> A x``: exponents ``ln|mu_i(A)|`` (eigenvalue moduli), sum ``ln|det A|``.

    ``x0`` is the fixed point 0: the tangent dynamics are the same everywhere and the state
    cannot overflow however long the run. Complex pairs converge as O(1/steps) with
    oscillation; a real-diagonalisable ``A`` gives tight tolerances.
    """
    M = _matrix(A, "A")
    mu = np.linalg.eigvals(M.numpy())
    with np.errstate(divide="ignore"):  # a zero eigenvalue is an exact zero direction: -inf
        logs = np.log(np.abs(mu))
        logdet = float(np.log(abs(np.linalg.det(M.numpy()))))

    def f(x: Tensor) -> Tensor:
        return x @ M.to(x.dtype).T

    return ReferenceSystem(
        name="linear",
        f=f,
        x0=torch.zeros(M.shape[0], dtype=F64),
        exponents=_sorted_desc(logs),
        exponent_sum=logdet,
        jacobian=lambda x: M.clone(),
        eigenvalues=mu[np.argsort(-np.abs(mu), kind="stable")],
        params={"A": M.numpy().tolist()},
    )


def diagonal(d: Sequence[float] | Tensor | np.ndarray) -> ReferenceSystem:
    """Diagonal linear map ``x -> diag(d) x``: exponents ``ln|d_i|`` (ChaosTools' test)."""
    d = torch.as_tensor(np.asarray(d, dtype=np.float64)).flatten()
    return replace(linear(torch.diag(d)), name="diagonal", params={"d": d.tolist()})


def cat_map() -> ReferenceSystem:
    """Arnold's cat map ``x -> [[2, 1], [1, 1]] x mod 1`` on the torus.

    Exponents ``+-ln((3 + sqrt 5) / 2) = +-0.962424`` (sum 0, area preserving). The ``mod 1``
    keeps the state bounded; its derivative is 1 almost everywhere, so ``J`` is the constant
    matrix and the tangent dynamics never see the wrap.
    """
    M = torch.tensor([[2.0, 1.0], [1.0, 1.0]], dtype=F64)
    lam = math.log((3.0 + math.sqrt(5.0)) / 2.0)
    mu = np.linalg.eigvals(M.numpy())

    def f(x: Tensor) -> Tensor:
        return torch.remainder(x @ M.to(x.dtype).T, 1.0)

    return ReferenceSystem(
        name="cat_map",
        f=f,
        x0=torch.tensor([0.1234, 0.5678], dtype=F64),
        exponents=np.array([lam, -lam]),
        exponent_sum=0.0,
        jacobian=lambda x: M.clone(),
        eigenvalues=mu[np.argsort(-np.abs(mu))],
        notes="PredefinedDynamicalSystems quotes the eigenvalues 2.618, 0.382, not exponents",
    )


def tanh_rnn(
    W: Tensor | np.ndarray, b: Tensor | np.ndarray | None = None, x0: Tensor | None = None
) -> ReferenceSystem:
    """Discrete tanh RNN ``x -> W tanh(x) + b``.

    With ``b = 0`` and ``||W||_2 < 1`` every orbit converges to the fixed point 0, where
    ``J = W``: the exponents are ``ln|mu_i(W)|`` (the best NN-shaped analytic test). Otherwise
    (chaotic for large gain) there is no closed form: ``exponents`` is None and the methods are
    checked against each other.
    """
    M = _matrix(W, "W")
    n = M.shape[0]
    bias = torch.zeros(n, dtype=F64) if b is None else torch.as_tensor(b).to(F64).flatten()
    if bias.shape != (n,):
        raise ShapeError(f"b must have shape ({n},), got {tuple(bias.shape)}")

    def f(x: Tensor) -> Tensor:
        return torch.tanh(x) @ M.to(x.dtype).T + bias.to(x.dtype)

    def jac(x: Tensor) -> Tensor:
        return M * (1.0 - torch.tanh(x.to(F64)) ** 2)[None, :]

    contracting = bool(torch.linalg.matrix_norm(M, ord=2) < 1.0) and not bool(bias.any())
    mu = np.linalg.eigvals(M.numpy())
    start = torch.linspace(-1.0, 1.0, n, dtype=F64) if x0 is None else x0.to(F64)
    return ReferenceSystem(
        name="tanh_rnn",
        f=f,
        x0=start,
        exponents=_sorted_desc(np.log(np.abs(mu))) if contracting else None,
        jacobian=jac,
        transient=200 if contracting else 500,
        params={"W": M.numpy().tolist(), "b": bias.tolist()},
        notes="exponents known only when b = 0 and ||W||_2 < 1 (orbits converge to 0)",
    )


def random_tanh_rnn(n: int, gain: float, seed: int = 0) -> ReferenceSystem:
    """:func:`tanh_rnn` with ``W ~ N(0, gain^2 / n)`` (chaotic for ``gain`` well above 1)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n, n, generator=g, dtype=F64) * (gain / math.sqrt(n))
    x0 = torch.randn(n, generator=g, dtype=F64)
    return tanh_rnn(W, x0=x0)


def toy_oscillator(
    omegas: Sequence[float] | Tensor | np.ndarray, eta: float = 0.1, normalize: bool = False
) -> ReferenceSystem:
    """The paper's toy oscillator (Sec. 5.2): ``x -> (I + eta Omega) x``, optionally normalised.

    ``Omega`` is block-diagonal with 2x2 blocks ``[[0, w], [-w, 0]]`` (eigenvalues ``+-i w``),
    so the state has ``n = 2 len(omegas)`` entries.

    * Without normalisation ``J = I + eta Omega`` is constant and normal: eigenvalues
      ``1 +- i eta w_j`` lie *outside* the unit circle (``|.| = s_j = sqrt(1 + eta^2 w_j^2)``)
      and the exponents are ``ln s_j`` (twice each).
    * With ``x -> y / ||y||`` the map is a projective power iteration on ``I + eta Omega``:
      the exponents are ``ln s_j - ln s_max`` (twice each), with one of the top plane's pair
      replaced by ``-inf`` (the radial direction, mapped to 0). At a unit state with all
      ``|w_j|`` equal, ``||J||_2 <= 1``, so the eigenvalues lie inside or on the unit circle.
    """
    w = torch.as_tensor(np.asarray(omegas, dtype=np.float64)).flatten()
    m = w.shape[0]
    if m == 0:
        raise ShapeError("omegas must not be empty")
    n = 2 * m
    omega = torch.zeros(n, n, dtype=F64)
    idx = torch.arange(m)
    omega[2 * idx, 2 * idx + 1] = w
    omega[2 * idx + 1, 2 * idx] = -w
    A = torch.eye(n, dtype=F64) + eta * omega
    s = np.sqrt(1.0 + (eta * w.numpy()) ** 2)
    log_s = np.repeat(np.log(s), 2)

    def f(x: Tensor) -> Tensor:
        y = x @ A.to(x.dtype).T
        return y / torch.linalg.vector_norm(y, dim=-1, keepdim=True) if normalize else y

    def jac(x: Tensor) -> Tensor:
        if not normalize:
            return A.clone()
        y = A @ x.to(F64)
        r = torch.linalg.vector_norm(y)
        yh = y / r
        return (torch.eye(n, dtype=F64) - torch.outer(yh, yh)) @ A / r

    if normalize:
        exps = log_s - log_s.max()
        exps[int(np.argmax(exps))] = -np.inf
        eig = None
    else:
        exps = log_s
        mu = np.linalg.eigvals(A.numpy())
        eig = mu[np.argsort(-np.abs(mu), kind="stable")]
    return ReferenceSystem(
        name="toy_oscillator" + ("_normalized" if normalize else ""),
        f=f,
        x0=torch.full((n,), 1.0 / math.sqrt(n), dtype=F64),
        exponents=_sorted_desc(exps),
        jacobian=jac,
        eigenvalues=eig,
        transient=0,
        params={"omegas": w.tolist(), "eta": eta, "normalize": normalize},
        notes="normalised: exponents are asymptotic (the state settles in the fastest plane)",
    )
