"""One tiny `reproduce all` per test session, shared by the recipe tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sadyn.experiments.registry import reproduce


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Every recipe at the tiny preset: (results folder, name -> record). Slow part of the
    suite (tens of seconds): trains a handful of D=16 models once, through one cache."""
    out = tmp_path_factory.mktemp("tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention
    try:
        records = reproduce("all", "tiny", out, cache_dir=out / "cache")
    finally:
        torch.set_num_threads(threads)
    return out, {r["name"]: r for r in records}
