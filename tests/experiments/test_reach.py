"""The criterion hash covers every piece of code the judge reaches and the design fields: an
edit to a helper the judge calls, or to the seeds, changes it; an edit elsewhere does not."""

from __future__ import annotations

import dataclasses
import importlib
import linecache
import sys
import textwrap

import pytest

from sadyn.experiments.reach import code_hash, reached_code
from sadyn.experiments.registry import get_recipe

HELPERS = """
LIMIT = 3


def gate(x):
    return x > LIMIT


def unrelated(x):
    return x * 2
"""

RECIPE = """
from {pkg} import helpers
from {pkg}.helpers import gate


class Judge:
    def judge(self, record):
        return gate(record) and self._extra(record) and helpers.LIMIT

    def _extra(self, record):
        return record

    def measure(self):
        return helpers.unrelated(1)
"""


@pytest.fixture()
def toy_package(tmp_path, monkeypatch):
    """A package on disk (``reachtoy``: a recipe module and a helpers module) whose files a
    test can edit; returns a function that (re)imports it and hashes what the judge reaches."""
    pkg = tmp_path / "reachtoy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text(HELPERS)
    (pkg / "recipe.py").write_text(textwrap.dedent(RECIPE.format(pkg="reachtoy")))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("sadyn.experiments.reach.PACKAGE", "reachtoy")

    def reach():
        linecache.clearcache()
        for name in ("reachtoy.helpers", "reachtoy.recipe"):
            if name in sys.modules:
                importlib.reload(sys.modules[name])
            else:
                importlib.import_module(name)
        return reached_code(sys.modules["reachtoy.recipe"].Judge)

    yield pkg, reach
    for name in ("reachtoy.recipe", "reachtoy.helpers", "reachtoy"):
        sys.modules.pop(name, None)


def test_the_walk_finds_helpers_methods_and_constants(toy_package):
    _, reach = toy_package
    pieces = reach()
    assert set(pieces) == {
        "reachtoy.recipe:Judge.judge",
        "reachtoy.recipe:Judge._extra",  # through self.
        "reachtoy.helpers:gate",  # a name imported from another module
        "reachtoy.helpers:LIMIT",  # a constant, read by the helper and via helpers.LIMIT
    }
    assert pieces["reachtoy.helpers:LIMIT"] == "3"


def test_editing_a_helper_changes_the_hash_and_an_unrelated_function_does_not(toy_package):
    pkg, reach = toy_package
    before = code_hash(reach())
    helpers = pkg / "helpers.py"
    helpers.write_text(HELPERS.replace("return x * 2", "return x * 3"))  # measure-side only
    assert code_hash(reach()) == before
    helpers.write_text(HELPERS.replace("return x > LIMIT", "return x >= LIMIT"))
    assert code_hash(reach()) != before
    helpers.write_text(HELPERS.replace("LIMIT = 3", "LIMIT = 4"))  # a constant it reads
    assert code_hash(reach()) != before


def test_the_recipes_judges_reach_their_helpers_but_not_their_measuring_code():
    fig4 = reached_code(type(get_recipe("fig4-test-time-scaling")))
    for piece in ("_gain_check", "_gated", "_gains"):
        assert f"sadyn.experiments.fig4_test_time_scaling:{piece}" in fig4
    assert "sadyn.experiments.stats:welch" in fig4 and "sadyn.experiments.stats:decide" in fig4
    assert "sadyn.experiments.base:Verdict" in fig4  # how checks combine into the verdict
    assert not any(k.endswith(("_probe_code", ".measure", "_curve_stats")) for k in fig4)
    fig6 = reached_code(type(get_recipe("fig6-pseudo-energy")))
    assert "sadyn.experiments.fig6_pseudo_energy:_energy_drop" in fig6


def test_design_fields_enter_the_hash_under_rule_2_only():
    recipe = get_recipe("fig4-test-time-scaling")
    cfg = recipe.config("small")
    other = dataclasses.replace(cfg, seeds=(0, 1))
    assert recipe.criterion_hash(other) != recipe.criterion_hash(cfg)
    bigger = dataclasses.replace(cfg, ood_puzzles=1000)
    assert recipe.criterion_hash(bigger) != recipe.criterion_hash(cfg)
    fallback = dataclasses.replace(cfg, pool="fallback")
    assert recipe.criterion_hash(fallback) != recipe.criterion_hash(cfg)
    # rule 1 (results recorded before it changed) hashed the thresholds only: seeds, sizes and
    # the pool moved no hash, which is why the rule changed
    assert recipe.criterion_hash(other, 1) == recipe.criterion_hash(cfg, 1)
    spec = recipe.criterion_spec(cfg)
    assert spec["hash_rule"] == 2 and spec["design"]["seeds"] == [0, 1, 2]
    assert "sadyn.experiments.fig4_test_time_scaling:_gain_check" in spec["judge_reaches"]


def test_rule_1_reproduces_the_recorded_hashes():
    """The committed results were hashed under rule 1; it is kept so they can be checked."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results" / "small-claims"
    for name in ("fig2-eigenvalues", "fig4-test-time-scaling"):
        path = root / name / "results.json"
        if not path.is_file():
            pytest.skip("committed results not present")
        rec = json.loads(path.read_text())
        if "hash_rule" in rec["criterion"]:
            continue  # re-run under rule 2 since
        assert get_recipe(name).criterion_hash(rec["config"], 1) == rec["criterion_hash"]
