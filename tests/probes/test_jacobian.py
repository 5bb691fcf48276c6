import math

import numpy as np
import pytest
import torch
from probes_toys import ToyItrSA, puzzles

from sadyn.dynamics import math_attention
from sadyn.probes.jacobian import (
    bound_verdict,
    detect_normalization,
    jacobian_probe,
    prop51_bound,
)
from sadyn.probes.stepmap import analysis_mode, rollout, single_msa_map, single_step_map

D, N = 2, 162  # ToyItrSA's width and S * D


def dense_jacobian(f, x):
    """Reference Jacobian by reverse mode, independent of sadyn.dynamics."""
    with math_attention():
        return torch.func.jacrev(f)(x.reshape(-1))


@pytest.fixture(scope="module")
def toy_run():
    model = ToyItrSA(eta=0.9)
    return model, rollout(model, puzzles(3), 4, seed=1)


def test_dense_probe_matches_reference_norms_and_eigenvalues(toy_run):
    model, run = toy_run
    probe = jacobian_probe(model, run, [0, 4], samples=2, show_progress=False)
    assert probe.method == "dense" and probe.k == N
    assert probe.eigenvalues.shape == (2, 2, N) and probe.spectral_norm.shape == (2, 3)
    with analysis_mode(model):
        for i, t in enumerate([0, 4]):
            for b in range(3):
                j = dense_jacobian(single_step_map(model, run.cond, b), run.state(t)[b])
                jm = dense_jacobian(single_msa_map(model, (81, D)), run.state(t)[b])
                assert probe.spectral_norm[i, b] == pytest.approx(
                    float(torch.linalg.matrix_norm(j, 2)), rel=1e-8
                )
                assert probe.msa_norm[i, b] == pytest.approx(
                    float(torch.linalg.matrix_norm(jm, 2)), rel=1e-8
                )
                if b < 2:
                    ev = torch.linalg.eigvals(j).numpy()
                    ref = np.sort(np.abs(ev))[::-1]
                    np.testing.assert_allclose(np.abs(probe.eigenvalues[i, b]), ref, atol=1e-9)
                    assert probe.spectral_radius[i, b] == pytest.approx(ref[0], rel=1e-9)


def test_matrix_free_eigenvalues_match_dense():
    model = ToyItrSA(eta=0.9)
    run = rollout(model, puzzles(2, given=0.0), 4, seed=1)  # generic (non-degenerate) spectrum
    dense = jacobian_probe(model, run, [4], samples=[1], show_progress=False)
    free = jacobian_probe(
        model, run, [4], samples=[1], method="matrix-free", k=12, show_progress=False
    )
    assert free.method == "matrix-free" and free.eigenvalues.shape == (1, 1, 12)
    # complex-conjugate pairs may be cut differently at the k-th value: compare moduli
    np.testing.assert_allclose(
        np.abs(free.eigenvalues[0, 0, :10]), np.abs(dense.eigenvalues[0, 0, :10]), rtol=1e-6
    )
    assert free.spectral_radius[0, 0] == pytest.approx(dense.spectral_radius[0, 0], rel=1e-8)


@pytest.mark.parametrize(
    ("eta", "weight_scale", "t"), [(0.5, 1.0, 0), (3.0, 1.0, 3), (50.0, 1.0, 3), (1.0, 4.0, 3)]
)
def test_prop51_bound_holds_for_unit_rmsnorm(eta, weight_scale, t):
    model = ToyItrSA(eta=eta, weight_scale=weight_scale, seed=2)
    run = rollout(model, puzzles(3, seed=3), 3, seed=2)
    check = prop51_bound(model, run.state(t), run.cond)
    assert check.form == "J_MSA" and check.norm.group == D
    assert check.norm.scale == pytest.approx(1.0, rel=1e-10)
    assert np.all(check.measured <= check.bound * (1 + 1e-9))
    # the right-hand side by hand: R from the pre-norm states, ||J_MSA|| from jacrev
    with torch.no_grad():
        y = run.state(t) + eta * (run.cond + model.msa(run.state(t)))
    r = y.norm(dim=-1).amin(-1).numpy()
    gmax = float(model.gamma.detach().abs().max())
    with analysis_mode(model):
        jm = [
            float(
                torch.linalg.matrix_norm(
                    dense_jacobian(single_msa_map(model, (81, D)), run.state(t)[b]), 2
                )
            )
            for b in range(3)
        ]
    np.testing.assert_allclose(check.bound, gmax / r * (1 + eta * np.array(jm)), rtol=1e-8)


def test_normalisation_detection_and_non_applicability():
    x_run = {}
    for name, kw in {
        "osc": {"d": 4, "group": 2},
        "standard": {"standard_rms": True},
        "none": {"normalize": False, "eta": 0.1},
    }.items():
        model = ToyItrSA(**kw)
        run = rollout(model, puzzles(2), 1)
        x_run[name] = (model, run, detect_normalization(model, run.state(1), run.cond))
    assert x_run["osc"][2].group == 2 and x_run["osc"][2].scale == pytest.approx(1.0)
    assert x_run["standard"][2].group == D
    assert x_run["standard"][2].scale == pytest.approx(math.sqrt(D))
    assert x_run["none"][2] is None
    model, run, _ = x_run["standard"]
    check = prop51_bound(model, run.state(1), run.cond)
    assert np.all(check.measured <= check.bound)  # the sqrt(g) factor is accounted for
    model, run, _ = x_run["none"]
    probe = jacobian_probe(model, run, [1], samples=1, show_progress=False)
    assert (
        probe.bound is None and probe.bound_form == "n/a" and "no normalisation" in probe.bound_note
    )


def test_oscillator_wise_bound_uses_group_norms():
    model = ToyItrSA(d=4, group=2, eta=2.0, seed=4)
    run = rollout(model, puzzles(3), 2)
    check = prop51_bound(model, run.state(2), run.cond)
    assert check.norm.group == 2
    assert np.all(check.measured <= check.bound * (1 + 1e-9))
    with torch.no_grad():
        y = run.state(2) + 2.0 * model.update(run.state(2), run.cond)
    r = y.reshape(3, 81, 2, 2).norm(dim=-1).flatten(1).amin(1).numpy()
    np.testing.assert_allclose(check.radius, r, rtol=1e-12)


def test_to_dict_is_json(toy_run):
    import json

    model, run = toy_run
    d = jacobian_probe(model, run, [0], samples=1, show_progress=False).to_dict()
    back = json.loads(json.dumps(d))
    assert back["summary"]["t=0"]["bound_holds"] is True
    assert len(back["eigenvalues"]["re"][0][0]) == N


def test_bound_verdict_needs_converged_norms():
    """An unconverged power iteration is a lower bound: ||J|| below the bound shows nothing
    then, and a bound built on a lower-bounded inner norm cannot show a violation."""
    m, b = np.array([1.0, 2.0]), np.array([3.0, 3.0])
    yes, no = np.array([True, True]), np.array([True, False])
    assert bound_verdict(m, b, yes, yes) == {"bound_holds": True, "bound_status": "holds"}
    below_unconverged = bound_verdict(m, b, no, yes)
    assert below_unconverged["bound_holds"] is False
    assert below_unconverged["bound_status"].startswith("not determined (1 norm")
    above = np.array([1.0, 4.0])
    assert bound_verdict(above, b, yes, yes)["bound_status"] == "violated"
    assert bound_verdict(above, b, yes, no)["bound_status"].startswith("not determined")


def test_an_unconverged_norm_is_flagged_not_called_a_pass(toy_run, monkeypatch):
    """The probe records each norm's convergence and its summary does not call the bound held
    on a norm that is only a lower bound (the power iteration cut at one step)."""
    import sadyn.dynamics
    from sadyn.dynamics import spectral_norm

    def one_step(f, x, **kw):  # the iteration cut short: a lower bound, flagged unconverged
        return spectral_norm(f, x, **{**kw, "method": "power", "max_iter": 1, "tol": 0.0})

    model, run = toy_run
    monkeypatch.setattr(sadyn.dynamics, "spectral_norm", one_step)
    with pytest.warns(Warning, match="did not converge"):
        probe = jacobian_probe(model, run, [0], samples=1, show_progress=False)
    assert probe.norm_converged is not None and not probe.norm_converged.any()
    row = probe.summary()["t=0"]
    assert row["spectral_norm_converged"] is False
    assert row["bound_holds"] is False and row["bound_status"].startswith("not determined")
    assert probe.to_dict()["spectral_norm_converged"] == [[False] * run.batch]


def test_bad_arguments(toy_run):
    model, run = toy_run
    with pytest.raises(ValueError, match="samples"):
        jacobian_probe(model, run, [0], samples=[5], show_progress=False)
    with pytest.raises(ValueError, match="method"):
        jacobian_probe(model, run, [0], method="lanczos", show_progress=False)
