"""``sadyn analyze`` end to end on a tiny checkpoint written through the training package."""

import numpy as np
import pytest
import torch

from sadyn.cli import main
from sadyn.models import build_model
from sadyn.results import read_results
from sadyn.sudoku import PuzzleSet, write_csv
from sadyn.training.checkpoint import save_checkpoint

PNG = b"\x89PNG\r\n\x1a\n"


def valid_grid(shift: int) -> np.ndarray:
    r, c = np.meshgrid(np.arange(9), np.arange(9), indexing="ij")
    return (((r * 3 + r // 3 + c) % 9 + shift) % 9 + 1).astype(np.uint8).reshape(81)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    torch.manual_seed(0)
    model = build_model({"model": "itrsa", "dim": 4, "heads": 2})
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_checkpoint(
        root / "run",
        step=1,
        model=weights,
        ema=weights,
        state={},
        meta={"model_config": model.config},
    )
    rng = np.random.default_rng(0)
    solutions = np.stack([valid_grid(s) for s in range(3)])
    quizzes = np.where(rng.random(solutions.shape) < 0.4, solutions, 0).astype(np.uint8)
    csv = write_csv(PuzzleSet(quizzes, solutions, "test grids"), root / "puzzles.csv")
    return root, csv


def test_analyze_writes_results_and_figures(workspace, capsys):
    root, csv = workspace
    out = root / "analysis"
    rc = main(
        [
            "analyze",
            str(root / "run"),
            "--data",
            str(csv),
            "--n",
            "3",
            "--out",
            str(out),
            "--horizon",
            "3",
            "--k",
            "3",
            "--qr-steps",
            "4",
            "--transient",
            "1",
            "--eig-samples",
            "1",
            "--ci-samples",
            "1",
            "--ci-every",
            "3",
            "--sens-n",
            "2",
            "--sens-warmup",
            "2",
            "--sens-steps",
            "6",
            "--sens-records",
            "4",
            "--scaling-steps",
            "1,3",
            "--scaling-data",
            str(csv),
            "--scaling-n",
            "3",
            "--votes",
            "1,2",
        ]
    )
    assert rc == 0
    record = read_results(out / "results.json")
    probes = record["probes"]
    assert set(probes) == {"jacobian", "lyapunov", "energy", "sensitivity", "scaling"}
    assert probes["jacobian"]["steps"] == [0, 3]
    assert len(probes["lyapunov"]["max_ftle"]) == 3
    assert np.array(probes["energy"]["energy"]).shape == (4, 3)
    assert probes["jacobian"]["summary"]["t=3"]["bound_holds"] is True
    scaling = probes["scaling"][str(csv)]
    assert scaling["votes"] == 2 and sorted(scaling["by_votes"]) == ["1", "2"]
    cond_start = record["data"]["model_config"].get("init") == "cond"
    assert scaling["steps"] == [1, 3] and scaling["anchor"] is cond_start
    assert f"compute-{csv}" in record["figures"] and "scaling" in record["figures"]
    from sadyn.report import build_report

    summary = build_report(out, out / "report.html")  # the report draws every probe's figure
    assert summary.figures == len(record["figures"]) and not summary.figure_errors
    assert f'data-figure="compute-{csv}"' in (out / "report.html").read_text()
    for name, spec in record["figures"].items():
        assert spec["kind"] == "png"
        assert (out / spec["path"]).read_bytes().startswith(PNG), name
    text = capsys.readouterr().out
    assert "max FTLE (T=3)" in text and "Prop 5.1 bound" in text
    assert "single run" in text and "K=2 verifier" in text
    assert "estimated" in text.splitlines()[0]  # the estimate comes first
    assert all(f"analyze: {name} took" in text for name in probes)
    data = record["data"]
    assert set(data["estimated_s"]) == set(probes) == set(data["timings_s"])


def test_analyze_subset_and_errors(workspace, capsys):
    root, csv = workspace
    out = root / "only"
    rc = main(
        [
            "analyze",
            str(root / "run"),
            "--data",
            str(csv),
            "--n",
            "2",
            "--out",
            str(out),
            "--probes",
            "lyapunov",
            "--horizon",
            "2",
            "--k",
            "2",
            "--qr-steps",
            "0",
            "--quiet",
        ]
    )
    text = capsys.readouterr().out  # --quiet: no estimate or progress lines, the summary only
    assert rc == 0 and "analyze:" not in text and text.startswith("analysis written to")
    record = read_results(out / "results.json")
    assert (
        list(record["probes"]) == ["lyapunov"]
        and record["probes"]["lyapunov"]["asymptotic"] is None
    )
    assert main(["analyze", str(root / "nowhere"), "--data", str(csv)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["analyze", str(root / "run"), "--data", str(csv), "--n", "0"]) == 2
