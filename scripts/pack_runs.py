"""Pack a ``sadyn paper`` output folder into at most ``--files`` gzip tar archives of at most
``--max-mib`` each, for a transfer that limits both (the lent-GPU tool returns 8 files of
16 MiB). Every file is kept except superseded checkpoints: of each run's ``checkpoints/`` only
the folders its ``latest`` and ``best`` pointers name are kept.

    python scripts/pack_runs.py SRC DEST [--files 7] [--max-mib 15]

Files are grouped by run folder (a run is never split across archives); a run too large for
one archive keeps its EMA weights and drops the training state (noted in ``DEST/dropped.txt``).
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path


def kept_files(src: Path) -> list[Path]:
    """Every file under ``src`` but the checkpoints no pointer names."""
    keep_ckpt: set[Path] = set()
    for pointer in src.rglob("*.json"):
        if pointer.name in ("latest.json", "best.json"):
            try:
                target = json.loads(pointer.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            name = target.get("checkpoint") or target.get("path") or target.get("name")
            if isinstance(name, str):
                keep_ckpt.add((pointer.parent / name).resolve())
                keep_ckpt.add((pointer.parent / "checkpoints" / Path(name).name).resolve())
    files = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        parts = path.relative_to(src).parts
        if "checkpoints" in parts:
            i = parts.index("checkpoints")
            ckpt = src.joinpath(*parts[: i + 2]).resolve()
            if keep_ckpt and ckpt not in keep_ckpt:
                continue
        files.append(path)
    return files


def group_key(src: Path, path: Path) -> str:
    """The run folder a file belongs to (``jobs/NAME``, ``runs/NAME``) or its top folder."""
    parts = path.relative_to(src).parts
    if len(parts) > 2 and parts[0] in ("jobs", "runs"):
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else "."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--files", type=int, default=7)
    ap.add_argument("--max-mib", type=float, default=15.0)
    args = ap.parse_args()
    limit = args.max_mib * 2**20
    groups: dict[str, list[Path]] = {}
    for path in kept_files(args.src):
        groups.setdefault(group_key(args.src, path), []).append(path)
    dropped = []
    for key, paths in groups.items():
        if sum(p.stat().st_size for p in paths) > limit:  # keep the weights, not the state
            slim = [p for p in paths if p.name != "state.safetensors"]
            dropped += [str(p.relative_to(args.src)) for p in paths if p not in slim]
            groups[key] = slim
    # first-fit decreasing into at most --files bins (sizes before compression: a bound)
    bins: list[list[Path]] = []
    sizes: list[int] = []
    for key in sorted(groups, key=lambda k: -sum(p.stat().st_size for p in groups[k])):
        size = sum(p.stat().st_size for p in groups[key])
        for i in range(len(bins)):
            if sizes[i] + size <= limit:
                bins[i] += groups[key]
                sizes[i] += size
                break
        else:
            if len(bins) < args.files:
                bins.append(list(groups[key]))
                sizes.append(size)
            else:
                dropped += [str(p.relative_to(args.src)) for p in groups[key]]
    args.dest.mkdir(parents=True, exist_ok=True)
    for i, paths in enumerate(bins):
        with tarfile.open(args.dest / f"part{i}.tar.gz", "w:gz") as tar:
            for p in paths:
                tar.add(p, arcname=str(p.relative_to(args.src.parent)))
    (args.dest / "dropped.txt").write_text("\n".join(dropped) + "\n", encoding="utf-8")
    print(f"packed {sum(map(len, bins))} files into {len(bins)} archive(s); dropped {len(dropped)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
