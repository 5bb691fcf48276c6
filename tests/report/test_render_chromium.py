"""Open the report in headless Chromium and check that every figure actually rendered.

A test copy of the page gets a tiny script that, after the load event, writes each image's
``naturalWidth`` into the DOM; ``--dump-dom`` prints it back. A copy with one corrupted image
must fail the same check, so the check has teeth.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sadyn.report import build_report

CHROMIUM = next(
    (
        p
        for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
        if p and Path(p).exists()
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (Debian: apt-get install -y chromium); "
    "the report's figures were not render-checked in a browser",
)

_PROBE = """<script>
window.addEventListener('load', function () {
  var out = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    out.push({name: im.getAttribute('data-figure'), complete: im.complete,
              width: im.naturalWidth, height: im.naturalHeight});
  }
  var pre = document.createElement('pre');
  pre.id = 'sadyn-img-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _image_status(page: Path, tmp_path: Path) -> list[dict]:
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8"
    )
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="sadyn-img-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"Chromium did not run the check (rc={proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_every_figure_renders_in_chromium(results_dir, tmp_path):
    summary = build_report(results_dir, tmp_path / "report.html")
    status = _image_status(summary.path, tmp_path)
    assert len(status) == summary.figures == 5
    bad = [s for s in status if not (s["complete"] and s["width"] > 0 and s["height"] > 0)]
    assert not bad, f"figures that did not render: {bad}"


def test_check_detects_a_broken_figure(results_dir, tmp_path):
    summary = build_report(results_dir, tmp_path / "report.html")
    text = summary.path.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    # corrupt the first image's payload: still a data URI, no longer a decodable PNG
    broken.write_text(
        re.sub(r"base64,[A-Za-z0-9+/=]{40}", "base64,AAAA" * 10, text, count=1), encoding="utf-8"
    )
    status = _image_status(broken, tmp_path)
    assert sum(s["width"] == 0 for s in status) == 1


def test_recipe_report_renders_in_chromium(recipe_results, tmp_path):
    summary = build_report(recipe_results, tmp_path / "report.html")
    status = _image_status(summary.path, tmp_path)
    assert len(status) == summary.figures >= 8
    assert all(s["complete"] and s["width"] > 0 for s in status), status
