"""Rewrite the absolute paths recorded in committed results files as portable ones.

Every JSON / JSON-lines file under the given folders (default: ``results`` and
``sadyn/pretrained``) has each string that is an absolute path replaced by
:func:`sadyn.paths.portable_path` relative to the file's folder (a run's own paths become
``.`` and ``checkpoints/step-...``; a run elsewhere is named by its folder; ``imported_from`` by
the run's name). The replacement is textual, string for string, so every other byte (numbers,
key order, layout) stays as it was, and no hashed content changes: criterion hashes cover the
criterion, data hashes a record's ``data``, and neither holds a path (checked: the rewrite
refuses to touch a ``data`` entry of a record that carries a ``data_hash``).

usage: .venv/bin/python scripts/relativize_result_paths.py [FOLDER ...] [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sadyn.paths import is_absolute_path, portable_path


def replacements(obj, base: Path, key: str = "", hashed: bool = False, out=None):
    """``{json string: json string}`` for every absolute path in ``obj``."""
    out = {} if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            in_hashed = hashed or (k == "data" and "data_hash" in obj)
            replacements(v, base, k, in_hashed, out)
    elif isinstance(obj, list):
        for v in obj:
            replacements(v, base, key, hashed, out)
    elif is_absolute_path(obj):
        if hashed:
            raise SystemExit(f"{base}: an absolute path inside hashed data ({obj}); not rewritten")
        new = Path(obj).name if key == "imported_from" else portable_path(obj, base)
        out.setdefault(json.dumps(obj), json.dumps(new))
    return out


def rewrite(path: Path, check: bool) -> int:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines() if path.suffix == ".jsonl" else [text]
    subs: dict[str, str] = {}
    for line in lines:
        if line.strip():
            replacements(json.loads(line), path.parent.resolve(), out=subs)
    if not subs:
        return 0
    count = 0
    for old, new in subs.items():
        count += text.count(old)
        text = text.replace(old, new)
    if not check:
        path.write_text(text, encoding="utf-8")
    return count


def main(argv: list[str]) -> int:
    check = "--check" in argv
    folders = [a for a in argv if a != "--check"] or ["results", "sadyn/pretrained"]
    total = 0
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.json*")):
            if path.suffix in (".json", ".jsonl"):
                n = rewrite(path, check)
                if n:
                    print(f"{path}: {n} path(s)")
                total += n
    print(f"{total} absolute path(s) {'found' if check else 'rewritten'}")
    return 1 if check and total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
