"""``sadyn train`` / ``sadyn eval`` end to end: flags, outputs, and clean errors."""

import json

import pytest
import torch

from sadyn.cli import main
from sadyn.results import read_results


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from sadyn.sudoku import get_dataset, write_csv

    root = tmp_path_factory.mktemp("cli_data")
    specs = {
        "train": ("satnet", "train", 100),
        "id": ("satnet", "test", 20),
        "ood": ("rrn", "test", 20),
    }
    files = {
        name: write_csv(
            get_dataset(k, s, n=n, seed=0, cache_dir=root / "c", progress=False),
            root / f"{name}.csv",
        )
        for name, (k, s, n) in specs.items()
    }
    return [
        "--train_data",
        str(files["train"]),
        "--eval_data",
        f"{files['id']},{files['ood']}",
        "--select_on",
        str(files["ood"]),
    ], files


@pytest.fixture(scope="module")
def run_dir(data, tmp_path_factory):
    flags, _ = data
    out = tmp_path_factory.mktemp("cli_run") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert (
            main(
                [
                    "train",
                    "--preset",
                    "tiny",
                    "--seed",
                    "1",
                    "--out",
                    str(out),
                    "--tensorboard",
                    "false",
                    "--no-progress",
                    *flags,
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(before)
    return out


def test_print_config_applies_overrides(capsys, tmp_path):
    assert (
        main(
            [
                "train",
                "--preset",
                "small",
                "--out",
                str(tmp_path / "x"),
                "--print-config",
                "--model",
                "akorn",
                "--model.dim",
                "64",
                "--model.input_scale",
                "raw",
                "--lr",
                "5e-4",
                "--eval_steps",
                "8,16",
                "--max_minutes",
                "none",
                "--train_steps_random",
                "8,24",
                "--tensorboard",
                "false",
            ]
        )
        == 0
    )
    cfg = json.loads(capsys.readouterr().out)
    from sadyn.training import get_preset

    expected = {**get_preset("small").model, "model": "akorn", "dim": 64, "input_scale": "raw"}
    assert cfg["model"] == expected  # kind switched, overrides applied, other keys kept
    assert cfg["lr"] == 5e-4 and cfg["eval_steps"] == [8, 16] and cfg["max_minutes"] is None
    assert cfg["train_steps_random"] == [8, 24] and cfg["tensorboard"] is False
    assert cfg["epochs"] == get_preset("small").epochs  # the rest is the preset's


def test_train_then_eval(run_dir, data, capsys):
    _, files = data
    assert (run_dir / "summary.json").is_file() and (run_dir / "curve.png").is_file()
    out = run_dir / "eval" / "votes.json"
    assert (
        main(
            [
                "eval",
                str(run_dir),
                "--data",
                f"{files['id']},{files['ood']}",
                "--steps",
                "2,4,8",
                "--votes",
                "2",
                "--vote",
                "confidence",
                "--n",
                "10",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "oracle" in printed and str(out) in printed
    record = read_results(out)
    assert set(record["data"]) == {"id", "ood"}
    for res in record["data"].values():
        assert res["steps"] == [2, 4, 8] and res["n"] == 10 and res["votes"] == 2
        assert len(res["board_accuracy"]) == 3
    assert record["config"]["step"] == 5 and record["figures"]["accuracy_vs_loops"]["series"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_clean_errors(run_dir, data, tmp_path, capsys):
    flags, _ = data
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a sadyn checkpoint" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--out", str(run_dir), *flags]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--preset",
                "tiny",
                "--out",
                str(tmp_path / "r"),
                "--model",
                "preln-itrsa",
                "--model.omega_init",
                "0.3",
                *flags,
            ]
        )
        == 2
    )
    assert "omega_init" in capsys.readouterr().err
    assert (
        main(["train", "--preset", "tiny", "--out", str(tmp_path / "r2"), "--epochs", "many"]) == 2
    )
    assert "epochs" in capsys.readouterr().err


def test_divergence_exits_nonzero_without_traceback(data, tmp_path, capsys):
    flags, _ = data
    code = main(
        [
            "train",
            "--preset",
            "tiny",
            "--out",
            str(tmp_path / "d"),
            "--model.norm",
            "none",
            "--model.eta0",
            "1e30",
            "--tensorboard",
            "false",
            "--no-progress",
            *flags,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "diverged at step 1" in err and "Traceback" not in err
