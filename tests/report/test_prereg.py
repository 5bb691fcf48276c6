"""Pre-registration: every results file carries its criterion's hash, the criteria log records
the declaration before the measurement, and the report flags a criterion that changed after a
recorded run (or differs from the recipe's current one)."""

from __future__ import annotations

import json

import pytest

from sadyn.experiments.base import CRITERIA_LOG
from sadyn.experiments.claim1_energy import Claim1Energy
from sadyn.experiments.registry import get_recipe, reproduce
from sadyn.report import build_report
from sadyn.report.prereg import criterion_status, read_log


@pytest.fixture()
def claim1_run(tmp_path):
    out = tmp_path / "results"
    (rec,) = reproduce(["claim1-energy"], "tiny", out)
    return out, rec


def test_results_carry_the_hash_and_the_log_declares_it_first(claim1_run):
    out, rec = claim1_run
    recipe = get_recipe("claim1-energy")
    assert rec["criterion_hash"] == recipe.criterion_hash(recipe.config("tiny"))
    assert rec["criterion"]["thresholds"] == {"tol": 1e-9}
    # the sweep is design: in the hash too
    assert rec["criterion"]["design"]["weight_scales"] == [1.0, 10.0]
    log = read_log(out / CRITERIA_LOG)
    declared = [e for e in log if e["event"] == "declared"]
    judged = [e for e in log if e["event"] == "judged"]
    assert declared[0]["criterion_hash"] == judged[0]["criterion_hash"] == rec["criterion_hash"]
    assert declared[0]["time"] < rec["measured_at"] <= judged[0]["time"]
    assert judged[0]["data_hash"] == rec["data_hash"]
    summary = build_report(out)
    st = summary.criteria["claim1-energy"]
    assert st["preregistered"] and not st["flags"]
    page = summary.path.read_text()
    assert rec["criterion_hash"] in page and "declared before the run" in page


def test_a_criterion_changed_after_a_recorded_run_is_flagged(claim1_run, monkeypatch):
    out, rec = claim1_run
    # someone edits the rule after seeing the result: the saved verdict is now stale
    monkeypatch.setattr(Claim1Energy, "criterion", Claim1Energy.criterion + " (edited)")
    stale = build_report(out).criteria["claim1-energy"]
    assert not stale["preregistered"] and [k for k, _ in stale["flags"]] == ["stale"]
    # ... and re-runs it: resume measures again (never re-judges silently), but the numbers
    # are the ones already judged under the first criterion: flagged as post hoc
    (again,) = reproduce(["claim1-energy"], "tiny", out, resume=True)
    assert again["criterion_hash"] != rec["criterion_hash"]
    assert again["data_hash"] == rec["data_hash"]
    summary = build_report(out)
    st = summary.criteria["claim1-energy"]
    assert "post-hoc" in [k for k, _ in st["flags"]] and not st["preregistered"]
    page = summary.path.read_text()
    assert 'data-flag="post-hoc"' in page and "FLAGGED" in page


def test_resume_keeps_a_result_whose_criterion_is_unchanged(claim1_run):
    out, rec = claim1_run
    (again,) = reproduce(["claim1-energy"], "tiny", out, resume=True)
    assert again["measured_at"] == rec["measured_at"]  # not measured again


def _rec(h="b", data="d2", measured="2026-01-02T00:00:00"):
    return {
        "name": "r",
        "preset": "small",
        "criterion_hash": h,
        "data_hash": data,
        "measured_at": measured,
    }


def _entry(event, h, time, data=None):
    return {
        "event": event,
        "recipe": "r",
        "preset": "small",
        "criterion_hash": h,
        "time": time,
        "data_hash": data,
    }


def test_status_flags_from_the_log():
    log = [
        _entry("declared", "a", "2025-12-01T00:00:00"),
        _entry("judged", "a", "2025-12-01T01:00:00", "d1"),
        _entry("declared", "b", "2026-01-01T00:00:00"),
        _entry("judged", "b", "2026-01-02T01:00:00", "d2"),
    ]
    st = criterion_status(_rec(), log, "b")
    # declared before its own run, but revised after an earlier recorded run: said, not fatal
    assert st["preregistered"] and [k for k, _ in st["flags"]] == ["revised"]
    assert [k for k, _ in criterion_status(_rec(), log[2:], "b")["flags"]] == []
    assert "stale" in [k for k, _ in criterion_status(_rec(), log, "c")["flags"]]
    late = criterion_status(_rec(measured="2025-12-31T00:00:00"), log[2:], "b")
    assert [k for k, _ in late["flags"]] == ["undeclared"] and not late["preregistered"]
    old = criterion_status({"name": "r", "preset": "small"}, [], None)
    assert not old["preregistered"]


def test_log_lines_are_json(claim1_run):
    out, _ = claim1_run
    for line in (out / CRITERIA_LOG).read_text().splitlines():
        assert isinstance(json.loads(line), dict)


def test_a_result_hashed_under_rule_1_is_checked_under_it_and_flagged(claim1_run, monkeypatch):
    """Results recorded before the hash covered the judge's helpers and the design stay as
    recorded: compared with today's code under their own rule, flagged for what it missed."""
    from sadyn.experiments.base import HASH_RULE, log_hash_rule_change
    from sadyn.report.prereg import current_hash
    from sadyn.results import read_results, write_results

    out, rec = claim1_run
    recipe = get_recipe("claim1-energy")
    path = out / "claim1-energy" / "results.json"
    old = read_results(path)
    old["criterion"] = recipe.criterion_spec(old["config"], 1)
    old["criterion_hash"] = recipe.criterion_hash(old["config"], 1)
    write_results(path, old)
    # as it was declared then
    log = [e for e in read_log(out / CRITERIA_LOG)]
    for e in log:
        e["criterion_hash"] = old["criterion_hash"]
    (out / CRITERIA_LOG).write_text("".join(json.dumps(e) + "\n" for e in log))
    assert current_hash(old) == old["criterion_hash"]  # rule 1 at today's code: unchanged
    st = criterion_status(old, read_log(out / CRITERIA_LOG), current_hash(old))
    assert [k for k, _ in st["flags"]] == ["judge only"] and st["preregistered"]
    # the change of rule is logged once per such result, with both hashes
    (entry,) = log_hash_rule_change(out, "rule 2 from now on")
    assert entry["criterion_hash"] == entry["same_rule_hash_now"] == old["criterion_hash"]
    assert entry["new_rule_hash_now"] == rec["criterion_hash"] and entry["to_rule"] == HASH_RULE
    assert read_log(out / CRITERIA_LOG)[-1]["event"] == "hash-rule-changed"
    assert log_hash_rule_change(out, "again") == []  # only rule-1 results get an entry
    # ... which an edit of the judge still makes stale under rule 1
    monkeypatch.setattr(Claim1Energy, "criterion", Claim1Energy.criterion + " (edited)")
    st = criterion_status(old, read_log(out / CRITERIA_LOG), current_hash(old))
    assert "stale" in [k for k, _ in st["flags"]] and not st["preregistered"]


def test_a_result_whose_criterion_gained_fields_is_stale():
    from sadyn.report.prereg import FIELDS_CHANGED, current_hash

    rec = {"name": "fig1-jacobian-norm", "preset": "small", "config": {"alpha": 0.05}}
    assert current_hash(rec) == FIELDS_CHANGED
    st = criterion_status({**rec, "criterion_hash": "a"}, [], current_hash(rec))
    assert "stale" in [k for k, _ in st["flags"]]
    assert current_hash({"name": "no-such-recipe"}) is None
