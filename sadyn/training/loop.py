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
import signal
import threading
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
from sadyn.paths import portable_path
from sadyn.progress import progress as progress_bar
from sadyn.sudoku import PuzzleSet, get_dataset, read_puzzles, resolve_dataset
from sadyn.sudoku.augment import augment
from sadyn.training import checkpoint, distributed
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
    """How a run ended. ``status``: ``completed``, ``time_budget`` (``max_minutes`` hit) or
    ``interrupted`` (SIGINT / SIGTERM: checkpointed at ``step``, resumable)."""

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


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM while training: the first sets ``received`` (the signal's
    name), which the loop reads after each update, then checkpoints and stops; a second raises
    :class:`KeyboardInterrupt` at once. Installed only in the main thread (elsewhere signals
    cannot be caught and this does nothing)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: str | None = None
        self._saved: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()


# ---------------------------------------------------------------------------- trainer
class _Trainer:
    """One run: ``__init__`` sets it up (run directory, data, model, resume), ``run`` trains."""

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
        # on a GPU: the puzzles resident on the device, fused kernels, no host sync per update
        self.on_gpu = self.device.type in ASYNC_DEVICES
        if config.threads:
            torch.set_num_threads(config.threads)
        self.resume = self._prepare_run_dir(resume)
        self._load_data()
        self._build_model()
        # the bookkeeping of the run; a resumed run takes it from its checkpoint
        self.step = 0
        self.best: dict[str, Any] | None = None  # {"step", "metric", "value", "cell_accuracy"}
        self.last_ckpt: Path | None = None
        # training seconds of earlier processes of this run (resumed runs): max_minutes and the
        # summary's wall time count the whole run, not only the last process
        self.elapsed_before = 0.0
        self.started = time.monotonic()
        self.reseeded_noise = False
        # (update index, loss, gradient norm) of the updates not yet checked for finiteness
        self.unchecked: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        if self.resume:
            self._restore()

    def _load_data(self) -> None:
        """The training puzzles (rank 0 first: it may generate and cache the set), the
        evaluation sets (rank 0) and the number of updates."""
        cfg, info = self.cfg, self.info
        if info.is_main:
            self.train_set = load_train_set(cfg, self.progress)
        distributed.barrier(info)
        if not info.is_main:
            self.train_set = load_train_set(cfg, False)
        self.eval_sets = load_eval_sets(cfg) if info.is_main else {}
        self.quizzes, self.solutions = self.train_set.to_torch()
        if self.on_gpu:
            self.quizzes_dev = self.quizzes.to(self.device)
            self.solutions_dev = self.solutions.to(self.device)
        self.steps_per_epoch = len(self.train_set) // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise SadynError(
                f"train set of {len(self.train_set)} puzzles is smaller than one "
                f"batch of {cfg.batch_size}"
            )
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.shard = info.shard(cfg.batch_size)  # this process's rows of each batch

    def _build_model(self) -> None:
        """Model (initialized from ``seed``), Adam, EMA, the two generators, the objective and,
        under torchrun, its DDP wrapper."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.model = build_model(dict(cfg.model)).to(self.device)
        self.model_config = self.model.config
        self.param_names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=cfg.lr,
            betas=cfg.adam_betas,
            weight_decay=cfg.weight_decay,
            fused=self.on_gpu or None,
        )
        self.ema = EMA(
            self.model,
            beta=cfg.ema_beta,
            every=cfg.ema_every,
            start=cfg.ema_start,
            power=cfg.ema_power,
        )
        # initial-state noise (on the device), and random loop counts and regularizer vectors
        self.gen_noise = torch.Generator(self.device).manual_seed(derive_seed(cfg.seed, 1))
        self.gen_cpu = torch.Generator().manual_seed(derive_seed(cfg.seed, 2))
        self.objective = Objective(self.model, cfg, reg_generator=self.gen_cpu, fused=self.on_gpu)
        self.runner: nn.Module = self.objective
        if self.info.enabled:
            self.runner = DistributedDataParallel(
                self.objective,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,
                find_unused_parameters=True,
            )

    # -------------------------------------------------------------- the run
    def _open_logger(self) -> None:
        """The run log (rank 0), with the events of a resumed run."""
        if not self.info.is_main:
            self.logger: RunLogger | _NullLogger = _NullLogger()
            return
        self.logger = RunLogger(self.out, tensorboard=self.cfg.tensorboard, resume_step=self.step)
        if self.resume:
            self.logger.log("event", self.step, {"event": "resumed"})
        if self.reseeded_noise:
            message = "the initial-state noise stream was saved on another device type; reseeded"
            self.logger.log("event", self.step, {"event": "noise_reseeded", "message": message})

    def run(self) -> TrainSummary:
        """Train to the end (or the time budget), then evaluate, checkpoint, plot and summarize."""
        cfg, info = self.cfg, self.info
        done = self._finished_summary()
        if done is not None:
            return done
        self.started = time.monotonic()
        budget = cfg.max_minutes * 60 - self.elapsed_before if cfg.max_minutes else math.inf
        deadline = self.started + budget
        self._open_logger()
        bar = progress_bar(  # a bar on a terminal, periodic lines with rate and ETA otherwise
            total=self.total_steps,
            initial=self.step,
            unit="step",
            enable=self.progress and info.is_main,
            desc=f"train {cfg.model.get('model', '')}",
        )
        self.last_record: dict[str, Any] = {}  # the record of the latest update
        stop = StopSignals()
        try:
            with stop:
                status = self._loop(bar, stop, deadline)
        finally:
            bar.close()
        self._check_finite()
        if status == "interrupted":
            return self._interrupted(stop.received or "signal")
        return self._finish(status, _floats(self.last_record))

    def _loop(self, bar: Any, stop: StopSignals, deadline: float) -> str:
        """Updates until the end, the time budget or a stop signal; returns the status."""
        cfg, info = self.cfg, self.info
        status = "completed"
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        clock, timed_updates = time.monotonic(), 0  # boards/s over the updates since clock
        while self.step < self.total_steps:
            if self.step // self.steps_per_epoch != epoch:  # a new epoch: its data order
                epoch = self.step // self.steps_per_epoch
                order = epoch_order(cfg.seed, epoch, len(self.train_set))
            self.last_record = self._update(order)
            timed_updates += 1
            bar.update(1)
            # on a GPU the host reads device values (one sync) only at log steps
            if not self.on_gpu or self.step % cfg.log_every == 0:
                self._check_finite()
                last = self.last_record = _floats(self.last_record)
                if self.step % cfg.progress_every == 0:
                    bar.set_postfix(loss=f"{last['loss']:.4f}", refresh=False)
            if self.step % cfg.log_every == 0 and info.is_main:
                now = time.monotonic()
                self.last_record["boards_per_s"] = timed_updates * cfg.batch_size / (now - clock)
                clock, timed_updates = now, 0
                self.logger.log("train", self.step, self.last_record)
            # (ranks other than 0 need no barrier: they wait in the next step's all-reduce)
            # the last step's evaluation and checkpoint come after the loop
            if self.step < self.total_steps and self._evaluate_and_checkpoint():
                clock, timed_updates = time.monotonic(), 0  # boards/s times training alone
            if cfg.max_minutes and distributed.any_flag(info, time.monotonic() > deadline):
                status = "time_budget"
                break
            # a stop signal: checked every update alone, at log steps under torchrun (one
            # all-reduce there, where the ranks sync anyway)
            if (not info.enabled or self.step % cfg.log_every == 0) and distributed.any_flag(
                info, stop.received is not None
            ):
                status = "interrupted"
                break
        return status

    def _interrupted(self, signame: str) -> TrainSummary:
        """After a stop signal: checkpoint the weights of the last finished update (atomic:
        :func:`checkpoint.save_checkpoint`), log it and write the summary; no final evaluation,
        so the process ends within an update of the signal."""
        self._save()
        last = _floats(self.last_record)
        if self.info.is_main:
            self.logger.log("event", self.step, {"event": "interrupted", "signal": signame})
            self.logger.close()
        distributed.barrier(self.info)
        if not self.info.is_main:
            return TrainSummary(
                str(self.out), "interrupted", self.step, self.total_steps, last.get("loss")
            )
        return self._write_summary("interrupted", last.get("loss"), {}, self._elapsed())

    def _finish(self, status: str, last: dict[str, Any]) -> TrainSummary:
        """The end of the run: final evaluation, checkpoint, curve and summary (rank 0)."""
        cfg, info = self.cfg, self.info
        metrics: dict[str, Any] = {}
        if info.is_main:
            self.logger.log("event", self.step, {"event": status})
            metrics = self._evaluate()
            self._save(best=self._is_new_best(metrics))
            self.logger.close()
            plot_curves(
                self.out / LOG_NAME,
                self.out / CURVE_NAME,
                title=f"{cfg.model.get('model', '')} (seed {cfg.seed})",
            )
            metrics = {  # JSON keys: loop counts as strings
                name: {kind: {str(t): v for t, v in vals.items()} for kind, vals in res.items()}
                for name, res in metrics.items()
            }
        distributed.barrier(info)
        if not info.is_main:
            return TrainSummary(
                str(self.out), status, self.step, self.total_steps, last.get("loss")
            )
        return self._write_summary(status, last.get("loss"), metrics, self._elapsed())

    # -------------------------------------------------------------- run directory
    def _prepare_run_dir(self, resume: bool) -> bool:
        """Check or write ``config.json`` (rank 0, the others wait); return whether there is a
        checkpoint to resume."""
        if self.info.is_main:
            self._check_or_write_config(resume)
        distributed.barrier(self.info)
        return resume and (self.out / checkpoint.POINTERS["latest"]).exists()

    def _check_or_write_config(self, resume: bool) -> None:
        config_path = self.out / CONFIG_NAME
        if not config_path.exists():
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(config_path, self.cfg.to_dict())
            return
        if not resume:
            raise SadynError(
                f"{self.out} already holds a run; pass --resume to continue it "
                "or choose another --out"
            )
        try:
            saved = TrainConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise checkpoint.CheckpointError(
                f"{config_path}: unreadable run config ({exc})"
            ) from exc
        diff = {k: v for k, v in saved.differences(self.cfg).items() if k not in RESUMABLE_FIELDS}
        if diff:
            listed = "; ".join(f"{k}: run has {a!r}, given {b!r}" for k, (a, b) in diff.items())
            raise SadynError(f"cannot resume {self.out} with a different config ({listed})")

    # -------------------------------------------------------------- checkpoints
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        tensors, _ = checkpoint.optimizer_tensors(self.optimizer, self.param_names)
        tensors["rng/torch"] = checkpoint.rng_tensor(torch.get_rng_state())
        tensors["rng/noise"] = checkpoint.rng_tensor(self.gen_noise.get_state())
        tensors["rng/cpu"] = checkpoint.rng_tensor(self.gen_cpu.get_state())
        if torch.cuda.is_available() and self.device.type == "cuda":
            tensors["rng/cuda"] = checkpoint.rng_tensor(torch.cuda.get_rng_state(self.device))
        tensors.update(self.objective.regularizer_state())
        return tensors

    def _save(self, *, best: bool = False) -> None:
        """Checkpoint (rank 0), pointed to by ``latest`` and, with ``best``, by ``best``."""
        self._check_finite()  # never checkpoint weights a non-finite update reached
        if not self.info.is_main:
            return
        _, optim_info = checkpoint.optimizer_tensors(self.optimizer, self.param_names)
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
        self.last_ckpt = checkpoint.save_checkpoint(
            self.out,
            step=self.step,
            model=self.model.state_dict(),
            ema=self.ema.state_dict(),
            state=self._state_tensors(),
            meta=meta,
            pointers=("latest", "best") if best else ("latest",),
        )

    def _restore(self) -> None:
        saved = checkpoint.read_checkpoint(self.out, "latest")
        checkpoint.load_state_strict(self.model, saved.model, saved.path / "model.safetensors")
        checkpoint.load_state_strict(self.ema.module, saved.ema, saved.path / "ema.safetensors")
        self.ema.num_updates = int(saved.meta["ema_updates"])
        checkpoint.restore_optimizer(
            self.optimizer,
            saved.state,
            saved.meta["optimizer"],
            self.param_names,
            saved.path / "state.safetensors",
        )
        torch.set_rng_state(saved.state["rng/torch"])
        noise_state = saved.state["rng/noise"]
        if noise_state.numel() == self.gen_noise.get_state().numel():
            self.gen_noise.set_state(noise_state)
        else:
            # saved on another device type (CUDA's Philox state vs the CPU's Mersenne twister):
            # that stream cannot continue here; a fresh one, a function of (seed, step), keeps
            # the resumed run deterministic (and says so in the log)
            self.gen_noise.manual_seed(derive_seed(self.cfg.seed, 1, int(saved.meta["step"])))
            self.reseeded_noise = True
        self.gen_cpu.set_state(saved.state["rng/cpu"])
        if "rng/cuda" in saved.state and self.device.type == "cuda":
            torch.cuda.set_rng_state(saved.state["rng/cuda"], self.device)
        self.objective.load_regularizer_state(saved.state)
        self.step = int(saved.meta["step"])
        self.best = saved.meta.get("best")
        self.elapsed_before = float(saved.meta.get("elapsed_s", 0.0))
        self.last_ckpt = saved.path

    def _elapsed(self) -> float:
        """Seconds of this run so far, over every process that trained it."""
        return self.elapsed_before + time.monotonic() - self.started

    # -------------------------------------------------------------- evaluation
    def _evaluate(self) -> dict[str, Any]:
        """The EMA weights on every eval set at ``eval_steps`` (rank 0), logged:
        ``{set name: accuracy_at_steps result}``. With ``eval_online`` the online weights are
        evaluated too and logged under ``online/`` (not returned: the EMA picks the best)."""
        cfg = self.cfg
        self._check_finite()
        metrics, scalars = {}, {}
        weights = [("", self.ema.module)] + ([("online/", self.model)] if cfg.eval_online else [])
        for prefix, module in weights:
            for name, puzzles in self.eval_sets.items():
                with fused_attention(self.on_gpu):
                    res = accuracy_at_steps(
                        module,
                        puzzles,
                        cfg.eval_steps,
                        batch_size=cfg.eval_batch_size,
                        seed=derive_seed(cfg.seed, 3),
                        deterministic=cfg.fixed_noise,
                        device=self.device,
                    )
                if not prefix:
                    metrics[name] = res
                for t in res["board_accuracy"]:
                    scalars[f"{prefix}{name}/board_acc@{t}"] = res["board_accuracy"][t]
                    scalars[f"{prefix}{name}/cell_acc@{t}"] = res["cell_accuracy"][t]
        self.logger.log("eval", self.step, scalars)
        return metrics

    def _is_new_best(self, metrics: dict[str, Any]) -> bool:
        """Whether ``metrics`` beat the best so far (which they then become): board accuracy on
        ``select_on`` at the smallest eval loop count, ties broken by cell accuracy (board
        accuracy sits at 0 for a long time early in training)."""
        t = min(self.cfg.eval_steps)
        chosen = metrics[dataset_name(self.cfg.select_on)]
        value, tiebreak = chosen["board_accuracy"][t], chosen["cell_accuracy"][t]
        best = self.best
        if best is not None and (value, tiebreak) <= (best["value"], best["cell_accuracy"]):
            return False
        self.best = {
            "step": self.step,
            "metric": f"{self.cfg.select_on}/board_acc@{t}",
            "value": value,
            "cell_accuracy": tiebreak,
        }
        return True

    def _evaluate_and_checkpoint(self) -> bool:
        """Between updates: evaluate every ``eval_every`` steps (rank 0) and checkpoint every
        ``ckpt_every`` steps and at each new best. Returns whether either ran."""
        cfg = self.cfg
        evaluate = bool(cfg.eval_every) and self.step % cfg.eval_every == 0
        improved = evaluate and self.info.is_main and self._is_new_best(self._evaluate())
        if improved or (cfg.ckpt_every and self.step % cfg.ckpt_every == 0):
            self._save(best=improved)
            return True
        return evaluate

    # -------------------------------------------------------------- one update
    def _batch(self, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The quizzes and solutions ``(batch_size, 81)`` of this update, on the device, in the
        epoch's ``order`` (augmented: a fresh symmetry per puzzle, a function of the step)."""
        cfg = self.cfg
        i = self.step % self.steps_per_epoch
        rows = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        if self.on_gpu and cfg.augment == "none":
            rows = rows.to(self.device, non_blocking=True)
            return self.quizzes_dev[rows], self.solutions_dev[rows]
        quizzes, solutions = self.quizzes[rows], self.solutions[rows]
        if cfg.augment != "none":  # symmetry augmentation
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, 0xA06, self.step))
            quizzes, solutions = augment(quizzes, solutions, kind=cfg.augment, generator=gen)
        return quizzes.to(self.device), solutions.to(self.device)

    def _loop_count(self) -> int:
        """T of this update: ``train_steps``, or uniform in ``train_steps_random``."""
        if self.cfg.train_steps_random is None:
            return self.cfg.train_steps
        lo, hi = self.cfg.train_steps_random
        return int(torch.randint(lo, hi + 1, (1,), generator=self.gen_cpu))

    def _update(self, order: torch.Tensor) -> dict[str, Any]:
        """One optimizer step on the next batch; returns its record (tensors not yet read)."""
        cfg = self.cfg
        quizzes, solutions = self._batch(order)
        steps = self._loop_count()
        lr = learning_rate(cfg, self.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        self.model.train()
        with self._precision():
            loss, parts = self.runner(quizzes, solutions, self.shard, steps, self.gen_noise)
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

    # -------------------------------------------------------------- summary
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
        # paths relative to the run (the summary is read on other machines, and moved runs)
        record["out_dir"] = "."
        if self.last_ckpt is not None:
            record["checkpoint"] = portable_path(self.last_ckpt, self.out)
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
        stored["out_dir"] = str(self.out)
        if stored.get("checkpoint") and not Path(stored["checkpoint"]).is_absolute():
            stored["checkpoint"] = str(self.out / stored["checkpoint"])
        return TrainSummary(**{k: v for k, v in stored.items() if k in names})


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
