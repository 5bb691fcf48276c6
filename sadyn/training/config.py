"""The training configuration: one flat dataclass of plain values plus the model's config dict
(flat on purpose: see the comment at the top of :class:`TrainConfig`).

Every field is JSON-able (the config is saved beside each checkpoint and compared on
``--resume``) and settable from the command line (``sadyn train --FIELD VALUE``; model keys as
``--model.KEY VALUE``, see :mod:`sadyn.cli.train`).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from sadyn.errors import SadynError
from sadyn.sudoku.augment import AUGMENT_KINDS

LR_SCHEDULES = ("constant", "cosine")
E_MULTI_FORMS = ("product", "transpose")

# Fields that may differ between a run and its resumption without changing its weights.
RESUMABLE_FIELDS = frozenset(
    {
        "max_minutes",
        "threads",
        "device",
        "tensorboard",
        "progress_every",
        "compile",
        "eval_online",
    }
)
PRECISIONS = ("fp32", "bf16")
# Fields added after trained models were cached under a hash of ``to_dict()``
# (sadyn.experiments.cache): written only when they differ from their default, so every
# earlier config serializes, and hashes, exactly as before.
OMITTED_AT_DEFAULT = frozenset({"eval_online"})


class ConfigError(SadynError, ValueError):
    """A training configuration is invalid (unknown field, wrong type, bad value)."""


def _default_model() -> dict[str, Any]:
    return {"model": "itrsa", "dim": 128, "heads": 4}


@dataclass
class TrainConfig:
    """Everything that determines a training run. Defaults are the reference recipe of the
    AKOrN Sudoku script (Adam, batch 100, T=16, clip 1.0, EMA 0.995 every 10 steps after 100).

    Model
        model: config dict handed to :func:`sadyn.models.build_model` (``model["model"]`` is the
            kind: itrsa, symsa, gensym-single, gensym-multi, akorn, preln-itrsa).
    Data
        train_data: ``"satnet"`` / ``"rrn"`` (generated train split of ``train_size`` puzzles,
            via ``get_dataset``) or a puzzle file path (its first ``train_size`` rows).
        eval_data: specs for periodic evaluation (``"id"``, ``"ood"`` or a file), each cut to
            ``eval_size`` puzzles; ``select_on`` names the one that picks the best checkpoint.
    Optimization
        Adam(lr, betas, weight_decay); ``lr_schedule`` constant or cosine (to ``min_lr_ratio *
        lr``), both after ``warmup_steps`` of linear warm-up; global grad-norm clip.
    Loop
        train_steps: T. ``train_steps_random = (lo, hi)`` draws T uniformly in [lo, hi] per batch.
        loss_steps: cross-entropy averaged over the readouts of the last m loop steps (1 = the
            final step only, the reference; 0 = every step, i.e. deep supervision).
        fixed_noise: the model's ``deterministic`` initial state (one fixed noise draw, AKOrN's
            ``fixed_noise``) instead of fresh noise per board (the reference).
    EMA
        beta, every, start as in ``ema_pytorch`` with its decay warm-up
        ``1 - (1 + n - ema_start)^-ema_power`` at the n-th update call (capped at beta;
        ``ema_power = 0`` turns warm-up off); see :mod:`sadyn.training.ema`.
    Regularizers (weights; 0 = off): see :mod:`sadyn.training.regularizers`.
    Speed (``docs/training.md``, "On a GPU")
        precision: ``fp32``, or ``bf16`` (autocast: matmuls and attention in bfloat16; the
            weights, optimizer, state residual and loss stay float32).
        compile: ``torch.compile`` the loop step (fixed shapes); does not change the math.
    """

    # Flat on purpose, grouped by the banners below only. ``sadyn train`` makes one
    # ``--FIELD VALUE`` flag per field (cli/train.py iterates ``dataclasses.fields``); a run's
    # config.json is this flat dict, read back by ``from_dict`` and compared field by field on
    # --resume (``RESUMABLE_FIELDS``); presets, recipes and tests set fields by name
    # (``replace(lr=...)``, ``config.ema_beta``). Nested groups would rename every flag, key and
    # attribute (``--optim.lr``) or need a translation layer for each, and old run directories
    # would need one more; docs/training.md lists the same groups.

    # ---- model and seed
    model: dict[str, Any] = field(default_factory=_default_model)
    seed: int = 0
    # ---- data
    train_data: str = "satnet"
    train_size: int = 9000
    data_seed: int = 0
    eval_data: tuple[str, ...] = ("id", "ood")
    eval_size: int = 1000
    select_on: str = "ood"
    # ---- optimization
    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # ---- the loop
    train_steps: int = 16
    train_steps_random: tuple[int, int] | None = None
    loss_steps: int = 1
    fixed_noise: bool = False
    # ---- data augmentation and restarts: a fresh random Sudoku symmetry per training
    # puzzle per step (none, digits, geometry, full; sadyn.sudoku.augment), drawn from a
    # generator seeded by (seed, step), so a resumed run draws the same symmetries. The restart
    # noise of the initial state is a model key (ItrSA ``init_noise``, ``init_noise_dist``).
    augment: str = "none"
    # ---- EMA of the weights (used for evaluation)
    ema_beta: float = 0.995
    ema_every: int = 10
    ema_start: int = 100
    ema_power: float = 2 / 3
    # ---- regularizers (weights; 0 = off) and their settings
    reg_spec: float = 0.0
    reg_e_single: float = 0.0
    reg_e_multi: float = 0.0
    e_multi_form: str = "product"
    reg_jacobian: float = 0.0
    jacobian_target: float = 1.0
    jacobian_iters: int = 2
    reg_lyapunov: float = 0.0
    lyapunov_target: float = 0.0
    lyapunov_k: int = 4
    lyapunov_steps: int = 4
    reg_boards: int = 8
    # ---- bookkeeping: evaluation, checkpoints, logging, budget, device
    eval_every: int = 900
    eval_steps: tuple[int, ...] = (16, 32)
    eval_batch_size: int = 500
    # also evaluate the online (raw) weights at each evaluation, logged under ``online/``: the
    # reference EMA (about a 2,000-step horizon) lags a short run far behind its weights
    eval_online: bool = False
    ckpt_every: int = 100
    log_every: int = 10
    progress_every: int = 1
    max_minutes: float | None = None
    threads: int | None = None
    device: str = "auto"
    tensorboard: bool = True
    # ---- speed (docs/training.md, "On a GPU")
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` on a value that cannot work."""

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(
            isinstance(self.model, dict) and "model" in self.model,
            "model must be a dict with a 'model' key (the model kind)",
        )
        need(self.train_size > 0, "train_size must be positive")
        need(self.eval_size > 0, "eval_size must be positive")
        need(self.epochs > 0, "epochs must be positive")
        need(self.batch_size > 0, "batch_size must be positive")
        need(self.lr > 0, "lr must be positive")
        need(self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}")
        need(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        need(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio must be in [0, 1]")
        need(self.grad_clip > 0, "grad_clip must be positive (use a large value to disable)")
        need(self.train_steps >= 1, "train_steps must be >= 1")
        if self.train_steps_random is not None:
            lo, hi = self.train_steps_random
            need(1 <= lo <= hi, "train_steps_random must be (lo, hi) with 1 <= lo <= hi")
        need(self.loss_steps >= 0, "loss_steps must be >= 0 (0 = every step)")
        need(self.augment in AUGMENT_KINDS, f"augment must be one of {AUGMENT_KINDS}")
        need(0.0 <= self.ema_beta < 1.0, "ema_beta must be in [0, 1)")
        need(self.ema_every >= 1, "ema_every must be >= 1")
        need(self.e_multi_form in E_MULTI_FORMS, f"e_multi_form must be one of {E_MULTI_FORMS}")
        for name in ("reg_spec", "reg_e_single", "reg_e_multi", "reg_jacobian", "reg_lyapunov"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0")
        need(self.jacobian_iters >= 1, "jacobian_iters must be >= 1")
        need(
            self.lyapunov_k >= 1 and self.lyapunov_steps >= 1,
            "lyapunov_k and lyapunov_steps must be >= 1",
        )
        need(self.reg_boards >= 1, "reg_boards must be >= 1")
        need(len(self.eval_data) >= 1, "eval_data needs at least one dataset")
        need(self.select_on in self.eval_data, "select_on must be one of eval_data")
        need(
            len(self.eval_steps) >= 1 and min(self.eval_steps) >= 1,
            "eval_steps must be positive loop counts",
        )
        need(self.eval_every >= 0 and self.ckpt_every >= 0, "eval_every/ckpt_every must be >= 0")
        need(self.log_every >= 1 and self.progress_every >= 1, "log_every must be >= 1")
        need(self.max_minutes is None or self.max_minutes > 0, "max_minutes must be positive")
        need(self.threads is None or self.threads >= 1, "threads must be >= 1")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        need(
            self.device in ("auto", "cpu") or self.device.startswith("cuda"),
            "device must be auto, cpu or cuda[:i]",
        )

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists), without the fields of
        :data:`OMITTED_AT_DEFAULT` that hold their default."""
        data = self._all_fields()
        defaults = TrainConfig.__dataclass_fields__
        for name in OMITTED_AT_DEFAULT:
            if data[name] == defaults[name].default:
                del data[name]
        return data

    def _all_fields(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s): {', '.join(sorted(unknown))}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: coerce(hints[k], v, k) for k, v in data.items()})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (type-coerced and validated)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def differences(self, other: TrainConfig) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: ``{name: (self value, other value)}``."""
        a, b = self._all_fields(), other._all_fields()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def field_types() -> dict[str, Any]:
    """``{field name: resolved type hint}`` of :class:`TrainConfig`."""
    return typing.get_type_hints(TrainConfig)


def coerce(hint: Any, value: Any, name: str) -> Any:
    """Convert a JSON value (or a CLI string) to the field's declared type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return coerce(inner[0], value, name)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        item = args[0]
        if len(args) == 2 and args[1] is not Ellipsis and len(value) != 2:
            raise ConfigError(f"{name}: expected 2 values, got {len(value)}")
        return tuple(coerce(item, v, name) for v in value)
    if origin is dict or hint is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name}: not a JSON object: {value!r}") from exc
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a dict, got {value!r}")
        return dict(value)
    try:
        if hint is bool:
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return low in ("true", "1", "yes")
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read {value!r} as {hint.__name__}") from exc
    return value
