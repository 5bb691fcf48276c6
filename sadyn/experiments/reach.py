"""The code a recipe's judge reaches, for the criterion hash.

A verdict depends on the judge method and on everything it calls: helpers of the recipe's
module (``_gain_check``, ``_gated``), the statistics (``stats.welch``), the verdict
machinery (``check``, ``Verdict.combine``) and the constants they read. :func:`reached_code`
collects that code by a static walk, so an edit to any of it changes the criterion hash while
an edit elsewhere (the measuring code, a figure) does not.

The rule (hash rule 2):

1. Start from the source of ``cls.judge``.
2. In a piece of source, every name that is read (``foo``) and every attribute chain
   (``stats.welch``, ``Verdict.combine``, ``self._rows``) is resolved: a bare name in the
   globals of the module that defined the code; ``self.x`` / ``cls.x`` on the recipe class
   (its MRO, without running descriptors); ``a.b.c`` by looking ``b`` up on ``a`` while ``a``
   is a module or a class.
3. What it resolves to is kept when it is defined in the ``sadyn`` package: a function or
   method (its source; walked in turn, step 2), a class named directly (its whole source;
   walked), a module named directly without an attribute (its whole source), or a plain data
   constant (str, number, bool, None, or a tuple / list / dict / set of them: its ``repr``).
   Functions held in a dict or tuple constant (a dispatch table) are walked as functions.
4. Attributes of ``self`` that are data (the recipe's ``criterion`` text, ``name``) are kept
   by ``repr``; attributes of local values (``test["p"]``, ``verdict.reason``) cannot be
   resolved statically and are covered through their class when that class is named.
5. Third-party code (numpy, scipy, the standard library) is not included; its versions are
   in every results file's ``environment``.

Each piece is keyed by its qualified name (``module:qualname``), its source whitespace-
normalized; :func:`code_hash` is SHA-256 over the sorted pieces. A local variable that shadows
a module-level name makes the walk include that global too: the rule errs on covering more.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
import textwrap
import types
from collections.abc import Mapping
from typing import Any

PACKAGE = "sadyn"
_DATA = (str, int, float, bool, type(None), bytes, complex)


def _in_package(obj: Any) -> bool:
    mod = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    return isinstance(mod, str) and (mod == PACKAGE or mod.startswith(PACKAGE + "."))


def _is_data(obj: Any, depth: int = 0) -> bool:
    """A plain data constant (possibly nested containers of plain data)."""
    if isinstance(obj, _DATA):
        return True
    if depth > 4:
        return False
    if isinstance(obj, (tuple, list, set, frozenset)):
        return all(_is_data(v, depth + 1) for v in obj)
    if isinstance(obj, Mapping):
        return all(_is_data(k, depth + 1) and _is_data(v, depth + 1) for k, v in obj.items())
    return False


def _normalize(src: str) -> str:
    return " ".join(src.split())


def _source(obj: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None


def _chains(tree: ast.AST) -> set[tuple[str, ...]]:
    """Every name read and every attribute chain on a name, longest form only:
    ``("stats", "welch")``, ``("self", "_rows")``, ``("np",)``."""
    out: set[tuple[str, ...]] = set()
    inner: set[int] = set()  # names and attributes that are the object of an attribute
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            inner.add(id(node.value))
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            out.add((node.id,))
        elif isinstance(node, ast.Attribute):
            parts: list[str] = []
            cur: ast.AST = node
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                out.add((cur.id, *reversed(parts)))
    return out


def _static(owner: type, name: str) -> Any:
    """``name`` on a class without running descriptors (staticmethod/classmethod/property
    unwrapped to their functions); ``_MISSING`` when absent."""
    try:
        value = inspect.getattr_static(owner, name)
    except AttributeError:
        return _MISSING
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if isinstance(value, property):
        return value.fget
    return value


_MISSING = object()


class _Walk:
    """One walk from a judge: ``pieces`` maps ``module:qualname`` -> normalized text."""

    def __init__(self, owner: type) -> None:
        self.owner = owner
        self.pieces: dict[str, str] = {}

    # ------------------------------------------------------------------ entries
    def function(self, fn: Any, owner: type | None) -> None:
        fn = inspect.unwrap(fn)
        if not isinstance(fn, types.FunctionType) or not _in_package(fn):
            return
        key = f"{fn.__module__}:{fn.__qualname__}"
        if key in self.pieces:
            return
        src = _source(fn)
        self.pieces[key] = _normalize(src) if src is not None else repr(fn)
        if src is not None:
            self.names(src, fn.__globals__, owner)

    def klass(self, cls: type) -> None:
        if not _in_package(cls):
            return
        key = f"{cls.__module__}:{cls.__qualname__}"
        if key in self.pieces:
            return
        src = _source(cls)
        self.pieces[key] = _normalize(src) if src is not None else repr(cls)
        module = sys.modules.get(cls.__module__)
        if src is not None and module is not None:
            self.names(src, vars(module), cls)

    def module(self, mod: types.ModuleType) -> None:
        if not _in_package(mod) or f"{mod.__name__}:" in self.pieces:
            return
        src = _source(mod)
        self.pieces[f"{mod.__name__}:"] = _normalize(src) if src is not None else repr(mod)

    def data(self, key: str, value: Any) -> None:
        self.pieces.setdefault(key, repr(value))

    # ------------------------------------------------------------------ resolution
    def names(self, src: str, scope: Mapping[str, Any], owner: type | None) -> None:
        """Resolve every name and attribute chain of ``src`` (step 2 of the rule)."""
        try:
            tree = ast.parse(src)
        except SyntaxError:
            return
        module = str(scope.get("__name__", "?"))
        for chain in sorted(_chains(tree)):
            head, rest = chain[0], list(chain[1:])
            if head in ("self", "cls") and owner is not None:
                if not rest:
                    continue
                name = rest.pop(0)
                value, where = _static(owner, name), f"{owner.__module__}:{owner.__qualname__}"
                where, cls = f"{where}.{name}", owner
            elif head in scope:
                value, where, cls = scope[head], f"{module}:{head}", None
            else:  # a local, an argument or a builtin
                continue
            while rest and isinstance(value, types.ModuleType):
                name = rest.pop(0)
                value, where = getattr(value, name, _MISSING), f"{value.__name__}:{name}"
            if value is not _MISSING:
                self.value(value, where, cls)

    def value(self, value: Any, where: str, owner: type | None) -> None:
        """Keep what a resolved name stands for (step 3 of the rule). ``owner``: the class
        ``value`` was looked up on (for its methods' ``self``)."""
        if isinstance(value, (types.FunctionType, types.MethodType)):
            fn = getattr(value, "__func__", value)
            self.function(fn, owner if owner is not None else _defining_class(fn))
        elif isinstance(value, type):
            self.klass(value)  # a class named in the code: all of it
        elif isinstance(value, types.ModuleType):
            self.module(value)  # a module used as a value: all of it
        elif _is_data(value):
            if where.startswith(PACKAGE):
                self.data(where, value)
        elif isinstance(value, (tuple, list, Mapping)):  # a dispatch table
            items = value.values() if isinstance(value, Mapping) else value
            for item in items:
                if isinstance(item, types.FunctionType):
                    self.function(item, None)


def _defining_class(fn: types.FunctionType) -> type | None:
    """The class a method was defined in (from its qualified name), for ``self.x`` lookups."""
    parts = fn.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    obj: Any = sys.modules.get(fn.__module__)
    for part in parts[:-1]:
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


def reached_code(cls: type, method: str = "judge") -> dict[str, str]:
    """``module:qualname`` -> normalized source (or ``repr`` for data) of everything
    ``cls.<method>`` reaches under the rule of this module's docstring."""
    walk = _Walk(cls)
    fn = _static(cls, method)
    if fn is _MISSING:
        return {}
    walk.function(fn, cls)
    return dict(sorted(walk.pieces.items()))


def code_hash(pieces: Mapping[str, str]) -> str:
    """16 hex digits of SHA-256 over the sorted ``name\\0text`` pieces."""
    h = hashlib.sha256()
    for key in sorted(pieces):
        h.update(key.encode("utf-8") + b"\0" + pieces[key].encode("utf-8") + b"\0")
    return h.hexdigest()[:16]
