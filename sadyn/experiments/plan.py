"""Which models a recipe trains: its training configs, derived from the training presets.

A recipe's models are overrides of one :mod:`sadyn.training.presets` entry (``train_preset``
plus ``train_overrides``): ``{"model": {...}}`` is merged into the preset's model dict key by
key, any other key replaces a TrainConfig field, and bookkeeping keys of the recipe (such as
``family``) are dropped. Listing them without training lets ``sadyn reproduce --dry-run`` show
what a run will cost and what the cache already holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def base_config(train_preset: str, train_overrides: Mapping[str, Any]) -> Any:
    """The preset's TrainConfig with the recipe's overrides (``model`` merged)."""
    from sadyn.training.presets import get_preset

    return get_preset(
        train_preset,
        **{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in train_overrides.items()},
    )


def derive(base: Any, spec: Mapping[str, Any], *, drop: Iterable[str] = ()) -> Any:
    """``base`` with ``spec`` applied: ``spec["model"]`` merged into the model dict, the other
    keys (except ``drop``) replacing TrainConfig fields."""
    spec = {k: v for k, v in spec.items() if k not in set(drop)}
    model = {**base.model, **dict(spec.pop("model", {}))}
    return base.replace(model=model, **spec)


@dataclass(frozen=True)
class Job:
    """One model of a campaign: ``priority`` (lower runs first), the recipe's ``label`` and its
    TrainConfig. ``sadyn reproduce --export-jobs`` writes these, most decisive first."""

    priority: float
    label: str
    config: Any


def seeded(label: str, seed: int) -> str:
    """The label of ``label``'s model at training seed ``seed``: ``"ItrSA | seed 1"``."""
    return f"{label} | seed {seed}"


def split_seeded(label: str) -> tuple[str, int | None]:
    """Inverse of :func:`seeded`: ``("ItrSA", 1)``; ``(label, None)`` for an unseeded label."""
    base, sep, tail = label.rpartition(" | seed ")
    if not sep:
        return label, None
    try:
        return base, int(tail)
    except ValueError:
        return label, None


def at_seed(config: Any, seed: int) -> Any:
    """``config`` trained from seed ``seed`` (initialization, data order, noise; the data set,
    ``data_seed``, stays)."""
    return config if config.seed == seed else config.replace(seed=seed)
