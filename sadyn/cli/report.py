"""``sadyn report DIR --out FILE.html``: one self-contained HTML page from a results folder."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="build a self-contained HTML report from a folder of results files",
        description="Find every results.json under DIR (as written by `sadyn reproduce` or "
        "`sadyn demo`), redraw each figure from its numbers and write one HTML page with "
        "figures embedded (no network, no scripts).",
    )
    p.add_argument("results_dir", metavar="DIR", help="folder holding results.json files")
    p.add_argument(
        "--out",
        metavar="FILE.html",
        default=None,
        help="where to write the page (default DIR/report.html)",
    )
    p.add_argument(
        "--title",
        default="sadyn: the paper's claims, reproduced",
        help="page title (default: %(default)r)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on a figure that cannot be drawn instead of noting it",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sadyn.report import build_report

    summary = build_report(args.results_dir, args.out, title=args.title, strict=args.strict)
    for name in summary.claims:
        print(f"{summary.statuses[name]:>13}  {name}")
    for name, msg in summary.failures.items():
        print(f"{'error':>13}  {name}: {msg}")
    for err in summary.figure_errors:
        print(f"warning: {err}", file=sys.stderr)
    print(f"report: {summary.path.resolve()} ({summary.figures} figures)")
    return 0
