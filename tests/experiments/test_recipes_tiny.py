"""Every recipe runs at the tiny preset, writes a results file that re-judges to the same
verdict, and says "inconclusive" (not pass) where the claim needs a trained model."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sadyn.experiments.base import STATUSES
from sadyn.experiments.cache import CheckpointCache
from sadyn.experiments.registry import get_recipe, recipe_names, reproduce
from sadyn.report.figures import render_png
from sadyn.results import read_results

# claims whose every judged check needs a trained model
TRAINING_DEPENDENT = (
    "fig3-criticality",
    "fig4-test-time-scaling",
    "fig5-regularization",
    "fig6-pseudo-energy",
)


def test_every_recipe_ran_and_wrote_a_results_file(tiny_run):
    out, records = tiny_run
    assert set(records) == set(recipe_names())
    for name in recipe_names():
        saved = read_results(out / name / "results.json")
        assert saved["name"] == name and saved["preset"] == "tiny"
        assert saved["claim"] and saved["verdict"]["criterion"]
        assert saved["verdict"]["status"] in STATUSES
        assert saved["environment"]["torch"] and saved["wall_time_s"] > 0
        for check in saved["verdict"]["checks"]:
            assert check["status"] in STATUSES
        # the verdict is a pure function of the saved numbers and the pre-declared thresholds
        assert get_recipe(name).judge(saved).to_dict() == saved["verdict"]
        for fig_name, spec in saved["figures"].items():
            assert render_png(spec, out / name)[:4] == b"\x89PNG", fig_name


def test_model_free_claims_pass_at_tiny(tiny_run):
    _, records = tiny_run
    assert records["claim1-energy"]["verdict"]["status"] == "pass"
    fig1 = {c["name"]: c["status"] for c in records["fig1-jacobian-norm"]["verdict"]["checks"]}
    assert fig1["Prop 5.1 bound"] == fig1["large-eta limit (Eq. 15)"] == "pass"
    # 5 samples over S = 8, 32 cannot place the slope's CI: inconclusive, never a false pass
    assert fig1["O(1) in S at large S"] == "inconclusive"
    toy = [
        c for c in records["fig2-eigenvalues"]["verdict"]["checks"] if c["name"].startswith("toy")
    ]
    assert len(toy) == 2 and all(c["status"] == "pass" for c in toy)


@pytest.mark.parametrize("name", [*TRAINING_DEPENDENT, "fig2-eigenvalues"])
def test_untrained_models_give_inconclusive_not_pass(tiny_run, name):
    _, records = tiny_run
    rec = records[name]
    assert rec["verdict"]["status"] == "inconclusive"
    sudoku = [
        c for c in rec["verdict"]["checks"] if c["required"] and not c["name"].startswith("toy")
    ]
    assert sudoku and all(c["status"] == "inconclusive" for c in sudoku)
    assert any("not trained enough" in c["note"] or "below min_" in c["note"] for c in sudoku)


def test_models_are_shared_through_the_cache(tiny_run):
    out, records = tiny_run
    rows = [c for r in records.values() for c in r["checkpoints"]]
    keys = {c["key"] for c in rows}
    assert len(keys) < len(rows)  # several recipes used the same trained model
    assert any(c["reused"] for c in rows)
    for c in rows:
        assert c["status"] in ("completed", "time_budget", "diverged")
    # a second run of a recipe trains nothing
    again = get_recipe("fig4-test-time-scaling").run(
        "tiny", out / "again", cache=CheckpointCache(out / "cache")
    )
    assert again["checkpoints"] and all(c["reused"] for c in again["checkpoints"])
    assert again["data"] == records["fig4-test-time-scaling"]["data"]  # same seeds, same numbers


def test_fig5_chooses_no_lambda_from_a_partial_sweep(tiny_run, tmp_path):
    """With one Spec lambda of the declared sweep untrained, fig5 records no chosen lambda
    (rather than the best of the others), and the Spec check stays inconclusive."""
    import json
    import shutil

    out, records = tiny_run
    assert records["fig5-regularization"]["data"]["chosen_lambda"]["ItrSA"] is not None
    cache = tmp_path / "cache"
    shutil.copytree(out / "cache", cache)
    dropped = []
    for cfg_file in cache.glob("itrsa-*/config.json"):
        cfg = json.loads(cfg_file.read_text())
        if cfg.get("reg_spec") == 1e-2 and cfg.get("seed") == 0:
            shutil.rmtree(cfg_file.parent)
            dropped.append(cfg_file.parent.name)
    assert len(dropped) == 1
    (rec,) = reproduce(
        "fig5-regularization", "tiny", tmp_path / "out", cache_dir=cache, train=False
    )
    assert rec["data"]["chosen_lambda"]["ItrSA"] is None
    spec = [c for c in rec["verdict"]["checks"] if c["name"] == "Spec helps ItrSA"]
    assert spec and spec[0]["status"] == "inconclusive"


def test_fig6_contribution_index_is_memoized_puzzle_by_puzzle(tiny_run, tmp_path, monkeypatch):
    """fig6's contribution index is computed one puzzle at a time, each memoized under the
    probe's code: the assembled arrays equal the probe run on all puzzles at once, and a
    rerun after an edit to the recipe (its per-model memo gone) recomputes no puzzle."""
    import shutil

    import numpy as np
    import torch

    import sadyn.experiments.base as base
    import sadyn.experiments.fig6_pseudo_energy as fig6
    from sadyn.probes.energy import energy_probe
    from sadyn.probes.stepmap import rollout
    from sadyn.training.checkpoint import load_checkpoint

    out, _ = tiny_run
    cache = tmp_path / "cache"
    shutil.copytree(out / "cache", cache, ignore=shutil.ignore_patterns(".measure"))
    overrides = {"ci_puzzles": 2, "energy_puzzles": 3}
    first = fig6.RECIPE.run(
        "tiny", tmp_path / "a", cache=CheckpointCache(cache), overrides=overrides
    )
    got = first["data"]["models"]["AKOrN"]
    assert np.shape(got["contribution"]) == (2, 2) and got["samples"] == [0, 1]

    # the reference: the probe on the whole rollout, both puzzles in one call
    cfg = fig6.RECIPE.config("tiny", overrides)
    model, _, _ = load_checkpoint(CheckpointCache(cache).path(fig6.RECIPE.models(cfg)["AKOrN"]))
    model.eval()
    puzzles = fig6.eval_puzzles("id", max(cfg.acc_puzzles, cfg.energy_puzzles))
    quizzes = torch.as_tensor(puzzles.quizzes[: cfg.energy_puzzles], dtype=torch.long)
    run = rollout(model, quizzes, cfg.steps, seed=cfg.seed)
    ref = energy_probe(
        model, run, ci_steps=list(cfg.ci_steps), samples=2, seed=cfg.seed, show_progress=False
    )
    np.testing.assert_allclose(got["contribution"], ref.contribution, rtol=1e-6, atol=1e-9)
    for key in ("contribution_pv", "contribution_pv0"):
        want = getattr(ref, key)
        assert (got[key] is None) == (want is None)
        if want is not None:
            np.testing.assert_allclose(got[key], want, rtol=1e-6, atol=1e-9)

    # an edited recipe: its per-model memo misses, the puzzles' memos still hit
    monkeypatch.setattr(base, "_measure_code_hash", lambda cls: "edited")

    def recomputed(*args, **kwargs):
        raise AssertionError("a memoized puzzle was recomputed")

    monkeypatch.setattr(fig6, "_contribution_shard", recomputed)
    again = fig6.RECIPE.run(
        "tiny", tmp_path / "b", cache=CheckpointCache(cache), overrides=overrides
    )
    assert again["data"]["models"]["AKOrN"]["contribution"] == got["contribution"]
    # a third puzzle is new work
    with pytest.raises(AssertionError, match="recomputed"):
        fig6.RECIPE.run(
            "tiny",
            tmp_path / "c",
            cache=CheckpointCache(cache),
            overrides={**overrides, "ci_puzzles": 3},
        )


def test_fig4_table_shows_a_spread_only_over_several_seeds(tiny_run):
    _, records = tiny_run
    rows = records["fig4-test-time-scaling"]["tables"]["accuracy"]["rows"]
    assert {row[2] for row in rows} == {1, 2}  # tiny: primary at 2 seeds, deep supervision at 1
    for row in rows:
        assert all(("+-" in cell) == (row[2] > 1) for cell in row[3:]), row


def test_fig3_extras_are_reported_beside_the_members_not_judged(tiny_run):
    _, records = tiny_run
    rec = records["fig3-criticality"]
    extras = rec["data"]["extras"]
    assert [m["member"] for m in extras] == ["symmetric (1 epoch)"]
    assert extras[0]["measured"] and extras[0]["max_le"] is not None
    assert "symmetric (1 epoch)" not in {m["member"] for m in rec["data"]["members"]}
    kinds = {row[0]: row[1] for row in rec["tables"]["family"]["rows"]}
    assert kinds["symmetric (1 epoch)"] == "symmetric (extra, not judged)"
    assert kinds["symmetric"] == "symmetric"


def test_fig3_extras_train_at_their_own_seeds_and_count_only_measured_seeds():
    from sadyn.experiments.fig3_criticality import _members

    recipe = get_recipe("fig3-criticality")
    cfg = replace(recipe.presets["tiny"], seeds=(0,), extra_seeds=(0, 1, 2))
    keys = set(recipe.models(cfg))
    members = {label for label, _, _, extra in recipe.family(cfg) if not extra}
    assert keys == {f"{m} | seed 0" for m in members} | {
        f"symmetric (1 epoch) | seed {s}" for s in (0, 1, 2)
    }
    assert {j.label for j in recipe.jobs(cfg)} >= keys  # every model is a job
    # a member with one of three seeds trained reports one seed and that seed's numbers
    rows = [
        {
            "member": "m",
            "kind": "normalized",
            "epochs": 1,
            "seed": 0,
            "board_accuracy": 0.5,
            "cell_accuracy": 0.9,
            "max_le_median": 0.1,
            "mean_le_median": -0.2,
            "eta": 0.5,
        },
        {"member": "m", "kind": "normalized", "epochs": 1, "seed": 1, "train_status": "missing"},
        {"member": "m", "kind": "normalized", "epochs": 1, "seed": 2, "train_status": "missing"},
    ]
    (row,) = _members({str(i): r for i, r in enumerate(rows)})
    assert row["seeds"] == 1 and row["board_accuracy"] == 0.5 and row["max_le"] == 0.1
    assert row["board_accuracy_sd"] is None and row["max_le_sd"] is None  # one seed: no spread
    # with all three seeds: means, and the sample sd across seeds (ddof 1)
    accs, les = (0.5, 0.7, 0.9), (0.1, 0.3, 0.2)
    rows = [
        {**rows[0], "seed": s, "board_accuracy": a, "max_le_median": le}
        for s, a, le in zip((0, 1, 2), accs, les, strict=True)
    ]
    (row,) = _members({str(i): r for i, r in enumerate(rows)})
    assert row["seeds"] == 3
    assert row["board_accuracy"] == pytest.approx(0.7) and row["max_le"] == pytest.approx(0.2)
    assert row["board_accuracy_sd"] == pytest.approx(0.2) and row["max_le_sd"] == pytest.approx(0.1)
    # the default (None) keeps the extras at the members' seeds
    plain = replace(cfg, extra_seeds=None)
    assert recipe.seeds(plain, True) == recipe.seeds(plain, False) == (0,)


def test_fig4_state_change_is_the_seed_mean_of_each_run_and_is_not_judged(tiny_run):
    _, records = tiny_run
    rec = records["fig4-test-time-scaling"]
    cfg, runs = rec["config"], rec["data"]["runs"]
    t_max = max(cfg["eval_steps"])
    table = rec["tables"]["state_change"]
    at = [int(c.removeprefix("t=")) for c in table["columns"][2:]]
    assert at == sorted({1, cfg["train_loop"], cfg["train_loop"] + 2, t_max})
    assert len(table["rows"]) == len(rec["tables"]["accuracy"]["rows"]) // 2  # one per design
    for label, n, *values in table["rows"]:
        curves = [r["step_change"] for r in runs.values() if r["design"] == label]
        assert n == len(curves) and all(len(c) == t_max for c in curves)
        mean = [sum(c[t - 1] for c in curves) / n for t in at]
        assert values == pytest.approx(mean)
        assert all(v >= 0 for v in values)
    names = {c["name"] for c in rec["verdict"]["checks"]}
    assert not any("change" in n for n in names)  # a diagnostic, never a check
