"""`sadyn reproduce` and `sadyn report` from the command line (in process)."""

from __future__ import annotations

import json

import pytest

from sadyn.cli import main
from sadyn.cli.reproduce import parse_settings
from sadyn.errors import SadynError
from sadyn.results import read_results

FAST = [
    "--set",
    "fig1-jacobian-norm.samples=1",
    "--set",
    "fig1-jacobian-norm.tokens=[2,4]",
    # claim1 at its tiny sweep as it is: its near-miss control needs the preset's 20 states
]


def test_reproduce_writes_results_and_the_report(tmp_path, capsys):
    rc = main(
        [
            "reproduce",
            "claim1-energy",
            "fig1-jacobian-norm",
            "--preset",
            "tiny",
            "--out",
            str(tmp_path),
            "--quiet",
            *FAST,
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "pass  claim1-energy" in out and "report:" in out
    rec = read_results(tmp_path / "fig1-jacobian-norm" / "results.json")
    assert rec["config"]["samples"] == 1 and rec["config"]["tokens"] == [2, 4]
    assert (tmp_path / "report.html").is_file()

    page = tmp_path / "elsewhere" / "r.html"
    assert main(["report", str(tmp_path), "--out", str(page), "--strict"]) == 0
    text = page.read_text()
    assert "Claim 1: symmetric self-attention has an energy" in text
    assert text.count('<section class="claim"') == 2


def test_list_shows_every_recipe(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("claim1-energy", "fig3-criticality", "fig6-pseudo-energy"):
        assert f"{name}:" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "fig9"], "unknown recipe 'fig9'"),
        (["reproduce"], "name a recipe"),
        (["reproduce", "all", "--set", "samples=2"], "name the recipe"),
        (["reproduce", "fig1-jacobian-norm", "--set", "nope=2"], "unknown setting 'nope'"),
        (["reproduce", "fig1-jacobian-norm", "--set", "fig2-eigenvalues.loop=2"], "not being run"),
        (["report", "/nonexistent/results"], "not found"),
    ],
)
def test_user_errors_exit_2_with_a_message(argv, message, capsys, tmp_path):
    argv = [*argv, "--out", str(tmp_path / "o")] if argv[0] == "reproduce" else argv
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_report_of_a_folder_without_results_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_keep_going_records_a_failing_recipe(tmp_path, capsys, monkeypatch):
    from sadyn.experiments.fig1_jacobian_norm import RECIPE

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(type(RECIPE), "measure", boom)
    rc = main(
        [
            "reproduce",
            "claim1-energy",
            "fig1-jacobian-norm",
            "--out",
            str(tmp_path),
            "--keep-going",
            "--quiet",
            "--set",
            "claim1-energy.states=5",
        ]
    )
    assert rc == 1
    assert "error  fig1-jacobian-norm: RuntimeError: boom" in capsys.readouterr().out
    assert "boom" in (tmp_path / "fig1-jacobian-norm" / "error.txt").read_text()
    assert "RuntimeError: boom" in (tmp_path / "report.html").read_text()  # listed in the report
    assert json.loads((tmp_path / "claim1-energy" / "results.json").read_text())["verdict"]


def test_parse_settings():
    assert parse_settings(["a.x=1", "a.y=[1]"], ["a", "b"]) == {"a": {"x": "1", "y": "[1]"}}
    assert parse_settings(["x=1"], ["a"]) == {"a": {"x": "1"}}
    with pytest.raises(SadynError, match="expected"):
        parse_settings(["x"], ["a"])


def test_resume_skips_identical_runs_and_reruns_changed_ones(tmp_path, capsys):
    base = ["reproduce", "claim1-energy", "--out", str(tmp_path), "--quiet", "--no-report"]
    assert main([*base, "--set", "states=5"]) == 0
    first = read_results(tmp_path / "claim1-energy" / "results.json")
    assert main([*base, "--set", "states=5", "--resume"]) == 0
    same = read_results(tmp_path / "claim1-energy" / "results.json")
    assert same["wall_time_s"] == first["wall_time_s"]  # not rerun: the saved record
    assert main([*base, "--set", "states=6", "--resume"]) == 0
    changed = read_results(tmp_path / "claim1-energy" / "results.json")
    assert changed["config"]["states"] == 6 and len(changed["data"]) == len(first["data"])


def test_device_option(tmp_path):
    from sadyn.cli.reproduce import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(SadynError, match="--device must be"):
        resolve_device("tpu")
    assert (
        main(
            [
                "reproduce",
                "claim1-energy",
                "--out",
                str(tmp_path),
                "--quiet",
                "--no-report",
                "--device",
                "cpu",
                "--set",
                "states=3",
            ]
        )
        == 0
    )
    assert read_results(tmp_path / "claim1-energy" / "results.json")["device"] == "cpu"
