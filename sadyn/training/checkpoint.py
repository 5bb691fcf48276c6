"""Checkpoints: safetensors tensors + JSON metadata, written atomically, read without unpickling.

Layout of a run directory::

    RUN/config.json                     the TrainConfig of the run
    RUN/latest.json, RUN/best.json      pointers {"checkpoint": "checkpoints/step-000120", ...}
    RUN/checkpoints/step-000120/
        model.safetensors               online weights
        ema.safetensors                 EMA weights (the ones evaluated)
        state.safetensors               optimizer moments ("optim/<param>/<key>"), RNG states
                                        as uint8 tensors ("rng/<name>"), regularizer buffers
        meta.json                       format tag, step, configs, optimizer hyperparameters,
                                        scalars, and the SHA-256 of each tensor file

A checkpoint directory is complete once its ``meta.json`` exists (written last); a pointer is
switched (atomic rename) only after that, so a kill at any moment leaves the previous
checkpoint intact. Old checkpoint directories are removed once no pointer names them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sadyn.errors import CheckpointError
from sadyn.io import atomic_write, atomic_write_json
from sadyn.models import build_model

FORMAT = "sadyn.checkpoint/1"
CKPT_SUBDIR = "checkpoints"
POINTERS = {"latest": "latest.json", "best": "best.json"}
TENSOR_FILES = ("model.safetensors", "ema.safetensors", "state.safetensors")


@dataclass
class Checkpoint:
    """A checkpoint read back: tensors of each file and the metadata."""

    path: Path
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor]
    meta: dict[str, Any]


# ---------------------------------------------------------------------------- writing
def save_checkpoint(
    run_dir: str | Path,
    *,
    step: int,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    pointers: tuple[str, ...] = ("latest",),
) -> Path:
    """Write ``checkpoints/step-NNNNNN`` and point ``pointers`` (latest and/or best) at it.

    ``model``/``ema``/``state`` are flat name -> tensor dicts; ``meta`` is JSON-able.
    """
    run_dir = Path(run_dir)
    rel = f"{CKPT_SUBDIR}/step-{step:07d}"
    ckpt = run_dir / rel
    if (ckpt / "meta.json").exists():  # rewriting the same step (e.g. latest, then best)
        shutil.rmtree(ckpt)
    ckpt.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, tensors in zip(TENSOR_FILES, (model, ema, state), strict=True):
        plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        atomic_write(ckpt / name, lambda tmp, plain=plain: save_file(plain, str(tmp)))
        hashes[name] = _sha256(ckpt / name)
    atomic_write_json(
        ckpt / "meta.json", {"format": FORMAT, "step": step, **meta, "sha256": hashes}
    )
    for which in pointers:
        atomic_write_json(run_dir / POINTERS[which], {"checkpoint": rel, "step": step})
    _collect_garbage(run_dir)
    return ckpt


def _collect_garbage(run_dir: Path) -> None:
    """Remove checkpoint directories no pointer names (keeps latest and best)."""
    keep = set()
    for ptr in POINTERS.values():
        try:
            keep.add((run_dir / json.loads((run_dir / ptr).read_text())["checkpoint"]).resolve())
        except (OSError, ValueError, KeyError, TypeError):
            continue
    for d in (run_dir / CKPT_SUBDIR).glob("step-*"):
        if d.resolve() not in keep:
            shutil.rmtree(d, ignore_errors=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- reading
def resolve_checkpoint(path: str | Path, which: str = "latest") -> Path:
    """The checkpoint directory for ``path``: itself if it holds ``meta.json``, else the one the
    run directory's ``latest.json`` / ``best.json`` pointer names."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    if which not in POINTERS:
        raise CheckpointError(f"which must be one of {tuple(POINTERS)}, got {which!r}")
    pointer = path / POINTERS[which]
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    if not pointer.is_file():
        raise CheckpointError(
            f"{path}: not a sadyn checkpoint (no meta.json) nor a run directory with "
            f"{POINTERS[which]}"
        )
    try:
        rel = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{pointer}: unreadable checkpoint pointer ({exc})") from exc
    target = path / rel
    if not (target / "meta.json").is_file():
        raise CheckpointError(f"{pointer}: points to {target}, which holds no meta.json")
    return target


def read_checkpoint(
    path: str | Path, which: str = "latest", files: tuple[str, ...] = TENSOR_FILES
) -> Checkpoint:
    """Read and verify ``files`` of a checkpoint (format tag, checksums, safetensors); the
    tensors of files not asked for are left empty (evaluation needs no training state, and
    weights shipped without it still load)."""
    ckpt = resolve_checkpoint(path, which)
    meta_path = ckpt / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not a sadyn checkpoint (format != {FORMAT!r})")
    for key in ("step", "model_config", "sha256"):
        if key not in meta:
            raise CheckpointError(f"{meta_path}: missing field {key!r}")
    tensors = []
    for name in TENSOR_FILES:
        if name not in files:
            tensors.append({})
            continue
        file = ckpt / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing")
        if _sha256(file) != meta["sha256"].get(name):
            raise CheckpointError(
                f"{file}: contents do not match the checksum in meta.json (corrupt or truncated)"
            )
        try:
            tensors.append(load_file(str(file)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{file}: not a readable safetensors file ({exc})") from exc
    return Checkpoint(ckpt, *tensors, meta=meta)


def load_state_strict(module: nn.Module, tensors: dict[str, torch.Tensor], file: Path) -> None:
    """``module.load_state_dict(tensors)`` with a :class:`CheckpointError` naming ``file`` when
    names or shapes do not match (a checkpoint of another model)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    shapes = [
        f"{k}: {tuple(tensors[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:5])}")
        if shapes:
            parts.append(f"shape mismatch {'; '.join(shapes[:5])}")
        raise CheckpointError(
            f"{file}: weights do not fit the model of the checkpoint config ({'; '.join(parts)})"
        )
    module.load_state_dict(tensors)


def build_from_checkpoint(
    ckpt: Checkpoint, weights: str = "ema", device: str | torch.device = "cpu"
) -> nn.Module:
    """The model of ``ckpt`` with its EMA (``weights="ema"``) or online (``"raw"``) weights."""
    if weights not in ("ema", "raw"):
        raise CheckpointError(f"weights must be 'ema' or 'raw', got {weights!r}")
    try:
        model = build_model(dict(ckpt.meta["model_config"]))
    except Exception as exc:  # a foreign or edited config: report, do not crash
        raise CheckpointError(
            f"{ckpt.path / 'meta.json'}: cannot build the model from its config ({exc})"
        ) from exc
    name = "ema.safetensors" if weights == "ema" else "model.safetensors"
    load_state_strict(model, ckpt.ema if weights == "ema" else ckpt.model, ckpt.path / name)
    return model.to(device).eval()


def load_checkpoint(
    path: str | Path,
    *,
    which: str = "latest",
    weights: str = "ema",
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Load a trained model: ``(model, model_config, train_meta)``.

    ``path`` is a run directory (then ``which`` picks the latest or the best checkpoint) or a
    checkpoint directory. ``weights="ema"`` (default, as the reference evaluates) or ``"raw"``.
    ``train_meta`` holds the step, the training config and the scalars saved with it. Never
    unpickles; a corrupt, truncated or foreign checkpoint raises :class:`CheckpointError`.
    """
    if weights not in ("ema", "raw"):
        raise CheckpointError(f"weights must be 'ema' or 'raw', got {weights!r}")
    ckpt = read_checkpoint(
        path, which, files=(f"{'ema' if weights == 'ema' else 'model'}.safetensors",)
    )
    model = build_from_checkpoint(ckpt, weights, device)
    meta = {k: v for k, v in ckpt.meta.items() if k != "sha256"}
    meta["path"] = str(ckpt.path)
    return model, dict(ckpt.meta["model_config"]), meta


# ---------------------------------------------------------------------------- optimizer state
def optimizer_tensors(
    optimizer: torch.optim.Optimizer, names: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``optim/<param name>/<key>``) and
    JSON-able hyperparameters. ``names`` are the parameter names in optimizer order."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim/{names[idx]}/{key}"] = value
            else:
                scalars.setdefault(names[idx], {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars, "names": names}


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    info: dict[str, Any],
    names: list[str],
    file: Path,
) -> None:
    """Inverse of :func:`optimizer_tensors` (checks that the parameters are the same)."""
    if info.get("names") != names:
        raise CheckpointError(f"{file}: optimizer state belongs to other parameters")
    state: dict[int, dict[str, Any]] = {}
    for idx, name in enumerate(names):
        entry = {
            k.rsplit("/", 1)[1]: v for k, v in tensors.items() if k.startswith(f"optim/{name}/")
        }
        entry.update(info.get("scalars", {}).get(name, {}))
        if entry:
            state[idx] = entry
    try:
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{file}: optimizer state does not fit ({exc})") from exc


def rng_tensor(state: torch.Tensor) -> torch.Tensor:
    """A generator state (uint8 tensor) ready for safetensors."""
    return state.detach().to("cpu", torch.uint8).clone()
