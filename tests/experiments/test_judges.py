"""The pre-declared criteria on constructed numbers: each can pass, fail, or abstain."""

from __future__ import annotations

import dataclasses

import pytest

from sadyn.experiments.fig2_eigenvalues import RECIPE as FIG2
from sadyn.experiments.fig3_criticality import RECIPE as FIG3
from sadyn.experiments.fig4_test_time_scaling import RECIPE as FIG4
from sadyn.experiments.fig4_test_time_scaling import scaling_gain
from sadyn.experiments.fig5_regularization import RECIPE as FIG5
from sadyn.experiments.fig6_pseudo_energy import RECIPE as FIG6


def _record(recipe, data, **config):
    cfg = dataclasses.asdict(recipe.config("small"))
    cfg.update(config)
    return {"config": cfg, "data": data}


def _status(verdict, name):
    return next(c.status for c in verdict.checks if c.name == name)


# ------------------------------------------------------------------------------ fig2
_TOY = {"max_abs_plain": 1.352, "expected_plain": 1.352, "max_abs_norm": 1.0, "norm_J_norm": 1.0}


def _fig2(norm_radius, plain_radius, cell=0.8):
    sud = {
        "normalized": {
            "cell_accuracy": cell,
            "spectral_radius": [norm_radius] * 3,
            "max_ftle": [-0.1],
        },
        "unnormalized": {"spectral_radius": [plain_radius] * 3, "max_ftle": [0.5]},
    }
    return FIG2.judge(_record(FIG2, {"toy": _TOY, "sudoku": sud}))


def test_fig2_passes_fails_and_gates():
    assert _fig2(0.98, 1.7).status == "pass"
    assert _fig2(1.3, 1.7).status == "fail"  # normalized radius outside 1 + tol
    assert _fig2(0.98, 0.9).status == "fail"  # unnormalized inside the circle
    gated = _fig2(0.98, 1.7, cell=0.2)
    assert gated.status == "inconclusive"
    assert _status(gated, "toy: normalization pulls it back") == "pass"
    bad_toy = FIG2.judge(_record(FIG2, {"toy": {**_TOY, "max_abs_norm": 1.01}, "sudoku": {}}))
    assert bad_toy.status == "fail"


# ------------------------------------------------------------------------------ fig3
def _member(label, kind, acc, le, knob=None, factor=1.0):
    return {
        "label": label,
        "kind": kind,
        "knob": knob,
        "factor": factor,
        "board_accuracy": acc,
        "cell_accuracy": 0.9,
        "max_le_median": le,
        "mean_le_median": le - 0.1,
    }


def test_fig3_criticality_pass_and_fail():
    members = [
        _member("normalized", "normalized", 0.8, 0.1),
        _member("normalized", "normalized", 0.5, 0.8, "eta", 2.0),
        _member("normalized", "normalized", 0.3, -1.2, "output", 0.5),
        _member("unnormalized", "unnormalized", 0.0, 1.5),
        _member("symmetric", "symmetric", 0.2, -0.4),
    ]
    data = {"members": members, "accuracy_metric": "board_accuracy"}
    assert FIG3.judge(_record(FIG3, data)).status == "pass"
    # the best model far from criticality fails (a)
    far = [dict(members[0], max_le_median=1.0), *members[1:]]
    v = FIG3.judge(_record(FIG3, {**data, "members": far}))
    assert v.status == "fail" and _status(v, "best model near criticality") == "fail"
    # symmetric SA with a positive exponent fails (c)
    pos = [*members[:4], dict(members[4], max_le_median=0.3)]
    assert _status(FIG3.judge(_record(FIG3, {**data, "members": pos})), "symmetric") == "fail"


# ------------------------------------------------------------------------------ fig4
def _curve(accs, steps=(16, 32, 64), n=500):
    return {"ood": {"steps": list(steps), "board": list(accs), "cell": list(accs), "n": n}}


def test_scaling_gain_uses_the_gated_dataset_and_its_error():
    g = scaling_gain(_curve([0.30, 0.36, 0.40]), 16, 0.02)
    assert g["dataset"] == "ood" and g["gain"] == pytest.approx(0.10) and g["best_T"] == 64
    assert g["se"] == pytest.approx(((0.3 * 0.7 + 0.4 * 0.6) / 500) ** 0.5)
    assert scaling_gain(_curve([0.0, 0.01, 0.015]), 16, 0.02) is None  # solves ~nothing
    low_start = scaling_gain(_curve([0.006, 0.04, 0.13]), 16, 0.02)  # gated on its best T
    assert low_start["dataset"] == "ood" and low_start["gain"] == pytest.approx(0.124)
    with_id = {
        **_curve([0.0, 0.0, 0.0]),
        "id": {"steps": [16, 32], "board": [0.5, 0.6], "cell": [0, 0], "n": 500},
    }
    assert scaling_gain(with_id, 16, 0.02)["dataset"] == "id"


def test_fig4_verdicts():
    up, flat = _curve([0.30, 0.36, 0.40]), _curve([0.30, 0.29, 0.25])
    cfg = FIG4.config("small")
    curves = {cfg.itrsa: up, cfg.large_n: flat, cfg.large_n_rms: up}
    assert FIG4.judge(_record(FIG4, {"curves": curves})).status == "pass"
    v = FIG4.judge(_record(FIG4, {"curves": {**curves, cfg.itrsa: flat}}))
    assert v.status == "fail" and _status(v, "ItrSA scales") == "fail"
    v = FIG4.judge(_record(FIG4, {"curves": {**curves, cfg.large_n: up}}))
    assert _status(v, "AKOrN at large N does not scale") == "fail"


# ------------------------------------------------------------------------------ fig5
def _run(family, reg, acc, loss=1.0, cell=0.8):
    return {
        "family": family,
        "reg": reg,
        "board_accuracy": acc,
        "cell_accuracy": cell,
        "final_loss": loss,
    }


def _fig5(spec_acc, emulti_acc, esingle=(0.0, 2.0), n=500):
    runs = {
        "ItrSA": _run("ItrSA", "none", 0.5),
        "S": _run("ItrSA", "spec", spec_acc),
        "M": _run("ItrSA", "e-multi", emulti_acc),
        "E": _run("ItrSA", "e-single", esingle[0], esingle[1]),
        "A": _run("AKOrN", "none", 0.4),
        "AS": _run("AKOrN", "spec", 0.6),
    }
    data = {
        "runs": runs,
        "n": n,
        "accuracy_metric": {"ItrSA": "board_accuracy", "AKOrN": "board_accuracy"},
    }
    return FIG5.judge(_record(FIG5, data))


def test_fig5_differences_are_judged_against_their_standard_error():
    assert _fig5(0.6, 0.4).status == "pass"
    assert _status(_fig5(0.4, 0.4), "Spec helps ItrSA") == "fail"
    assert _status(_fig5(0.505, 0.4), "Spec helps ItrSA") == "inconclusive"  # within 1 SE
    assert _status(_fig5(0.6, 0.6), "E-multi below baseline") == "fail"
    # E-single below baseline but with a lower training loss: not "fails to train"
    assert _status(_fig5(0.6, 0.4, esingle=(0.1, 0.5)), "E-single fails to train") == "fail"


def test_fig5_a_diverged_run_counts_as_untrained():
    runs = {
        "ItrSA": _run("ItrSA", "none", 0.5),
        "E": {"family": "ItrSA", "reg": "e-single", "train_status": "diverged", "final_loss": None},
    }
    data = {
        "runs": runs,
        "n": 500,
        "accuracy_metric": {"ItrSA": "board_accuracy", "AKOrN": "board_accuracy"},
    }
    v = FIG5.judge(_record(FIG5, data))
    assert _status(v, "E-single fails to train") == "pass"
    assert _status(v, "Spec helps ItrSA") == "inconclusive"  # no such run


# ------------------------------------------------------------------------------ fig6
def _fig6(energy, ci, cos, pv0=None, cell=0.8):
    row = {
        "cell_accuracy": cell,
        "energy": energy,
        "contribution": ci,
        "cosine": cos,
        "contribution_pv0": pv0,
        "pv_note": "n/a",
    }
    return FIG6.judge(_record(FIG6, {"models": {"AKOrN": row}}))


def test_fig6_verdicts():
    falling, rising = [[0.0, 0.0], [-5.0, -3.0]], [[0.1], [0.3]]
    assert _fig6(falling, rising, [[0.95, 0.97]], pv0=[[0.12], [0.28]]).status == "pass"
    v = _fig6([[0.0], [2.0]], rising, [[0.95]])
    assert _status(v, "pseudo-energy falls") == "fail"
    assert _status(v, "time-independent approximation") == "inconclusive"
    assert _status(_fig6(falling, rising, [[0.5]]), "quadratic reading") == "fail"
    assert (
        _status(
            _fig6(falling, rising, [[0.95]], pv0=[[0.5], [0.9]]), "time-independent approximation"
        )
        == "fail"
    )
    assert _fig6(falling, rising, [[0.95]], cell=0.1).status == "inconclusive"
