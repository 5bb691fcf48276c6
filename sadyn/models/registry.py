"""Build a model from its JSON config: ``build_model({"model": "itrsa", "dim": 128, ...})``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sadyn.models.akorn import AKOrN
from sadyn.models.base import LoopedModel
from sadyn.models.config import ModelConfigError, config_from_mapping
from sadyn.models.itrsa import ItrSA
from sadyn.models.preln import PreLNItrSA
from sadyn.models.symmetric import GenSymMultiSA, GenSymSingleSA, SymmetricSA

MODELS: dict[str, type[LoopedModel]] = {
    cls.name: cls for cls in (ItrSA, SymmetricSA, GenSymSingleSA, GenSymMultiSA, AKOrN, PreLNItrSA)
}


def model_names() -> tuple[str, ...]:
    """The registered model names."""
    return tuple(MODELS)


def _model_class(name: Any) -> type[LoopedModel]:
    if name not in MODELS:
        raise ModelConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def default_config(name: str) -> dict[str, Any]:
    """The full default config of model ``name`` (with its ``"model"`` key)."""
    cls = _model_class(name)
    return {"model": name, **dataclasses.asdict(cls.Config())}


def build_model(config: Mapping[str, Any]) -> LoopedModel:
    """Build the model ``config["model"]`` with the other keys as options (missing ones take
    the model's defaults). ``model.config`` gives back the full dict, which rebuilds it."""
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"a model config must be a mapping, got {type(config).__name__}")
    values = dict(config)
    if "model" not in values:
        raise ModelConfigError(f"a model config needs a 'model' key (one of {', '.join(MODELS)})")
    name = values.pop("model")
    cls = _model_class(name)
    return cls(config_from_mapping(cls.Config, values, name))
