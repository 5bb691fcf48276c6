import numpy as np
import pytest
import torch
from probes_toys import LinearToy, ToyItrSA, puzzles

from sadyn.probes import figures
from sadyn.probes.energy import energy_probe
from sadyn.probes.jacobian import jacobian_probe
from sadyn.probes.lyapunov import lyapunov_probe
from sadyn.probes.sensitivity import sensitivity_probe
from sadyn.probes.stepmap import rollout

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def probes():
    model = ToyItrSA(d=2, heads=1)  # n = 162: every probe in well under a second
    run = rollout(model, puzzles(2), 3)
    return {
        "jacobian": jacobian_probe(model, run, [0, 3], samples=2, show_progress=False),
        "lyapunov": lyapunov_probe(
            model, run, horizon=3, k=4, asymptotic_steps=5, show_progress=False
        ),
        "energy": energy_probe(model, run, ci_steps=[0, 3], samples=1, show_progress=False),
        "sensitivity": sensitivity_probe(
            model, run, warmup=2, steps=10, records=5, show_progress=False
        ),
    }


@pytest.mark.parametrize("name", ["jacobian", "lyapunov", "energy", "sensitivity"])
def test_each_probe_draws_a_png(probes, name, tmp_path):
    path = getattr(figures, f"plot_{name}")(probes[name], tmp_path / "sub" / f"{name}.png")
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


def test_figures_survive_minus_inf_and_missing_parts(tmp_path):
    # a normalised model with k = n has -inf exponents; a model without attention has no PV
    model = ToyItrSA(d=2, heads=1)
    run = rollout(model, puzzles(1), 1)
    lya = lyapunov_probe(model, run, horizon=2, k=162, show_progress=False)
    assert not np.all(np.isfinite(lya.finite_time))
    assert figures.plot_lyapunov(lya, tmp_path / "l.png").read_bytes().startswith(PNG)
    lin = LinearToy(0.5 * torch.eye(162, dtype=torch.float64))
    eng = energy_probe(lin, rollout(lin, puzzles(1), 2), samples=1, show_progress=False)
    assert eng.contribution_pv is None
    assert figures.plot_energy(eng, tmp_path / "e.png").read_bytes().startswith(PNG)
