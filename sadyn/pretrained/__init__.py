"""Pretrained models shipped with sadyn, loadable by name or by path.

Each model is three files in this package folder (``sadyn/pretrained/``):

- ``NAME.safetensors``: the EMA weights (read with safetensors only: nothing is unpickled);
- ``NAME.json``: the manifest: model config, the SHA-256 of the weights file, and provenance
  (training preset, seed, steps, device it was trained on, wall time, the run it came from);
- ``NAME.eval.json``: the ``sadyn eval`` results that the README's numbers come from (when run).

    from sadyn.pretrained import load_pretrained, available
    model, model_config, meta = load_pretrained("small-itrsa")   # verified, eval mode, CPU

``sadyn eval small-itrsa``, ``sadyn analyze small-itrsa`` accept a name wherever a run folder is
accepted (:func:`resolve_model`); ``$SADYN_PRETRAINED_DIR`` points the names at another
folder. A weights file whose SHA-256 differs from its manifest is refused with a
:class:`~sadyn.errors.CheckpointError`. New models are added with
``python -m sadyn.pretrained.export RUN_DIR --name NAME`` (:mod:`sadyn.pretrained.export`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from sadyn.errors import CheckpointError, SadynError
from sadyn.models import build_model

FORMAT = "sadyn.pretrained/1"
#: the folder the shipped models live in
PACKAGE_DIR = Path(__file__).resolve().parent
#: environment variable naming another folder of pretrained models (tests, private models)
ENV_DIR = "SADYN_PRETRAINED_DIR"
WEIGHTS_SUFFIX = ".safetensors"
EVAL_SUFFIX = ".eval.json"


def _folder(root: str | Path | None) -> Path:
    """``root``, else ``$SADYN_PRETRAINED_DIR``, else the package folder."""
    if root is not None:
        return Path(root)
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    return PACKAGE_DIR


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def available(root: str | Path | None = None) -> list[str]:
    """Names of the pretrained models in ``root`` (default: the package folder), sorted."""
    folder = _folder(root)
    names = []
    for manifest in sorted(folder.glob("*.json")):
        if manifest.name.endswith(EVAL_SUFFIX):
            continue
        if (folder / (manifest.stem + WEIGHTS_SUFFIX)).is_file():
            names.append(manifest.stem)
    return names


def manifest_path(name_or_path: str | Path, root: str | Path | None = None) -> Path:
    """The manifest of a pretrained model given by name (in ``root``, default the package
    folder), by the path of its manifest, or by the path of its ``.safetensors`` file."""
    path = Path(name_or_path)
    if path.suffix == WEIGHTS_SUFFIX:
        path = path.with_suffix(".json")
    if path.suffix == ".json" and not path.name.endswith(EVAL_SUFFIX):
        if not path.is_file():
            raise CheckpointError(f"{path}: pretrained manifest not found")
        return path
    folder = _folder(root)
    candidate = folder / f"{name_or_path}.json"
    if candidate.is_file() and (folder / f"{name_or_path}{WEIGHTS_SUFFIX}").is_file():
        return candidate
    known = available(folder)
    listed = ", ".join(known) if known else "none yet"
    raise CheckpointError(
        f"{name_or_path!r} is not a pretrained model name (known in {folder}: {listed}) nor a "
        "path to one"
    )


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest JSON at ``path``, checked for the fields the loader needs."""
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable pretrained manifest ({exc})") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a sadyn pretrained manifest (format != {FORMAT!r})")
    for key in ("name", "weights", "sha256", "model_config"):
        if key not in info:
            raise CheckpointError(f"{path}: manifest lacks field {key!r}")
    return info


def load_pretrained(
    name_or_path: str | Path,
    *,
    device: str | torch.device = "cpu",
    root: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Load a pretrained model: ``(model, model_config, meta)``, as
    :func:`sadyn.training.load_checkpoint` returns them (model in eval mode on ``device``).

    ``name_or_path``: a name (``"small-itrsa"``; see :func:`available`), a manifest path or a
    weights path. The weights file's SHA-256 must equal the manifest's, else
    :class:`~sadyn.errors.CheckpointError` (nothing is loaded). ``meta`` holds the manifest's
    provenance plus ``path`` (the manifest) and ``step`` (training steps).
    """
    manifest = manifest_path(name_or_path, root)
    info = read_manifest(manifest)
    weights = manifest.parent / str(info["weights"])
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file named by {manifest} is missing")
    digest = sha256_file(weights)
    if digest != info["sha256"]:
        raise CheckpointError(
            f"{weights}: SHA-256 {digest[:16]}... does not match the manifest's "
            f"{str(info['sha256'])[:16]}... ({manifest}); refusing to load a modified or "
            "corrupt weights file"
        )
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from exc
    config = dict(info["model_config"])
    try:
        model = build_model(dict(config))
    except Exception as exc:  # a foreign or edited config: report, do not crash
        raise CheckpointError(
            f"{manifest}: cannot build the model from its config ({exc})"
        ) from exc
    from sadyn.training.checkpoint import load_state_strict

    load_state_strict(model, tensors, weights)
    model = model.to(device).eval()
    provenance = dict(info.get("provenance", {}))
    meta = {
        **provenance,
        "pretrained": info["name"],
        "path": str(manifest),
        "weights": "ema",
        "sha256": info["sha256"],
        "step": provenance.get("steps"),
    }
    return model, config, meta


def is_pretrained_spec(spec: str | Path, root: str | Path | None = None) -> bool:
    """True when ``spec`` names a shipped model or is the path of a manifest / weights file."""
    path = Path(spec)
    if path.suffix in (".json", WEIGHTS_SUFFIX) and path.is_file():
        return not path.name.endswith(EVAL_SUFFIX) and path.name != "meta.json"
    return not path.exists() and str(spec) in available(root)


def resolve_model(
    spec: str | Path,
    *,
    which: str = "latest",
    weights: str = "ema",
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """A model from a run folder, a checkpoint folder, a pretrained name or manifest path:
    ``(model, model_config, meta)``. A path that exists wins over a name."""
    if is_pretrained_spec(spec):
        if weights != "ema":
            raise SadynError(f"{spec}: pretrained models hold EMA weights only (--weights ema)")
        return load_pretrained(spec, device=device)
    path = Path(spec)
    if not path.exists():
        known = available()
        raise CheckpointError(
            f"{spec}: no such run or checkpoint folder, and not a pretrained model name "
            f"(pretrained: {', '.join(known) if known else 'none shipped yet'})"
        )
    from sadyn.training.checkpoint import load_checkpoint

    return load_checkpoint(path, which=which, weights=weights, device=device)


def run_status(spec: str | Path) -> str | None:
    """For a training run folder: None when it finished, else a sentence saying what it is (an
    interrupted or unfinished run, evaluated at its latest checkpoint). None for anything else
    (a checkpoint folder, a pretrained model). A run folder without any checkpoint is an error
    naming the resume command."""
    from sadyn.training.checkpoint import POINTERS
    from sadyn.training.loop import CONFIG_NAME, SUMMARY_NAME

    path = Path(spec)
    if not (path / CONFIG_NAME).is_file() or is_pretrained_spec(spec):
        return None
    summary = {}
    if (path / SUMMARY_NAME).is_file():
        try:
            summary = json.loads((path / SUMMARY_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
    if not (path / POINTERS["latest"]).is_file():
        raise SadynError(
            f"{path} is a training run with no checkpoint yet (stopped before its first one); "
            f"nothing to evaluate. Resume it: sadyn train --out {path} --resume"
        )
    status = summary.get("status")
    if status in ("completed", "time_budget"):
        return None
    if status == "interrupted":
        return (
            f"{path} is an interrupted training run (stopped at step {summary.get('step')} of "
            f"{summary.get('total_steps')}); evaluating its checkpoint at that step. Resume: "
            f"sadyn train --out {path} --resume"
        )
    return (
        f"{path} is an unfinished training run (no final summary: still running, or killed); "
        "evaluating its latest checkpoint"
    )


def eval_record(name: str, root: str | Path | None = None) -> dict[str, Any] | None:
    """The shipped ``NAME.eval.json`` (the eval behind the documented numbers), or None."""
    folder = _folder(root)
    path = folder / f"{name}{EVAL_SUFFIX}"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = [
    "FORMAT",
    "PACKAGE_DIR",
    "available",
    "eval_record",
    "is_pretrained_spec",
    "load_pretrained",
    "manifest_path",
    "read_manifest",
    "resolve_model",
    "run_status",
    "sha256_file",
]
