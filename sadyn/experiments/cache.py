"""A checkpoint cache keyed by a hash of the training config, so recipes share trained models.

``CheckpointCache(root).get_or_train(config)`` returns the run folder of ``config``: the cached
one when a finished run of an equal config exists (same hash), else it trains into
``<root>/<kind>-<hash>.partial`` (resuming a run that was interrupted) and renames the folder
when training returns, so a folder without ``.partial`` is always a finished run. A lock file
per key keeps two processes from training the same config at once.

The hash covers every :class:`~sadyn.training.config.TrainConfig` field except those that do
not change the weights (thread count, device, logging); ``max_minutes`` stays in, since a
time-capped run is a different model.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sadyn.errors import DivergenceError
from sadyn.io import atomic_write_json
from sadyn.paths import portable_record

CACHE_ENV = "SADYN_CACHE"
# Fields left out of the key: the training package's RESUMABLE_FIELDS. All but max_minutes
# cannot change the weights; a run that max_minutes stopped early is resumed when a config with
# a larger budget asks for it (get_or_train), and a completed run serves any budget.
NEUTRAL_FIELDS = frozenset(
    {"max_minutes", "threads", "device", "tensorboard", "progress_every", "compile"}
)
ENTRY_FILE = "cache_entry.json"


def config_dict(config: Any) -> dict[str, Any]:
    """A TrainConfig (or a plain dict) as a JSON-able dict."""
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if isinstance(config, dict):
        return json.loads(json.dumps(config))
    raise TypeError(f"expected a TrainConfig or a dict, got {type(config).__name__}")


def config_hash(config: Any) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of the weight-relevant fields and the
    sadyn version (a new release may change what a config trains)."""
    import sadyn

    relevant = {k: v for k, v in config_dict(config).items() if k not in NEUTRAL_FIELDS}
    relevant["__sadyn_version__"] = sadyn.__version__
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def default_cache_dir(out_dir: str | Path) -> Path:
    """``$SADYN_CACHE`` if set, else ``<out_dir>/cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(out_dir) / "cache"


@dataclass(frozen=True)
class CacheEntry:
    """A finished training run in the cache.

    status: the run's end (``completed``, ``time_budget`` or ``diverged``; a diverged run is
    an outcome of its config too, so it is cached, with its last good checkpoint if any).
    summary: the training summary (final metrics), message: why it diverged.
    """

    path: Path
    key: str
    reused: bool
    train_wall_s: float | None
    status: str = "completed"
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def has_checkpoint(self) -> bool:
        return (self.path / "latest.json").is_file()

    def provenance(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "reused": self.reused,
            "status": self.status,
            "train_wall_s": self.train_wall_s,
            **({"message": self.message} if self.message else {}),
        }


class CheckpointCache:
    """Training runs under ``root``, one folder per config hash."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def name(self, config: Any) -> str:
        kind = str(config_dict(config).get("model", {}).get("model", "model"))
        return f"{kind}-{config_hash(config)}"

    def path(self, config: Any) -> Path:
        """Where the finished run of ``config`` lives (whether or not it exists yet)."""
        return self.root / self.name(config)

    def contains(self, config: Any) -> bool:
        """A finished run of ``config`` is cached (one its budget stopped counts only for a
        budget no larger)."""
        path = self.path(config) / ENTRY_FILE
        if not path.is_file():
            return False
        return not _budget_grew(json.loads(path.read_text(encoding="utf-8")), config)

    def get_or_train(self, config: Any, *, progress: bool = False) -> CacheEntry:
        """The finished run of ``config``, training it first when it is not cached."""
        final = self.path(config)
        key = config_hash(config)
        with self._lock(final.name):
            if (final / ENTRY_FILE).is_file():
                entry = json.loads((final / ENTRY_FILE).read_text(encoding="utf-8"))
                if _budget_grew(entry, config):  # stopped by a smaller budget: go on
                    partial = final.with_name(final.name + ".partial")
                    if partial.exists():
                        shutil.rmtree(partial)
                    os.replace(final, partial)
                    (partial / ENTRY_FILE).unlink()
                    return self._train_locked(config, final, key, progress)
                return CacheEntry(
                    final,
                    key,
                    True,
                    entry.get("train_wall_s"),
                    entry.get("status", "completed"),
                    entry.get("message", ""),
                    entry.get("summary", {}),
                )
            return self._train_locked(config, final, key, progress)

    def _train_locked(self, config: Any, final: Path, key: str, progress: bool) -> CacheEntry:
        """Train (or resume) ``config`` into ``final`` via ``<final>.partial``; lock held."""
        partial = final.with_name(final.name + ".partial")
        resume = partial.exists() and any(partial.iterdir())
        t0 = time.perf_counter()
        status, message, summary = "completed", "", {}
        try:
            result = _train_fn()(config, partial, resume=resume, progress=progress)
        except DivergenceError as exc:
            status, message = "diverged", str(exc)
        else:
            summary = result.to_dict() if hasattr(result, "to_dict") else {}
            status = str(summary.get("status", "completed"))
        wall = time.perf_counter() - t0
        atomic_write_json(
            partial / ENTRY_FILE,
            {
                "key": key,
                "config": config_dict(config),
                "train_wall_s": wall,
                "resumed": resume,
                "status": status,
                "message": message,
                "summary": portable_record(summary, partial),  # paths relative to the run
            },
        )
        if final.exists():  # a stale folder without an entry file: replace it
            shutil.rmtree(final)
        os.replace(partial, final)
        return CacheEntry(final, key, False, wall, status, message, summary)

    def busy(self, config: Any) -> bool:
        """True while another process holds the lock of ``config``'s entry (is training it)."""
        with self._lock(self.path(config).name, blocking=False) as held:
            return not held

    def train_all(
        self,
        configs: Iterable[Any],
        *,
        progress: bool = False,
        on_train: Callable[[Any], None] | None = None,
    ) -> None:
        """Train every config that is not cached yet. Entries another process is training are
        left to the end (then waited for), so several processes running the same recipes
        share the training instead of queueing behind one lock. ``on_train(config)`` is called
        before each run this process trains."""
        todo = [c for c in configs if not self.contains(c)]
        while todo:
            free = [c for c in todo if not self.busy(c)]
            config = free[0] if free else todo[0]  # all busy: wait for the first
            todo.remove(config)
            if self.contains(config):
                continue
            if on_train is not None and free:  # (a busy one is waited for, not trained here)
                on_train(config)
            self.get_or_train(config, progress=progress)
            todo = [c for c in todo if not self.contains(c)]

    def invalidate(self, config: Any) -> bool:
        """Remove the cached run of ``config`` (e.g. its checkpoint no longer loads because the
        model code changed); True if there was one."""
        final = self.path(config)
        with self._lock(final.name):
            if not final.exists():
                return False
            shutil.rmtree(final)
            return True

    @contextlib.contextmanager
    def _lock(self, name: str, *, blocking: bool = True) -> Iterator[bool]:
        """Hold the entry's lock file; yields True, or False at once when ``blocking`` is off and
        another process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / f".{name}.lock", blocking=blocking) as held:
            yield held


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) between processes; yields
    True, or False at once when ``blocking`` is off and another process holds it."""
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _budget_grew(entry: dict[str, Any], config: Any) -> bool:
    """A cached run that its time budget stopped, asked for with a larger budget."""
    if entry.get("status") != "time_budget":
        return False
    old = entry.get("config", {}).get("max_minutes")
    new = config_dict(config).get("max_minutes")
    return old is not None and (new is None or new > old)


def _train_fn() -> Any:
    """``sadyn.training.train`` (imported late: the cache itself needs no torch)."""
    import sadyn.training as training

    if hasattr(training, "train"):
        return training.train
    from sadyn.training.loop import train  # the package may not re-export it

    return train
