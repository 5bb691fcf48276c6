"""Model configurations: JSON-able dataclasses, validated on construction.

A model is rebuilt from ``{"model": name, **fields}`` alone (see ``registry.build_model``). Bad
values raise :class:`ModelConfigError` naming the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from sadyn.errors import SadynError

C = TypeVar("C")


class ModelConfigError(SadynError, ValueError):
    """A model configuration names an unknown model or field, or has a bad value."""


ANY: Any = object()  # in a config's ``legacy_keys``: the old key is dropped whatever its value


def config_from_mapping(cls: type[C], values: Mapping[str, Any], model: str) -> C:
    """Build the config dataclass ``cls`` from ``values``; unknown keys are an error.

    Keys an older sadyn wrote and ``cls`` no longer has are dropped when ``cls.legacy_keys``
    (``{key: value}``, a ClassVar) lists them with the value they hold (or ``ANY``), so old run
    directories and checkpoints keep loading; another value raises :class:`ModelConfigError`.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = dict(values)
    for key, inert in getattr(cls, "legacy_keys", {}).items():
        if key in values and key not in names:
            value = values.pop(key)
            require(
                inert is ANY or value == inert,
                f"model {model!r} no longer has the option {key!r}; an old config is read "
                f"when it holds {key}={inert!r} (which leaves the model as it is now), got "
                f"{value!r} (see docs/models.md, 'Old configs')",
            )
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ModelConfigError(
            f"model {model!r} has no option(s) {', '.join(map(repr, unknown))}; "
            f"its options are {', '.join(names)}"
        )
    return cls(**values)


def require(cond: bool, message: str) -> None:
    if not cond:
        raise ModelConfigError(message)


def check_int(name: str, value: Any, *, minimum: int = 1, optional: bool = False) -> None:
    if optional and value is None:
        return
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        f"{name} must be an integer >= {minimum}"
        + (" or null" if optional else "")
        + f", got {value!r}",
    )


def check_bool(name: str, value: Any) -> None:
    require(isinstance(value, bool), f"{name} must be true or false, got {value!r}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    require(value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_float(name: str, value: Any, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    require(
        ok and (not positive or value > 0),
        f"{name} must be a {'positive ' if positive else ''}number, got {value!r}",
    )
    return float(value)


def parse_input_scale(value: Any) -> str | float:
    """``"raw"`` or a positive float (numeric strings accepted, e.g. from a command line)."""
    if value == "raw":
        return "raw"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ModelConfigError(
                f"input_scale must be 'raw' or a positive number, got {value!r}"
            ) from None
    return check_float("input_scale", value, positive=True)
