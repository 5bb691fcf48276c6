"""The report page: structure, ordering, escaping, self-containment, errors."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import matplotlib.image as mpimg
import pytest
import torch

from sadyn.errors import DataFormatError, SadynError
from sadyn.report import build_report, find_results, status_of
from sadyn.results import write_results


class _Page(HTMLParser):
    """Collects sections (id -> badge statuses), images and any external references."""

    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.badges: list[tuple[str, str]] = []  # (section id, status)
        self.images: list[dict[str, str]] = []
        self.external: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "span" and "badge" in a.get("class", "") and self.sections:
            self.badges.append((self.sections[-1], a["data-status"]))
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href"):
            val = a.get(key) or ""
            if val and not val.startswith(("data:", "#")):
                self.external.append(val)


def _parse(path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return page, text


def test_report_has_every_claim_in_order_with_its_verdict(results_dir, tmp_path):
    out = tmp_path / "r.html"
    summary = build_report(results_dir, out)
    page, text = _parse(out)
    assert page.sections == ["beta", "alpha", "zeta"]  # by `order`, not by name
    assert summary.claims == ["beta", "alpha", "zeta"]
    first_badge = {}
    for sec, status in page.badges:
        first_badge.setdefault(sec, status)
    assert first_badge == {"beta": "fail", "alpha": "pass", "zeta": "inconclusive"}
    assert summary.statuses == first_badge
    # the statement, criterion, numbers, notes and environment are all on the page
    assert "Accuracy peaks at criticality." in text
    assert "best |LE| &lt; 0.3" in text
    assert "random tokens instead of arXiv text" in text
    assert torch.__version__ in text and "wall time" in text and "5.0 min" in text
    assert summary.figure_errors == []


def test_report_is_self_contained_and_every_image_decodes(results_dir):
    summary = build_report(results_dir)
    page, _ = _parse(summary.path)
    assert summary.path == results_dir / "report.html"
    assert page.external == [] and "script" not in page.tags and "link" not in page.tags
    assert len(page.images) == summary.figures == 5
    for img in page.images:
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        arr = mpimg.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert arr.shape[0] > 50 and arr.shape[1] > 50


def test_text_from_results_is_escaped(results_dir):
    _, text = _parse(build_report(results_dir).path)
    assert "<bounds>" not in text
    assert "Normalization &lt;bounds&gt; the Jacobian &amp; friends." in text


def test_bad_figure_is_noted_or_raises_when_strict(results_dir, tmp_path):
    rec = json.loads((results_dir / "beta" / "results.json").read_text())
    rec["figures"]["broken"] = {"kind": "line", "series": [{"x": [1, 2], "y": [1]}]}
    write_results(results_dir / "beta" / "results.json", rec)
    summary = build_report(results_dir, tmp_path / "r.html")
    assert len(summary.figure_errors) == 1 and "beta/broken" in summary.figure_errors[0]
    assert "could not be drawn" in (tmp_path / "r.html").read_text()
    with pytest.raises(DataFormatError, match="broken"):
        build_report(results_dir, tmp_path / "r.html", strict=True)


def test_missing_or_foreign_results_raise(tmp_path):
    with pytest.raises(SadynError, match="not found"):
        find_results(tmp_path / "nope")
    with pytest.raises(SadynError, match=r"no results\.json"):
        find_results(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(DataFormatError, match=re.escape(str(tmp_path / "x" / "results.json"))):
        find_results(tmp_path)


@pytest.mark.parametrize(
    "verdict, status",
    [
        (None, "not judged"),
        ({"passed": True}, "pass"),
        ({"passed": False}, "fail"),
        ({"passed": None}, "inconclusive"),
        ({"status": "fail", "passed": None}, "fail"),
    ],
)
def test_status_of(verdict, status):
    assert status_of({} if verdict is None else {"verdict": verdict}) == status


def test_report_of_recipe_results_shows_statement_verdict_config_environment(recipe_results):
    summary = build_report(recipe_results)
    page, text = _parse(summary.path)
    assert page.sections[0] == "claim1-energy"  # order 0
    assert set(page.sections) == {"claim1-energy", "fig1-jacobian-norm", "alpha", "beta", "zeta"}
    assert summary.statuses["claim1-energy"] == "pass"
    for name in ("claim1-energy", "fig1-jacobian-norm"):
        rec = json.loads((recipe_results / name / "results.json").read_text())
        assert _escape(rec["claim"]) in text
        assert _escape(rec["verdict"]["criterion"]) in text
    assert "Prop 5.1 bound" in text and "bound_rtol" in text  # checks and config
    assert "Environment" in text and "torch_threads" in text
    assert summary.figure_errors == []


def _escape(s: str) -> str:
    import html

    return html.escape(s, quote=True)


def test_a_run_that_raised_is_listed_not_hidden(results_dir):
    (results_dir / "fig9").mkdir()
    (results_dir / "fig9" / "error.txt").write_text("Traceback ...\nRuntimeError: boom\n")
    (results_dir / "alpha" / "error.txt").write_text("old failure, since rerun\n")
    summary = build_report(results_dir)
    assert summary.failures == {"fig9": "RuntimeError: boom"}
    text = summary.path.read_text()
    assert "RuntimeError: boom" in text and 'data-status="error"' in text
