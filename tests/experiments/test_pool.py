"""RRN-style test sets: every results file records the pool they came from (Royle's list by its
SHA-256, or the fallback), and a run on another pool than the declared one is refused."""

from __future__ import annotations

import numpy as np
import pytest

from sadyn.experiments import base
from sadyn.experiments.base import ExperimentError, RunContext, pool_matches
from sadyn.experiments.cache import CheckpointCache
from sadyn.experiments.registry import get_recipe
from sadyn.experiments.sizes import doc_block, sizes_table
from sadyn.sudoku.puzzles import PuzzleSet
from sadyn.sudoku.rrn import ROYLE_SHA256


def _set(pool_meta: dict) -> PuzzleSet:
    sol = np.tile(np.arange(1, 10, dtype=np.uint8), (2, 9))
    quiz = sol.copy()
    quiz[:, :40] = 0
    return PuzzleSet(quiz, sol, "test", {"kind": "rrn", **pool_meta})


FALLBACK = {"pool": "fallback (sadyn minimal puzzles)"}
ROYLE = {"pool": "royle", "pool_sha256": ROYLE_SHA256}


def test_pool_matching():
    assert pool_matches(ROYLE_SHA256, "royle") and pool_matches(ROYLE_SHA256, None)
    assert not pool_matches("fallback", "royle") and not pool_matches("fallback", None)
    assert pool_matches("fallback", "fallback") and not pool_matches(ROYLE_SHA256, "fallback")
    assert pool_matches("ab" * 32, "ab" * 32) and pool_matches("fallback", "any")


def test_a_set_from_an_undeclared_pool_is_refused_and_a_declared_one_recorded(tmp_path):
    ctx = RunContext(tmp_path / "fig4", pool="royle")
    ctx.record_dataset("ood", 2, 0, _set(ROYLE))
    assert ctx.datasets[0]["pool"] == ROYLE_SHA256 and len(ctx.datasets[0]["sha256"]) == 64
    with pytest.raises(ExperimentError, match=r"fallback.*declared one .'royle'"):
        ctx.record_dataset("ood", 2, 0, _set(FALLBACK))
    declared = RunContext(tmp_path / "fig4", pool="fallback")
    declared.record_dataset("ood", 2, 0, _set(FALLBACK))
    assert declared.datasets[0]["pool"] == "fallback"
    # a set that does not come from a pool (SATNet-style) is recorded without one
    declared.record_dataset("id", 2, 0, PuzzleSet(*_set({}).to_torch(), "satnet"))
    assert declared.datasets[1]["pool"] is None


def test_a_run_on_the_fallback_pool_is_refused_before_anything_is_trained(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "available_pool", lambda: "fallback")
    recipe = get_recipe("fig4-test-time-scaling")
    cache = CheckpointCache(tmp_path / "cache")
    with pytest.raises(ExperimentError, match="refusing to run and judge"):
        recipe.run("tiny", tmp_path / "out" / recipe.name, cache=cache, overrides={"pool": "royle"})
    assert not any((tmp_path / "cache").glob("*-*"))  # nothing trained
    assert not (tmp_path / "out" / "criteria-log.jsonl").exists()  # nor declared


def test_results_record_the_sets_and_their_pools(tiny_run):
    _, records = tiny_run
    sets = {d["spec"]: d for d in records["fig4-test-time-scaling"]["datasets"]}
    assert set(sets) == {"id", "ood"} and sets["id"]["pool"] is None
    assert sets["ood"]["pool"] in (ROYLE_SHA256, "fallback")  # whichever this machine has
    fig5 = {d["spec"] for d in records["fig5-regularization"]["datasets"]}
    assert fig5 == {"id", "ood", "rrn:valid"}


def test_the_docs_sizes_table_is_the_recipes():
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "experiments.md"
    assert doc_block(doc) == sizes_table().strip()
    assert "| `fig4-test-time-scaling` | `ood_puzzles` | 20 | 100 | 1000 |" in sizes_table()
