"""sadyn.training: train looped models on Sudoku (the AKOrN recipe), with EMA, checkpoints that
resume bit-exactly, regularizers, and data parallelism under torchrun. See docs/training.md.

    from sadyn.training import get_preset, train, load_checkpoint
    summary = train(get_preset("tiny", seed=0), "runs/tiny")
    model, model_config, meta = load_checkpoint("runs/tiny")   # EMA weights, ready to evaluate
"""

from sadyn.training.checkpoint import load_checkpoint, read_checkpoint
from sadyn.training.config import ConfigError, TrainConfig
from sadyn.training.ema import EMA
from sadyn.training.loop import TrainSummary, train
from sadyn.training.presets import PRESETS, get_preset, preset_names

__all__ = [
    "EMA",
    "PRESETS",
    "ConfigError",
    "TrainConfig",
    "TrainSummary",
    "get_preset",
    "load_checkpoint",
    "preset_names",
    "read_checkpoint",
    "train",
]
