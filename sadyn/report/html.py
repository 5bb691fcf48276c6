"""One self-contained HTML page from a folder of results files (and nothing else).

The page needs no network and no script: CSS is inline, every figure is redrawn from the
numbers in its results file (``sadyn.report.figures``) and embedded as a base64 PNG. Per
claim it shows the paper's statement, the figures, the numbers, the verdict with its
pre-declared criterion, and the config and environment (versions, device, seeds, wall time).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sadyn.errors import DataFormatError, SadynError
from sadyn.io import atomic_write_bytes
from sadyn.report.figures import render_png
from sadyn.report.prereg import CRITERIA_LOG, criterion_status, current_hash, read_log
from sadyn.results import read_results

RESULTS_NAME = "results.json"
ERROR_NAME = "error.txt"  # written by `sadyn reproduce --keep-going` for a recipe that raised
SKIP_DIRS = frozenset({"cache", "checkpoints", ".git"})
STATUSES = ("pass", "fail", "no effect", "inconclusive")
_ENV_VOLATILE = ("written_at",)


@dataclass
class LoadedResult:
    """A results record and the folder its relative figure paths resolve against. ``key``: a
    name unique within one report (the record's name, or, where two files share it, the name
    with the folder they sit in), set by :func:`find_results`."""

    path: Path
    record: dict[str, Any]
    key: str = ""

    @property
    def name(self) -> str:
        return str(self.record.get("name") or self.path.parent.name)

    @property
    def label(self) -> str:
        """What the report calls this entry: its title (or name), with the folder added when
        two entries would otherwise read the same."""
        return self.key if self.key != self.name else str(self.record.get("title") or self.name)


def is_claim(record: Mapping[str, Any]) -> bool:
    """A record judged against a declared criterion (a recipe's run); evaluations, analyses and
    demo sections are not, so they carry no criterion flags."""
    return isinstance(record.get("verdict"), Mapping) or record.get("criterion_hash") is not None


def _unique_keys(results: list[LoadedResult], root: Path) -> None:
    """Give every entry a distinct ``key``: its name, or ``name (folder)`` when several
    entries share the name (e.g. a claim run twice into two folders)."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.name] = counts.get(r.name, 0) + 1
    for r in results:
        if counts[r.name] == 1:
            r.key = r.name
        else:
            folder = r.path.parent.relative_to(root).as_posix()
            r.key = f"{r.record.get('title') or r.name} ({folder})"


@dataclass
class ReportSummary:
    """What :func:`build_report` wrote."""

    path: Path
    claims: list[str]
    statuses: dict[str, str]
    figures: int
    figure_errors: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    criteria: dict[str, dict[str, Any]] = field(default_factory=dict)


def find_results(results_dir: str | Path) -> list[LoadedResult]:
    """Every ``results.json`` under ``results_dir`` (not in checkpoint caches), in claim order
    (the record's ``order``, then its name). Raises SadynError when there is none."""
    root = Path(results_dir)
    if not root.is_dir():
        raise SadynError(f"results folder not found: {root}")
    found = []
    for path in sorted(root.rglob(RESULTS_NAME)):
        if SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            continue
        found.append(LoadedResult(path, read_results(path)))
    if not found:
        raise SadynError(f"no {RESULTS_NAME} files under {root} (run `sadyn reproduce` first)")
    found.sort(key=lambda r: (_as_float(r.record.get("order"), math.inf), r.name))
    _unique_keys(found, root)
    return found


def find_failures(results_dir: str | Path) -> dict[str, str]:
    """Runs that raised instead of writing results: folder name -> the error's last line, from
    the ``error.txt`` that ``sadyn reproduce --keep-going`` leaves."""
    root = Path(results_dir)
    out = {}
    for path in sorted(root.rglob(ERROR_NAME)):
        if SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            continue
        if (path.parent / RESULTS_NAME).is_file():
            continue  # a later run succeeded
        lines = [
            ln
            for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
            if ln.strip()
        ]
        out[path.parent.name] = lines[-1] if lines else "unknown error"
    return out


def status_of(record: Mapping[str, Any]) -> str:
    """``pass`` / ``fail`` / ``inconclusive`` from a record's verdict (``not judged`` if none)."""
    verdict = record.get("verdict")
    if not isinstance(verdict, Mapping):
        return "not judged"
    status = verdict.get("status")
    if status in STATUSES:
        return str(status)
    passed = verdict.get("passed")
    return "pass" if passed is True else "fail" if passed is False else "inconclusive"


def build_report(
    results_dir: str | Path,
    out_file: str | Path | None = None,
    *,
    title: str = "sadyn: the paper's claims, reproduced",
    strict: bool = False,
) -> ReportSummary:
    """Write the report for every results file under ``results_dir`` to ``out_file``
    (default ``<results_dir>/report.html``).

    A figure that cannot be drawn is replaced by an error note (and listed in the summary),
    unless ``strict``, which raises instead.
    """
    results = find_results(results_dir)
    out = Path(out_file) if out_file is not None else Path(results_dir) / "report.html"
    log = read_log(Path(results_dir) / CRITERIA_LOG)
    criteria = {
        r.key: criterion_status(r.record, log, current_hash(r.record))
        for r in results
        if is_claim(r.record)
    }
    errors: list[str] = []
    n_figures = 0
    sections = []
    for res in results:
        section, n, errs = _claim_section(res, strict=strict, criterion=criteria.get(res.key))
        sections.append(section)
        n_figures += n
        errors.extend(errs)
    failures = find_failures(results_dir)
    page = _page(title, results, sections, Path(results_dir), failures, criteria)
    atomic_write_bytes(out, page.encode("utf-8"))
    return ReportSummary(
        path=out,
        claims=[r.key for r in results],
        statuses={r.key: status_of(r.record) for r in results},
        figures=n_figures,
        figure_errors=errors,
        failures=failures,
        criteria=criteria,
    )


# ---------------------------------------------------------------------------------------------
# page pieces


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _page(
    title: str,
    results: list[LoadedResult],
    sections: list[str],
    root: Path,
    failures: Mapping[str, str],
    criteria: Mapping[str, Mapping[str, Any]],
) -> str:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    envs = {
        json.dumps(_stable_env(r.record.get("environment", {})), sort_keys=True) for r in results
    }
    shared_env = ""
    if len(envs) == 1:
        shared_env = "<h2>Environment</h2>" + _kv_table(
            _stable_env(results[0].record.get("environment", {}))
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>{_e(title)}</h1>
<p class="meta">Built {_e(now)} from {len(results)} results file(s) in <code>{_e(root)}</code>.
Every figure is redrawn from the numbers in its results file.</p></header>
<main>
<h2>Summary</h2>
{_summary_table(results, criteria)}
{_failures(failures)}
{shared_env}
{"".join(sections)}
</main></body></html>
"""


def _failures(failures: Mapping[str, str]) -> str:
    if not failures:
        return ""
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_badge('error')}</td><td><code>{_e(msg)}</code></td></tr>"
        for name, msg in failures.items()
    )
    return (
        '<h3>Runs that did not finish (see their error.txt)</h3><table class="summary">'
        f"<tbody>{rows}</tbody></table>"
    )


def _summary_table(
    results: list[LoadedResult], criteria: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    rows = []
    for r in results:
        rec = r.record
        status = status_of(rec)
        reason = (rec.get("verdict") or {}).get("reason", "")
        crit = (criteria or {}).get(r.key)
        rows.append(
            f'<tr><td><a href="#{_e(_anchor(r))}">{_e(r.label)}</a></td>'
            f"<td>{_badge(status)}</td><td>{_criterion_cell(crit)}</td>"
            f"<td>{_e(rec.get('preset', ''))}</td>"
            f"<td>{_e(_fmt_seconds(rec.get('wall_time_s')))}</td><td>{_e(reason)}</td></tr>"
        )
    return (
        '<table class="summary"><thead><tr><th>claim</th><th>verdict</th><th>criterion</th>'
        "<th>preset</th><th>wall time</th><th>why</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _criterion_cell(crit: Mapping[str, Any] | None) -> str:
    """The criterion hash with its pre-registration state (and flag kinds)."""
    if not crit:
        return ""
    kinds = list(dict.fromkeys(kind for kind, _ in crit.get("flags", [])))
    state = "declared before the run" if crit.get("preregistered") else "FLAGGED"
    cls = "prereg" if crit.get("preregistered") else "flagged"
    extra = f" ({', '.join(kinds)})" if kinds else ""
    return (
        f'<code>{_e(crit.get("hash") or "none")}</code><br><span class="{cls}" '
        f'data-flags="{_e(" ".join(kinds))}">{_e(state + extra)}</span>'
    )


def _criterion_block(crit: Mapping[str, Any] | None) -> str:
    if not crit:
        return ""
    out = ['<div class="criterion">']
    out.append(
        f"<p><b>Criterion hash</b> <code>{_e(crit.get('hash') or 'none')}</code>; the "
        f"recipe's current one <code>{_e(crit.get('current') or 'unknown')}</code>; declared "
        f"{_e(crit.get('declared_at') or 'never')}.</p>"
    )
    if crit.get("flags"):
        out.append(
            '<ul class="flags">'
            + "".join(
                f'<li class="flag" data-flag="{_e(kind)}"><b>{_e(kind)}</b>: {_e(text)}</li>'
                for kind, text in crit["flags"]
            )
            + "</ul>"
        )
    if crit.get("history"):
        out.append(
            "<details><summary>Criteria log for this recipe and preset</summary>"
            + _rows_table(
                {"time": t, "criterion": h, "event": ev, "note": note}
                for t, h, ev, note in crit["history"]
            )
            + "</details>"
        )
    out.append("</div>")
    return "".join(out)


def _claim_section(
    res: LoadedResult, *, strict: bool, criterion: Mapping[str, Any] | None = None
) -> tuple[str, int, list[str]]:
    rec = res.record
    parts = [
        f'<section class="claim" id="{_e(_anchor(res))}">',
        f"<h2>{_e(res.label)} {_badge(status_of(rec))}</h2>",
    ]
    if rec.get("paper_ref"):
        parts.append(f'<p class="meta">Paper: {_e(rec["paper_ref"])}</p>')
    if rec.get("claim"):
        parts.append(f'<blockquote class="statement">{_e(rec["claim"])}</blockquote>')
    parts.append(_pool_block(rec))
    declared = criterion is None or bool(criterion.get("preregistered"))
    parts.append(_verdict_block(rec.get("verdict"), declared=declared))
    parts.append(_criterion_block(criterion))
    if rec.get("not_trained"):
        parts.append(
            '<p class="cut"><b>Cut from this run</b> (models not in the cache, not trained: '
            "the checks that needed them say so): " + _e(", ".join(rec["not_trained"])) + "</p>"
        )

    n, errors = 0, []
    figures = rec.get("figures") or {}
    if figures:
        parts.append('<div class="figures">')
        for fig_name, spec in figures.items():
            caption = spec.get("caption", fig_name) if isinstance(spec, dict) else fig_name
            try:
                png = render_png(spec, res.path.parent)
            except (SadynError, ValueError, TypeError, KeyError) as exc:
                if strict:
                    raise DataFormatError(f"figure {fig_name!r}: {exc}", res.path) from exc
                errors.append(f"{res.name}/{fig_name}: {exc}")
                parts.append(
                    f'<p class="figure-error">Figure {_e(fig_name)} could not be '
                    f"drawn: {_e(exc)}</p>"
                )
                continue
            n += 1
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" '
                f'alt="{_e(fig_name)}" data-figure="{_e(fig_name)}">'
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
        parts.append("</div>")

    for t_name, table in (rec.get("tables") or {}).items():
        parts.append(_data_table(t_name, table))
    notes = rec.get("notes") or []
    if notes:
        parts.append(
            "<h3>Notes and deviations from the paper</h3><ul>"
            + "".join(f"<li>{_e(n_)}</li>" for n_ in notes)
            + "</ul>"
        )
    parts.append(_run_block(rec))
    parts.append("</section>")
    return "\n".join(parts), n, errors


def _anchor(res: LoadedResult) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in res.key)


def pools_of(record: Mapping[str, Any]) -> dict[str, str]:
    """``{data set: pool label}`` for every RRN-style (OOD) set a record's numbers come from:
    entries of ``data`` (and of ``probes.scaling``, ``data.puzzles``) that record a pool."""
    from sadyn.sudoku.datasets import pool_label

    found: dict[str, str] = {}
    places: list[tuple[str, Any]] = []
    data = record.get("data")
    if isinstance(data, Mapping):
        places += [(str(k), v) for k, v in data.items()]
        places.append((str(record.get("config", {}).get("data", "puzzles")), data.get("puzzles")))
    scaling = (record.get("probes") or {}).get("scaling")
    if isinstance(scaling, Mapping):
        places += [(str(k), v) for k, v in scaling.items()]
    for name, entry in places:
        if isinstance(entry, Mapping) and entry.get("pool_sha256") is not None:
            found[name] = str(entry.get("pool") or pool_label(str(entry["pool_sha256"])))
    return found


def _pool_block(rec: Mapping[str, Any]) -> str:
    """One line per OOD set naming the pool its puzzles came from (Royle's list or the
    fallback): OOD numbers from different pools are not comparable."""
    pools = pools_of(rec)
    if not pools:
        return ""
    items = "; ".join(f"{_e(name)}: {_e(label)}" for name, label in pools.items())
    css = "pool fallback" if any(v.startswith("fallback") for v in pools.values()) else "pool"
    return f'<p class="{css}" data-pool="{_e(json.dumps(pools))}"><b>OOD pool</b> ({items})</p>'


def _verdict_block(verdict: Any, *, declared: bool = True) -> str:
    if not isinstance(verdict, Mapping):
        return '<p class="verdict">No verdict recorded.</p>'
    out = ['<div class="verdict">']
    if verdict.get("criterion"):
        label = (
            "Criterion (declared before the run)"
            if declared
            else "Criterion (NOT shown to be declared before the run: see the flags)"
        )
        out.append(f"<p><b>{label}:</b> {_e(verdict['criterion'])}</p>")
    if verdict.get("reason"):
        out.append(f"<p><b>Verdict:</b> {_e(verdict['reason'])}</p>")
    checks = verdict.get("checks") or []
    if checks:
        out.append(
            "<table><thead><tr><th>check</th><th>criterion</th><th>result</th>"
            "<th>numbers</th></tr></thead><tbody>"
        )
        for c in checks:
            judged = c.get("required", True)
            status = c.get("status", "inconclusive")
            # a check outside the verdict is context: no colored badge unless it has an outcome
            badge = _badge(status) if judged or status != "inconclusive" else _badge("not judged")
            note = f"<br><small>{_e(c['note'])}</small>" if c.get("note") else ""
            out.append(
                f"<tr><td>{_e(c.get('name', ''))}"
                f"{'' if judged else ' <i>(not judged)</i>'}</td>"
                f"<td>{_e(c.get('criterion', ''))}{note}</td><td>{badge}</td>"
                f"<td>{_numbers(c.get('numbers') or {})}</td></tr>"
            )
        out.append("</tbody></table>")
    if verdict.get("numbers"):
        out.append(_kv_table(verdict["numbers"]))
    out.append("</div>")
    return "".join(out)


def _run_block(rec: Mapping[str, Any]) -> str:
    run = {
        "preset": rec.get("preset"),
        "seed": rec.get("seed"),
        "device": rec.get("device"),
        "wall time": _fmt_seconds(rec.get("wall_time_s")),
    }
    out = [
        '<details class="run"><summary>Config, checkpoints and environment</summary>',
        _kv_table({k: v for k, v in run.items() if v is not None}),
    ]
    if rec.get("checkpoints"):
        out.append("<h4>Checkpoints</h4>" + _rows_table(rec["checkpoints"]))
    if rec.get("config") is not None:
        out.append(
            "<h4>Config</h4><pre>" + _e(json.dumps(rec["config"], indent=2, default=str)) + "</pre>"
        )
    if rec.get("environment"):
        out.append("<h4>Environment</h4>" + _kv_table(rec["environment"]))
    out.append("</details>")
    return "".join(out)


def _data_table(name: str, table: Any) -> str:
    if not isinstance(table, Mapping) or "columns" not in table or "rows" not in table:
        return f'<p class="figure-error">Table {_e(name)} is malformed.</p>'
    head = "".join(f"<th>{_e(c)}</th>" for c in table["columns"])
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_fmt(v))}</td>" for v in row) + "</tr>" for row in table["rows"]
    )
    caption = f"<caption>{_e(table.get('caption', name))}</caption>"
    return (
        f'<table class="numbers">{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _rows_table(rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f'<table class="numbers"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv_table(mapping: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in mapping.items())
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _numbers(mapping: Mapping[str, Any]) -> str:
    return "<br>".join(f"{_e(k)} = {_e(_fmt(v))}" for k, v in mapping.items())


def _badge(status: str) -> str:
    css = status.replace(" ", "-") if status in (*STATUSES, "error") else "none"
    return f'<span class="badge {css}" data-status="{_e(status)}">{_e(status)}</span>'


def _fmt(value: Any) -> str:
    """Numbers to 4 significant digits; long lists shortened; nested objects as JSON."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_fmt(v) for v in value[:8])
        return f"[{shown}{', ...' if len(value) > 8 else ''}]"
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    return str(value)


def _fmt_seconds(value: Any) -> str:
    s = _as_float(value, math.nan)
    if not math.isfinite(s):
        return ""
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _as_float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _stable_env(env: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in env.items() if k not in _ENV_VOLATILE}


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;
background:#fafafa}
header,main{max-width:1100px;margin:0 auto;padding:0 1.2em}
h1{margin:.8em 0 .2em}.meta{color:#666;font-size:.9em}
section.claim{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.4em 1.2em 1em;
margin:1.5em 0}
blockquote.statement{border-left:4px solid #88a;margin:.6em 0;padding:.2em .9em;
background:#f3f3fa}
.badge{display:inline-block;padding:.05em .55em;border-radius:4px;font-size:.8em;
font-weight:600;color:#fff;vertical-align:middle;text-transform:uppercase}
.badge.pass{background:#2a7d2e}.badge.fail{background:#b3261e}
.badge.inconclusive{background:#9a6a00}.badge.none{background:#777}
.badge.error{background:#5a1a6e}.badge.no-effect{background:#45617a}
.prereg{color:#2a7d2e;font-size:.85em}.flagged{color:#b3261e;font-weight:600;font-size:.85em}
ul.flags{color:#b3261e}.cut{color:#6a4a00}.pool.fallback{color:#9a6a00;font-weight:600}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
thead th{background:#f0f0f0}caption{text-align:left;font-weight:600;padding:.2em 0}
.figures{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:.5em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;max-width:560px}
.figure-error{color:#b3261e}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}
details.run{margin-top:.8em}
"""
