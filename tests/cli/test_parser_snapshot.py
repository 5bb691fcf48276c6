"""``sadyn analyze``, ``sadyn paper``, ``sadyn eval`` and ``sadyn demo`` parse exactly as before
their parsers were rebuilt from tables: every option's strings, default, type, choices, help
text, metavar and group, and the namespace of a set of command lines (``analyze`` also after
``--full`` / cheap defaults are filled in: that namespace is the ``config`` its results file
records).

``data/parsers_analyze_paper.json``, ``data/parser_eval.json`` and ``data/parser_demo.json``
were written by running the parsers of the code before the move (``add_argument`` by hand) on
these command lines (the demo's also before its pipeline moved to the library); the first
was re-recorded once for two deliberate changes made beside the move: ``analyze
--ci-max-minutes`` (the block eigensolver's budget) and the ``paper`` help text that no longer
says "lent"; the second once for the ``ftle`` vote rule (the ``--vote`` help lists the rules).
Any other difference is a behaviour change of the parsers. ``--threads`` is left
out: it comes from ``sadyn.cli._args``, whose default is that module's business.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import pytest

from sadyn.cli import build_parser

DATA = Path(__file__).parent / "data"
SNAPSHOT = json.loads((DATA / "parsers_analyze_paper.json").read_text())
SNAPSHOT_EVAL = json.loads((DATA / "parser_eval.json").read_text())
SNAPSHOT["eval"] = SNAPSHOT_EVAL["eval"]
SNAPSHOT_DEMO = json.loads((DATA / "parser_demo.json").read_text())
SNAPSHOT["demo"] = SNAPSHOT_DEMO["demo"]
SKIP = {"threads"}


def _subparser(name: str) -> argparse.ArgumentParser:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("no subcommands")


def _describe(p: argparse.ArgumentParser) -> dict:
    rows = []
    for a in p._actions:
        if a.dest in SKIP or isinstance(a, argparse._HelpAction):
            continue
        group = next(g.title for g in p._action_groups if a in g._group_actions)
        if group in (p._optionals.title, p._positionals.title):
            group = None  # argparse's own groups: their titles differ between Python versions
        rows.append(
            {
                "option_strings": a.option_strings,
                "dest": a.dest,
                "default": a.default,
                "type": getattr(a.type, "__name__", None),
                "choices": list(a.choices) if a.choices else None,
                "help": a.help,
                "metavar": a.metavar,
                "nargs": a.nargs,
                "required": a.required,
                "const": a.const,
                "action": type(a).__name__,
                "group": group,
            }
        )
    return {"description": p.description, "actions": rows}


def _namespace(ns: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(ns).items() if k not in SKIP | {"func"}}


@pytest.mark.parametrize("name", ["analyze", "paper", "eval", "demo"])
def test_options_are_unchanged(name):
    got = json.loads(json.dumps(_describe(_subparser(name))))  # tuples -> lists, as stored
    want = SNAPSHOT[name]["parser"]
    assert got["description"] == want["description"]
    assert [a["dest"] for a in got["actions"]] == [a["dest"] for a in want["actions"]]
    for g, w in zip(got["actions"], want["actions"], strict=True):
        assert g == w, w["dest"]


@pytest.mark.parametrize(
    ("name", "python"),
    [
        ("paper", SNAPSHOT["python"]),
        ("eval", SNAPSHOT_EVAL["python"]),
        ("demo", SNAPSHOT_DEMO["python"]),
    ],
)
def test_help_text_is_unchanged(monkeypatch, name, python):
    if python != ".".join(platform.python_version_tuple()[:2]):
        pytest.skip("argparse formats help differently in another Python version")
    monkeypatch.setenv("COLUMNS", "100")
    assert _subparser(name).format_help() == SNAPSHOT[name]["help"]


@pytest.mark.parametrize("name", ["analyze", "paper", "eval", "demo"])
def test_command_lines_parse_as_before(name):
    for row in SNAPSHOT[name]["parses"]:
        ns = _namespace(build_parser().parse_args(row["argv"]))
        got = json.loads(json.dumps(ns))
        assert got == row["namespace"], row["argv"]
        assert list(got) == list(row["namespace"]), row["argv"]  # the results' key order


def test_analyze_settings_fill_in_as_before():
    """The settings ``analyze`` runs with and records: ``--full`` or the cheap defaults filled
    into every option left unset, the rest as parsed."""
    from sadyn.cli.analyze import settings_from

    for row in SNAPSHOT["analyze"]["parses"]:
        config = settings_from(build_parser().parse_args(row["argv"])).config()
        config = {k: v for k, v in config.items() if k not in SKIP}
        assert json.loads(json.dumps(config)) == row["resolved"], row["argv"]
        assert list(config) == list(row["resolved"]), row["argv"]
