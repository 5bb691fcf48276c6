"""The pre-declared criteria on constructed numbers: each judge can pass, fail, say "no effect"
(a trained comparison inside seed noise) or abstain (inconclusive)."""

from __future__ import annotations

import dataclasses

from sadyn.experiments.claim1_energy import CTRL, HEADS, OVERLAP, P41, P42, SYM
from sadyn.experiments.claim1_energy import RECIPE as CLAIM1
from sadyn.experiments.fig1_jacobian_norm import RECIPE as FIG1
from sadyn.experiments.fig2_eigenvalues import RECIPE as FIG2
from sadyn.experiments.fig3_criticality import RECIPE as FIG3
from sadyn.experiments.fig4_test_time_scaling import RECIPE as FIG4
from sadyn.experiments.fig4_test_time_scaling import model_label
from sadyn.experiments.fig5_regularization import RECIPE as FIG5
from sadyn.experiments.fig6_pseudo_energy import RECIPE as FIG6
from sadyn.experiments.plan import seeded

SEEDS = (0, 1, 2)
HIGH, LOW, NOISE_A, NOISE_B = (
    (0.90, 0.91, 0.92),
    (0.80, 0.81, 0.82),
    (0.80, 0.86, 0.82),
    (
        0.81,
        0.84,
        0.83,
    ),
)


def _record(recipe, data, **config):
    cfg = dataclasses.asdict(recipe.config("small"))
    cfg.update(config)
    return {"config": cfg, "data": data}


def _status(verdict, name):
    return next(c.status for c in verdict.checks if c.name == name)


# ------------------------------------------------------------------------------ claim1
def _case(rising=0, top=-0.5, flow=-0.2, bound=1e-12):
    return {
        "states": 10,
        "rising": rising,
        "max": top,
        "median": -0.6,
        "flow_max": flow,
        "flow_rising": int(flow > 1e-9),
        "flow_points": 20,
        "flow_steps_min": 20,
        "flow_time_min": 0.2,
        "rounding_bound": bound,
        "energy": [],
    }


def _claim1(p42=None, ctrl_at=(3, 3), p41=(0, 2), flow=-0.2, bound=1e-12):
    """Two sweep points; ``ctrl_at`` / ``p41``: the controls' rising counts per point;
    ``p42``: the relaxation's rising count at the second point (None: never)."""
    points = []
    for i in range(2):
        cases = {k: _case(bound=bound) for k in (SYM, HEADS, P42, OVERLAP)}
        cases[SYM] = _case(flow=flow, bound=bound)
        cases[CTRL] = _case(ctrl_at[i], 0.4 if ctrl_at[i] else -0.1, bound=bound)
        cases[P41] = _case(p41[i], 0.2 if p41[i] else -0.1, bound=bound)
        if p42 and i == 1:
            cases[P42] = _case(p42, 0.1, bound=bound)
        points.append(
            {
                "tokens": 4,
                "dim": 8,
                "heads": 2,
                "weight_scale": 10.0**i,
                "beta": 1.0,
                "cases": cases,
            }
        )
    return CLAIM1.judge(_record(CLAIM1, {"points": points}))


def test_claim1_judges_the_sweep_with_controls_that_can_fail_it():
    v = _claim1()
    assert v.status == "pass"
    near = "control: asymmetric A, W^V = sym(A) rises somewhere"
    assert _status(v, near) == "pass"
    shown = next(c for c in v.checks if c.name.startswith("overlapping"))
    assert not shown.required and shown.status == "inconclusive"
    relax = _claim1(p42=2)  # the relaxation's energy rose at one sweep point
    assert relax.status == "fail"
    rel = next(c for c in relax.checks if c.name.startswith("Prop 4.2"))
    assert rel.numbers["states above tol"] == "2/20" and len(rel.numbers["where (first 8)"]) == 1
    assert _claim1(flow=1e-3).status == "fail"  # a rise along a flow fails too
    # a control without teeth fails the recipe: random W^V silent at one point, or the near
    # miss never rising anywhere in the sweep
    assert _status(_claim1(ctrl_at=(3, 0)), "control: random W^V rises at every sweep point") == (
        "fail"
    )
    assert _claim1(p41=(0, 0)).status == "fail"
    # a tol below the float64 rounding bound of some point cannot separate 0 from a rise
    assert _claim1(bound=1e-6).status == "inconclusive"


# ------------------------------------------------------------------------------ fig1
def _fig1(ratio=0.9, normalized=None, conv=(1.0, 0.8, 0.78, 0.78, 0.78), spread=0.01):
    tokens = [16, 64, 256, 512, 1024]
    normalized = normalized or (0.4, 0.5, 0.6, 0.6, 0.6)
    samples = {
        "normalized": [[n, n * (1 + spread), n * (1 - spread)] for n in normalized],
        "unnormalized": [[100 * n, 101 * n, 99 * n] for n in normalized],
        "bound": [[n / ratio] * 3 for n in normalized],
    }
    etas = [1.0, 10.0, 100.0, 1e3, 1e4]
    large = {
        "eta": etas,
        "normalized": [[c, c] for c in conv],
        "unnormalized": [[2 * e, 2.1 * e] for e in etas],
        "bound": [[None, None]] + [[c / 0.9, c / 0.9] for c in conv[1:]],
        "limit": [[1.0, 1.0]] * 5,
    }
    med = {k: [sorted(v)[1] for v in samples[k]] for k in ("normalized", "unnormalized")}
    data = {"tokens": tokens, "samples": samples, "median": med, "large_eta": large}
    return FIG1.judge(_record(FIG1, data, large_s=256, slope_max=0.1))


def test_fig1_judges_o1_at_large_s_and_reports_the_ratio():
    v = _fig1()  # grows at small S, flat from S = 256 on
    assert v.status == "pass" and "over S >= 256" in v.reason
    whole = next(c for c in v.checks if c.name.startswith("slopes over the whole grid"))
    assert not whole.required and whole.numbers["slope normalized (all S)"] > 0.05
    ratio = next(c for c in v.checks if c.name.startswith("normalization reduces"))
    assert not ratio.required  # about R by construction: shown, never judged
    growing = _fig1(normalized=(0.1, 0.2, 0.4, 0.6, 0.9))  # slope ~0.6 at large S
    assert _status(growing, "O(1) in S at large S") == "fail" and growing.status == "fail"
    noisy = _fig1(normalized=(0.4, 0.5, 0.6, 0.62, 0.66), spread=0.3)  # CI across slope_max
    assert _status(noisy, "O(1) in S at large S") == "inconclusive"
    assert _fig1(ratio=1.2).status == "fail"  # a sample above the Prop 5.1 bound
    no_limit = _fig1(conv=(1.0, 2.0, 4.0, 8.0, 16.0))  # no large-eta limit
    assert _status(no_limit, "large-eta limit (Eq. 15)") == "fail"


# ------------------------------------------------------------------------------ fig2
_TOY = {"max_abs_plain": 1.352, "expected_plain": 1.352, "max_abs_norm": 1.0, "norm_J_norm": 1.0}


def _fig2(
    norm_radius, plain_radius, le_norm=(-0.1, -0.12, -0.11), le_plain=(0.5, 0.52, 0.49), cell=0.8
):
    sud = {}
    for s in SEEDS:
        sud[seeded("normalized", s)] = {
            "design": "normalized",
            "cell_accuracy": cell,
            "spectral_radius": [norm_radius] * 3,
            "max_ftle": [le_norm[s]],
        }
        sud[seeded("unnormalized", s)] = {
            "design": "unnormalized",
            "spectral_radius": [plain_radius] * 3,
            "max_ftle": [le_plain[s]],
        }
    return FIG2.judge(_record(FIG2, {"toy": _TOY, "sudoku": sud}))


def test_fig2_passes_fails_no_effect_and_gates():
    assert _fig2(0.98, 1.7).status == "pass"
    assert _fig2(1.3, 1.7).status == "fail"  # normalized radius outside 1 + tol
    assert _fig2(0.98, 0.9).status == "fail"  # unnormalized inside the circle
    noise = _fig2(0.98, 1.7, le_norm=NOISE_A, le_plain=NOISE_B)
    assert _status(noise, "Sudoku: max Lyapunov exponent") == "no effect"
    assert noise.status == "no effect"
    gated = _fig2(0.98, 1.7, cell=0.2)
    assert gated.status == "inconclusive"
    assert _status(gated, "toy: normalization pulls it back") == "pass"


# ------------------------------------------------------------------------------ fig3
def _member(name, kind, acc, le, cell=0.9):
    return {
        "member": name,
        "kind": kind,
        "board_accuracy": acc,
        "cell_accuracy": cell,
        "max_le": le,
        "mean_le": le,
        "seeds": 1,
    }


def _cut(kind):
    return {**_member(f"{kind} (cut)", kind, None, None), "measured": False}


def _fig3(top_le=0.1, sym_le=-0.4, unnorm_le=0.8, ref_acc=0.9, spread=True):
    members = _fig3_members(top_le, sym_le, unnorm_le, ref_acc, spread)
    return FIG3.judge(_record(FIG3, {"members": members}, boot=300))


def _fig3_members(top_le=0.1, sym_le=-0.4, unnorm_le=0.8, ref_acc=0.9, spread=True):
    members = [_member("normalized", "normalized", ref_acc, top_le)]
    for i in range(9):  # further from 0.1, less accurate (or flat when not spread)
        acc = ref_acc - 0.05 * (i + 1) if spread else ref_acc - 0.05
        le = top_le + (0.05 * (i + 1) if i % 2 else -0.05 * (i + 1))
        members.append(_member(f"m{i}", "normalized", acc, le if spread else 0.1 + 0.01 * i))
    members.append(_member("unnormalized", "unnormalized", 0.0, unnorm_le, cell=0.3))
    members.append(_member("symmetric", "symmetric", 0.1, sym_le, cell=0.5))
    if not spread:  # accuracy unrelated to |LE - 0.1|
        for i, m in enumerate(members):
            m["board_accuracy"] = [0.5, 0.2, 0.6, 0.3, 0.4, 0.45, 0.1, 0.35, 0.55, 0.25, 0.15, 0.5][
                i
            ]
    return members


def test_fig3_pass_fail_no_effect_and_gate():
    v = _fig3()
    assert v.status == "pass", [(c.name, c.status) for c in v.checks]
    assert _fig3(top_le=0.9).status == "fail"  # the most accurate are far from criticality
    assert _status(_fig3(sym_le=0.2), "symmetric") == "fail"
    assert _status(_fig3(unnorm_le=0.2), "unnormalized") == "fail"
    flat = _fig3(spread=False)
    assert _status(flat, "accuracy falls away from criticality") == "no effect"
    no_sym = [m for m in _fig3_members() if m["kind"] != "symmetric"]
    cut = _record(FIG3, {"members": [*no_sym, _cut("symmetric")]}, boot=300)
    assert _status(FIG3.judge(cut), "symmetric") == "inconclusive"  # cut, not diverged
    weak = _fig3(ref_acc=0.6)  # no accurate model: (a) cannot be judged
    assert _status(weak, "most accurate quartile near criticality") == "inconclusive"
    # extras (added after the declaration) are reported, never judged: a symmetric extra
    # above the band and a perfect one at LE 5 change nothing
    extras = [_member("sym 1 epoch", "symmetric", 0.0, 0.9), _member("x", "normalized", 1.0, 5)]
    with_extras = _record(FIG3, {"members": _fig3_members(), "extras": extras}, boot=300)
    assert FIG3.judge(with_extras).to_dict() == _fig3().to_dict()


# ------------------------------------------------------------------------------ fig4
def _curve(acc16, acc256):
    return {
        "steps": [16, 32, 64, 128, 256],
        "board": [acc16, acc16, acc16, acc256, acc256],
        "cell": [0.9] * 5,
        "n": 200,
    }


def _fig4(
    itrsa_gain=(0.1, 0.12, 0.11), big_gain=(0.0, 0.01, -0.01), rms_gain=(0.1, 0.12, 0.11), base=0.3
):
    runs = {}
    gains = {"ItrSA": itrsa_gain, "AKOrN N=64": big_gain}
    for rms in ("AKOrN+RMSNorm(unit) N=64", "AKOrN+RMSNorm N=64"):
        gains[rms] = rms_gain
    for model, g in gains.items():
        design = model_label(model, "reference")
        for s in SEEDS:
            runs[seeded(design, s)] = {
                "design": design,
                "seed": s,
                "id": _curve(base, base + g[s]),
                "ood": _curve(base, base + g[s]),
            }
    return FIG4.judge(_record(FIG4, {"runs": runs, "curves": {}}))


def test_fig4_pass_fail_no_effect_and_gate():
    assert _fig4().status == "pass"
    assert _fig4(itrsa_gain=(-0.1, -0.12, -0.11)).status == "fail"  # accuracy falls with T
    noisy = _fig4(itrsa_gain=(0.05, -0.04, 0.02))
    assert _status(noisy, "ItrSA scales (OOD)") == "no effect" and noisy.status == "no effect"
    # large N scales as much as RMSNorm: the contrast is "no effect", not pass
    same = _fig4(big_gain=(0.1, 0.12, 0.11))
    assert _status(same, "AKOrN N=64 scales less than AKOrN+RMSNorm N=64 (OOD)") == "no effect"
    assert (
        _fig4(base=0.0, itrsa_gain=(0, 0, 0), big_gain=(0, 0, 0), rms_gain=(0, 0, 0)).status
        == "inconclusive"
    )  # solves nothing at any T


# ------------------------------------------------------------------------------ fig5
def _fig5(
    spec=HIGH,
    base=LOW,
    emulti=(0.6, 0.62, 0.61),
    esingle=(0.1, 0.12, 0.11),
    akorn_spec=HIGH,
    cell=0.9,
    loss_single=(2.0, 2.1, 2.05),
):
    runs, groups = {}, {}
    table = {
        "ItrSA": (base, (0.1, 0.11, 0.12)),
        "ItrSA + Spec (chosen)": (spec, (0.1, 0.11, 0.12)),
        "ItrSA + E-multi": (emulti, (0.2, 0.21, 0.22)),
        "ItrSA + E-single": (esingle, loss_single),
        "AKOrN": (base, (0.1, 0.11, 0.12)),
        "AKOrN + Spec (chosen)": (akorn_spec, (0.1, 0.11, 0.12)),
    }
    for group, (accs, losses) in table.items():
        groups[group] = []
        for s in SEEDS:
            key = seeded(group, s)
            groups[group].append(key)
            runs[key] = {"board_accuracy": accs[s], "cell_accuracy": cell, "final_loss": losses[s]}
    return FIG5.judge(_record(FIG5, {"runs": runs, "groups": groups}))


def test_fig5_pass_fail_no_effect_and_gate():
    assert _fig5().status == "pass"
    assert _status(_fig5(spec=(0.70, 0.71, 0.72)), "Spec helps ItrSA") == "fail"
    noisy = _fig5(spec=NOISE_A, base=NOISE_B)
    assert _status(noisy, "Spec helps ItrSA") == "no effect"
    assert noisy.status == "no effect"
    # E-single below the baseline but with a lower final loss: not "fails to train"
    assert _status(_fig5(loss_single=(0.01, 0.02, 0.015)), "E-single fails to train") == "fail"
    assert _fig5(cell=0.2).status == "inconclusive"


def test_fig5_a_diverged_run_counts_as_untrained_and_one_seed_is_no_test():
    v = _fig5()
    rec = _record(FIG5, {"runs": {}, "groups": {}})
    rec["data"] = {
        "runs": {
            "ItrSA | seed 0": {"board_accuracy": 0.8, "cell_accuracy": 0.9, "final_loss": 0.1},
            "ItrSA | seed 1": {"board_accuracy": 0.81, "cell_accuracy": 0.9, "final_loss": 0.1},
            "ItrSA + E-multi | seed 0": {"train_status": "diverged"},
            "ItrSA + E-multi | seed 1": {"train_status": "diverged"},
            "ItrSA + Spec (chosen) | seed 0": {"board_accuracy": 0.9, "cell_accuracy": 0.9},
        },
        "groups": {
            "ItrSA": ["ItrSA | seed 0", "ItrSA | seed 1"],
            "ItrSA + E-multi": ["ItrSA + E-multi | seed 0", "ItrSA + E-multi | seed 1"],
            "ItrSA + Spec (chosen)": ["ItrSA + Spec (chosen) | seed 0"],
        },
    }
    w = FIG5.judge(rec)
    assert _status(w, "E-multi below baseline") == "pass"  # diverged = accuracy 0
    assert _status(w, "Spec helps ItrSA") == "inconclusive"  # one seed: no test
    assert v.status == "pass"


# ------------------------------------------------------------------------------ fig6
def _fig6(e_last=-5.0, ci=(0.1, 0.3), cos_free=0.99, cos_raw=0.3, pv_gap=0.02, cell=0.9):
    steps = 3
    contribution = [[ci[0]] * 2, [(ci[0] + ci[1]) / 2] * 2, [ci[1]] * 2]
    r = {
        "cell_accuracy": cell,
        "energy": [[0.0] * 4, [-1.0] * 4, [e_last] * 4],
        "cosine": [[cos_raw] * 4] * steps,
        "cosine_bias_free": [[cos_free] * 4] * steps,
        "contribution": contribution,
        "contribution_pv0": [[v + pv_gap for v in row] for row in contribution],
        "contribution_pv": contribution,
        "ci_steps": [0, 1, 2],
    }
    return FIG6.judge(_record(FIG6, {"models": {"AKOrN": r}}))


def test_fig6_pass_fail_and_gate():
    v = _fig6()
    assert v.status == "pass"  # the raw cosine (0.3) is shown, not required
    assert _status(v, "quadratic reading (raw, as the paper)") == "fail"
    assert _fig6(e_last=3.0).status == "fail"
    assert _fig6(ci=(0.3, 0.1)).status == "fail"
    assert _fig6(cos_free=0.5).status == "fail"
    assert _fig6(pv_gap=0.3).status == "fail"
    assert _fig6(cell=0.1).status == "inconclusive"
