"""Every file a results README or results JSON names is in the repository (tracked by git),
or listed in ``results/not-kept.json`` with the reason it is not.

A README names a file in backticks (`` `runs/itrsa` ``, `` `eval/ood.json` ``): a token with a
``/`` or a file extension, relative (absolute paths describe another machine). It resolves if
a tracked file or folder under the README's folder, or under the repository root, ends with
it (a README may name ``results.json`` of each of its subfolders). A results JSON names files
under the keys in :data:`FILE_KEYS`, relative to its folder or to the repository root.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_KEPT = ROOT / "results" / "not-kept.json"
TICKED = re.compile(r"`([^`\s]+)`")
EXTENSIONS = re.compile(r"\.(json|jsonl|safetensors|png|svg|html|log|csv|txt|md|gz|pt|py)$")
FILE_KEYS = {"path", "file", "files", "out", "weights"}

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(),
    reason="needs the git checkout",
)


def tracked() -> tuple[set[str], set[str]]:
    """(tracked files, every folder above one), as repository-relative POSIX paths."""
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    files = {f for f in out.split("\0") if f}
    folders = {str(p) for f in files for p in Path(f).parents if str(p) != "."}
    return files, folders


def expand(token: str) -> list[str]:
    """``a{0,1}b`` -> ``[a0b, a1b]`` (shell braces); other tokens unchanged."""
    parts = re.split(r"\{([^{}]*,[^{}]*)\}", token)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def looks_like_file(token: str) -> bool:
    if token.startswith(("/", "~", "http", "-", "$", "<")) or any(c in token for c in "<>*=@"):
        return False
    return "/" in token or bool(EXTENSIONS.search(token))


def resolves(ref: str, base: str, files: set[str], folders: set[str]) -> bool:
    ref = os.path.normpath(ref).rstrip("/")
    for root in (base, "."):
        exact = os.path.normpath(os.path.join(root, ref))
        if exact in files or exact in folders:
            return True
    prefix = base.rstrip("/") + "/"
    return any(
        p.startswith(prefix) and (p == prefix + ref or p.endswith("/" + ref))
        for p in itertools.chain(files, folders)
    )


def readme_refs(files: set[str]) -> list[tuple[str, int, str]]:
    refs = []
    for f in sorted(f for f in files if f.startswith("results/") and f.endswith("README.md")):
        for n, line in enumerate((ROOT / f).read_text(encoding="utf-8").splitlines(), 1):
            for token in TICKED.findall(line):
                token = token.rstrip(",.;:)")
                if looks_like_file(token):
                    refs += [(f, n, t) for t in expand(token)]
    return refs


def json_refs(files: set[str]) -> list[tuple[str, str, str]]:
    refs = []

    def walk(obj, f, key=None):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, f, key)
        elif isinstance(obj, str) and key in FILE_KEYS and looks_like_file(obj) and " " not in obj:
            refs.append((f, key, obj))

    for f in sorted(f for f in files if f.startswith("results/") and f.endswith(".json")):
        if f == "results/not-kept.json":
            continue
        walk(json.loads((ROOT / f).read_text(encoding="utf-8")), f)
    return refs


def not_kept() -> dict[str, str]:
    """``results/not-kept.json``: repository-relative path (or folder prefix ending in ``/``)
    -> why it is not in the repository."""
    table = json.loads(NOT_KEPT.read_text(encoding="utf-8")) if NOT_KEPT.exists() else {}
    for path, reason in table.items():
        assert isinstance(reason, str) and len(reason) > 20, f"{path}: say why it is not kept"
    return table


def listed(ref: str, base: str, table: dict[str, str]) -> bool:
    """Whether ``ref`` (relative to ``base`` or to the root) is in the not-kept table."""
    for root in (base, "."):
        path = os.path.normpath(os.path.join(root, ref))
        if path in table or any(k.endswith("/") and path.startswith(k) for k in table):
            return True
    return False


def test_every_file_a_results_readme_names_is_tracked():
    files, folders = tracked()
    lost = not_kept()
    missing = [
        f"{readme}:{line}: `{ref}`"
        for readme, line, ref in readme_refs(files)
        if not resolves(ref, str(Path(readme).parent), files, folders)
        and not listed(ref, str(Path(readme).parent), lost)
    ]
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


def test_every_file_a_results_json_names_is_tracked():
    files, folders = tracked()
    lost = not_kept()
    missing = [
        f"{f}: {key} = {ref!r}"
        for f, key, ref in json_refs(files)
        if not resolves(ref, str(Path(f).parent), files, folders)
        and not listed(ref, str(Path(f).parent), lost)
    ]
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


def test_the_checker_finds_a_missing_file(tmp_path):
    files = {"results/x/README.md", "results/x/a/results.json", "gpu/jobs.json"}
    folders = {"results", "results/x", "results/x/a", "gpu"}
    assert resolves("results.json", "results/x", files, folders)  # a subfolder's file
    assert resolves("a", "results/x", files, folders)  # a folder
    assert resolves("gpu/jobs.json", "results/x", files, folders)  # from the root
    assert not resolves("runs/itrsa", "results/x", files, folders)
    assert expand("v_half{0,1}.json") == ["v_half0.json", "v_half1.json"]
    assert not looks_like_file("/abs/path.json") and looks_like_file("runs/akorn")
    table = {"out/cache/": "a scratch cache; kept elsewhere", "results/x/runs/a": "lost ..."}
    assert listed("out/cache/m1", "results/x", table) and listed("runs/a", "results/x", table)
    assert not listed("runs/b", "results/x", table)


def test_runs_pattern_is_anchored_to_the_repository_root():
    """A ``runs/`` folder inside results/ is kept; the scratch ``/runs/`` at the root is not."""
    check = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", "results/some-run/runs/model/x.json"],
        cwd=ROOT,
    )
    assert check.returncode == 1  # not ignored
    check = subprocess.run(["git", "check-ignore", "-q", "--no-index", "runs/x.json"], cwd=ROOT)
    assert check.returncode == 0
