"""Data parallel: two gloo processes under torchrun train the model one process trains with the
same global batch (up to float summation order)."""

import os
import subprocess
import sys

import pytest
import torch

from sadyn.training import read_checkpoint, train

SETTINGS = {
    "seed": 5,
    "train_size": 120,
    "batch_size": 20,
    "epochs": 1,
    "ckpt_every": 0,
    "eval_every": 3,
    "eval_size": 10,
    "threads": 1,
}


@pytest.mark.slow
def test_two_processes_train_the_one_process_model(tmp_path, cli_data_args, make_config):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    flags = [x for k, v in SETTINGS.items() for x in (f"--{k}", str(v))]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "sadyn.cli.train",
        "--preset",
        "tiny",
        "--out",
        str(ddp),
        *flags,
        "--tensorboard",
        "false",
        "--no-progress",
        *cli_data_args,
    ]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    train(make_config(**SETTINGS), single, progress=False)
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]

    a, b = read_checkpoint(ddp), read_checkpoint(single)
    assert a.meta["step"] == b.meta["step"] == 6 and a.meta["world_size"] == 2
    for k, want in b.model.items():
        torch.testing.assert_close(a.model[k], want, rtol=1e-4, atol=1e-5, msg=k)
        torch.testing.assert_close(a.ema[k], b.ema[k], rtol=1e-4, atol=1e-5, msg=k)
    # the comparison is not vacuous: training moved the weights far beyond the tolerance
    torch.manual_seed(SETTINGS["seed"])
    from sadyn.models import build_model

    init = build_model(b.meta["model_config"]).state_dict()
    moved = max((init[k] - v).abs().max().item() for k, v in b.model.items())
    assert moved > 1e-3
