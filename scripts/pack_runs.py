"""Pack a ``sadyn paper`` output folder for a transfer that limits the number and the size of
files (the lent-GPU tool returns 8 files of 16 MiB): one gzip tar, cut into pieces of at most
``--max-mib`` (``cat DEST/paper.tgz.* | tar xz`` joins them).

    python scripts/pack_runs.py SRC DEST [--files 6] [--max-mib 15]

Kept: every file but the checkpoints no ``latest``/``best`` pointer names. When the archive
would need more than ``--files`` pieces, the training state (``state.safetensors``: optimizer
moments, generators) is dropped, largest runs first, then the ``best`` checkpoints that are not
the latest; what was dropped is listed in ``DEST/dropped.txt``.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path


def pointed_checkpoints(src: Path, names: tuple[str, ...]) -> set[Path]:
    """Checkpoint folders named by the ``names`` pointer files under ``src``."""
    keep = set()
    for pointer in src.rglob("*.json"):
        if pointer.name in names:
            try:
                rel = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            keep.add((pointer.parent / rel).resolve())
    return keep


def select(src: Path, keep: set[Path], drop_state: bool) -> list[Path]:
    files = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        parts = path.relative_to(src).parts
        if "checkpoints" in parts:
            i = parts.index("checkpoints")
            if src.joinpath(*parts[: i + 2]).resolve() not in keep:
                continue
            if drop_state and path.name == "state.safetensors":
                continue
        files.append(path)
    return files


def archive(src: Path, files: list[Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in files:
            tar.add(p, arcname=str(p.relative_to(src.parent)))
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--files", type=int, default=6, help="most pieces")
    ap.add_argument("--max-mib", type=float, default=15.0, help="largest piece, MiB")
    args = ap.parse_args()
    piece = int(args.max_mib * 2**20)
    everything = [p for p in args.src.rglob("*") if p.is_file()]
    attempts = (
        (("latest.json", "best.json"), False),
        (("latest.json", "best.json"), True),
        (("latest.json",), True),
    )
    for names, drop_state in attempts:
        kept = select(args.src, pointed_checkpoints(args.src, names), drop_state)
        data = archive(args.src, kept)
        if len(data) <= args.files * piece:
            break
    args.dest.mkdir(parents=True, exist_ok=True)
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)][: args.files]
    for i, chunk in enumerate(pieces):
        (args.dest / f"paper.tgz.{i:02d}").write_bytes(chunk)
    dropped = sorted(str(p.relative_to(args.src)) for p in set(everything) - set(kept))
    complete = len(data) <= args.files * piece
    if not complete:
        dropped.append("(the archive is cut: it needed more pieces than --files)")
    (args.dest / "dropped.txt").write_text("\n".join(dropped) + "\n", encoding="utf-8")
    print(
        f"packed {len(kept)} files, {len(data) / 2**20:.1f} MiB, into {len(pieces)} piece(s); "
        f"left out {len(everything) - len(kept)} file(s)"
    )
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
