"""Paths in the files sadyn writes: relative, never a machine's absolute path.

A results file, a training summary or a manifest is read on other machines, so a path in it is
written relative to the file's folder (the run), else to the repository or the working folder,
else cut to the part that names the run (``small-itrsa/checkpoints/step-0002700``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

#: the repository (or installation) root: the folder above the ``sadyn`` package
REPO_ROOT = Path(__file__).resolve().parents[1]


def _under(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return None


def portable_path(path: str | Path, base: str | Path | None = None) -> str:
    """``path`` as a string with no machine-specific prefix.

    A relative path is kept. An absolute one becomes, in order: relative to ``base`` (the
    folder of the file being written) when inside it, or when ``base``'s own folder name occurs
    in it (the same run, written elsewhere); relative to the working folder or the repository
    when inside either; else its part from the run folder on (the folder above
    ``checkpoints``), or its last component (the run's or the file's name)."""
    text = str(path)
    if not os.path.isabs(text):
        return PurePosixPath(text).as_posix() if text else text
    p = Path(os.path.normpath(text))
    if base is not None:
        b = Path(os.path.abspath(base))
        inside = _under(p, b)
        if inside is not None:
            return inside
        if b.name and b.name in p.parts:
            i = len(p.parts) - 1 - p.parts[::-1].index(b.name)
            return PurePosixPath(*p.parts[i + 1 :]).as_posix() if i + 1 < len(p.parts) else "."
    for root in (Path.cwd(), REPO_ROOT):
        inside = _under(p, root)
        if inside is not None:
            return inside
    parts = p.parts
    if "checkpoints" in parts[1:]:
        i = parts.index("checkpoints")
        return PurePosixPath(*parts[i - 1 :]).as_posix()
    return p.name


def is_absolute_path(value: Any) -> bool:
    """A string that is an absolute POSIX or Windows path (one line, no spaces around)."""
    if not isinstance(value, str) or "\n" in value or value != value.strip() or not value:
        return False
    return value.startswith("/") or (len(value) > 2 and value[1] == ":" and value[2] in "\\/")


def portable_record(obj: Any, base: str | Path | None = None) -> Any:
    """``obj`` (JSON-like) with every absolute-path string made :func:`portable_path`."""
    if isinstance(obj, Mapping):
        return {k: portable_record(v, base) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable_record(v, base) for v in obj]
    if is_absolute_path(obj):
        return portable_path(obj, base)
    return obj


__all__ = ["REPO_ROOT", "is_absolute_path", "portable_path", "portable_record"]
