"""sadyn.report: a self-contained HTML report built from results files alone.

``build_report(results_dir, out_file)`` finds every ``results.json`` under a folder, redraws
each figure from its numbers (``sadyn.report.figures``) and writes one HTML page with the
figures embedded, so the page opens anywhere without network or scripts.
"""

from sadyn.report.figures import render_png
from sadyn.report.html import (
    ReportSummary,
    build_report,
    find_failures,
    find_results,
    status_of,
)

__all__ = [
    "ReportSummary",
    "build_report",
    "find_failures",
    "find_results",
    "render_png",
    "status_of",
]
