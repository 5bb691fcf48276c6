"""Training the recipes' models elsewhere: export them as a prioritized job list, import the
finished runs into the checkpoint cache.

``export_jobs(["all"], "small")`` lists every model the recipes may use at a preset, one entry
per distinct training config (models shared by recipes appear once), most decisive first (each
recipe's :meth:`~sadyn.experiments.base.Recipe.jobs` gives the priorities)::

    [{"name": "itrsa-0123456789abcdef", "config": {...TrainConfig.to_dict()...},
      "priority": 1.0, "labels": ["fig5-regularization: ItrSA | seed 0", ...]}, ...]

``name`` is the cache entry the run belongs in (``<kind>-<config hash>``). The list's format,
:func:`write_jobs` and the runner are :mod:`sadyn.training.jobs` (``scripts/train-jobs.py``,
``sadyn paper --jobs``); one job also trains with ``sadyn train --config-json CONFIG --out
runs/<name>``. :func:`import_runs` then checks every finished run folder (its ``config.json``
must hash to the name the folder carries, the run must have completed, its latest checkpoint
must load and pass its SHA-256 check) and installs it as a cache entry, so ``sadyn reproduce``
reuses it instead of training.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sadyn.errors import SadynError
from sadyn.experiments.cache import ENTRY_FILE, CheckpointCache, config_hash
from sadyn.io import atomic_write_json
from sadyn.paths import portable_record
from sadyn.training.jobs import write_jobs  # the job list format lives with its runner

__all__ = ["ImportResult", "JobError", "export_jobs", "export_weights", "import_runs", "write_jobs"]

JOBS_FORMAT = 1
_NAME = re.compile(r"^(?P<kind>[A-Za-z0-9_.-]+)-(?P<hash>[0-9a-f]{16})$")


class JobError(SadynError):
    """A job list or an imported run folder is invalid."""


def export_jobs(
    names: str | Sequence[str],
    preset: str,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    cache: CheckpointCache | None = None,
    include_cached: bool = True,
) -> list[dict[str, Any]]:
    """The distinct models of the recipes ``names`` at ``preset``, sorted by priority (ties:
    the recipes' order). With ``cache`` and ``include_cached=False`` the ones it holds are
    left out."""
    from sadyn.experiments.registry import get_recipe, resolve_names

    overrides = dict(overrides or {})
    by_name: dict[str, dict[str, Any]] = {}
    namer = CheckpointCache(".")  # names only: touches no file
    order = 0
    for recipe_name in resolve_names(names):
        recipe = get_recipe(recipe_name)
        cfg = recipe.config(preset, overrides.get(recipe_name))
        for job in recipe.jobs(cfg):
            key = namer.name(job.config)
            label = f"{recipe_name}: {job.label}"
            if key in by_name:
                entry = by_name[key]
                entry["priority"] = min(entry["priority"], round(float(job.priority), 6))
                entry["labels"].append(label)
                continue
            by_name[key] = {
                "name": key,
                "config": job.config.to_dict(),
                "priority": round(float(job.priority), 6),
                "labels": [label],
                "_order": order,
            }
            order += 1
    jobs = sorted(by_name.values(), key=lambda j: (j["priority"], j["_order"]))
    if cache is not None and not include_cached:
        jobs = [j for j in jobs if not cache.contains(j["config"])]
    for j in jobs:
        del j["_order"]
    return jobs


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_runs` did with one run folder: ``action`` is ``installed``,
    ``cached`` (the cache already held it) or ``skipped`` (with the ``reason``)."""

    source: Path
    name: str
    action: str
    reason: str = ""


def import_runs(
    source: str | Path, cache: CheckpointCache, *, verify_checkpoint: bool = True
) -> list[ImportResult]:
    """Install every finished run folder under ``source`` (one run folder, or a folder holding
    run folders at any depth: a folder with a ``config.json``) as a cache entry. A folder is
    skipped, with the reason, when its ``config.json`` is invalid, its name's hash does not
    match its config, it did not complete, or its latest checkpoint does not load. Nothing is
    unpickled."""
    root = Path(source)
    if not root.is_dir():
        raise JobError(f"--import-runs {root}: not a folder")
    if (root / "config.json").is_file():
        folders = [root]
    else:  # run folders at any depth (e.g. DIR/runs/<name>), none inside another
        found = sorted(p.parent for p in root.rglob("config.json"))
        folders = [f for f in found if not any(o != f and o in f.parents for o in found)]
    return [_import_one(folder, cache, verify_checkpoint) for folder in folders]


def _import_one(folder: Path, cache: CheckpointCache, verify: bool) -> ImportResult:
    from sadyn.training.config import ConfigError, TrainConfig

    def skip(reason: str, name: str = "") -> ImportResult:
        return ImportResult(folder, name or folder.name, "skipped", reason)

    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        return skip("no config.json (not a run folder)")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
        config = TrainConfig.from_dict(raw)
    except (OSError, ValueError, ConfigError) as exc:
        return skip(f"{cfg_path}: not a valid training config ({exc})")
    name = cache.name(config)
    m = _NAME.match(folder.name)
    if m is not None:
        claimed = m.group("hash")
        if claimed not in (config_hash(config), config_hash(raw)):
            return skip(
                f"{cfg_path}: the config hashes to {config_hash(config)}, but the folder is "
                f"named for {claimed} (edited config, or a run of another job)",
                name,
            )
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        return skip("no summary.json: the run did not finish (or diverged)", name)
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return skip(f"{summary_path}: unreadable ({exc})", name)
    status = str(summary.get("status", ""))
    if status not in ("completed", "time_budget"):
        return skip(f"{summary_path}: status {status!r}", name)
    if status == "completed" and summary.get("step") != summary.get("total_steps"):
        return skip(
            f"{summary_path}: completed at step {summary.get('step')} of "
            f"{summary.get('total_steps')}",
            name,
        )
    if verify:
        from sadyn.training.checkpoint import load_checkpoint

        try:
            load_checkpoint(folder, device="cpu")
        except SadynError as exc:
            return skip(f"latest checkpoint does not load: {exc}", name)
    if cache.contains(config):
        return ImportResult(folder, name, "cached", "the cache already holds this run")
    final = cache.path(config)
    with cache._lock(final.name):
        partial = final.with_name(final.name + ".import")
        if partial.exists():
            shutil.rmtree(partial)
        shutil.copytree(folder, partial, ignore=shutil.ignore_patterns("tb", "tensorboard"))
        atomic_write_json(
            partial / ENTRY_FILE,
            {
                "key": config_hash(config),
                "config": config.to_dict(),
                "train_wall_s": summary.get("wall_time_s"),
                "resumed": False,
                "status": status,
                "message": "",
                "summary": portable_record(summary, folder),  # paths relative to the run
                "imported_from": folder.name,  # the run's name, not a machine's path
            },
        )
        if final.exists():  # a stale folder without an entry file
            shutil.rmtree(final)
        partial.rename(final)
    return ImportResult(folder, name, "installed")


def export_weights(
    cache: CheckpointCache, names: Sequence[str], dest: str | Path
) -> list[dict[str, Any]]:
    """Copy the EMA weights and config of the cache entries ``names`` to ``dest`` (e.g.
    ``results/small-claims/models``) as *weights-only* cache entries, small enough to commit:
    per model its config, summary and cache entry, and one checkpoint whose
    ``model.safetensors`` and ``ema.safetensors`` both hold the EMA weights (git stores the
    identical blob once) with an empty ``state.safetensors`` (no optimizer state: the run
    cannot be resumed, only re-probed). ``dest`` is then itself a cache root
    (``sadyn reproduce --cache dest --no-train``) and each folder an importable run
    (``--import-runs``). Returns one row per model: name, files, bytes."""
    import torch
    from safetensors.torch import save_file

    from sadyn.training.checkpoint import read_checkpoint

    out = Path(dest)
    rows = []
    for name in names:
        src = cache.root / name
        entry_path = src / ENTRY_FILE
        if not entry_path.is_file():
            raise JobError(f"{src}: not a finished cache entry")
        ckpt = read_checkpoint(src)  # verifies every checksum
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        rel = ckpt.path.relative_to(src)
        cdir = target / rel
        cdir.mkdir(parents=True)
        ema = {k: v.contiguous() for k, v in ckpt.ema.items()}
        save_file(ema, str(cdir / "ema.safetensors"))
        shutil.copyfile(cdir / "ema.safetensors", cdir / "model.safetensors")
        save_file({"empty": torch.zeros(0)}, str(cdir / "state.safetensors"))
        meta = {k: v for k, v in ckpt.meta.items() if k != "sha256"}
        meta["weights_only"] = (
            "model.safetensors holds the EMA weights; the online weights and the optimizer "
            "state were not kept (sadyn.experiments.jobs.export_weights)"
        )
        meta["sha256"] = {
            f: _sha256(cdir / f)
            for f in ("model.safetensors", "ema.safetensors", "state.safetensors")
        }
        atomic_write_json(cdir / "meta.json", meta)
        atomic_write_json(target / "latest.json", {"checkpoint": str(rel), "step": meta["step"]})
        for f in ("config.json", "summary.json"):
            if (src / f).is_file():
                shutil.copyfile(src / f, target / f)
        entry = json.loads(entry_path.read_text(encoding="utf-8"))
        entry["weights_only"] = True
        atomic_write_json(target / ENTRY_FILE, entry)
        files = [p for p in target.rglob("*") if p.is_file()]
        rows.append(
            {"name": name, "files": len(files), "bytes": sum(p.stat().st_size for p in files)}
        )
    return rows


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
