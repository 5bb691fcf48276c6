"""Shared fixtures for the sadyn.sudoku tests: one chunk of SATNet-style puzzles, the 17-clue
pool, and an isolated data cache."""

from __future__ import annotations

import pytest

from sadyn.sudoku import rrn, satnet
from sadyn.sudoku.puzzles import PuzzleSet


@pytest.fixture(scope="session")
def satnet_chunk() -> PuzzleSet:
    """The first 1,000 puzzles of the seed-0 SATNet-style stream."""
    q, s = satnet.stream(0, 0, 0, 1000)
    return PuzzleSet(q, s, "satnet chunk 0")


@pytest.fixture(scope="session")
def royle_pool(royle_path) -> rrn.Pool:
    return rrn.load_pool(royle_path)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own data cache and no pool override from the environment."""
    monkeypatch.setenv("SADYN_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(rrn.ENV_POOL, raising=False)
