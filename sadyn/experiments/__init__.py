"""sadyn.experiments: one recipe per claim of the paper, each judged by a pre-declared criterion.

``reproduce("all", "small", "out/small")`` runs every recipe (``recipe_names()``) and writes
``out/small/<name>/results.json``; trained models are shared through a
:class:`CheckpointCache` keyed by a hash of their training config. A :class:`Recipe` states the
paper's claim, measures (``measure``), and judges the saved numbers (``judge``) into a
:class:`Verdict` of :class:`Check` s. See docs/experiments.md.
"""

from sadyn.experiments.base import (
    Check,
    ExperimentError,
    Recipe,
    RunContext,
    Verdict,
    apply_overrides,
    check,
)
from sadyn.experiments.cache import CacheEntry, CheckpointCache, config_hash, default_cache_dir
from sadyn.experiments.registry import get_recipe, recipe_names, reproduce, resolve_names

__all__ = [
    "CacheEntry",
    "Check",
    "CheckpointCache",
    "ExperimentError",
    "Recipe",
    "RunContext",
    "Verdict",
    "apply_overrides",
    "check",
    "config_hash",
    "default_cache_dir",
    "get_recipe",
    "recipe_names",
    "reproduce",
    "resolve_names",
]
