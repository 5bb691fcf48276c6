"""The experiment framework: verdicts, settings overrides, the checkpoint cache, the registry."""

from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

import sadyn.training
from sadyn.experiments.base import (
    Check,
    ExperimentError,
    Recipe,
    RunContext,
    Verdict,
    apply_overrides,
    check,
)
from sadyn.experiments.cache import CheckpointCache, config_hash, default_cache_dir
from sadyn.experiments.registry import get_recipe, recipe_names, resolve_names
from sadyn.results import read_results

# ------------------------------------------------------------------------------ verdicts


@pytest.mark.parametrize(
    "statuses, expected",
    [
        (["pass", "pass"], "pass"),
        (["pass", "no effect"], "no effect"),
        (["no effect", "inconclusive"], "inconclusive"),
        (["no effect", "fail"], "fail"),
        (["pass", "inconclusive"], "inconclusive"),
        (["inconclusive", "fail"], "fail"),
        ([], "inconclusive"),
    ],
)
def test_verdict_combines_required_checks(statuses, expected):
    checks = [Check(f"c{i}", "x", s) for i, s in enumerate(statuses)]
    v = Verdict.combine("crit", checks)
    assert v.status == expected
    assert v.passed is {"pass": True, "fail": False}.get(expected)
    assert v.to_dict()["checks"] == [c.to_dict() for c in checks]


def test_unrequired_checks_do_not_decide():
    v = Verdict.combine("crit", [check("a", "x", True), check("b", "x", False, required=False)])
    assert v.status == "pass" and "1 pass" in v.reason
    fail = Verdict.combine("crit", [check("a", "x", False), check("b", "x", None)])
    assert fail.status == "fail" and "fail: a" in fail.reason


def test_check_rejects_unknown_status():
    with pytest.raises(ValueError):
        Check("a", "x", "maybe")


# ------------------------------------------------------------------------------ overrides


@dataclass(frozen=True)
class _Cfg:
    samples: int = 3
    tol: float = 0.1
    tokens: tuple[int, ...] = (2, 4)
    train: dict = dataclasses.field(default_factory=dict)
    preset: str = "small"
    flag: bool = False
    limit: float | None = None


def test_overrides_parse_json_and_coerce():
    cfg = apply_overrides(
        _Cfg(),
        {
            "samples": "5",
            "tol": "1e-3",
            "tokens": "[8, 16]",
            "train": '{"epochs": 2}',
            "preset": "tiny",
            "flag": "true",
            "limit": "null",
        },
    )
    assert cfg == _Cfg(5, 1e-3, (8, 16), {"epochs": 2}, "tiny", True, None)
    assert apply_overrides(_Cfg(), {"tokens": 4}).tokens == (4,)
    assert apply_overrides(_Cfg(), {"limit": "2"}).limit == 2.0


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("nope", "1", "unknown setting 'nope'"),
        ("samples", "1.5", "expected an integer"),
        ("flag", "3", "expected true or false"),
        ("train", "[1]", "JSON object"),
    ],
)
def test_bad_overrides_raise(key, value, message):
    with pytest.raises(ExperimentError, match=message):
        apply_overrides(_Cfg(), {key: value}, where="demo")


# ------------------------------------------------------------------------------ the cache


def test_config_hash_ignores_only_weight_neutral_fields():
    base = {"model": {"model": "itrsa", "width": 8}, "lr": 1e-3, "threads": 1, "device": "cpu"}
    assert config_hash(base) == config_hash({**base, "threads": 2, "device": "cuda"})
    assert config_hash(base) == config_hash(dict(reversed(list(base.items()))))
    assert config_hash(base) != config_hash({**base, "lr": 2e-3})
    assert config_hash(base) == config_hash({**base, "max_minutes": 5})  # see the next test
    assert config_hash(base) != config_hash({**base, "model": {"model": "itrsa", "width": 9}})


def test_default_cache_dir_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("SADYN_CACHE", raising=False)
    assert default_cache_dir(tmp_path) == tmp_path / "cache"
    monkeypatch.setenv("SADYN_CACHE", str(tmp_path / "shared"))
    assert default_cache_dir(tmp_path) == tmp_path / "shared"


class _FakeTrain:
    """Stands in for sadyn.training.train: records calls, writes a marker, can be killed."""

    def __init__(self):
        self.calls: list[dict[str, Any]] = []
        self.fail_next = False

    def __call__(self, config, out_dir, *, resume=False, progress=True):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "weights").write_text(json.dumps(config))
        self.calls.append({"config": config, "resume": resume, "dir": out_dir})
        if self.fail_next:
            self.fail_next = False
            raise KeyboardInterrupt  # killed mid-training


def test_cache_trains_once_reuses_and_resumes(tmp_path, monkeypatch):
    fake = _FakeTrain()
    monkeypatch.setattr(sadyn.training, "train", fake, raising=False)
    cache = CheckpointCache(tmp_path / "cache")
    cfg = {"model": {"model": "itrsa"}, "lr": 1e-3}

    first = cache.get_or_train(cfg)
    again = cache.get_or_train({**cfg, "threads": 4})  # same weights: reused
    assert (first.reused, again.reused) == (False, True)
    assert first.path == again.path == cache.path(cfg) and first.path.name.startswith("itrsa-")
    assert len(fake.calls) == 1 and cache.contains(cfg)

    other = {**cfg, "lr": 5e-4}
    fake.fail_next = True
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_train(other)
    assert not cache.contains(other) and not cache.path(other).exists()
    resumed = cache.get_or_train(other)
    assert fake.calls[-1]["resume"] is True and not resumed.reused
    assert (
        resumed.path.is_dir()
        and not resumed.path.with_name(resumed.path.name + ".partial").exists()
    )
    assert resumed.provenance()["key"] == config_hash(other)


def test_a_run_its_budget_stopped_goes_on_when_the_budget_grows(tmp_path, monkeypatch):
    fake = _FakeTrain()

    def stopped_by_budget(config, out_dir, *, resume=False, progress=True):
        fake(config, out_dir, resume=resume, progress=progress)
        status = "time_budget" if config["max_minutes"] == 1 else "completed"
        return types.SimpleNamespace(to_dict=lambda: {"status": status})

    monkeypatch.setattr(sadyn.training, "train", stopped_by_budget, raising=False)
    cache = CheckpointCache(tmp_path)
    cfg = {"model": {"model": "itrsa"}, "lr": 1e-3, "max_minutes": 1}
    assert cache.get_or_train(cfg).status == "time_budget"
    assert cache.contains(cfg) and cache.get_or_train(cfg).reused  # the same budget: as is
    more = {**cfg, "max_minutes": 5}
    assert not cache.contains(more)
    grown = cache.get_or_train(more)
    assert grown.status == "completed" and not grown.reused and fake.calls[-1]["resume"]
    assert fake.calls[-1]["dir"] == fake.calls[0]["dir"]  # the same run directory went on
    assert cache.contains(cfg) and cache.get_or_train(cfg).reused  # completed serves any budget
    assert len(fake.calls) == 2


def test_a_diverged_run_is_cached_as_an_outcome(tmp_path, monkeypatch):
    from sadyn.errors import DivergenceError

    calls = []

    def diverge(config, out_dir, *, resume=False, progress=True):
        calls.append(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "latest.json").write_text("{}")  # a last good checkpoint was written
        raise DivergenceError("loss is nan at step 7")

    monkeypatch.setattr(sadyn.training, "train", diverge, raising=False)
    cache = CheckpointCache(tmp_path)
    cfg = {"model": {"model": "itrsa", "norm": "none"}}
    first, again = cache.get_or_train(cfg), cache.get_or_train(cfg)
    assert len(calls) == 1 and again.reused
    assert first.status == again.status == "diverged" and "nan" in again.message
    assert again.has_checkpoint and again.provenance()["message"] == first.message
    assert cache.invalidate(cfg) and not cache.contains(cfg) and not cache.invalidate(cfg)


# ------------------------------------------------------------------------------ recipes


@dataclass(frozen=True)
class _ToyConfig:
    value: float = 1.0
    threshold: float = 0.5
    seed: int = 0


class _Toy(Recipe):
    name = "toy"
    title = "Toy"
    claim = "value exceeds the threshold"
    criterion = "value > threshold"
    Config = _ToyConfig
    presets: ClassVar[dict[str, _ToyConfig]] = {
        "tiny": _ToyConfig(),
        "small": _ToyConfig(value=0.1),
    }
    trains = False

    def measure(self, cfg, ctx: RunContext):
        return {
            "data": {"value": cfg.value},
            "figures": {
                "v": {"kind": "bar", "categories": ["v"], "series": [{"values": [cfg.value]}]}
            },
        }

    def judge(self, record):
        ok = record["data"]["value"] > record["config"]["threshold"]
        return Verdict.combine(self.criterion, [check("value", self.criterion, ok)])


def test_recipe_run_writes_a_results_file_that_rejudges(tmp_path):
    rec = _Toy().run("tiny", tmp_path / "toy")
    saved = read_results(tmp_path / "toy" / "results.json")
    assert saved["verdict"]["status"] == rec["verdict"]["status"] == "pass"
    assert saved["config"] == {"value": 1.0, "threshold": 0.5, "seed": 0}
    assert saved["environment"]["torch"] and saved["wall_time_s"] >= 0
    assert _Toy().judge(saved).status == "pass"  # pure: a saved record re-judges the same
    low = _Toy().run("tiny", tmp_path / "t2", overrides={"value": "0.2"})
    assert low["verdict"]["status"] == "fail"
    with pytest.raises(ExperimentError, match="unknown preset 'paper'"):
        _Toy().run("paper", tmp_path / "t3")


def test_no_train_records_a_missing_model_as_cut(tmp_path, monkeypatch):
    fake = _FakeTrain()
    monkeypatch.setattr(sadyn.training, "train", fake, raising=False)
    ctx = RunContext(tmp_path, cache=CheckpointCache(tmp_path / "c"), allow_training=False)
    entry = ctx.train("m", {"model": {"model": "itrsa"}})
    assert entry.status == "not trained" and not entry.has_checkpoint and not fake.calls
    assert ctx.checkpoints[0]["status"] == "not trained"


def test_memo_measures_once_per_inputs_and_code(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"acc": 0.5, "le": [float("nan"), 1.0]}

    ctx = RunContext(tmp_path, cache=CheckpointCache(tmp_path / "c"), code="v1")
    first = ctx.memo({"model": "itrsa-x", "n": 10}, compute)
    again = ctx.memo({"model": "itrsa-x", "n": 10}, compute)
    assert len(calls) == 1 and again["acc"] == first["acc"] == 0.5
    ctx.memo({"model": "itrsa-x", "n": 20}, compute)  # other inputs: measured
    RunContext(tmp_path, cache=CheckpointCache(tmp_path / "c"), code="v2").memo(
        {"model": "itrsa-x", "n": 10}, compute
    )  # other code: measured
    assert len(calls) == 3


def test_memo_code_override_keys_on_the_given_code(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    cache = CheckpointCache(tmp_path / "c")
    a = RunContext(tmp_path, cache=cache, code="recipe-v1").memo({"p": 0}, compute, code="probe")
    b = RunContext(tmp_path, cache=cache, code="recipe-v2").memo({"p": 0}, compute, code="probe")
    assert a == b == 1  # the recipe's code changed, the given code did not: reused
    RunContext(tmp_path, cache=cache, code="recipe-v2").memo({"p": 0}, compute, code="probe-2")
    assert len(calls) == 2


def test_memo_all_leaves_busy_items_to_the_end_and_reads_their_values(tmp_path):
    """Another process holding item 0's lock: this one measures item 1 first, then waits for
    item 0 and reads what the other wrote instead of measuring it again."""
    import threading

    from sadyn.experiments.cache import file_lock

    ctx = RunContext(tmp_path, cache=CheckpointCache(tmp_path / "c"), code="v1")
    items_what = [{"puzzle": 0}, {"puzzle": 1}]
    path = ctx._memo_path(items_what[0], None)
    held, order = threading.Event(), []

    def other_process():
        with file_lock(path.with_name(f".{path.stem}.lock")):
            held.set()
            while not order:  # until this process has measured item 1
                threading.Event().wait(0.01)
            path.write_text(json.dumps({"by": "other"}), encoding="utf-8")

    t = threading.Thread(target=other_process)
    t.start()
    held.wait(5)

    def compute(i):
        order.append(i)
        return {"by": "this", "i": i}

    values = ctx.memo_all([(w, lambda i=w["puzzle"]: compute(i)) for w in items_what])
    t.join(5)
    assert order == [1]
    assert values == [{"by": "other"}, {"by": "this", "i": 1}]


def test_a_memo_holds_no_lock_around_nested_memos(tmp_path):
    """A model's memo (not exclusive) computes its per-puzzle memos without holding its own
    lock, so a second process on the same cache reaches those puzzles instead of waiting."""
    from sadyn.experiments.base import _lock_path
    from sadyn.experiments.cache import file_lock

    ctx = RunContext(tmp_path, cache=CheckpointCache(tmp_path / "c"), code="v1")
    outer = ctx._memo_path({"model": "m"}, None)

    def measure_model():
        with file_lock(_lock_path(outer), blocking=False) as free:
            assert free  # another process could take it: nothing is held here
        return ctx.memo_all([({"puzzle": i}, lambda i=i: i * i) for i in range(3)])

    assert ctx.memo({"model": "m"}, measure_model) == [0, 1, 4]


def test_context_without_cache_refuses_to_train(tmp_path):
    with pytest.raises(ExperimentError, match="no checkpoint cache"):
        RunContext(tmp_path).train("m", {"model": {"model": "itrsa"}})


def test_registry_names_and_errors():
    names = recipe_names()
    assert names[0] == "claim1-energy" and "fig6-pseudo-energy" in names and len(names) == 7
    assert resolve_names(["fig1-jacobian-norm", "all"])[0] == "fig1-jacobian-norm"
    assert sorted(resolve_names("all")) == sorted(names)
    with pytest.raises(ExperimentError, match="unknown recipe 'fig9'"):
        resolve_names("fig9")
    assert get_recipe("claim1-energy").name == "claim1-energy"


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
def test_every_preset_plans_valid_models(preset):
    """Each recipe's training configs at each preset validate and build (nothing trains), so a
    GPU user does not find a typo in the paper preset after hours."""
    from sadyn.models import build_model

    for name in recipe_names():
        recipe = get_recipe(name)
        cfg = recipe.config(preset)
        models = recipe.models(cfg)
        assert bool(models) == recipe.trains, name
        jobs = recipe.jobs(cfg)
        names = {CheckpointCache(".").name(j.config) for j in jobs}
        # every model a recipe trains up front is among its exported jobs
        assert {CheckpointCache(".").name(tc) for tc in models.values()} <= names, name
        seen = set()
        for label, tc in [*models.items(), *((j.label, j.config) for j in jobs)]:
            if CheckpointCache(".").name(tc) in seen:
                continue
            seen.add(CheckpointCache(".").name(tc))
            assert tc.validate() is None
            model = build_model(tc.model)
            assert model.config["model"] == tc.model["model"], (name, label)


def test_train_all_skips_ahead_of_a_run_another_process_holds(tmp_path, monkeypatch):
    import fcntl
    import threading

    fake = _FakeTrain()
    monkeypatch.setattr(sadyn.training, "train", fake, raising=False)
    cache = CheckpointCache(tmp_path)
    first, second = ({"model": {"model": "itrsa"}, "lr": lr} for lr in (1e-3, 2e-3))
    cache.root.mkdir(parents=True, exist_ok=True)
    held = open(cache.root / f".{cache.path(first).name}.lock", "w")  # "another process"
    fcntl.flock(held, fcntl.LOCK_EX)
    assert cache.busy(first) and not cache.busy(second)
    worker = threading.Thread(target=cache.train_all, args=([first, second],))
    worker.start()
    for _ in range(500):  # the free entry is trained while the held one waits
        if cache.contains(second):
            break
        worker.join(0.01)
    assert cache.contains(second) and not cache.contains(first)
    fcntl.flock(held, fcntl.LOCK_UN)
    held.close()
    worker.join(10)
    assert not worker.is_alive() and cache.contains(first)
    assert [c["config"]["lr"] for c in fake.calls] == [2e-3, 1e-3]
    cache.train_all([first, second])  # all cached: trains nothing
    assert len(fake.calls) == 2
