"""Report entries: criterion flags on claims only, two entries with one name told apart, and
the OOD pool named beside the numbers."""

from __future__ import annotations

import html
import re

from sadyn.report import build_report
from sadyn.results import write_results
from sadyn.sudoku.datasets import POOL_LABELS
from sadyn.sudoku.rrn import ROYLE_SHA256


def _eval_record(pool_sha):
    ood = {"steps": [16], "board_accuracy": [0.25], "pool_sha256": pool_sha}
    return {"name": "eval", "claim": None, "data": {"id": {"pool_sha256": None}, "ood": ood}}


def test_analysis_sections_carry_no_criterion_flags(tmp_path):
    write_results(tmp_path / "demo-eval" / "results.json", {**_eval_record("fallback")})
    claim = {"name": "claim1-energy", "verdict": {"passed": True, "criterion": "x"}}
    write_results(tmp_path / "claim" / "results.json", claim)  # no hash: flagged
    summary = build_report(tmp_path)
    page = summary.path.read_text()
    assert list(summary.criteria) == ["claim1-energy"]  # the claim only
    assert page.count("FLAGGED") == 1


def test_entries_with_one_name_are_told_apart(tmp_path):
    for folder in ("run-a", "run-b"):
        write_results(tmp_path / folder / "results.json", _eval_record(ROYLE_SHA256))
    summary = build_report(tmp_path)
    assert summary.claims == ["eval (run-a)", "eval (run-b)"]
    page = summary.path.read_text()
    ids = re.findall(r'<section class="claim" id="([^"]+)"', page)
    assert len(set(ids)) == 2


def test_the_ood_pool_is_named_beside_the_numbers(tmp_path):
    write_results(tmp_path / "a" / "results.json", _eval_record("fallback"))
    write_results(tmp_path / "b" / "results.json", {**_eval_record(ROYLE_SHA256), "name": "e2"})
    page = build_report(tmp_path).path.read_text()
    assert html.escape(f"ood: {POOL_LABELS['fallback']}") in page
    assert html.escape(f"ood: {POOL_LABELS['royle']}") in page
    assert 'class="pool fallback"' in page
