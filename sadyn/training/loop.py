"""The training loop: ``train(config, out_dir)``.

Reproducibility contract. Every random choice comes from state that checkpoints carry:
model initialization (``torch.manual_seed(seed)`` before ``build_model``), the data order
(a permutation per epoch, a pure function of ``(seed, epoch)``), the initial-state noise
(``noise`` generator, on the model's device), random loop counts and regularizer vectors
(``cpu`` generator), plus torch's global RNG. With the optimizer moments, the EMA and the step
also saved, ``resume=True`` continues a killed run to the same weights, bit for bit on CPU
(same thread count), as a run that was never interrupted.

On a GPU (``docs/training.md``, "On a GPU") the training puzzles live on the device, the loss
unroll goes through the fused attention kernel, ``precision="bf16"`` autocasts it, ``compile``
compiles the loop step, Adam is the fused kernel, and the host waits for the device only at
log, evaluation and checkpoint steps: the loss and gradient norm of the updates in between are
checked for finiteness there (on CPU every update is checked before it is applied).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sadyn.errors import DivergenceError, SadynError
from sadyn.io import atomic_write_json
from sadyn.models import build_model, fused_attention
from sadyn.progress import progress as progress_bar
from sadyn.sudoku import PuzzleSet, get_dataset, read_puzzles, resolve_dataset
from sadyn.sudoku.augment import augment
from sadyn.training import checkpoint as ck
from sadyn.training import distributed
from sadyn.training.config import RESUMABLE_FIELDS, TrainConfig
from sadyn.training.ema import EMA
from sadyn.training.evaluation import accuracy_at_steps
from sadyn.training.logging import CURVE_NAME, LOG_NAME, RunLogger, plot_curves
from sadyn.training.objective import Objective

CONFIG_NAME = "config.json"
# device types trained the GPU way: data resident on the device, fused attention and Adam, host
# syncs only at log, evaluation and checkpoint steps (tests add "cpu" to run that path here)
ASYNC_DEVICES: tuple[str, ...] = ("cuda",)
SUMMARY_NAME = "summary.json"


@dataclass
class TrainSummary:
    """How a run ended. ``status``: ``completed`` or ``time_budget`` (``max_minutes`` hit)."""

    out_dir: str
    status: str
    step: int
    total_steps: int
    final_loss: float | None
    metrics: dict[str, Any] = field(default_factory=dict)  # final eval of the EMA weights
    best: dict[str, Any] | None = None  # {"step", "metric", "value"}
    wall_time_s: float = 0.0
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- helpers
def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (independent streams for independent purposes)."""
    return int(
        np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The data order of an epoch: a permutation of range(n), a pure function of its inputs."""
    gen = torch.Generator().manual_seed(derive_seed(seed, 0xDA7A, epoch))
    return torch.randperm(n, generator=gen)


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """lr of update ``step`` (0-based): linear warm-up, then constant or cosine decay to
    ``min_lr_ratio * lr`` at the last update."""
    base, warm = config.lr, config.warmup_steps
    if step < warm:
        return base * (step + 1) / warm
    if config.lr_schedule == "constant":
        return base
    span = max(total - warm - 1, 1)
    frac = min((step - warm) / span, 1.0)
    floor = config.min_lr_ratio * base
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * frac))


def load_train_set(config: TrainConfig, progress: bool = True) -> PuzzleSet:
    """The training puzzles: a generated split (``satnet``/``rrn``) or a file's first rows."""
    if config.train_data in ("satnet", "rrn"):
        return get_dataset(
            config.train_data,
            "train",
            n=config.train_size,
            seed=config.data_seed,
            progress=progress,
        )
    puzzles = read_puzzles(config.train_data)
    return puzzles.subset(np.arange(min(config.train_size, len(puzzles))))


def load_eval_sets(config: TrainConfig) -> dict[str, PuzzleSet]:
    """``{name: puzzles}`` for ``eval_data``, each cut to ``eval_size`` (generated sets are made
    at that size; a file is read whole and a random subset of ``eval_size`` kept)."""
    sets = {}
    for spec in config.eval_data:
        n = None if Path(spec).exists() else config.eval_size
        puzzles = resolve_dataset(spec, n=n, seed=config.data_seed)
        if len(puzzles) > config.eval_size:
            gen = np.random.default_rng(derive_seed(config.data_seed, 0xE7A1))
            puzzles = puzzles.subset(np.sort(gen.permutation(len(puzzles))[: config.eval_size]))
        sets[dataset_name(spec)] = puzzles
    return sets


def dataset_name(spec: str) -> str:
    return spec if spec in ("id", "ood") else Path(spec).stem


# ---------------------------------------------------------------------------- trainer
class _Trainer:
    def __init__(
        self,
        config: TrainConfig,
        out_dir: Path,
        info: distributed.DistInfo,
        resume: bool,
        progress: bool,
    ) -> None:
        self.cfg, self.out, self.info, self.progress = config, out_dir, info, progress
        self.device = info.device
        if config.threads:
            torch.set_num_threads(config.threads)
        self.resume = self._prepare_run_dir(resume)

        # data (rank 0 first: it may generate and cache the set)
        if info.is_main:
            self.train_set = load_train_set(config, progress and info.is_main)
        distributed.barrier(info)
        if not info.is_main:
            self.train_set = load_train_set(config, False)
        self.eval_sets = load_eval_sets(config) if info.is_main else {}
        self.quizzes, self.solutions = self.train_set.to_torch()
        # on a GPU: the puzzles resident on the device, and no host sync per update
        self.on_gpu = self.device.type in ASYNC_DEVICES
        if self.on_gpu:
            self.quizzes_dev = self.quizzes.to(self.device)
            self.solutions_dev = self.solutions.to(self.device)
        self.unchecked: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.steps_per_epoch = len(self.train_set) // config.batch_size
        if self.steps_per_epoch < 1:
            raise SadynError(
                f"train set of {len(self.train_set)} puzzles is smaller than one "
                f"batch of {config.batch_size}"
            )
        self.total_steps = self.steps_per_epoch * config.epochs
        self.shard = info.shard(config.batch_size)

        # model, optimizer, EMA, generators
        torch.manual_seed(config.seed)
        self.model = build_model(dict(config.model)).to(self.device)
        model_config = getattr(self.model, "config", config.model)
        self.model_config = dict(model_config() if callable(model_config) else model_config)
        self.param_names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            params,
            lr=config.lr,
            betas=config.adam_betas,
            weight_decay=config.weight_decay,
            fused=self.on_gpu or None,
        )
        self.ema = EMA(
            self.model,
            beta=config.ema_beta,
            every=config.ema_every,
            start=config.ema_start,
            power=config.ema_power,
        )
        self.gen_noise = torch.Generator(self.device).manual_seed(derive_seed(config.seed, 1))
        self.gen_cpu = torch.Generator().manual_seed(derive_seed(config.seed, 2))
        self.objective = Objective(
            self.model, config, reg_generator=self.gen_cpu, fused=self.on_gpu
        )
        self.runner: nn.Module = self.objective
        if info.enabled:
            self.runner = DistributedDataParallel(
                self.objective,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,
                find_unused_parameters=True,
            )

        self.step = 0
        # training seconds of earlier processes of this run (resumed runs): max_minutes and the
        # summary's wall time count the whole run, not only the last process
        self.elapsed_before = 0.0
        self.started = time.monotonic()
        self.best: dict[str, Any] | None = None
        self.last_ckpt: Path | None = None
        self.reseeded_noise = False
        if self.resume:
            self._restore()

    # -------------------------------------------------------------- run directory
    def _prepare_run_dir(self, resume: bool) -> bool:
        """Check or write ``config.json`` (rank 0, the others wait); return whether there is a
        checkpoint to resume."""
        if self.info.is_main:
            self._check_or_write_config(resume)
        distributed.barrier(self.info)
        return resume and (self.out / ck.POINTERS["latest"]).exists()

    def _check_or_write_config(self, resume: bool) -> None:
        cfg_path = self.out / CONFIG_NAME
        if cfg_path.exists():
            if not resume:
                raise SadynError(
                    f"{self.out} already holds a run; pass --resume to continue it "
                    "or choose another --out"
                )
            try:
                saved = TrainConfig.from_dict(json.loads(cfg_path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise ck.CheckpointError(f"{cfg_path}: unreadable run config ({exc})") from exc
            diff = {
                k: v for k, v in saved.differences(self.cfg).items() if k not in RESUMABLE_FIELDS
            }
            if diff:
                listed = "; ".join(f"{k}: run has {a!r}, given {b!r}" for k, (a, b) in diff.items())
                raise SadynError(f"cannot resume {self.out} with a different config ({listed})")
            return
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cfg_path, self.cfg.to_dict())

    # -------------------------------------------------------------- checkpoints
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        tensors, _ = ck.optimizer_tensors(self.optimizer, self.param_names)
        tensors["rng/torch"] = ck.rng_tensor(torch.get_rng_state())
        tensors["rng/noise"] = ck.rng_tensor(self.gen_noise.get_state())
        tensors["rng/cpu"] = ck.rng_tensor(self.gen_cpu.get_state())
        if torch.cuda.is_available() and self.device.type == "cuda":
            tensors["rng/cuda"] = ck.rng_tensor(torch.cuda.get_rng_state(self.device))
        tensors.update(self.objective.regularizer_state())
        return tensors

    def _save(self, pointers: tuple[str, ...]) -> None:
        self._check_finite()  # never checkpoint weights a non-finite update reached
        if not self.info.is_main:
            return
        _, optim_info = ck.optimizer_tensors(self.optimizer, self.param_names)
        meta = {
            "epoch": self.step / self.steps_per_epoch,
            "model_config": self.model_config,
            "train_config": self.cfg.to_dict(),
            "optimizer": optim_info,
            "ema_updates": self.ema.num_updates,
            "best": self.best,
            "world_size": self.info.world_size,
            "torch": torch.__version__,
            "elapsed_s": self._elapsed(),
        }
        self.last_ckpt = ck.save_checkpoint(
            self.out,
            step=self.step,
            model=self.model.state_dict(),
            ema=self.ema.state_dict(),
            state=self._state_tensors(),
            meta=meta,
            pointers=pointers,
        )

    def _restore(self) -> None:
        c = ck.read_checkpoint(self.out, "latest")
        ck.load_state_strict(self.model, c.model, c.path / "model.safetensors")
        ck.load_state_strict(self.ema.module, c.ema, c.path / "ema.safetensors")
        self.ema.num_updates = int(c.meta["ema_updates"])
        ck.restore_optimizer(
            self.optimizer,
            c.state,
            c.meta["optimizer"],
            self.param_names,
            c.path / "state.safetensors",
        )
        torch.set_rng_state(c.state["rng/torch"])
        noise_state = c.state["rng/noise"]
        if noise_state.numel() == self.gen_noise.get_state().numel():
            self.gen_noise.set_state(noise_state)
        else:
            # saved on another device type (CUDA's Philox state vs the CPU's Mersenne twister):
            # that stream cannot continue here; a fresh one, a function of (seed, step), keeps
            # the resumed run deterministic (and says so in the log)
            self.gen_noise.manual_seed(derive_seed(self.cfg.seed, 1, int(c.meta["step"])))
            self.reseeded_noise = True
        self.gen_cpu.set_state(c.state["rng/cpu"])
        if "rng/cuda" in c.state and self.device.type == "cuda":
            torch.cuda.set_rng_state(c.state["rng/cuda"], self.device)
        self.objective.load_regularizer_state(c.state)
        self.step = int(c.meta["step"])
        self.best = c.meta.get("best")
        self.elapsed_before = float(c.meta.get("elapsed_s", 0.0))
        self.last_ckpt = c.path

    def _elapsed(self) -> float:
        """Seconds of this run so far, over every process that trained it."""
        return self.elapsed_before + time.monotonic() - self.started

    # -------------------------------------------------------------- evaluation
    def _evaluate(self) -> dict[str, Any]:
        """EMA weights on every eval set at ``eval_steps``; logged; updates the best."""
        cfg = self.cfg
        self._check_finite()
        metrics, scalars = {}, {}
        for name, puzzles in self.eval_sets.items():
            with fused_attention(self.on_gpu):
                res = accuracy_at_steps(
                    self.ema.module,
                    puzzles,
                    cfg.eval_steps,
                    batch_size=cfg.eval_batch_size,
                    seed=derive_seed(cfg.seed, 3),
                    deterministic=cfg.fixed_noise,
                    device=self.device,
                )
            metrics[name] = res
            for t in res["board_accuracy"]:
                scalars[f"{name}/board_acc@{t}"] = res["board_accuracy"][t]
                scalars[f"{name}/cell_acc@{t}"] = res["cell_accuracy"][t]
        self.logger.log("eval", self.step, scalars)
        # best: board accuracy on select_on at the smallest eval loop count, ties broken by
        # cell accuracy (board accuracy sits at 0 for a long time early in training)
        t0 = min(cfg.eval_steps)
        sel = metrics[dataset_name(cfg.select_on)]
        value, tiebreak = sel["board_accuracy"][t0], sel["cell_accuracy"][t0]
        improved = self.best is None or (value, tiebreak) > (
            self.best["value"],
            self.best["cell_accuracy"],
        )
        if improved:
            self.best = {
                "step": self.step,
                "metric": f"{cfg.select_on}/board_acc@{t0}",
                "value": value,
                "cell_accuracy": tiebreak,
            }
        metrics["_improved"] = improved
        return metrics

    # -------------------------------------------------------------- one update
    def _update(self, epoch_perm: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        i = self.step % self.steps_per_epoch
        idx = epoch_perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        if self.on_gpu and cfg.augment == "none":
            idx = idx.to(self.device, non_blocking=True)
            q, s = self.quizzes_dev[idx], self.solutions_dev[idx]
        else:
            q, s = self.quizzes[idx], self.solutions[idx]
            if cfg.augment != "none":  # issue 11: a fresh symmetry per puzzle, a fn of the step
                gen = torch.Generator().manual_seed(derive_seed(cfg.seed, 0xA06, self.step))
                q, s = augment(q, s, kind=cfg.augment, generator=gen)
            q, s = q.to(self.device), s.to(self.device)
        steps = cfg.train_steps
        if cfg.train_steps_random is not None:
            lo, hi = cfg.train_steps_random
            steps = int(torch.randint(lo, hi + 1, (1,), generator=self.gen_cpu))
        lr = learning_rate(cfg, self.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        self.model.train()
        with self._precision():
            loss, parts = self.runner(q, s, self.shard, steps, self.gen_noise)
        mean_loss = distributed.mean_scalar(self.info, loss)
        if not self.on_gpu and not math.isfinite(float(mean_loss)):
            self._diverged(self.step, f"the loss is {float(mean_loss)}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], cfg.grad_clip
        )
        self.unchecked.append((self.step, mean_loss, grad_norm))
        if not self.on_gpu:
            self._check_finite()
        self.optimizer.step()
        self.ema.update(self.model)
        self.step += 1
        record: dict[str, Any] = dict(parts)
        record.update(
            loss=mean_loss,
            lr=lr,
            grad_norm=grad_norm,
            loop_steps=steps,
            epoch=self.step / self.steps_per_epoch,
        )
        eta = getattr(self.model, "eta", None)
        if torch.is_tensor(eta) and eta.numel() == 1:
            record["eta"] = eta.detach()
        return record

    def _precision(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _check_finite(self) -> None:
        """Raise :class:`DivergenceError` at the first update since the last check whose loss or
        gradient norm was not finite (on a GPU, the one host sync of a log interval)."""
        if not self.unchecked:
            return
        values = torch.stack([torch.stack((lo.float(), g.float())) for _, lo, g in self.unchecked])
        checked, self.unchecked = self.unchecked, []
        for (step, _, _), (loss, grad_norm) in zip(checked, values.tolist(), strict=True):
            if not math.isfinite(loss):
                self._diverged(step, f"the loss is {loss}")
            if not math.isfinite(grad_norm):
                self._diverged(step, f"the gradient norm is {grad_norm} (loss {loss:.4g})")

    def _diverged(self, at: int, what: str) -> None:
        """``at``: the 0-based index of the update that went wrong."""
        step, epoch = at + 1, at // self.steps_per_epoch + 1
        kept = (
            f"the last good checkpoint is {self.last_ckpt}"
            if self.last_ckpt is not None
            else "no checkpoint had been written yet"
        )
        applied = (
            f"the updates from it to step {self.step} reached only the weights in memory"
            if self.step > at
            else "the update was not applied"
        )
        msg = f"training diverged at step {step} (epoch {epoch}): {what}; {applied} and {kept}"
        if self.info.is_main:
            self.logger.log("event", self.step, {"event": "diverged", "message": msg})
            self.logger.close()
            self._write_summary("diverged", None, {}, 0.0, message=msg)
        raise DivergenceError(msg)

    def _write_summary(
        self,
        status: str,
        final_loss: float | None,
        metrics: dict[str, Any],
        wall: float,
        message: str | None = None,
    ) -> TrainSummary:
        summary = TrainSummary(
            out_dir=str(self.out),
            status=status,
            step=self.step,
            total_steps=self.total_steps,
            final_loss=final_loss,
            metrics=metrics,
            best=self.best,
            wall_time_s=wall,
            checkpoint=str(self.last_ckpt) if self.last_ckpt else None,
        )
        record = summary.to_dict()
        if message:
            record["message"] = message
        atomic_write_json(self.out / SUMMARY_NAME, record)
        return summary

    def _finished_summary(self) -> TrainSummary | None:
        """The stored summary when resuming a run that already completed."""
        path = self.out / SUMMARY_NAME
        if not (self.resume and self.step >= self.total_steps and path.exists()):
            return None
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("status") != "completed":
            return None
        names = TrainSummary.__dataclass_fields__
        return TrainSummary(**{k: v for k, v in stored.items() if k in names})

    # -------------------------------------------------------------- main loop
    def run(self) -> TrainSummary:
        cfg, info = self.cfg, self.info
        done = self._finished_summary()
        if done is not None:
            return done
        self.started = time.monotonic()
        budget = cfg.max_minutes * 60 - self.elapsed_before if cfg.max_minutes else math.inf
        deadline = self.started + budget
        self.logger = (
            RunLogger(self.out, tensorboard=cfg.tensorboard and info.is_main, resume_step=self.step)
            if info.is_main
            else _NullLogger()
        )
        if self.resume:
            self.logger.log("event", self.step, {"event": "resumed"})
        if self.reseeded_noise:
            message = "the initial-state noise stream was saved on another device type; reseeded"
            self.logger.log("event", self.step, {"event": "noise_reseeded", "message": message})
        bar = progress_bar(  # a bar on a terminal, periodic lines with rate and ETA otherwise
            total=self.total_steps,
            initial=self.step,
            unit="step",
            enable=self.progress and info.is_main,
            desc=f"train {cfg.model.get('model', '')}",
        )
        status: str = "completed"
        last: dict[str, Any] = {}
        epoch, perm = -1, torch.empty(0, dtype=torch.long)
        interval_t, interval_steps = time.monotonic(), 0
        try:
            while self.step < self.total_steps:
                if self.step // self.steps_per_epoch != epoch:
                    epoch = self.step // self.steps_per_epoch
                    perm = epoch_order(cfg.seed, epoch, len(self.train_set))
                last = self._update(perm)
                interval_steps += 1
                bar.update(1)
                # on a GPU the host reads device values (one sync) only at log steps
                if not self.on_gpu or self.step % cfg.log_every == 0:
                    self._check_finite()
                    last = _floats(last)
                    if self.step % cfg.progress_every == 0:
                        bar.set_postfix(loss=f"{last['loss']:.4f}", refresh=False)
                if self.step % cfg.log_every == 0 and info.is_main:
                    now = time.monotonic()
                    last["boards_per_s"] = interval_steps * cfg.batch_size / (now - interval_t)
                    interval_t, interval_steps = now, 0
                    self.logger.log("train", self.step, last)
                # (ranks other than 0 need no barrier: they wait in the next step's all-reduce)
                if self.step < self.total_steps:
                    evaluate = bool(cfg.eval_every) and self.step % cfg.eval_every == 0
                    improved = evaluate and info.is_main and self._evaluate()["_improved"]
                    save = improved or (cfg.ckpt_every and self.step % cfg.ckpt_every == 0)
                    if save:
                        self._save(("latest", "best") if improved else ("latest",))
                    if evaluate or save:  # boards/s measures training alone
                        interval_t, interval_steps = time.monotonic(), 0
                if cfg.max_minutes and distributed.any_flag(info, time.monotonic() > deadline):
                    status = "time_budget"
                    break
        finally:
            bar.close()
        self._check_finite()
        last = _floats(last)

        # the end: final evaluation, checkpoint, curve, summary (rank 0)
        metrics: dict[str, Any] = {}
        if info.is_main:
            self.logger.log("event", self.step, {"event": status})
            metrics = self._evaluate()
            improved = metrics.pop("_improved")
            self._save(("latest", "best") if improved else ("latest",))
            self.logger.close()
            plot_curves(
                self.out / LOG_NAME,
                self.out / CURVE_NAME,
                title=f"{cfg.model.get('model', '')} (seed {cfg.seed})",
            )
            metrics = {
                name: {kind: {str(t): v for t, v in vals.items()} for kind, vals in res.items()}
                for name, res in metrics.items()
            }
        distributed.barrier(info)
        return (
            self._write_summary(status, last.get("loss"), metrics, self._elapsed())
            if info.is_main
            else TrainSummary(str(self.out), status, self.step, self.total_steps, last.get("loss"))
        )


def _floats(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its tensors read as Python floats."""
    return {k: float(v) if torch.is_tensor(v) else v for k, v in record.items()}


class _NullLogger:
    """Logger of the non-main ranks."""

    def log(self, kind: str, step: int, scalars: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def train(
    config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> TrainSummary:
    """Train ``config`` into ``out_dir`` (created); see the module docstring and
    ``docs/training.md``.

    ``resume=True`` continues the run in ``out_dir`` from its latest checkpoint (its saved
    config must match ``config`` except for :data:`RESUMABLE_FIELDS`); with no checkpoint yet it
    starts from scratch. Under ``torchrun`` the processes train one model data-parallel.
    Raises :class:`DivergenceError` on a non-finite loss or gradient (the last good checkpoint
    is kept) and :class:`SadynError` on bad input.
    """
    info = distributed.setup(config.device)
    try:
        return _Trainer(config, Path(out_dir), info, resume, progress).run()
    finally:
        distributed.teardown(info)
