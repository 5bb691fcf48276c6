"""Training presets, as data: each is a set of :class:`TrainConfig` field values.

- ``tiny``: CI. A D=32, H=2 model, a few hundred generated puzzles, one epoch; seconds on CPU.
  It exercises every code path (EMA updates, periodic evaluation, checkpoints), not accuracy.
- ``small``: this 2-core CPU, an hour at most (D=64, H=4, CPU-scale choices documented at the
  entry and in ``docs/training.md`` with the curve it gives).
- ``small-akorn``: ``small`` with AKOrN in place of ItrSA (N=4 oscillators with Omega and the
  tangent projection, the same CPU choices) for 20 epochs; the same as
  ``--preset small --model akorn --epochs 20``.
- ``small-vote``: ``small`` with symmetry augmentation of the training puzzles (the test-time
  compute study); vote over restarts drawn with test-time noise (``--restart-noise``).
- ``small-vote-wide``: ``small-vote`` at width D=128 (H=4), a 2-hour cap: about 100 minutes on
  one core of this CPU beside other jobs; the CPU preset that passes the published pre-LN ItrSA
  out of distribution without voting (the test-time compute study).
- ``paper``: Table S.1 of Tomihari & Karakida (D=512, H=8, initial eta 1.0, batch 100,
  100 epochs) with the AKOrN script's recipe (Adam, clip 1.0, EMA 0.995 every 10 steps after
  step 100, evaluation every 10 epochs). The paper picks the learning rate from
  {1e-6, 5e-6, ..., 1e-3} on OOD accuracy at T=16 and does not report the choice; we use 1e-3,
  the AKOrN script's value for AKOrN (its pre-LN ItrSA used 5e-4). For a GPU.
- ``reference-itrsa``, ``reference-akorn``: the reference family, the paper's ItrSA and the
  AKOrN code's AKOrN with every architecture option at its reference value and the ``paper``
  recipe, only narrower (D=64, H=4).
- ``reference-itrsa-cpu``, ``reference-akorn-cpu``: the same models with the recipe's
  departures for a CPU budget (learning-rate warm-up and cosine, rate, epochs, EMA horizon),
  each declared at the entry and measured in docs/training.md, "The reference family".
"""

from __future__ import annotations

from typing import Any

from sadyn.training.config import ConfigError, TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": {"model": "itrsa", "dim": 32, "heads": 2},
        "train_size": 200,
        "eval_size": 40,
        "epochs": 1,
        "batch_size": 20,
        "lr": 1e-3,
        "train_steps": 8,
        "eval_steps": (8, 16),
        "eval_batch_size": 100,
        "eval_every": 5,
        "ckpt_every": 3,
        "log_every": 1,
        "ema_start": 2,
        "ema_every": 2,
    },
    "small": {
        # Tuned on this 2-core CPU (docs/training.md, "The small preset"): the paper's ItrSA
        # (Eq. 9, unit RMSNorm, no MLP in the loop) at D=64, with three CPU-scale choices: C
        # normalized to norm 1 (the state's scale, so eta is not driven to 0), row/column/box
        # embeddings plus a relation bias started on row/column/box (instead of GTA), and
        # deep supervision (cross-entropy at every loop step).
        "model": {
            "model": "itrsa",
            "dim": 64,
            "heads": 4,
            "pos": "rcb",
            "relation_bias": True,
            "relation_bias_init": 4.0,
            "input_scale": 1.0,
            "init": "cond",
            "readout": "mlp",
        },
        "train_size": 9000,
        "eval_size": 500,
        # 30 epochs (2,700 steps): 36 min on one core with another job beside it; 96.4% ID
        # board accuracy at T=16 (20 epochs: 26-49 min, 88.8%)
        "epochs": 30,
        "batch_size": 100,
        "lr": 2e-3,
        "lr_schedule": "cosine",
        "warmup_steps": 100,
        "min_lr_ratio": 0.05,
        "train_steps": 16,
        "loss_steps": 0,
        "eval_steps": (16, 32, 64),
        "eval_every": 300,
        "ckpt_every": 100,
        "max_minutes": 60.0,
    },
    "paper": {
        "model": {"model": "itrsa", "dim": 512, "heads": 8, "eta0": 1.0},
        "train_size": 9000,
        "eval_size": 1000,
        "epochs": 100,
        "batch_size": 100,
        "lr": 1e-3,
        "train_steps": 16,
        "eval_steps": (16, 32, 64, 128),
        "eval_every": 900,
        "ckpt_every": 450,
    },
}


# AKOrN at 20 epochs: 92.7% ID board accuracy at T=16 in 44 min on 2 shared cores
PRESETS["small-akorn"] = {
    **PRESETS["small"],
    "model": {**PRESETS["small"]["model"], "model": "akorn"},
    "epochs": 20,
}


# the test-time compute study: the small recipe with a fresh random Sudoku symmetry per
# training puzzle per epoch (same cost per step: about 36 min on one core). Its restarts are
# drawn at evaluation time (``sadyn eval --votes K --restart-noise 0.3 --vote verifier --halt
# valid``): measured on 1,000 OOD boards, training with restart noise (init_noise 1.0,
# U(0, 1)) cost test-time scaling (13.8% vs 25.0% at T=256) and gave less diverse restarts
# than noise added at test time to this model (results/test-time-compute/, docs/probes.md)
PRESETS["small-vote"] = {**PRESETS["small"], "augment": "full"}

# the test-time compute study: small-vote at D=128. Measured (seed 0, this CPU, 96.9 min of
# training beside two other jobs; results/test-time-compute/wide-d128-aug-cpu/): single run
# from Norm(C), 1,000 boards per set: ID 99.6% at T=16; OOD 11.4 / 24.7 / 34.1 / 37.2 / 39.0%
# at T = 16..256 (small-vote: 3.6 / 10.8 / 18.3 / 22.9 / 25.0%; the published width-512
# pre-LN ItrSA: 34.4% at T=32)
PRESETS["small-vote-wide"] = {
    **PRESETS["small-vote"],
    "model": {**PRESETS["small-vote"]["model"], "dim": 128, "heads": 4},
    "max_minutes": 120.0,
}


# The reference family: the paper's own models (Tomihari & Karakida, Eq. 9; AKOrN Eqs. 7-8 as the
# AKOrN Sudoku code defines them), only narrower. Every architecture field is the model's default,
# which is the reference (sadyn/models/itrsa.py, akorn.py; docs/training.md, "The reference
# family"): GTA positions in the attention (learnable 2x2 blocks, the only positional
# information), blanks started from Gaussian noise (givens at C), raw C (no input rescaling), the
# unit-form RMSNorm (ItrSA) or the sphere per oscillator of N=4 with Omega (0.5, learned, global)
# and the tangent projection (AKOrN), AKOrN's phase-invariant norm readout, learnable eta from
# 1.0, the final-step loss (loss_steps 1) and the reference EMA (0.995 every 10 steps after 100).
# Departures from ``paper`` are the width only: D=64 with H=4 (head width 16) instead of D=512,
# H=8 (tests/training/test_reference_presets.py checks it field by field).
_REFERENCE_WIDTH = {"dim": 64, "heads": 4}

# the paper's ItrSA and recipe (lr 1e-3 constant, 100 epochs) at D=64, H=4. Measured on one core
# of this CPU (1.0-1.1 s/step): EMA cell accuracy 18/28/33/37% at steps 300/600/900/1,200, no
# board solved; too slow for a CPU budget (see ``reference-itrsa-cpu``)
PRESETS["reference-itrsa"] = {
    **PRESETS["paper"],
    "model": {**PRESETS["paper"]["model"], **_REFERENCE_WIDTH},
}

# the AKOrN of the AKOrN Sudoku script (N=4 oscillators, 8 heads at D=512 there) with its recipe
# (lr 1e-3, the script's value for AKOrN) at D=64, H=4
PRESETS["reference-akorn"] = {
    **PRESETS["paper"],
    "model": {"model": "akorn", **_REFERENCE_WIDTH, "eta0": 1.0},
}


# Departures from the recipe for a CPU budget (docs/training.md, "The reference family"), the
# architecture unchanged: the optimizer schedule of ``small`` (lr 2e-3, 100 warm-up steps, cosine
# to 5%), 20 epochs (1,800 steps), an EMA with a 500-step horizon (0.98 every 10 steps) so the
# average does not lag a run this short, and the online weights evaluated beside the EMA
_REFERENCE_CPU = {
    "epochs": 20,
    "lr": 2e-3,
    "lr_schedule": "cosine",
    "warmup_steps": 100,
    "min_lr_ratio": 0.05,
    "ema_beta": 0.98,
    "eval_size": 300,
    "eval_batch_size": 300,
    "eval_steps": (16, 32, 64),
    "eval_every": 300,
    "eval_online": True,
    "ckpt_every": 100,
}
PRESETS["reference-itrsa-cpu"] = {**PRESETS["reference-itrsa"], **_REFERENCE_CPU}
PRESETS["reference-akorn-cpu"] = {**PRESETS["reference-akorn"], **_REFERENCE_CPU}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def get_preset(name: str, **overrides: Any) -> TrainConfig:
    """The preset ``name`` as a :class:`TrainConfig`, with ``overrides`` applied.

    A ``model`` override is merged into the preset's model dict key by key (so
    ``model={"dim": 64}`` keeps the preset's kind and heads).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[name].items()}
    if "model" in overrides:
        values["model"] = {**values.get("model", {}), **overrides.pop("model")}
    values.update(overrides)
    return TrainConfig.from_dict(values)
