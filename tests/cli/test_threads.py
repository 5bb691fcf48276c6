"""Every command runs on one thread unless told otherwise: torch's default of one thread per
core oversubscribes a shared machine (measured 3-10x slower on a loaded 2-core machine)."""

from __future__ import annotations

import pytest
import torch

import sadyn.cli
from sadyn.cli import DEFAULT_THREADS, cap_native_threads

_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@pytest.fixture
def clean_env(monkeypatch):
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_default_is_one_thread_for_every_command(clean_env):
    import os

    assert DEFAULT_THREADS == 1
    for argv in (["train", "--preset", "small"], ["analyze", "small-itrsa"], ["eval", "x"]):
        for var in _VARS:
            clean_env.delenv(var, raising=False)
        assert cap_native_threads(argv) == 1
        assert all(os.environ[var] == "1" for var in _VARS)


def test_threads_flag_and_environment_win(clean_env):
    import os

    assert cap_native_threads(["eval", "x", "--threads", "3"]) == 3
    assert os.environ["OMP_NUM_THREADS"] == "3"
    assert cap_native_threads(["eval", "x", "--threads=2"]) == 2
    clean_env.setenv("OMP_NUM_THREADS", "4")
    assert cap_native_threads(["analyze", "x"]) == 4


def test_main_sets_torch_threads(clean_env, tmp_path):
    torch.set_num_threads(2)
    (tmp_path / "p.csv").write_text("0" * 81 + "\n")
    sadyn.cli.main(["data", "stats", str(tmp_path / "p.csv")])
    assert torch.get_num_threads() == 1


def test_top_level_help_lists_every_preset():
    from sadyn.cli import build_parser
    from sadyn.training.presets import preset_names

    text = build_parser().format_help()
    assert all(name in text for name in preset_names())
