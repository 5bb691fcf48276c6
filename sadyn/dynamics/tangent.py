"""Tangent steps ``(x, Q) -> (F(x), J(x) Q)``: the inner loop of every Lyapunov method.

Three ways to push ``k`` tangent vectors through one step of a batched map ``F: (B, n) ->
(B, n)``:

* ``"jvp"``: forward mode, ``vmap`` over the ``k`` columns of one ``jvp`` (the primal runs
  once);
* ``"vjp2"``: the same product as a vmapped VJP-of-VJP (reverse over reverse): ``u -> J^T u``
  is linear, so the VJP of that map at any ``u`` applied to ``v`` is ``J v``. In eager mode it
  costs about what forward mode costs; under ``torch.compile`` it compiles to fewer kernels
  (see BENCHMARKS.md, "dynamics");
* ``"dense"``: ``J`` materialised by reverse mode, then ``J @ Q`` (O(n^2) memory; the fast
  choice for small ``n``, where a step is framework overhead). :class:`DenseLookahead` takes
  the Jacobians of many coming steps in one call, so that overhead is paid once per chunk.

:func:`compiled_tangent_step` wraps the first two in ``torch.compile(dynamic=False)`` with a
cache keyed by the map object and the shapes, so a long run compiles once per shape.
Compilation costs seconds to a minute per shape, so it is opt-in (``compile=True``) or, with
``compile="auto"``, switched on only when the eager run is projected to last longer than
:data:`COMPILE_AUTO_SECONDS`.
"""

from __future__ import annotations

import time
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor
from torch.func import vjp, vmap

from sadyn.dynamics._common import Map, check_output
from sadyn.dynamics.jacobian import push_forward, value_and_jacobian

TangentStep = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
TangentMode = Literal["auto", "jvp", "vjp2", "dense", "fastest"]
CompileMode = bool | Literal["auto"]

#: "auto" propagates tangents with the dense Jacobian up to this state dimension when
#: ``k >= n / 2`` (measured crossover, BENCHMARKS.md "dynamics": on attention maps dense is
#: faster up to n ~ 96 for the full spectrum and up to n ~ 64 for 4 tangents).
SMALL_DENSE = 96
#: "auto" always takes the dense Jacobian up to this ``n``, whatever ``k``.
TINY_DENSE = 64
#: The product compiled for ``tangent="auto"``/"fastest": measured faster after compilation
#: than forward mode on the ItrSA step at D = 64, 128, 512 (BENCHMARKS.md, "dynamics").
COMPILED_DEFAULT = "vjp2"
#: With ``compile="auto"``, compile when the projected eager time of the run exceeds this.
COMPILE_AUTO_SECONDS = 120.0


def pick_tangent(tangent: str, n: int, k: int) -> str:
    """Resolve ``tangent="auto"``: dense for ``n <= TINY_DENSE``, or for ``n <= SMALL_DENSE``
    when ``k >= n / 2`` (a dense step costs ~n reverse passes batched in one, a JVP step ~k
    forward passes; for small maps both are overhead-bound); otherwise "fastest": JVP or
    VJP-of-VJP, whichever the first steps measure faster (:class:`Fastest`)."""
    if tangent not in ("auto", "jvp", "vjp2", "dense", "fastest"):
        raise ValueError(
            f"tangent must be 'auto', 'jvp', 'vjp2', 'dense' or 'fastest', got {tangent!r}"
        )
    if tangent != "auto":
        return tangent
    if n <= TINY_DENSE or (n <= SMALL_DENSE and 2 * k >= n):
        return "dense"
    return "fastest"


def push_forward_vjp2(F: Map, x: Tensor, V: Tensor) -> tuple[Tensor, Tensor]:
    """``F(x)`` and ``J(x) V`` as a vmapped VJP of the VJP (reverse over reverse).

    ``g(u) = J^T u`` is linear in ``u``; its VJP at ``u = 0`` sends ``v`` to ``J v``. Needs
    every operation of ``F`` to be twice differentiable in reverse mode.
    """
    fx, pull = vjp(F, x)
    check_output(fx, x)

    def jt(u: Tensor) -> Tensor:
        return pull(u)[0]

    _, pull2 = vjp(jt, torch.zeros_like(fx))
    jv = vmap(lambda v: pull2(v)[0], in_dims=-1, out_dims=-1)(V)
    return fx, jv


def jvp_tangent_step(F: Map) -> TangentStep:
    """``(x, Q) -> (F(x), J(x) Q)`` by one vectorised forward-mode pass."""
    return lambda x, Q: push_forward(F, x, Q)


def vjp2_tangent_step(F: Map) -> TangentStep:
    """``(x, Q) -> (F(x), J(x) Q)`` by a vectorised VJP-of-VJP."""
    return lambda x, Q: push_forward_vjp2(F, x, Q)


def dense_tangent_step(F: Map) -> TangentStep:
    """``(x, Q) -> (F(x), J(x) Q)`` with ``J`` materialised by reverse mode (O(n^2) memory).

    The fast choice for tiny maps, where a step is all framework overhead, and an independent
    reference (reverse vs forward mode) for the JVP step.
    """

    def step(x: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        fx, J = value_and_jacobian(F, x, mode="reverse")
        return fx, J @ Q

    return step


#: Most steps whose Jacobians :class:`DenseLookahead` computes in one vectorised call.
LOOKAHEAD_STEPS = 256
#: Memory bound of those Jacobians (``chunk * B * n^2`` entries), in bytes.
LOOKAHEAD_BYTES = 32 * 2**20
#: Bound of the reverse passes one look-ahead call vectorises (``chunk * B * n``): each holds
#: the map's activations for one state, so this bounds the call's working memory.
LOOKAHEAD_ROWS = 16384


class DenseLookahead:
    """The dense tangent step, with the Jacobians of the coming steps taken in one call.

    On a tiny map a step is all framework overhead: one reverse-mode Jacobian costs a ``vjp``
    and a ``vmap`` set-up whatever ``n`` (Hénon ran at ~60 steps/s). The trajectory does not
    depend on the tangents, so on a call at ``x`` this step runs the map ``chunk`` steps
    ahead (plain evaluations: exactly the states the loop will be handed) and takes the
    Jacobians at all of them in one ``vmap`` over time of the batched reverse-mode Jacobian;
    each following call at the state it predicted (the same tensor object) is then a matrix
    product. Any other ``x`` (a row frozen by the NaN guard, a caller that moves the state)
    is recomputed from that ``x`` with half the chunk (down to the per-step dense step), so
    the result never rests on the prediction. A map ``vmap`` cannot batch over time
    (data-dependent control flow, ``.item()``) gets the per-step dense step.

    Args:
        F: the batched map ``(B, n) -> (B, n)``.
        total_steps: calls expected (the look-ahead never runs past them).
    """

    mode = "dense"

    def __init__(self, F: Map, total_steps: int):
        self.F, self.left = F, int(total_steps)
        self.chunk: int | None = None
        self.vectorised = True
        self._states: list[Tensor] = []
        self._J: Tensor | None = None
        self._pos = 0
        self._expect: Tensor | None = None

    def __call__(self, x: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        pending = self._J is not None and self._pos < len(self._states)
        if not (pending and x is self._expect):
            if pending:  # a miss: look half as far ahead as last time
                self.chunk = max(1, len(self._states) // 2)
            self._fill(x)
        assert self._J is not None
        fx, J = self._states[self._pos], self._J[self._pos]
        self._pos += 1
        self.left -= 1
        self._expect = fx
        return fx, J @ Q

    def _fill(self, x: Tensor) -> None:
        """Predict the states after ``x`` and take the Jacobians at ``x`` and the ones before
        the last: ``states[i] = F(x_i)``, ``J[i] = J(x_i)``, ``x_0 = x``."""
        b, n = x.shape
        if self.chunk is None:
            fit = LOOKAHEAD_BYTES // max(1, b * n * n * x.element_size())
            self.chunk = max(1, min(LOOKAHEAD_STEPS, fit, LOOKAHEAD_ROWS // (b * n)))
        c = max(1, min(self.chunk, self.left))
        if c > 1 and self.vectorised:
            xs = [x]
            for _ in range(c):
                xs.append(self.F(xs[-1]))
            try:
                J = vmap(lambda z: value_and_jacobian(self.F, z, mode="reverse")[1])(
                    torch.stack(xs[:-1])
                )
            except Exception:  # a map vmap cannot batch over time: one step at a time
                self.vectorised = False
            else:
                self._states, self._J, self._pos = xs[1:], J, 0
                return
        fx, J = value_and_jacobian(self.F, x, mode="reverse")
        self._states, self._J, self._pos = [fx], J[None], 0


def eager_tangent_step(F: Map, tangent: str) -> TangentStep:
    """The eager step of a resolved ``tangent`` mode ("jvp", "vjp2", "dense", "fastest")."""
    if tangent == "fastest":
        return measured_tangent_step(F)
    return {"jvp": jvp_tangent_step, "vjp2": vjp2_tangent_step, "dense": dense_tangent_step}[
        tangent
    ](F)


class Fastest:
    """Call one of two equivalent implementations, whichever measured faster.

    Calls 1 and 3 run ``first``, call 2 runs ``second`` (call 1 carries one-off set-up costs
    and is not timed); from call 4 on the faster of calls 2 and 3 runs. If ``second`` raises
    (e.g. an operation without a double-backward formula), ``first`` is used from then on.
    ``choice`` names the winner once known.
    """

    def __init__(self, first: Callable, second: Callable, names: tuple[str, str]):
        self.impl = {names[0]: first, names[1]: second}
        self.names = names
        self.choice: str | None = None
        self.calls = 0
        self.times: dict[str, float] = {}

    def __call__(self, *args: Any) -> Any:
        if self.choice is not None:
            return self.impl[self.choice](*args)
        self.calls += 1
        name = self.names[1] if self.calls == 2 else self.names[0]
        t = time.perf_counter()
        try:
            out = self.impl[name](*args)
        except Exception:
            if name == self.names[0]:
                raise
            self.choice = self.names[0]
            return self.impl[self.choice](*args)
        if self.calls >= 2:
            self.times[name] = time.perf_counter() - t
        if self.calls == 3:
            self.choice = min(self.times, key=self.times.__getitem__)
        return out

    @property
    def mode(self) -> str:
        """The implementation in use (the first one until the measurement is done)."""
        return self.choice or self.names[0]


def measured_tangent_step(F: Map) -> Fastest:
    """The JVP step or the VJP-of-VJP step, whichever is faster on this map (measured)."""
    return Fastest(jvp_tangent_step(F), vjp2_tangent_step(F), ("jvp", "vjp2"))


# -- the compiled fast path ----------------------------------------------------------------------
_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple, Callable]] = weakref.WeakKeyDictionary()


def _cache_for(owner: Any) -> dict[tuple, Callable]:
    try:
        return _CACHE.setdefault(owner, {})
    except TypeError:  # not weak-referenceable: a per-call cache
        return {}


def compiled_call(eager: Callable, tag: tuple, owner: Any) -> Callable:
    """``torch.compile(dynamic=False)`` of ``eager``, cached per ``owner``, ``tag`` and the
    shapes/dtypes/devices of its tensor arguments; falls back to eager (with one warning) if
    compilation fails. ``tag`` names the computation (and any constant baked into it)."""
    cache = _cache_for(owner)
    failed: list[bool] = []

    def call(*args: Any) -> Any:
        if failed:
            return eager(*args)
        key = (*tag, *((tuple(a.shape), a.dtype, str(a.device)) for a in args))
        fn = cache.get(key)
        if fn is None:
            fn = torch.compile(eager, dynamic=False, fullgraph=False)
            cache[key] = fn
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(*args)
        except Exception as err:  # a map dynamo cannot trace: eager is always right
            failed.append(True)
            cache.pop(key, None)
            warnings.warn(
                f"torch.compile of the tangent step failed ({type(err).__name__}: "
                f"{str(err)[:200]}); continuing in eager mode",
                RuntimeWarning,
                stacklevel=2,
            )
            return eager(*args)

    return call


def compiled_tangent_step(F: Map, tangent: str, owner: Any = None) -> TangentStep:
    """``torch.compile(dynamic=False)`` of the tangent product alone, cached per map and shape.

    (The QR spectrum compiles its whole step instead, product + QR + logs:
    :func:`~sadyn.dynamics.lyapunov.whole_qr_step`; this one serves ``reortho_every > 1``.)

    Args:
        F: the batched map. tangent: "jvp" or "vjp2".
        owner: the object the cache is keyed by (the user's map, so repeated calls with the
            same map and shapes reuse the compiled code); default ``F``.
    Returns:
        a step that compiles on its first call for each ``(x.shape, Q.shape, dtype, device)``
        and falls back to eager (with one warning) if compilation fails.
    """
    if tangent not in ("jvp", "vjp2"):
        raise ValueError(f"only 'jvp' and 'vjp2' steps compile, got {tangent!r}")
    return compiled_call(eager_tangent_step(F, tangent), (tangent,), F if owner is None else owner)


class AutoSwitch:
    """Run ``eager`` and switch to ``make_fast()`` (its compiled twin) when the run is long.

    After ``probe`` eager calls (the first, which carries one-off set-up costs, not timed) it
    projects the remaining eager time; if that exceeds ``threshold_s`` (default
    :data:`COMPILE_AUTO_SECONDS`, read when the switch is made) it compiles. ``compiled``
    tells which path ran last.
    """

    def __init__(
        self,
        eager: Callable,
        make_fast: Callable[[], Callable],
        total_steps: int,
        threshold_s: float | None = None,
        probe: int = 3,
    ):
        self.eager, self._make = eager, make_fast
        self.fast: Callable | None = None
        threshold = COMPILE_AUTO_SECONDS if threshold_s is None else threshold_s
        self.total, self.threshold, self.probe = int(total_steps), float(threshold), probe
        self.calls, self.elapsed = 0, 0.0
        self.compiled = False

    def __call__(self, *args: Any) -> Any:
        if self.fast is not None:
            return self.fast(*args)
        t = time.perf_counter()
        out = self.eager(*args)
        self.calls += 1
        if self.calls > 1:  # the first call carries one-off set-up costs
            self.elapsed += time.perf_counter() - t
        if self.calls == self.probe + 1:
            per_step = self.elapsed / (self.calls - 1)
            if per_step * (self.total - self.calls) > self.threshold:
                self.fast, self.compiled = self._make(), True
        return out


class AutoCompile(AutoSwitch):
    """The tangent product, eager first, compiled when the run is long (:class:`AutoSwitch`)."""

    def __init__(
        self,
        F: Map,
        tangent: str,
        total_steps: int,
        owner: Any = None,
        threshold_s: float | None = None,
        probe: int = 3,
    ):
        super().__init__(
            eager_tangent_step(F, tangent),
            lambda: compiled_tangent_step(F, tangent, owner),
            total_steps,
            threshold_s,
            probe,
        )


def make_tangent_step(
    F: Map,
    tangent: str,
    compile: CompileMode,
    total_steps: int,
    owner: Any = None,
    lookahead: bool = True,
) -> TangentStep:
    """The tangent step for a resolved ``tangent`` mode and a ``compile`` choice; the dense
    step looks ahead (:class:`DenseLookahead`) unless ``lookahead`` is False (a
    differentiable run, whose graph must follow each step)."""
    if compile not in (True, False, "auto"):
        raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
    if tangent == "dense" and lookahead:
        return DenseLookahead(F, total_steps)
    if tangent == "dense" or compile is False:
        return eager_tangent_step(F, tangent)
    if tangent == "fastest":  # compiled, VJP-of-VJP measured faster (BENCHMARKS.md)
        tangent = COMPILED_DEFAULT
    if compile is True:
        return compiled_tangent_step(F, tangent, owner)
    return AutoCompile(F, tangent, total_steps, owner)
