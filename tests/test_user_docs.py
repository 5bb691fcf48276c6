"""User-facing names and text speak of the project, not of its work items: no tracked file or
folder named after an issue, no "issue 11" or "round 7" in the README, the docs, the results
READMEs, the presets' docstrings or the command line's help; and no results file records a
machine's absolute path."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORK_ITEM = re.compile(r"\bissue[ _-]?\d+|\bround \d+\b", re.IGNORECASE)
ISSUE_IN_NAME = re.compile(r"issue[ _-]?\d+", re.IGNORECASE)


def tracked(*patterns: str) -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--", *patterns], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        out = None
    if out is None or out.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / line for line in out.stdout.splitlines() if (ROOT / line).is_file()]


def user_docs() -> list[Path]:
    docs = tracked("README.md", "BENCHMARKS.md", "docs/*.md", "results/*/README.md", "gpu/*.md")
    # docs/dynamics.md: the numerics notes (their own history section)
    return [p for p in docs if p.name != "dynamics.md"]


def test_no_tracked_file_or_folder_is_named_after_an_issue():
    bad = [p.relative_to(ROOT).as_posix() for p in tracked() if ISSUE_IN_NAME.search(str(p))]
    assert bad == []


def test_user_docs_name_no_work_items():
    hits = []
    for path in user_docs():
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if WORK_ITEM.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert hits == []


def test_presets_and_command_help_name_no_work_items():
    from sadyn.cli import SUBCOMMANDS, build_parser
    from sadyn.training import presets

    texts = [presets.__doc__ or ""]
    parser = build_parser()
    texts.append(parser.format_help())
    sub = next(a for a in parser._actions if a.dest == "command")
    texts += [sub.choices[name].format_help() for name in SUBCOMMANDS if name in sub.choices]
    hits = [m.group(0) for text in texts for m in WORK_ITEM.finditer(text)]
    assert hits == []


def test_pretrained_manifests_name_no_work_items():
    """The demo and ``sadyn eval`` print a pretrained model's provenance."""
    hits = []
    for path in tracked("sadyn/pretrained/*.json"):
        text = path.read_text(encoding="utf-8")
        hits += [f"{path.name}: {m.group(0)}" for m in WORK_ITEM.finditer(text)]
        hits += [f"{path.name}: lent" for _ in re.finditer(r"\blent\b", text)]
    assert hits == []


def _absolute_paths(obj, where=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _absolute_paths(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _absolute_paths(v, f"{where}[{i}]")
    elif isinstance(obj, str) and re.match(r"^(/|[A-Za-z]:[\\/])\S", obj):
        yield f"{where} = {obj[:80]}"


def test_no_results_file_records_an_absolute_path():
    files = tracked("results/**.json", "results/**.jsonl", "sadyn/pretrained/*.json")
    assert files, "no results files found"
    hits = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        records = (
            [json.loads(ln) for ln in text.splitlines() if ln.strip()]
            if path.suffix == ".jsonl"
            else [json.loads(text)]
        )
        for record in records:
            hits += [f"{path.relative_to(ROOT)}: {h}" for h in _absolute_paths(record)]
    assert hits[:20] == [] and len(hits) == 0
