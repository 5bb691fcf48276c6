"""Dry run, on the CPU at the tiny preset, of the one-call GPU training script: a run cut by
its budget in one call and finished in the next from the pieces the first left equals the
uninterrupted run, and each call says which weights it chose on the validation split."""

import importlib.util
import json
from pathlib import Path

import torch

from sadyn.training import read_checkpoint
from sadyn.training.packing import unpack_run

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "paper-train-call.py"


def load_script():
    spec = importlib.util.spec_from_file_location("paper_train_call", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_calls_equal_one_uninterrupted_run(tiny_run, puzzle_files, tmp_path):
    _, reference, _ = tiny_run
    script = load_script()
    ood = str(puzzle_files["ood"])
    common = [
        "--preset", "tiny", "--model", "itrsa", "--device", "cpu", "--max-mib", "0.0625",
        "--validation-n", "20",
        "--set", f"train_data={puzzle_files['train']}",
        "--set", "eval_data=" + json.dumps([str(puzzle_files["id"]), ood]),
        "--set", f"select_on={ood}",
        "--set", "tensorboard=false",
    ]  # fmt: skip
    # call 1: a budget that stops after the first step
    assert script.main([str(tmp_path / "call1"), "--budget-min", "1e-9", *common]) == 0
    first = json.loads((tmp_path / "call1" / "call.json").read_text())
    assert first["status"] == "time_budget" and first["step"] == 1 and not first["complete"]
    assert first["weights"]["validation"] == "satnet:valid"
    assert len(first["pieces"]) >= 3  # 64 KiB pieces
    # call 2: only the pieces of call 1 travel
    args = [str(tmp_path / "call2"), "--from", str(tmp_path / "call1" / "state"), *common]
    assert script.main([*args, "--budget-min", "60"]) == 0
    second = json.loads((tmp_path / "call2" / "call.json").read_text())
    assert second["complete"] and second["step"] == second["total_steps"] == 10
    assert second["weights"]["weights"] in ("raw", "ema")
    back = unpack_run(tmp_path / "call2" / "state", tmp_path / "back")
    a, b = read_checkpoint(back), read_checkpoint(reference)
    for x, y in ((a.model, b.model), (a.ema, b.ema)):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    optim = {k: v for k, v in a.state.items() if k.startswith("optim/")}
    assert optim and all(torch.equal(v, b.state[k]) for k, v in optim.items())
