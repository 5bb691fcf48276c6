"""A run's full training state in pieces of bounded size, for transfers that limit file sizes.

A GPU session returns a few files of limited size per call; a run that is to continue in a later
call (on the same or another device) needs everything :func:`sadyn.training.train` resumes
from: the run's ``config.json``, its ``latest.json`` / ``best.json`` pointers and the
checkpoint folders they name (online weights, EMA weights, optimizer moments, generator
states, step, elapsed training time), and ``log.jsonl`` so the log reads as one run.

:func:`pack_run` writes them as one uncompressed tar (float weights barely compress) cut into
``state.tar.NNN`` pieces of at most ``max_bytes``, each written atomically, then
``state-pack.json`` (written last: a pack is complete once it exists) with each piece's size
and SHA-256 and the whole archive's. :func:`unpack_run` checks every hash before it writes
anything, then extracts with the tar ``data`` filter (no absolute paths, no ``..``, no links
out of the folder). ``sadyn train --resume`` on the unpacked folder continues the run exactly
where it stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from sadyn.errors import CheckpointError
from sadyn.io import atomic_write_bytes, atomic_write_json
from sadyn.training.checkpoint import CKPT_SUBDIR, POINTERS

PACK_FORMAT = "sadyn.state-pack/1"
MANIFEST = "state-pack.json"
PIECE = "state.tar.{:03d}"
#: default piece size: under the GPU session's 16 MiB per returned file with room to spare
DEFAULT_MAX_BYTES = 15 * 2**20

__all__ = ["DEFAULT_MAX_BYTES", "MANIFEST", "pack_run", "run_files", "unpack_run"]


def run_files(run_dir: str | Path) -> list[Path]:
    """The files a resume needs, relative to ``run_dir``: every file outside ``checkpoints/``
    (config, pointers, log, summary) and every file of the checkpoint folders the pointers
    name (older checkpoints are left out)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file() or not (run_dir / POINTERS["latest"]).is_file():
        raise CheckpointError(f"{run_dir}: not a run folder (needs config.json and latest.json)")
    keep = set()
    for pointer in POINTERS.values():
        path = run_dir / pointer
        if path.is_file():
            keep.add(Path(json.loads(path.read_text(encoding="utf-8"))["checkpoint"]))
    out = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir)
        if rel.parts[0] == CKPT_SUBDIR and Path(*rel.parts[:2]) not in keep:
            continue
        if rel.name.startswith(".") and rel.name.endswith(".tmp"):  # an interrupted write
            continue
        out.append(rel)
    return out


def _archive(run_dir: Path, files: list[Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in files:
            info = tar.gettarinfo(str(run_dir / rel), arcname=rel.as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(run_dir / rel, "rb") as fh:
                tar.addfile(info, fh)
    return buf.getvalue()


def pack_run(
    run_dir: str | Path, dest: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[Path]:
    """Pack ``run_dir``'s training state into ``dest`` in pieces of at most ``max_bytes``.

    Returns:
        the files written: the pieces, then the manifest ``state-pack.json``.
    """
    run_dir, dest = Path(run_dir), Path(dest)
    if max_bytes < 1024:
        raise CheckpointError(f"max_bytes must be at least 1024, got {max_bytes}")
    files = run_files(run_dir)
    data = _archive(run_dir, files)
    pieces = []
    for i, lo in enumerate(range(0, len(data), max_bytes)):
        chunk = data[lo : lo + max_bytes]
        path = atomic_write_bytes(dest / PIECE.format(i), chunk)
        pieces.append(
            {"file": path.name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()}
        )
    latest = json.loads((run_dir / POINTERS["latest"]).read_text(encoding="utf-8"))
    manifest = {
        "format": PACK_FORMAT,
        "step": latest.get("step"),
        "files": [f.as_posix() for f in files],
        "pieces": pieces,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "max_bytes": max_bytes,
    }
    atomic_write_json(dest / MANIFEST, manifest)
    return [dest / p["file"] for p in pieces] + [dest / MANIFEST]


def _read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{src}: no {MANIFEST} (not a state pack, or an incomplete one)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from exc
    if manifest.get("format") != PACK_FORMAT:
        raise CheckpointError(f"{path}: format {manifest.get('format')!r}, not {PACK_FORMAT}")
    return manifest


def unpack_run(src: str | Path, run_dir: str | Path) -> Path:
    """Check and extract the state pack in ``src`` into ``run_dir`` (created; it must not
    already hold a run). Returns ``run_dir``."""
    src, run_dir = Path(src), Path(run_dir)
    manifest = _read_manifest(src)
    parts = []
    for piece in manifest["pieces"]:
        path = src / piece["file"]
        if not path.is_file():
            raise CheckpointError(f"{src}: piece {piece['file']} is missing")
        data = path.read_bytes()
        if len(data) != piece["bytes"] or hashlib.sha256(data).hexdigest() != piece["sha256"]:
            raise CheckpointError(f"{path}: size or SHA-256 differs from {MANIFEST}")
        parts.append(data)
    data = b"".join(parts)
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise CheckpointError(f"{src}: the joined pieces do not match the archive's SHA-256")
    if (run_dir / "config.json").exists():
        raise CheckpointError(f"{run_dir} already holds a run; unpack into a fresh folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        names = sorted(tar.getnames())
        if names != sorted(manifest["files"]):
            raise CheckpointError(f"{src}: the archive's files differ from {MANIFEST}'s list")
        tar.extractall(run_dir, filter="data")
    return run_dir
