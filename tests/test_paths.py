"""No machine's absolute path in the files sadyn writes (sadyn.paths, sadyn.results)."""

from __future__ import annotations

import json
from pathlib import Path

from sadyn.paths import portable_path, portable_record
from sadyn.results import write_results


def test_portable_path_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "itrsa"
    # inside the file's folder, or inside the working folder: relative
    assert portable_path(run / "checkpoints" / "step-1", run) == "checkpoints/step-1"
    assert portable_path(run, tmp_path / "elsewhere") == "runs/itrsa"
    # the same run written on another machine: relative to the run
    other = "/some/machine/cache/itrsa"
    assert portable_path(other, tmp_path / "models" / "itrsa") == "."
    assert portable_path(other + "/checkpoints/step-2", tmp_path / "models" / "itrsa") == (
        "checkpoints/step-2"
    )
    # elsewhere: from the run folder on, or the name
    assert portable_path("/x/y/run7/checkpoints/step-3", tmp_path) == "run7/checkpoints/step-3"
    assert portable_path("/x/y/data.csv", tmp_path) == "data.csv"
    assert portable_path("relative/kept", tmp_path) == "relative/kept"


def test_results_files_record_no_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "itrsa"
    out = tmp_path / "runs" / "itrsa" / "eval" / "results.json"
    record = {
        "name": "eval",
        "config": {"checkpoint": str(run / "checkpoints" / "step-9"), "note": "a b /c"},
        "data": {"source": "/elsewhere/puzzles.csv", "n": 3},
    }
    write_results(out, record)
    saved = json.loads(out.read_text())
    assert saved["config"]["checkpoint"] == "runs/itrsa/checkpoints/step-9"
    assert saved["config"]["note"] == "a b /c"  # prose is not a path
    assert saved["data"]["source"] == "puzzles.csv"
    assert not any(
        isinstance(v, str) and v.startswith("/") for v in _strings(saved) if v != "a b /c"
    )


def test_hashed_data_is_left_as_it_is(tmp_path):
    record = {"name": "fig", "data": {"path": "/abs/x"}, "data_hash": "0123"}
    write_results(tmp_path / "r.json", record)
    assert json.loads((tmp_path / "r.json").read_text())["data"] == {"path": "/abs/x"}


def test_portable_record_walks_nested_values():
    rec = portable_record({"a": ["/p/q/checkpoints/step-1", {"b": "/p/name"}], "c": 1}, Path("."))
    assert rec == {"a": ["q/checkpoints/step-1", {"b": "name"}], "c": 1}


def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj
