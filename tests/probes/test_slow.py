"""Larger checks (``pytest -m slow``): the matrix-free paths of the probes on a real ItrSA with
GTA against dense references, at sizes where sadyn.dynamics itself goes matrix-free."""

import numpy as np
import pytest
import torch
from probes_toys import puzzles

from sadyn.dynamics import math_attention
from sadyn.models import build_model
from sadyn.probes.energy import contribution_index, energy_probe
from sadyn.probes.jacobian import jacobian_probe
from sadyn.probes.lyapunov import lyapunov_probe
from sadyn.probes.stepmap import analysis_mode, rollout, single_step_map

pytestmark = pytest.mark.slow


def itrsa(dim: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"model": "itrsa", "dim": dim, "heads": 2, "eta0": 1.5}).double()


def test_finite_time_subspace_solver_matches_the_dense_propagator():
    model = itrsa(16)  # n = 1296 > DENSE_MAX: the subspace solver runs
    run = rollout(model, puzzles(2, given=0.0), 0, seed=3)
    probe = lyapunov_probe(model, run, horizon=4, k=4, max_iter=30, tol=1e-9)
    for b in range(2):
        f = single_step_map(model, run.cond, b)
        x = run.state(0)[b].reshape(-1)
        prod = torch.eye(x.numel(), dtype=x.dtype)
        with analysis_mode(model), math_attention():
            for _ in range(4):
                prod = torch.func.jacrev(f)(x) @ prod
                x = f(x)
        ref = torch.log(torch.linalg.svdvals(prod)[:4]).numpy() / 4
        np.testing.assert_allclose(probe.finite_time[b], ref, atol=1e-6)


def test_matrix_free_spectra_and_contribution_index_on_gta_itrsa():
    model = itrsa(8)
    run = rollout(model, puzzles(1, given=0.0), 3, seed=1)
    dense = jacobian_probe(model, run, [3], samples=1, show_progress=False)
    free = jacobian_probe(
        model, run, [3], samples=1, method="matrix-free", k=8, show_progress=False
    )
    assert free.spectral_radius[0, 0] == pytest.approx(dense.spectral_radius[0, 0], rel=1e-7)
    ci_dense = contribution_index(model, run.state(3), method="dense")
    ci_free = contribution_index(model, run.state(3), method="matrix-free", tol=1e-10)
    np.testing.assert_allclose(ci_free, ci_dense, atol=1e-6)
    kw = {"ci_steps": [3], "samples": 1, "show_progress": False}
    a = energy_probe(model, run, method="dense", **kw)
    b = energy_probe(model, run, method="matrix-free", tol=1e-10, approximation=True, **kw)
    assert a.pv_note.startswith("applies (with GTA")
    np.testing.assert_allclose(b.contribution_pv0, a.contribution_pv0, atol=1e-6)
    np.testing.assert_allclose(b.contribution_pv, a.contribution_pv, atol=1e-6)
