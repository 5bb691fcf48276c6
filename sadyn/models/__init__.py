"""sadyn.models: the looped self-attention models behind one protocol (``LoopedModel``).

``build_model(config)`` with ``config["model"]`` in ``itrsa``, ``symsa``, ``gensym-single``,
``gensym-multi``, ``akorn``, ``preln-itrsa``; ``model.config`` rebuilds it. See docs/models.md.
"""

from sadyn.models.akorn import AKOrN, AKOrNConfig
from sadyn.models.base import LoopedModel, LoopOutput, check_puzzles
from sadyn.models.config import ModelConfigError
from sadyn.models.itrsa import ItrSA, ItrSAConfig
from sadyn.models.preln import PreLNConfig, PreLNItrSA
from sadyn.models.registry import MODELS, build_model, default_config, model_names
from sadyn.models.symmetric import (
    GenSymMultiConfig,
    GenSymMultiSA,
    GenSymSingleSA,
    SymmetricSA,
    SymSAConfig,
)
from sadyn.nn.attention import fused_attention

__all__ = [
    "MODELS",
    "AKOrN",
    "AKOrNConfig",
    "GenSymMultiConfig",
    "GenSymMultiSA",
    "GenSymSingleSA",
    "ItrSA",
    "ItrSAConfig",
    "LoopOutput",
    "LoopedModel",
    "ModelConfigError",
    "PreLNConfig",
    "PreLNItrSA",
    "SymSAConfig",
    "SymmetricSA",
    "build_model",
    "check_puzzles",
    "default_config",
    "fused_attention",
    "model_names",
]
