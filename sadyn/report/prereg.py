"""Was a verdict's criterion declared before its run? Read from the results file and the results
folder's criteria log (``criteria-log.jsonl``, appended by every recipe run: a ``declared`` entry
before anything is measured, a ``judged`` entry with the data's hash after).

:func:`criterion_status` returns the flags the report shows:

* ``stale``: the results file's criterion hash differs from the recipe's current one (the
  criterion or the judge's code changed since the run; the verdict is not the current rule's);
* ``post-hoc``: the same numbers (same data hash) were judged earlier under another criterion,
  i.e. the criterion changed after a recorded run of these very numbers;
* ``undeclared``: the log holds no declaration of this criterion before the run was measured;
* ``revised``: the recipe's criterion at this preset changed after an earlier recorded run
  (other numbers): this run's criterion was declared before its own measurement, but after
  someone had seen an earlier result;
* ``judge only``: the criterion was hashed under hash rule 1 (the judge method and its
  thresholds), so the helpers the judge calls, the seeds, members, sample sizes and data pool
  were not in what was declared. Such a record is compared with today's code under its own
  rule (``stale`` when its judge method or thresholds changed since); the flag says what the
  declaration did not cover. Not severe by itself: nothing shows a change after the run.

"declared before the run" holds when none of stale, post-hoc, undeclared is raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sadyn.io import read_jsonl

CRITERIA_LOG = "criteria-log.jsonl"
SEVERE = ("stale", "post-hoc", "undeclared")
FIELDS_CHANGED = "(criterion fields changed)"


# the criteria log is JSON lines
read_log = read_jsonl


def current_hash(record: Mapping[str, Any]) -> str | None:
    """The criterion hash the recipe named in ``record`` has today at the record's config,
    under the hash rule the record was written with; ``"(criterion fields changed)"`` when the
    recipe's criterion now has threshold fields that config lacks (so it differs, and the
    record is stale); None when the recipe is unknown."""
    try:
        from sadyn.experiments.base import ExperimentError, hash_rule_of
        from sadyn.experiments.registry import get_recipe

        recipe = get_recipe(str(record.get("name")))
    except Exception:  # an unknown recipe: nothing to compare with
        return None
    try:
        return recipe.criterion_hash(record.get("config") or {}, hash_rule_of(record))
    except ExperimentError:
        return FIELDS_CHANGED


def criterion_status(
    record: Mapping[str, Any],
    log: Sequence[Mapping[str, Any]],
    current: str | None = None,
) -> dict[str, Any]:
    """``{"hash", "current", "declared_at", "flags": [(kind, text)], "preregistered",
    "history": [(time, hash, event, note)]}`` for one results record (see the module doc)."""
    name, preset = record.get("name"), record.get("preset")
    h = record.get("criterion_hash")
    entries = [e for e in log if e.get("recipe") == name and e.get("preset") == preset]
    flags: list[tuple[str, str]] = []
    if h is None:
        flags.append(("undeclared", "no criterion hash: recorded before criteria were hashed"))
    spec = record.get("criterion")
    if h is not None and isinstance(spec, Mapping) and "hash_rule" not in spec:
        flags.append(
            (
                "judge only",
                "hashed under rule 1: the judge method and its thresholds only; the helpers it "
                "calls, seeds, members, sample sizes and data pool were not in the declared hash",
            )
        )
    if h is not None and current is not None and current != h:
        flags.append(
            (
                "stale",
                f"criterion {h} differs from the recipe's current one ({current}): the "
                "criterion or its judge changed after this run",
            )
        )
    measured = str(record.get("measured_at") or "")
    declared = sorted(
        str(e.get("time", ""))
        for e in entries
        if e.get("event") == "declared" and e.get("criterion_hash") == h
    )
    if h is not None and (not declared or (measured and declared[0] > measured)):
        flags.append(("undeclared", f"no declaration of criterion {h} before the run"))
    dh = record.get("data_hash")
    first_declared = declared[0] if declared else measured
    for e in entries:
        if e.get("event") != "judged" or e.get("criterion_hash") == h:
            continue
        if dh is not None and e.get("data_hash") == dh:
            flags.append(
                (
                    "post-hoc",
                    f"these numbers were first judged under criterion {e.get('criterion_hash')} "
                    f"({e.get('time')}): the criterion changed after a recorded run",
                )
            )
        elif str(e.get("time", "")) <= first_declared:
            flags.append(
                (
                    "revised",
                    f"criterion revised after a recorded run ({e.get('time')}, criterion "
                    f"{e.get('criterion_hash')}, {e.get('status', '?')}"
                    + (f"; {e['note']}" if e.get("note") else "")
                    + ")",
                )
            )
    # one line per kind and text
    flags = list(dict.fromkeys(flags))
    history = sorted(
        (
            str(e.get("time", "")),
            str(e.get("criterion_hash", "")),
            str(e.get("event", "")),
            str(e.get("note", e.get("status", ""))),
        )
        for e in entries
    )
    return {
        "hash": h,
        "current": current,
        "declared_at": declared[0] if declared else None,
        "flags": flags,
        "preregistered": not any(kind in SEVERE for kind, _ in flags),
        "history": history,
    }
