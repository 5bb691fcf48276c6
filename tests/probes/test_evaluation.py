"""The evaluation pipeline (sadyn.probes.evaluation): what ``sadyn eval`` writes, from a library
call; and the pretrained exporter's evaluation going through it rather than the command line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sadyn.cli import main
from sadyn.errors import SadynError
from sadyn.models import build_model
from sadyn.pretrained import resolve_model
from sadyn.probes.evaluation import EvalSettings, run_evaluation
from sadyn.results import read_results
from sadyn.sudoku import PuzzleSet, write_csv
from sadyn.training.checkpoint import save_checkpoint

# measured, not computed: differ between two runs
TIMINGS = {"wall_time_s", "cpu_time_s", "boards_per_s"}


def valid_grid(shift: int) -> np.ndarray:
    r, c = np.meshgrid(np.arange(9), np.arange(9), indexing="ij")
    return (((r * 3 + r // 3 + c) % 9 + shift) % 9 + 1).astype(np.uint8).reshape(81)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    torch.manual_seed(0)
    model = build_model({"model": "itrsa", "dim": 4, "heads": 2})
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_checkpoint(
        root / "run", step=1, model=weights, ema=weights, state={},
        meta={"model_config": model.config},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    solutions = np.stack([valid_grid(s) for s in range(4)])
    quizzes = np.where(rng.random(solutions.shape) < 0.4, solutions, 0).astype(np.uint8)
    csv = write_csv(PuzzleSet(quizzes, solutions, "test grids"), root / "puzzles.csv")
    return root, csv


def _without_timings(data: dict) -> dict:
    return {name: {k: v for k, v in res.items() if k not in TIMINGS} for name, res in data.items()}


def test_pipeline_writes_what_sadyn_eval_writes(workspace, tmp_path):
    """Same settings, same results file (config, numbers, figure) as the command: the command
    runs this pipeline, so the two cannot drift apart."""
    root, csv = workspace
    argv = ["eval", str(root / "run"), "--data", str(csv), "--steps", "1,3", "--n", "3",
            "--votes", "2", "--vote", "confidence", "--data-seed", "1", "--device", "cpu",
            "-q"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "cli.json")]) == 0
    settings = EvalSettings(
        data=str(csv), steps=[1, 3], n=3, votes=2, vote="confidence", data_seed=1, quiet=True
    )
    model, model_config, meta = resolve_model(root / "run")
    got = run_evaluation(model, model_config, meta, settings, tmp_path / "lib.json")
    assert got.out == tmp_path / "lib.json" and got.png.is_file()
    want, have = read_results(tmp_path / "cli.json"), read_results(got.out)
    assert have["config"] == want["config"] and have["seed"] == want["seed"]
    assert _without_timings(have["data"]) == _without_timings(want["data"])
    assert have["figures"] == want["figures"]
    assert have["data"]["puzzles"]["votes"] == 2 and have["data"]["puzzles"]["steps"] == [1, 3]


def test_settings_are_checked_before_any_work(workspace, tmp_path):
    root, _ = workspace
    model, model_config, meta = resolve_model(root / "run")
    with pytest.raises(SadynError, match="--votes must be >= 1"):
        run_evaluation(model, model_config, meta, EvalSettings(votes=0), tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_export_evaluates_through_the_pipeline(workspace, tmp_path, monkeypatch, capsys):
    """``python -m sadyn.pretrained.export --eval-n N`` writes NAME.eval.json by a library
    call: the command line is never entered."""
    import sadyn.cli
    from sadyn.pretrained import export as exporter

    root, csv = workspace
    entered = []
    monkeypatch.setattr(sadyn.cli, "main", lambda *a, **k: entered.append(a) or 0)
    folder = tmp_path / "weights"
    real = EvalSettings
    # the exporter's evaluation at its own defaults, on the test puzzles (no data generation)
    monkeypatch.setattr(
        "sadyn.probes.evaluation.EvalSettings",
        lambda **kw: real(**{**kw, "data": str(csv), "steps": [1, 2]}),
    )
    rc = exporter.main([str(root / "run"), "--name", "tiny-eval", "--out", str(folder),
                        "--trained-on", "cpu (test)", "--eval-n", "2"])  # fmt: skip
    assert rc == 0 and not entered
    record = read_results(folder / "tiny-eval.eval.json")
    assert record["name"] == "eval" and record["config"]["n"] == 2
    assert record["data"]["puzzles"]["steps"] == [1, 2]
    assert (folder / "tiny-eval.eval.png").is_file()
    manifest = json.loads((folder / "tiny-eval.json").read_text())
    assert record["config"]["step"] == manifest["provenance"]["steps"]
    assert "results:" in capsys.readouterr().out


def test_settings_hold_every_eval_option(workspace):
    """``EvalSettings`` has one field per ``sadyn eval`` option (same names), and the command's
    settings are the parsed namespace: a new option cannot be parsed and then dropped."""
    import dataclasses

    from sadyn.cli import build_parser
    from sadyn.cli.eval import settings_from

    root, csv = workspace
    argv = ["eval", str(root / "run"), "--data", str(csv), "--votes", "3", "--vote", "all",
            "--selector", "x", "--seed", "2", "--force", "--threads", "1"]  # fmt: skip
    ns = build_parser().parse_args(argv)
    fields = [f.name for f in dataclasses.fields(EvalSettings)]
    assert fields == [k for k in vars(ns) if k not in ("command", "func")]
    settings = settings_from(ns)
    assert dataclasses.asdict(settings) == {k: getattr(ns, k) for k in fields}
    assert settings.vote_rule() == ns.vote and settings.force and settings.votes == 3


def test_pipeline_names_its_file_and_keeps_another_evaluation(workspace, monkeypatch):
    """Without an ``out``, the file is named by the settings beside the run (as ``sadyn eval``
    names it); a file holding an evaluation with other settings is replaced only with force."""
    root, csv = workspace
    monkeypatch.chdir(root)  # relative paths: the results file records them as given
    model, model_config, meta = resolve_model("run")
    settings = EvalSettings(data=csv.name, steps=[1], n=2, quiet=True)
    got = run_evaluation(model, model_config, meta, settings)
    assert got.out == Path("run/eval/eval_puzzles_n2_K1_T1.json") and got.out.is_file()
    other = EvalSettings(data=csv.name, steps=[1], n=2, seed=1, quiet=True, out=str(got.out))
    with pytest.raises(SadynError, match=r"other settings \(seed differ\).*--force"):
        run_evaluation(model, model_config, meta, other)
    assert read_results(got.out)["config"]["seed"] == 0
    other.force = True
    assert run_evaluation(model, model_config, meta, other).out == got.out
    assert read_results(got.out)["config"]["seed"] == 1


def test_the_same_evaluation_of_an_absolute_path_may_be_rerun(workspace, tmp_path, monkeypatch):
    """A puzzle file given by its absolute path is recorded relative (no machine paths in
    results); re-running the identical evaluation must not be refused as 'data differ'."""
    root, csv = workspace
    monkeypatch.chdir(root)
    model, model_config, meta = resolve_model("run")
    out = tmp_path / "again" / "e.json"
    settings = EvalSettings(data=str(csv.resolve()), steps=[1], n=2, quiet=True, out=str(out))
    run_evaluation(model, model_config, meta, settings)
    assert not str(read_results(out)["config"]["data"][0]).startswith("/")
    assert run_evaluation(model, model_config, meta, settings).out == out  # no refusal
    changed = EvalSettings(
        data=str(csv.resolve()), steps=[1], n=2, seed=1, quiet=True, out=str(out)
    )
    with pytest.raises(SadynError, match=r"seed differ"):
        run_evaluation(model, model_config, meta, changed)
