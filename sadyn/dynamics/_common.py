"""Shared plumbing of :mod:`sadyn.dynamics`: state validation, batching, randomness, warnings.

Every public function accepts a map on one state, ``f: (n,) -> (n,)``, or with
``batched=True`` a map on a batch of independent states, ``f: (B, n) -> (B, n)``. Internally
everything is written once, for the batched form: an unbatched map is wrapped as a batch of
one (:func:`as_batched`), so the algorithms never branch on ``batched``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from sadyn.errors import ArgumentError, DivergenceError, ShapeError

Map = Callable[[Tensor], Tensor]
OnNonFinite = Literal["warn", "raise"]
T = TypeVar("T")

#: Largest state dimension for which "auto" methods materialise the Jacobian.
DENSE_MAX = 1024


class NonFiniteStateWarning(RuntimeWarning):
    """A trajectory (or its tangent vectors) became NaN/inf; the affected results are NaN.

    Mirrors ChaosTools.jl, which returns NaN with a warning rather than raising. Pass
    ``on_nonfinite="raise"`` to get a :class:`~sadyn.errors.DivergenceError` instead.
    """


def check_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int``, or :class:`ArgumentError` if it is not an integer in range.

    Integers of any kind pass (``int``, NumPy integers, 0-d integer tensors); ``2.5``, ``2.0``,
    ``True`` and strings are refused rather than truncated.
    """
    if isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ArgumentError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite ``float`` > 0 (``>= 0`` with ``allow_zero``), else ArgumentError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        rel = ">=" if allow_zero else ">"
        raise ArgumentError(f"{name} must be finite and {rel} 0, got {value}")
    return value


#: The dtypes a state may have: see "Dtypes" in docs/dynamics.md.
STATE_DTYPES = (torch.float32, torch.float64)


def check_dtype(dtype: torch.dtype, what: str) -> None:
    """Raise :class:`ShapeError` unless ``dtype`` is float32 or float64.

    * Complex: the package analyses real maps ``R^n -> R^n``; its transposes, norms and
      stretches are the real ones (a complex ``J`` would come back conjugated, its spectral
      norm as the real part's), so a complex state would give a wrong number, not an error.
    * float16 / bfloat16 (and narrower): their roundoff (eps ~1e-3 / 8e-3) swamps the
      stretches the methods resolve, and torch has no CPU QR for them. Promoting the state
      would silently analyse a different map (the float64 one, or fail inside a half model),
      so they are refused with a hint to cast the state and the map.
    * Integers and booleans: not a state space.
    """
    if dtype in STATE_DTYPES:
        return
    name = str(dtype).replace("torch.", "")
    if dtype.is_complex:
        raise ShapeError(
            f"{what} has complex dtype {name}: sadyn.dynamics analyses real maps R^n -> R^n; "
            "write the state as real numbers (e.g. torch.view_as_real(x).reshape(-1)) and the "
            "map on them"
        )
    if dtype.is_floating_point:
        raise ShapeError(
            f"{what} has low-precision dtype {name}: sadyn.dynamics computes in float32 or "
            "float64; cast the state and the map (e.g. x.double() and model.double(), or "
            ".float()) before the analysis"
        )
    raise ShapeError(f"{what} must be a floating tensor (float32 or float64), got dtype {name}")


def as_state(x: Any, what: str = "x") -> Tensor:
    """A state as a float32/float64 torch tensor: tensors pass, NumPy arrays are converted.

    Raises:
        ShapeError: anything else (a list, a scalar, ...), or another dtype (complex, half,
            bfloat16, integer: :func:`check_dtype`).
    """
    if isinstance(x, np.ndarray):
        if x.dtype not in (np.float32, np.float64):
            if x.dtype.kind == "c" or x.dtype == np.float16:  # raise, with check_dtype's hint
                check_dtype(torch.complex128 if x.dtype.kind == "c" else torch.float16, what)
            raise ShapeError(
                f"{what} must be a floating array (float32 or float64), got NumPy dtype {x.dtype}"
            )
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ShapeError(
            f"{what} must be a torch.Tensor (or a NumPy float array), got {type(x).__name__}"
        )
    check_dtype(x.dtype, what)
    return x


def as_vectors(v: Any, like: Tensor, what: str) -> Tensor:
    """User vectors (tangents, directions) as a tensor of ``like``'s dtype and device.

    Any real tensor, array or nested list converts; complex values are refused instead of
    losing their imaginary part in the cast.
    """
    complex_ = v.is_complex() if isinstance(v, Tensor) else np.iscomplexobj(v)
    if complex_:
        raise ShapeError(f"{what} is complex; sadyn.dynamics works on real vectors")
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def as_batched(f: Map, x: Tensor, batched: bool, what: str = "x") -> tuple[Map, Tensor]:
    """Validate ``x`` and return the batched form ``(F, X)`` with ``X: (B, n)``.

    ``F`` checks every call: an output of another shape or dtype than its input raises
    :class:`ShapeError` (a map must send a state to a state).

    Args:
        f: the map, on ``(n,)`` or (``batched``) on ``(B, n)``.
        x: ``(n,)`` or (``batched``) ``(B, n)``, a float32/float64 tensor (or NumPy array).
    Raises:
        ShapeError: wrong rank, another dtype (:func:`check_dtype`), or a map that changes
            the shape or the dtype.
    """
    if not callable(f):
        raise ArgumentError(f"the map must be callable, got {type(f).__name__}")
    x = as_state(x, what)
    want = 2 if batched else 1
    if x.ndim != want:
        shape = "(B, n)" if batched else "(n,)"
        hint = "" if batched else " (pass batched=True for a batch of states)"
        raise ShapeError(f"{what} must have shape {shape}, got {tuple(x.shape)}{hint}")
    if x.shape[-1] == 0 or x.shape[0] == 0:
        raise ShapeError(f"{what} is empty: shape {tuple(x.shape)}")
    if batched:

        def many(z: Tensor) -> Tensor:
            fz = f(z)
            check_output(fz, z)
            return fz

        return many, x

    def one(z: Tensor) -> Tensor:
        fz = f(z[0])
        check_output(fz, z[0])
        return fz[None]

    return one, x[None]


def unbatch(t: Tensor | None, batched: bool) -> Tensor | None:
    """Drop the leading batch axis added by :func:`as_batched` (identity when ``batched``)."""
    return t if (batched or t is None) else t[0]


def check_output(fx: Tensor, x: Tensor) -> None:
    """Raise :class:`ShapeError` unless the map sent ``x`` to a tensor of the same shape and
    dtype (a float32 output of a float64 state would silently drop the trajectory to float32:
    a two-trajectory separation of 1e-9 rounds to 0 and the exponent to -inf)."""
    if not isinstance(fx, Tensor) or fx.shape != x.shape:
        got = tuple(fx.shape) if isinstance(fx, Tensor) else type(fx).__name__
        raise ShapeError(
            f"the map must send a state to a state of the same shape: "
            f"input {tuple(x.shape)}, output {got} (flatten the state to (n,) or (B, n))"
        )
    if fx.dtype != x.dtype:
        name_in, name_out = (str(d).replace("torch.", "") for d in (x.dtype, fx.dtype))
        raise ShapeError(
            f"the map must return its input's dtype: input {name_in}, output {name_out} "
            f"(pass a {name_out} state, or cast inside the map: return y.to(x.dtype))"
        )


def default_generator(generator: torch.Generator | None) -> torch.Generator:
    """The generator to draw from: ``generator``, else a fresh one seeded 0 (reproducible)."""
    if generator is not None:
        return generator
    return torch.Generator().manual_seed(0)


def randn_like_on(shape: tuple[int, ...], like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard normal draws with ``like``'s dtype and device, from ``generator``.

    Drawn on the generator's device (CPU generators work for CUDA states) in float64, then
    cast, so a seed gives the same directions whatever the working precision. For a shape of
    two or more axes the leading one is the batch: its rows are drawn one after another, so
    row 0 of a batch gets the draws the same state alone gets, whatever the batch size (one
    draw of the whole block would not: torch's normal sampler fills blocks of 16 and treats the
    tail apart, so a row's numbers would depend on how many rows follow it).
    """
    kw = {"generator": generator, "dtype": torch.float64, "device": generator.device}
    if len(shape) < 2:
        z = torch.randn(shape, **kw)
    else:
        z = torch.stack([torch.randn(shape[1:], **kw) for _ in range(shape[0])])
    return z.to(device=like.device, dtype=like.dtype)


def random_orthonormal(b: int, n: int, k: int, like: Tensor, generator: torch.Generator) -> Tensor:
    """``(b, n, k)`` matrices with orthonormal columns (QR of Gaussian draws, row by row)."""
    q, _ = torch.linalg.qr(randn_like_on((b, n, k), like, generator))
    return q


def eps(dtype: torch.dtype) -> float:
    """Machine epsilon of ``dtype``."""
    return float(torch.finfo(dtype).eps)


def check_on_nonfinite(on_nonfinite: str) -> None:
    if on_nonfinite not in ("warn", "raise"):
        raise ArgumentError(f"on_nonfinite must be 'warn' or 'raise', got {on_nonfinite!r}")


def report_nonfinite(
    what: str, rows: list[int], step: int, batched: bool, on_nonfinite: OnNonFinite
) -> None:
    """Warn (:class:`NonFiniteStateWarning`) or raise (:class:`DivergenceError`)."""
    where = f"rows {rows}" if batched else "the trajectory"
    msg = (
        f"{what}: {where} became non-finite (NaN/inf) at step {step}; "
        "the affected exponents are NaN"
    )
    if on_nonfinite == "raise":
        raise DivergenceError(msg)
    warnings.warn(msg, NonFiniteStateWarning, stacklevel=3)


def progress_bar(it: Iterable[T], total: int, enable: bool, desc: str) -> Iterator[T]:
    """Progress over ``it`` when ``enable`` (:func:`sadyn.progress.progress`: a bar on a
    terminal, periodic lines with rate and ETA in a log); else ``it`` itself."""
    if not enable or total < 2:
        yield from it
        return
    from sadyn.progress import progress

    yield from progress(it, total=total, desc=desc)


# -- appended for the finite-time exponents and spectra: warnings and the rounding threshold ----
class ConvergenceWarning(UserWarning):
    """An iterative method stopped before its error estimate met the tolerance (or an
    automatic method choice fell back to another method); the result says how far it got."""


class ExactZeroWarning(UserWarning):
    """Some directions were declared exact zeros (``-inf`` exponents) because a one-step
    stretch lay at the rounding level of that step; ``zero_tol=0`` keeps every stretch."""


def rounding_zero_tol(dtype: torch.dtype, n: int) -> float:
    """``n * eps``: the relative rounding level of one step's product ``J q``.

    A computed ``J q`` carries an error up to ``gamma_n |J| |q| ~ n eps ||J||`` (the
    worst-case bound of an ``n``-term dot product, Higham, Accuracy and Stability, Sec. 3.1),
    so a stretch at or below ``n eps`` times the step's largest one cannot be told from an
    exact zero without knowing how the map computes (measured null directions of a
    normalisation sit at 0.2-3 ``sqrt(n) eps``, below it from n = 12 up). Anything above is
    kept: ``1e-15`` relative in float64 at ``n = 2`` (``4.4e-16``) is a stretch; ``1e-5``
    in float32 at ``n = 100`` (``1.2e-5``) is not resolvable and is declared zero.
    """
    return n * eps(dtype)
