"""What a recipe is: a claim of the paper, a pre-declared criterion, a run, and a judgement.

A recipe holds its settings as data: one frozen dataclass per recipe (``Config``) and a
``presets`` dict mapping ``tiny`` / ``small`` / ``paper`` to instances of it. The thresholds of
the criterion are fields of that dataclass, so they are fixed (and recorded in the results
file) before anything is measured, and :meth:`Recipe.judge` can re-judge a saved results file
without running anything.

:meth:`Recipe.run` is the template: resolve the config, :meth:`Recipe.measure` (the recipe's
own work, returning numbers, figure specs and tables), :meth:`Recipe.judge`, write
``<out_dir>/results.json``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import inspect
import json
import os
import sys
import time
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sadyn.errors import SadynError
from sadyn.experiments.cache import CacheEntry, CheckpointCache, default_cache_dir, file_lock
from sadyn.experiments.reach import code_hash, reached_code
from sadyn.progress import progress
from sadyn.results import write_results

STATUSES = ("pass", "fail", "no effect", "inconclusive")
NOT_TRAINED = "not trained"  # a model's status when training was off and the cache lacked it
CRITERIA_LOG = "criteria-log.jsonl"
PRESETS = ("tiny", "small", "paper")
# how a criterion is hashed: 1 = the judge method's source and the thresholds (results recorded
# before 2026-12-07); 2 = every piece of code the judge reaches and every design field
HASH_RULE = 2


def pool_matches(actual: str | None, declared: str | None) -> bool:
    """Whether an RRN-style set's pool (:func:`sadyn.sudoku.datasets.pool_record`: a SHA-256
    or "fallback") is the declared one: "royle" (Royle's 17-clue list, by its SHA-256),
    "fallback" (sadyn's own minimal puzzles), a SHA-256, or "any" (recorded, not checked).
    Nothing declared (None) accepts only Royle's list."""
    from sadyn.sudoku.rrn import ROYLE_SHA256

    declared = "royle" if declared is None else declared
    if declared == "any":
        return True
    if declared == "royle":
        return actual == ROYLE_SHA256
    return actual == declared


def available_pool() -> str:
    """The 17-clue pool an RRN-style set made now would come from: its SHA-256 or
    "fallback" (no list found)."""
    from sadyn.sudoku.datasets import find_and_load_pool

    found = find_and_load_pool()
    return "fallback" if found is None else str(found.sha256)


def hash_rule_of(record: Mapping[str, Any]) -> int:
    """The criterion hash rule a results record was written under (1 when it does not say)."""
    spec = record.get("criterion") or {}
    return int(spec.get("hash_rule", 1)) if isinstance(spec, Mapping) else 1


class ExperimentError(SadynError):
    """A recipe name, preset or override is invalid, or a recipe cannot run."""


# ---------------------------------------------------------------------------------------------
# verdicts


@dataclass(frozen=True)
class Check:
    """One judged statement. ``status`` is pass / fail / no effect (a trained comparison whose
    difference is inside seed noise) / inconclusive (could not be judged); a check with
    ``required=False`` is shown but does not enter the verdict (e.g. a part of the claim the
    available sources do not let us state precisely)."""

    name: str
    criterion: str
    status: str
    numbers: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    required: bool = True

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "criterion": self.criterion,
            "status": self.status,
            "numbers": _nan_to_none(to_jsonable(dict(self.numbers))),
            "note": self.note,
            "required": self.required,
        }


def check(
    name: str,
    criterion: str,
    ok: bool | str | None,
    numbers: Mapping[str, Any] | None = None,
    *,
    note: str = "",
    required: bool = True,
) -> Check:
    """A :class:`Check` from a boolean outcome (``None`` = inconclusive) or a status string
    (``"no effect"``, e.g. from :func:`sadyn.experiments.stats.decide`)."""
    if isinstance(ok, str):
        status = ok
    else:
        status = "inconclusive" if ok is None else "pass" if ok else "fail"
    return Check(name, criterion, status, dict(numbers or {}), note, required)


@dataclass(frozen=True)
class Verdict:
    """The judgement of a claim: the combination of its required checks.

    fail if any required check fails; else inconclusive if any is inconclusive; else "no
    effect" if any says so (the claimed effect is inside seed noise); else pass.
    """

    status: str
    criterion: str
    reason: str
    checks: tuple[Check, ...] = ()

    @property
    def passed(self) -> bool | None:
        return {"pass": True, "fail": False}.get(self.status)

    @classmethod
    def combine(cls, criterion: str, checks: Iterable[Check], reason: str = "") -> Verdict:
        checks = tuple(checks)
        judged = [c for c in checks if c.required]
        if not judged:
            status = "inconclusive"
        elif any(c.status == "fail" for c in judged):
            status = "fail"
        elif any(c.status == "inconclusive" for c in judged):
            status = "inconclusive"
        elif any(c.status == "no effect" for c in judged):
            status = "no effect"
        else:
            status = "pass"
        if not reason:
            counts = {s: sum(c.status == s for c in judged) for s in STATUSES}
            reason = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing judged"
            decisive = [c.name for c in judged if c.status == status and status != "pass"]
            if decisive:
                reason += f" ({status}: {', '.join(decisive)})"
        return cls(status, criterion, reason, checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "passed": self.passed,
            "criterion": self.criterion,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
        }


# ---------------------------------------------------------------------------------------------
# the run context


@dataclass
class RunContext:
    """What :meth:`Recipe.measure` gets besides its config.

    out_dir: the recipe's folder (results.json and any extra files go here).
    cache: the shared checkpoint cache (``None`` for recipes that train nothing).
    progress: show progress bars (training, probes).
    verbose: print one line per stage (:meth:`log`).
    device: where models are loaded and probed ("cpu", "cuda", "cuda:1"; training follows
        its own config's ``device``, "auto" by default).
    checkpoints: filled by :meth:`train` with one provenance row per model used.
    """

    out_dir: Path
    cache: CheckpointCache | None = None
    progress: bool = False
    verbose: bool = False
    device: str = "cpu"
    allow_training: bool = True
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    code: str = ""  # hash of the measuring code (set by Recipe.run), part of every memo key
    # the 17-clue pool the run's RRN-style sets must come from (the config's ``pool``: "royle",
    # "fallback", "any" or a SHA-256; None: the recipe declares none) and the sets it used
    pool: str | None = None
    datasets: list[dict[str, Any]] = field(default_factory=list)

    def record_dataset(self, spec: str, n: int, seed: int, puzzles: Any) -> None:
        """Record a test set the run used (its spec, size, seed, the SHA-256 of its puzzles
        and, for an RRN-style set, of the 17-clue pool it came from, or "fallback"); refuse
        (:class:`ExperimentError`) a set from another pool than the declared one."""
        import hashlib

        from sadyn.sudoku.datasets import pool_record

        pool = pool_record(puzzles)
        content = hashlib.sha256(puzzles.quizzes.tobytes() + puzzles.solutions.tobytes())
        entry = {
            "spec": spec,
            "n": len(puzzles.quizzes),
            "seed": seed,
            "pool": pool,
            "sha256": content.hexdigest(),
        }
        if pool is not None and not pool_matches(pool, self.pool):
            raise ExperimentError(
                f"{self.out_dir.name}: the {spec!r} set comes from the 17-clue pool {pool!r}, "
                f"not the declared one ({self.pool!r}); refusing to judge on it. Point "
                "$SADYN_SUDOKU17 at Royle's list, or declare the pool (--set pool=fallback)"
            )
        self.datasets.append(entry)

    def memo(
        self,
        what: Mapping[str, Any],
        compute: Callable[[], Any],
        *,
        code: str | None = None,
        exclusive: bool = False,
    ) -> Any:
        """The JSON-able result of ``compute()`` for the measurement described by ``what``
        (the model's cache name, the sizes and seeds used), stored beside the checkpoint
        cache (``<cache>/.measure/``) under a hash of ``what`` and of the code it depends on,
        so a rerun with more models (``--resume`` after an import) measures only the new ones.
        ``code`` is that code's hash (e.g. :func:`source_hash` of the probe modules, for a
        costly piece that should outlive edits to the recipe); by default the recipe's
        measuring code. ``exclusive``: hold the measurement's lock while computing, so a
        second process waits for it and reads it instead of repeating it (only for leaves: a
        lock held around nested memos would serialize them; :meth:`memo_all` uses it).
        Without a cache it just computes."""
        if self.cache is None:
            return compute()
        path = self._memo_path(what, code)
        found = _read_memo(path)
        if found is not _MISSING:
            return found
        if not exclusive:
            return _write_memo(path, compute())
        with file_lock(_lock_path(path)):
            found = _read_memo(path)  # written while this process waited
            return found if found is not _MISSING else _write_memo(path, compute())

    def memo_all(
        self,
        items: Sequence[tuple[Mapping[str, Any], Callable[[], Any]]],
        *,
        code: str | None = None,
        desc: str = "measurements",
    ) -> list[Any]:
        """:meth:`memo` of each ``(what, compute)`` (exclusive: each a leaf), in order, with a
        progress bar; ones another process (a second run on the same cache) is computing are
        taken last, then waited for and read, so several runs share the work. Returns the
        values in ``items``' order."""
        values: dict[int, Any] = {}
        todo = list(range(len(items)))
        with progress(total=len(items), desc=desc, unit="item", enable=self.progress) as bar:
            while todo:
                i = next((j for j in todo if not self._memo_busy(items[j][0], code)), todo[0])
                todo.remove(i)
                values[i] = self.memo(items[i][0], items[i][1], code=code, exclusive=True)
                bar.update(1)
        return [values[i] for i in range(len(items))]

    def _memo_path(self, what: Mapping[str, Any], code: str | None) -> Path:
        assert self.cache is not None
        key = json_hash({**dict(what), "__code__": self.code if code is None else code})
        root = self.cache.root / ".measure"
        root.mkdir(parents=True, exist_ok=True)
        return root / f"{key}.json"

    def _memo_busy(self, what: Mapping[str, Any], code: str | None) -> bool:
        if self.cache is None:
            return False
        path = self._memo_path(what, code)
        if path.is_file():
            return False
        with file_lock(_lock_path(path), blocking=False) as held:
            return not held

    def train(self, label: str, config: Any) -> CacheEntry:
        """Train ``config`` (a TrainConfig) through the cache, or reuse a cached run; record
        where it came from and return the :class:`~sadyn.experiments.cache.CacheEntry`. With
        ``allow_training`` off, a model the cache lacks is not trained: its entry has status
        ``"not trained"`` and no checkpoint (the recipe reports it as cut)."""
        if self.cache is None:
            raise ExperimentError("this run has no checkpoint cache; pass one to Recipe.run")
        cached = self.cache.contains(config)
        if not cached and not self.allow_training:
            self.log(f"model {label!r}: not in the cache, not trained (--no-train)")
            entry = CacheEntry(
                self.cache.path(config),
                self.cache.name(config).rsplit("-", 1)[-1],
                False,
                None,
                NOT_TRAINED,
                "not in the cache and training was off (--no-train): cut from this run",
            )
            self.checkpoints.append({"label": label, **entry.provenance()})
            return entry
        self.log(f"model {label!r}: {'cached' if cached else 'training'}")
        entry = self.cache.get_or_train(config, progress=self.progress)
        self.checkpoints.append({"label": label, **entry.provenance()})
        return entry

    def train_all(self, models: Mapping[str, Any]) -> None:
        """Train every model of ``models`` (label -> TrainConfig) that is not cached, skipping
        ahead of runs another process is training (see :meth:`CheckpointCache.train_all`)."""
        if self.cache is None or not models or not self.allow_training:
            return
        cache = self.cache
        labels = {cache.name(c): label for label, c in reversed(list(models.items()))}
        cache.train_all(
            models.values(),
            progress=self.progress,
            on_train=lambda c: self.log(f"model {labels[cache.name(c)]!r}: training"),
        )

    def log(self, message: str) -> None:
        if self.verbose:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} [{self.out_dir.name}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# recipes


class Recipe(ABC):
    """One claim of the paper as a runnable, judged experiment.

    Subclasses set the class attributes and implement :meth:`measure` and :meth:`judge`.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    order: ClassVar[int] = 100
    paper_ref: ClassVar[str] = ""
    claim: ClassVar[str]  # the paper's statement, quoted or closely paraphrased
    criterion: ClassVar[str]  # the pass/fail rule, in words, with the thresholds' field names
    notes: ClassVar[tuple[str, ...]] = ()  # deviations from the paper's protocol
    Config: ClassVar[type]
    presets: ClassVar[Mapping[str, Any]]
    trains: ClassVar[bool] = True  # needs a checkpoint cache
    # tests on RRN-style sets: the config's ``pool`` is checked before anything runs, and
    # every set's pool is recorded (RunContext.record_dataset)
    uses_pool: ClassVar[bool] = False
    # the pre-registered criterion as data: the config fields that are its thresholds and the
    # statistic / decision rule (hashed, with ``criterion`` and the judge's code, into every
    # results file; see :meth:`criterion_spec`)
    criterion_fields: ClassVar[tuple[str, ...]] = ()
    statistic: ClassVar[str] = ""

    # -------------------------------------------------------------- the criterion
    def criterion_spec(self, config: Any, rule: int | None = None) -> dict[str, Any]:
        """The criterion as data at ``config`` (a Config or a results file's config dict).

        Hash rule 2 (current, :data:`HASH_RULE`): the rule in words, the statistic, the
        threshold values (``criterion_fields``), the design (every other config field: seeds,
        members, sample sizes, the data pool, ...) and a hash of all the code the judge reaches
        (:mod:`sadyn.experiments.reach`), with the names of its pieces. So a judge, a helper it
        calls or a design field edited after a run shows up as a changed criterion.

        ``rule=1``: the rule results recorded before 2026-12-07 were hashed under (the judge
        method's source and the thresholds only), kept so those results can be checked against
        the code today and flagged for what their hash did not cover."""
        rule = HASH_RULE if rule is None else rule
        values = config if isinstance(config, Mapping) else dataclasses.asdict(config)
        missing = [f for f in self.criterion_fields if f not in values]
        if missing:
            raise ExperimentError(f"{self.name}: criterion field(s) {missing} not in the config")
        spec = {
            "recipe": self.name,
            "text": self.criterion,
            "statistic": self.statistic,
            "thresholds": to_jsonable({f: values[f] for f in self.criterion_fields}),
        }
        if rule == 1:
            return {**spec, "judge_code": _code_hash(type(self))}
        if rule != HASH_RULE:
            raise ExperimentError(f"{self.name}: unknown criterion hash rule {rule}")
        pieces = reached_code(type(self))
        design = {k: v for k, v in values.items() if k not in self.criterion_fields}
        return {
            **spec,
            "hash_rule": rule,
            "design": to_jsonable(design),
            "judge_code": code_hash(pieces),
            "judge_reaches": list(pieces),
        }

    def criterion_hash(self, config: Any, rule: int | None = None) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of :meth:`criterion_spec`."""
        return json_hash(self.criterion_spec(config, rule))

    # -------------------------------------------------------------- config
    def config(self, preset: str, overrides: Mapping[str, Any] | None = None) -> Any:
        """The preset's config with ``overrides`` (field -> value; strings are parsed as JSON
        where they can be, then coerced to the field's type)."""
        if preset not in self.presets:
            raise ExperimentError(
                f"{self.name}: unknown preset {preset!r} (known: {', '.join(self.presets)})"
            )
        cfg = self.presets[preset]
        if overrides:
            cfg = apply_overrides(cfg, overrides, where=self.name)
        return cfg

    # -------------------------------------------------------------- the template
    def run(
        self,
        preset: str,
        out_dir: str | Path,
        *,
        cache: CheckpointCache | None = None,
        overrides: Mapping[str, Any] | None = None,
        progress: bool = False,
        verbose: bool = False,
        device: str = "cpu",
        train: bool = True,
    ) -> dict[str, Any]:
        """Measure, judge and write ``<out_dir>/results.json``; return the record.
        ``train=False``: use cached models only (the others are recorded as not trained).

        ``cache``: a :class:`~sadyn.experiments.cache.CheckpointCache`; default
        ``$SADYN_CACHE`` or ``<out_dir>/../cache`` (shared by recipes run side by side)."""
        cfg = self.config(preset, overrides)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if cache is None and self.trains:
            cache = CheckpointCache(default_cache_dir(out.resolve().parent))
        ctx = RunContext(
            out,
            cache=cache,
            progress=progress,
            verbose=verbose,
            device=device,
            allow_training=train,
            code=_measure_code_hash(type(self)),
            pool=getattr(cfg, "pool", None),
        )
        ctx.log(f"start ({preset} preset)")
        self.check_pool(ctx.pool)
        # pre-registration: the criterion is logged (hashed) before anything is measured
        spec = self.criterion_spec(cfg)
        chash = json_hash(spec)
        declared_at = _now()
        log_path = out / ".." / CRITERIA_LOG
        append_criteria_log(
            log_path,
            {
                "event": "declared",
                "recipe": self.name,
                "preset": preset,
                "criterion_hash": chash,
                "time": declared_at,
                "criterion": spec,
            },
        )
        t0 = time.perf_counter()
        if self.trains:  # all training first, so parallel runs can share it
            ctx.train_all(self.models(cfg))
        measured = self.measure(cfg, ctx)
        record: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "order": self.order,
            "paper_ref": self.paper_ref,
            "claim": self.claim,
            "preset": preset,
            "criterion": spec,
            "criterion_hash": chash,
            "declared_at": declared_at,
            "measured_at": _now(),
            "config": to_jsonable(dataclasses.asdict(cfg)),
            "seed": getattr(cfg, "seed", None),
            "device": device,
            "wall_time_s": time.perf_counter() - t0,
            "checkpoints": ctx.checkpoints,
            "datasets": ctx.datasets,
            "not_trained": [c["label"] for c in ctx.checkpoints if c["status"] == NOT_TRAINED],
            "notes": list(self.notes) + list(measured.get("notes", [])),
            "data": measured.get("data", {}),
            "figures": measured.get("figures", {}),
            "tables": measured.get("tables", {}),
        }
        record = to_jsonable(record)  # judge exactly what is saved
        record["data_hash"] = json_hash(record["data"])
        record["verdict"] = self.judge(record).to_dict()
        write_results(out / "results.json", record)
        append_criteria_log(
            log_path,
            {
                "event": "judged",
                "recipe": self.name,
                "preset": preset,
                "criterion_hash": chash,
                "data_hash": record["data_hash"],
                "status": record["verdict"]["status"],
                "time": _now(),
            },
        )
        ctx.log(f"{record['verdict']['status']} in {record['wall_time_s']:.0f} s")
        return record

    def check_pool(self, declared: str | None) -> None:
        """Refuse (before anything is declared, trained or measured) a recipe that tests on
        RRN-style sets when they would come from another 17-clue pool than ``declared``."""
        if self.uses_pool and not pool_matches(available_pool(), declared):
            raise ExperimentError(
                f"{self.name}: its RRN-style sets would come from the 17-clue pool "
                f"{available_pool()!r}, not the declared one ({declared!r}): refusing to run "
                "and judge on it. Point $SADYN_SUDOKU17 at Royle's list, or declare the pool "
                "(--set pool=fallback)"
            )

    def models(self, cfg: Any) -> dict[str, Any]:
        """The models the recipe trains at ``cfg``: label -> TrainConfig (none by default).
        Computing them trains nothing (``sadyn reproduce --dry-run``)."""
        return {}

    def jobs(self, cfg: Any) -> list[Any]:
        """Every model the recipe may use at ``cfg``, as prioritized
        :class:`~sadyn.experiments.plan.Job` s (lower priority first), for training elsewhere
        (``sadyn reproduce --export-jobs``). Default: :meth:`models`, after every recipe
        that declares its own priorities."""
        from sadyn.experiments.plan import Job

        return [
            Job(1000.0 + 10 * self.order + i / 100, label, tc)
            for i, (label, tc) in enumerate(self.models(cfg).items())
        ]

    @abstractmethod
    def measure(self, cfg: Any, ctx: RunContext) -> dict[str, Any]:
        """Do the work. Returns ``{"data": numbers, "figures": specs, "tables": tables,
        "notes": [...]}`` (all JSON-able; see :mod:`sadyn.report.figures` for specs)."""

    @abstractmethod
    def judge(self, record: Mapping[str, Any]) -> Verdict:
        """Judge a results record (``record["data"]`` against thresholds in
        ``record["config"]``). Pure: no model, no file, so a saved result can be re-judged."""


# ---------------------------------------------------------------------------------------------
# helpers


def _nan_to_none(obj: Any) -> Any:
    """NaN ("not computed") as None, so a saved verdict re-judges to an equal dict."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, Mapping):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


_MISSING = object()


def _lock_path(memo: Path) -> Path:
    return memo.with_name(f".{memo.stem}.lock")


def _write_memo(path: Path, value: Any) -> Any:
    """Write ``value`` (made JSON-able) to ``path`` atomically; return what was written."""
    value = to_jsonable(value)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)
    return value


def _read_memo(path: Path) -> Any:
    """The memoized value at ``path``, or ``_MISSING`` (absent or unreadable: recomputed)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return _MISSING


def json_hash(obj: Any) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of ``obj`` (sorted keys; NaN kept)."""
    canonical = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _code_hash(cls: type) -> str:
    """Hash rule 1's code part: the source of ``cls.judge`` alone (whitespace-normalized; ""
    if unavailable). Kept to check results recorded under that rule."""
    try:
        src = inspect.getsource(cls.judge)
    except (OSError, TypeError):
        return ""
    return hashlib.sha256(" ".join(src.split()).encode("utf-8")).hexdigest()[:16]


def source_hash(*modules: Any) -> str:
    """16 hex digits of SHA-256 over the source of ``modules`` (a module's repr where its
    source is unavailable): the code part of a :meth:`RunContext.memo` key."""
    parts = []
    for mod in modules:
        try:
            parts.append(inspect.getsource(mod))
        except (OSError, TypeError):
            parts.append(repr(mod))
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def _measure_code_hash(cls: type) -> str:
    """Hash of the source of the recipe's module and of ``sadyn.experiments.common`` (what a
    measurement memo depends on besides its inputs)."""
    import sadyn.experiments.common as common

    return source_hash(sys.modules.get(cls.__module__), common)


def _now() -> str:
    """UTC time, ISO 8601 with microseconds (sortable as text)."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def append_criteria_log(path: str | Path, entry: Mapping[str, Any]) -> None:
    """Append one JSON line to the results folder's criteria log (created if needed): the
    history of every criterion declared and every verdict judged there."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(to_jsonable(entry), sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(line)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def apply_overrides(cfg: Any, overrides: Mapping[str, Any], *, where: str = "") -> Any:
    """``dataclasses.replace`` with type coercion and a clear error on an unknown field."""
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for key, raw in overrides.items():
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(cfg))
            raise ExperimentError(f"{where}: unknown setting {key!r} (known: {known})")
        changes[key] = _coerce(hints[key], _parse(raw), f"{where}.{key}")
    return dataclasses.replace(cfg, **changes)


def _parse(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare string such as a preset name


def _coerce(hint: Any, value: Any, name: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            return _coerce(next(a for a in args if a is not type(None)), value, name)
        if origin is tuple:
            if not isinstance(value, (list, tuple)):
                value = [value]
            item = args[0] if args else Any
            return tuple(_coerce(item, v, name) for v in value)
        if origin is dict or hint is dict:
            if not isinstance(value, dict):
                raise TypeError("expected a JSON object")
            return dict(value)
        if hint is bool:
            if not isinstance(value, bool):
                raise TypeError("expected true or false")
            return value
        if hint in (int, float, str):
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise TypeError("expected an integer")
            return hint(value)
    except (TypeError, ValueError) as exc:
        raise ExperimentError(f"{name}: cannot use {value!r} ({exc})") from exc
    return value


def to_jsonable(obj: Any) -> Any:
    """Tuples to lists, numpy/torch scalars and arrays to Python numbers (NaN/inf kept)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return to_jsonable(obj.tolist())
    return obj


def log_hash_rule_change(results_dir: str | Path, note: str) -> list[dict[str, Any]]:
    """Append to ``results_dir``'s criteria log one ``hash-rule-changed`` entry per results
    file recorded under an older hash rule and not logged yet: the hash it carries, the hash
    its recorded config gets today under its own rule (equal when its judge method and
    thresholds are unchanged) and under the current rule. Logged, never silent: the results
    stay as recorded, and the report flags them (:mod:`sadyn.report.prereg`). Returns the
    entries written."""
    from sadyn.experiments.registry import get_recipe
    from sadyn.io import read_jsonl
    from sadyn.results import read_results

    root = Path(results_dir)
    log = root / CRITERIA_LOG
    done = {
        (e.get("recipe"), e.get("preset"), e.get("criterion_hash"))
        for e in (read_jsonl(log) if log.is_file() else [])
        if e.get("event") == "hash-rule-changed"
    }
    entries = []
    for path in sorted(root.glob("*/results.json")):
        record = read_results(path)
        rule = hash_rule_of(record)
        key = (record.get("name"), record.get("preset"), record.get("criterion_hash"))
        if rule >= HASH_RULE or key in done:
            continue
        recipe = get_recipe(str(record["name"]))
        cfg = record.get("config") or {}

        def now(r: int, recipe: Recipe = recipe, cfg: Mapping[str, Any] = cfg) -> str | None:
            try:
                return recipe.criterion_hash(cfg, r)
            except ExperimentError:  # the recorded config lacks a field the recipe now has
                return None

        entry = {
            "event": "hash-rule-changed",
            "recipe": recipe.name,
            "preset": record.get("preset"),
            "time": _now(),
            "from_rule": rule,
            "to_rule": HASH_RULE,
            "criterion_hash": record.get("criterion_hash"),
            "same_rule_hash_now": now(rule),
            "new_rule_hash_now": now(HASH_RULE),
            "note": note,
        }
        append_criteria_log(root / CRITERIA_LOG, entry)
        entries.append(entry)
    return entries
