"""``check_step_map``: is a map fit for the analyses of :mod:`sadyn.dynamics`?

Every analysis assumes the map is a pure, differentiable function of the state whose forward
and reverse derivatives are right. A model in train mode (dropout), with hidden state, with a
fused attention kernel outside :func:`math_attention`, or with a hand-written backward that
is wrong breaks that silently. This check makes it loud.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.func import jvp, vjp

from sadyn.dynamics._common import DENSE_MAX, Map, as_batched, default_generator, eps, randn_like_on
from sadyn.dynamics.attention import attention_safe
from sadyn.dynamics.jacobian import jacobian
from sadyn.errors import SadynError


class StepMapError(SadynError):
    """A step map failed :func:`check_step_map` (raised with ``strict=True``)."""


@dataclass
class CheckResult:
    """One check: ``passed`` is None when it was skipped (``detail`` says why)."""

    name: str
    passed: bool | None
    error: float | None = None
    tolerance: float | None = None
    detail: str = ""

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.passed]
        num = ""
        if self.error is not None:
            num = f"error {self.error:.2e}"
            if self.tolerance is not None:
                num += f" (tol {self.tolerance:.1e})"
        return f"[{mark}] {self.name:<20} {num:<32} {self.detail}".rstrip()


@dataclass
class StepMapReport:
    """The outcome of :func:`check_step_map`.

    Attributes:
        checks: every check, in order: shape, dtype, finite, purity, no-mutation, jvp, vjp,
            jvp-vjp (dot-product test), dense-jacobian, finite-differences, and (batched)
            row-independence.
        n: state dimension; dtype: the state's dtype; batched: whether rows were checked.
    """

    checks: list[CheckResult] = field(default_factory=list)
    n: int = 0
    dtype: str = ""
    batched: bool = False

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks do not fail)."""
        return all(c.passed is not False for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.passed is False]

    def __getitem__(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __str__(self) -> str:
        batch = ", batched" if self.batched else ""
        head = f"step map check: n={self.n}, dtype={self.dtype}{batch}"
        return "\n".join([head, *(c.line() for c in self.checks)])

    def raise_if_failed(self) -> None:
        """Raise :class:`StepMapError` naming every failed check and by how much."""
        if self.passed:
            return
        parts = [c.line().replace("[FAIL] ", "").strip() for c in self.failed]
        raise StepMapError("step map check failed: " + "; ".join(parts))


def _rel(a: Tensor, b: Tensor) -> float:
    """``max|a - b| / max(max|b|, tiny)`` in float64."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    scale = float(b.abs().max()) if b.numel() else 0.0
    return float((a - b).abs().max()) / max(scale, 1e-300)


@attention_safe
@torch.no_grad()
def check_step_map(
    f: Map,
    x: Tensor,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    fd_rtol: float | None = None,
    strict: bool = False,
    batched: bool = False,
    directions: int = 2,
    generator: torch.Generator | None = None,
    dense_max: int = DENSE_MAX,
) -> StepMapReport:
    """Check that ``f`` is pure and differentiable and that its derivatives agree.

    Checks: the output has the state's shape and dtype and is finite; two calls on the same
    input give bit-identical outputs and leave the input untouched; JVP and VJP run; the
    dot-product test ``<u, J v> = <J^T u, v>``; for ``n <= dense_max`` the dense Jacobian
    (forward and reverse mode) reproduces the JVP and VJP; central finite differences in
    float64 match the JVP (in the state's dtype with a loose tolerance when the map does not
    accept float64 input); and, batched, a tangent in row 0 leaves the other rows' outputs
    unchanged. A map that fails the shape or dtype check is not differentiated.

    Args:
        f, x: the map and a state ``(n,)`` (batched ``(B, n)``), float32 or float64 (another
            dtype raises :class:`~sadyn.errors.ShapeError`: it is the input that is wrong).
        atol, rtol: tolerances of the autodiff-vs-autodiff checks, relative to the largest
            entry (defaults ``1e2 eps`` and ``1e4 eps`` of the dtype).
        fd_rtol: tolerance of finite differences vs JVP (default 1e-6 in float64, 1e-2 when
            the differences are taken in float32).
        strict: raise :class:`StepMapError` (a :class:`~sadyn.errors.SadynError`) on failure.
        directions: random directions ``v``/``u`` per derivative check.
        generator: draws the directions.
    """
    F, X = as_batched(f, x, batched)
    X = X.detach()
    e = eps(X.dtype)
    atol = 1e2 * e if atol is None else atol
    rtol = 1e4 * e if rtol is None else rtol
    rep = StepMapReport(n=X.shape[-1], dtype=_name(X.dtype), batched=batched)
    if _forward_checks(f, X, batched, rep.checks):
        gen = default_generator(generator)
        V = _derivative_checks(F, X, atol + rtol, directions, gen, dense_max, rep.checks)
        rep.checks.append(_finite_differences(F, X, V, fd_rtol))
        if batched:
            rep.checks.append(_row_independence(F, X, gen, atol))
    return _finish(rep, strict)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _forward_checks(f: Map, X: Tensor, batched: bool, checks: list[CheckResult]) -> bool:
    """Shape, dtype, finiteness, purity and no-mutation of the map as the user wrote it (no
    validation wrapper, so each defect is reported as a check, not raised). Returns whether
    the map sends a state to a state, the condition for differentiating it."""
    add = checks.append
    x_in = X if batched else X[0]
    x_copy = X.clone()
    try:
        y1 = f(x_in)
    except Exception as err:
        add(CheckResult("shape", False, detail=f"the map raised {type(err).__name__}: {err}"))
        return False
    shape = tuple(x_in.shape)
    if not isinstance(y1, Tensor) or y1.shape != x_in.shape:
        got = tuple(y1.shape) if isinstance(y1, Tensor) else type(y1).__name__
        add(CheckResult("shape", False, detail=f"input {shape} -> output {got}"))
        return False
    add(CheckResult("shape", True, detail=f"{shape} -> {shape}"))
    kinds = f"{_name(x_in.dtype)} -> {_name(y1.dtype)}"
    if y1.dtype != x_in.dtype:
        add(CheckResult("dtype", False, detail=f"{kinds}: the map must return its input's dtype"))
        return False
    add(CheckResult("dtype", True, detail=kinds))
    finite = bool(torch.isfinite(y1).all())
    add(CheckResult("finite", finite, detail="" if finite else "f(x) has NaN/inf entries"))
    diff = float((y1.detach() - f(x_in).detach()).abs().max())
    impure = "two calls on the same input differ (dropout? train mode? hidden state? randomness?)"
    add(CheckResult("purity", diff == 0.0, diff, 0.0, "" if diff == 0.0 else impure))
    mutated = float((X - x_copy).abs().max())
    moved = "" if mutated == 0.0 else "the map modified its input in place"
    add(CheckResult("no-mutation", mutated == 0.0, mutated, 0.0, moved))
    return True


def _directions(X: Tensor, gen: torch.Generator, directions: int) -> list[Tensor]:
    return [randn_like_on(tuple(X.shape), X, gen) for _ in range(directions)]


def _derivative_checks(
    F: Map,
    X: Tensor,
    tol: float,
    directions: int,
    gen: torch.Generator,
    dense_max: int,
    checks: list[CheckResult],
) -> list[Tensor]:
    """JVP and VJP run, the dot-product test, and the dense Jacobian against both. Returns
    the directions ``v`` (the finite-difference check reuses them)."""
    add = checks.append
    V, U = _directions(X, gen, directions), _directions(X, gen, directions)
    try:
        JV = [jvp(F, (X,), (v,))[1] for v in V]
        add(CheckResult("jvp", True))
    except Exception as err:
        add(CheckResult("jvp", False, detail=f"forward mode failed: {type(err).__name__}: {err}"))
        JV = None
    try:
        _, pull = vjp(F, X)
        JTU = [pull(u)[0] for u in U]
        add(CheckResult("vjp", True))
    except Exception as err:
        add(CheckResult("vjp", False, detail=f"reverse mode failed: {type(err).__name__}: {err}"))
        JTU = None
    if JV is None or JTU is None:
        add(CheckResult("jvp-vjp", None, detail="needs both JVP and VJP"))
        add(CheckResult("dense-jacobian", None, detail="needs both JVP and VJP"))
        return V
    worst = _dot_product_error(V, JV, U, JTU)
    add(CheckResult("jvp-vjp", worst <= tol, worst, tol, "dot-product test"))
    n = X.shape[-1]
    if n > dense_max:
        add(CheckResult("dense-jacobian", None, detail=f"n = {n} > dense_max = {dense_max}"))
    else:
        add(_dense(F, X, V, JV, U, JTU, tol))
    return V


def _dot_product_error(
    V: list[Tensor], JV: list[Tensor], U: list[Tensor], JTU: list[Tensor]
) -> float:
    """Worst ``|<u, J v> - <J^T u, v>|`` per row, relative to ``|u||Jv| + |J^T u||v|``."""
    worst = 0.0
    for v, jv in zip(V, JV, strict=True):
        for u, jtu in zip(U, JTU, strict=True):
            lhs = (u * jv).to(torch.float64).sum(-1)
            rhs = (jtu * v).to(torch.float64).sum(-1)
            scale = u.norm(dim=-1) * jv.norm(dim=-1) + jtu.norm(dim=-1) * v.norm(dim=-1)
            err = (lhs - rhs).abs() / scale.to(torch.float64).clamp_min(1e-300)
            worst = max(worst, float(err.max()))
    return worst


def _dense(
    F: Map,
    X: Tensor,
    V: list[Tensor],
    JV: list[Tensor],
    U: list[Tensor],
    JTU: list[Tensor],
    tol: float,
) -> CheckResult:
    """jacfwd vs jacrev, and the dense ``J`` against the JVPs and VJPs."""
    try:
        Jf = jacobian(F, X, mode="forward", batched=True)
        Jr = jacobian(F, X, mode="reverse", batched=True)
    except Exception as err:
        return CheckResult("dense-jacobian", False, detail=f"failed: {type(err).__name__}: {err}")
    errs = [_rel(Jf, Jr)]
    errs += [_rel((Jf @ v[..., None])[..., 0], jv) for v, jv in zip(V, JV, strict=True)]
    errs += [_rel((Jr.mT @ u[..., None])[..., 0], t) for u, t in zip(U, JTU, strict=True)]
    worst = max(errs)
    return CheckResult(
        "dense-jacobian", worst <= tol, worst, tol, "jacfwd vs jacrev, J v vs JVP, J^T u vs VJP"
    )


def _finite_differences(F: Map, X: Tensor, V: list[Tensor], fd_rtol: float | None) -> CheckResult:
    """Central differences ``(f(x + h v) - f(x - h v)) / 2h`` against the JVP."""
    X64 = X.to(torch.float64)
    try:
        ok64 = F(X64).dtype == torch.float64
    except (RuntimeError, TypeError, ValueError):  # ValueError: ShapeError of a dtype change
        ok64 = False
    Z = X64 if ok64 else X
    dtype_name = "float64" if ok64 else str(X.dtype).replace("torch.", "")
    tol = (1e-6 if ok64 else 1e-2) if fd_rtol is None else fd_rtol
    worst = 0.0
    try:
        for v in V:
            v = v.to(Z.dtype) / v.norm(dim=-1, keepdim=True).to(Z.dtype)
            # h ~ eps^(1/3) balances truncation (h^2) against rounding (eps / h).
            h = eps(Z.dtype) ** (1.0 / 3.0) * max(1.0, float(Z.abs().max()))
            fd = (F(Z + h * v) - F(Z - h * v)) / (2.0 * h)
            jv = jvp(F, (Z,), (v,))[1]
            scale = max(float(jv.abs().max()), 1.0)
            worst = max(worst, float((fd - jv).abs().max()) / scale)
    except Exception as err:
        return CheckResult(
            "finite-differences", False, detail=f"failed: {type(err).__name__}: {err}"
        )
    note = f"central differences in {dtype_name}"
    if not ok64:
        note += " (the map rejects float64 input; e.g. model.double() enables the float64 check)"
    return CheckResult("finite-differences", worst <= tol, worst, tol, note)


def _row_independence(F: Map, X: Tensor, gen: torch.Generator, atol: float) -> CheckResult:
    """A tangent confined to row 0 must not move the other rows (rows are separate systems)."""
    b, n = X.shape
    if b < 2:
        return CheckResult("row-independence", None, detail="batch of one")
    v = torch.zeros_like(X)
    v[0] = randn_like_on((n,), X, gen)
    try:
        jv = jvp(F, (X,), (v,))[1]
    except Exception as err:
        return CheckResult("row-independence", None, detail=f"no JVP: {type(err).__name__}")
    leak = float(jv[1:].abs().max()) / max(float(jv[0].abs().max()), 1e-300)
    return CheckResult(
        "row-independence",
        leak <= atol,
        leak,
        atol,
        "" if leak <= atol else "rows interact (batch statistics? shared state?)",
    )


def _finish(rep: StepMapReport, strict: bool) -> StepMapReport:
    if strict:
        rep.raise_if_failed()
    return rep
