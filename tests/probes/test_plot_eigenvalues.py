"""plot_eigenvalues (moved from sadyn.dynamics, which no longer imports matplotlib)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from sadyn.probes.figures import plot_eigenvalues


def test_plot_eigenvalues_draws_points_and_circle(tmp_path):
    ax = plot_eigenvalues(np.array([0.5 + 0.5j, 1.2, -0.3j]), label="J")
    xs = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(xs), [[0.5, 0.5], [1.2, 0.0], [0.0, -0.3]])
    assert len(ax.lines) >= 1  # the unit circle
    ax2 = plot_eigenvalues(torch.tensor([1 + 0j]), ax=ax, unit_circle=False)
    assert ax2 is ax and len(ax.collections) == 2
    ax.figure.savefig(tmp_path / "eig.png")
    assert (tmp_path / "eig.png").stat().st_size > 0


def test_dynamics_does_not_import_matplotlib():
    code = "import sys, sadyn.dynamics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
