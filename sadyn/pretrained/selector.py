"""Pretrained selector heads (:class:`sadyn.nn.selector.SelectorHead`), shipped beside the
looped model they read.

A head for model ``MODEL`` is two files in ``sadyn/pretrained/``: ``MODEL.selector.json`` (the
manifest: format, head config, the weights' SHA-256, the base model's name and SHA-256, and
provenance) and ``MODEL.selector-head.safetensors`` (the weights; read with safetensors only).
The weights' name differs from the manifest's stem, so :func:`sadyn.pretrained.available`
(which lists looped models) does not list heads.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sadyn.errors import CheckpointError
from sadyn.nn.selector import SelectorConfig, SelectorHead
from sadyn.pretrained import PACKAGE_DIR, sha256_file

FORMAT = "sadyn.selector/1"
MANIFEST_SUFFIX = ".selector.json"
WEIGHTS_SUFFIX = ".selector-head.safetensors"

__all__ = ["load_selector", "save_selector", "selector_manifest"]


def selector_manifest(model_name: str, root: str | Path | None = None) -> Path:
    """The manifest path of the head for the pretrained model ``model_name``."""
    return Path(root or PACKAGE_DIR) / f"{model_name}{MANIFEST_SUFFIX}"


def save_selector(
    head: SelectorHead,
    model_name: str,
    model_sha256: str,
    provenance: dict[str, Any],
    root: str | Path | None = None,
) -> Path:
    """Write the head's weights and manifest (each atomically: temp file, then rename);
    returns the manifest path."""
    folder = Path(root or PACKAGE_DIR)
    weights = folder / f"{model_name}{WEIGHTS_SUFFIX}"
    tmp = weights.with_suffix(".tmp")
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(tmp))
    os.replace(tmp, weights)
    info = {
        "format": FORMAT,
        "model": model_name,
        "model_sha256": model_sha256,
        "weights": weights.name,
        "sha256": sha256_file(weights),
        "config": head.config.to_dict(),
        "provenance": provenance,
    }
    manifest = selector_manifest(model_name, folder)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, encoding="utf-8") as fh:
        json.dump(info, fh, indent=2)
        fh.write("\n")
    os.replace(fh.name, manifest)
    return manifest


def load_selector(
    spec: str | Path, root: str | Path | None = None
) -> tuple[SelectorHead, dict[str, Any]]:
    """A head by its model's pretrained name or by its manifest path: ``(head in eval mode,
    manifest dict)``. A weights file whose SHA-256 differs from the manifest is refused."""
    path = Path(spec)
    if not (path.suffix == ".json" and path.is_file()):
        path = selector_manifest(str(spec), root)
    if not path.is_file():
        raise CheckpointError(f"{spec}: no selector head (looked for {path.name})")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable selector manifest ({exc})") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a selector manifest (format != {FORMAT!r})")
    weights = path.parent / str(info.get("weights"))
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights named by {path} are missing")
    if sha256_file(weights) != info.get("sha256"):
        raise CheckpointError(f"{weights}: SHA-256 does not match {path}; refusing to load")
    try:
        tensors = load_file(str(weights))
        head = SelectorHead(SelectorConfig(**info["config"]))
        head.load_state_dict(tensors)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: cannot load the selector head ({exc})") from exc
    return head.eval(), info


def check_selector_fits(head: SelectorHead, model_config: dict[str, Any], spec: str) -> None:
    """A clear error when ``head`` reads states of another width than the model's (a head
    trained beside one model, handed to another), instead of a matrix-shape error mid-run."""
    dim = model_config.get("dim")
    if dim is not None and head.config.dim != dim:
        raise CheckpointError(
            f"{spec}: the selector head reads states of width {head.config.dim}, but the model "
            f"has width {dim}; pass --selector with a head trained for this model"
        )
