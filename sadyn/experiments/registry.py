"""The recipe registry and the ``reproduce`` driver.

Recipes are listed by name -> module and imported on first use, so listing names costs
nothing and one recipe's heavy dependencies never load for another.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sadyn.errors import SadynError
from sadyn.experiments.base import PRESETS, ExperimentError, Recipe, to_jsonable
from sadyn.experiments.cache import CheckpointCache, default_cache_dir
from sadyn.results import read_results, write_results

RESULTS_FILE = "results.json"
ERROR_FILE = "error.txt"

# name -> module in sadyn.experiments defining a Recipe subclass ``RECIPE``; in paper order
_MODULES: dict[str, str] = {
    "claim1-energy": "claim1_energy",
    "fig1-jacobian-norm": "fig1_jacobian_norm",
    "fig2-eigenvalues": "fig2_eigenvalues",
    "fig3-criticality": "fig3_criticality",
    "fig4-test-time-scaling": "fig4_test_time_scaling",
    "fig5-regularization": "fig5_regularization",
    "fig6-pseudo-energy": "fig6_pseudo_energy",
}


def recipe_names() -> tuple[str, ...]:
    """Every recipe, in the paper's order."""
    return tuple(_MODULES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (ExperimentError naming the known ones otherwise)."""
    if name not in _MODULES:
        raise ExperimentError(f"unknown recipe {name!r} (known: {', '.join(_MODULES)}, all)")
    module = importlib.import_module(f"sadyn.experiments.{_MODULES[name]}")
    recipe = module.RECIPE
    if recipe.name != name:
        raise ExperimentError(f"module {module.__name__} registers {recipe.name!r}, not {name!r}")
    return recipe


def resolve_names(names: str | Sequence[str]) -> list[str]:
    """``"all"``, a name, or a list of names (``all`` expands in place) -> recipe names."""
    names = [names] if isinstance(names, str) else list(names)
    out: list[str] = []
    for n in names:
        for m in recipe_names() if n == "all" else [n]:
            if m not in _MODULES:
                get_recipe(m)  # raises the helpful error
            if m not in out:
                out.append(m)
    return out


def reproduce(
    names: str | Sequence[str],
    preset: str,
    out_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
    verbose: bool = False,
    keep_going: bool = False,
    resume: bool = False,
    device: str = "cpu",
    train: bool = True,
) -> list[dict[str, Any]]:
    """Run recipes and write ``<out_dir>/<name>/results.json`` for each.

    ``overrides`` maps a recipe name to its setting overrides. Trained models are shared
    through the cache (``cache_dir``, default ``$SADYN_CACHE`` or ``<out_dir>/cache``). With
    ``keep_going`` a recipe that raises is recorded (``{"name", "error"}``, and written to
    ``<out_dir>/<name>/error.txt``) and the rest run. With ``resume`` a recipe whose
    ``results.json`` already holds a run of the same preset and settings is not run again
    (its verdict is re-judged, which is free) unless its criterion hash differs from the
    recipe's current one (then it is measured again: a saved result is never re-judged under a
    criterion declared after it), so a killed ``reproduce all`` picks up where it stopped;
    trained models are reused in any case. ``device``: where trained models are
    probed (training follows each TrainConfig's own ``device``).
    """
    if preset not in PRESETS:
        raise ExperimentError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    selected = resolve_names(names)
    overrides = dict(overrides or {})
    for key in overrides:
        if key not in selected:
            raise ExperimentError(f"settings given for {key!r}, which is not being run")
    out = Path(out_dir)
    cache = CheckpointCache(cache_dir if cache_dir is not None else default_cache_dir(out))
    records = []
    for name in selected:
        recipe = get_recipe(name)
        t0 = time.perf_counter()
        done = _finished(recipe, preset, overrides.get(name), out / name) if resume else None
        if done is not None:
            records.append(done)
            continue
        try:
            rec = recipe.run(
                preset,
                out / name,
                cache=cache,
                overrides=overrides.get(name),
                progress=progress,
                verbose=verbose,
                device=device,
                train=train,
            )
        except Exception as exc:
            if not keep_going:
                raise
            rec = {
                "name": name,
                "error": f"{type(exc).__name__}: {exc}",
                "wall_time_s": time.perf_counter() - t0,
            }
            (out / name).mkdir(parents=True, exist_ok=True)
            (out / name / ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")
        else:
            (out / name / ERROR_FILE).unlink(missing_ok=True)  # an earlier failure, now fixed
        records.append(rec)
    return records


def _finished(
    recipe: Recipe, preset: str, overrides: Mapping[str, Any] | None, folder: Path
) -> dict[str, Any] | None:
    """The saved record of an identical earlier run (re-judged), or None."""
    path = folder / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        record = read_results(path)
    except SadynError:
        return None
    config = recipe.config(preset, overrides)
    cfg = to_jsonable(dataclasses.asdict(config))
    if record.get("preset") != preset or record.get("config") != cfg:
        return None
    if record.get("not_trained"):
        return None  # some models were cut: measure again, they may be in the cache now
    if record.get("criterion_hash") != recipe.criterion_hash(config):
        return None  # the criterion changed since: measure again under the new one, never re-judge
    verdict = recipe.judge(record).to_dict()
    if verdict != record.get("verdict"):
        record["verdict"] = verdict
        write_results(path, record)
    return record
