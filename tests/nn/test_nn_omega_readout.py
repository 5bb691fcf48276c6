"""Omega is an anti-symmetric rotation generator; readouts match their definitions."""

import math

import torch
import torch.nn.functional as F
from torch.func import jacfwd

from sadyn.nn.omega import Omega
from sadyn.nn.readout import AKOrNReadout, MLPReadout, NormReadout


def test_omega_is_antisymmetric_with_frequency_norm():
    om = Omega(6, init=0.5).double()
    assert math.isclose(om.frequencies.item(), 0.5, rel_tol=1e-6)
    with torch.no_grad():
        om.omega_param.copy_(torch.tensor([0.3, 0.4]))
    w = 0.5  # ||(0.3, 0.4)||
    x = torch.randn(6, dtype=torch.float64)
    mat = jacfwd(om)(x)
    torch.testing.assert_close(mat, -mat.T)
    eig = torch.linalg.eigvals(mat)
    torch.testing.assert_close(eig.real, torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(eig.imag.abs(), torch.full((6,), w, dtype=torch.float64))
    torch.testing.assert_close(om(x)[:2], torch.stack((w * x[1], -w * x[0])))


def test_omega_per_pair():
    om = Omega(4, init=1.0, global_omega=False, learnable=False)
    assert om.frequencies.shape == (2,) and not om.omega_param.requires_grad


def test_norm_readout_formula():
    ro = NormReadout(6, 5, 3).double()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    z = ro.proj(x).view(2, 7, 5, 3)  # output channel o uses rows 3o..3o+2 of the Linear
    torch.testing.assert_close(ro(x), z.norm(dim=-1) + ro.bias)


def test_akorn_readout_composition():
    ro = AKOrNReadout(6, 4).double()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    z = ro.norm_readout(x)
    z = z + ro.ff2(F.relu(ro.ff1(F.relu(z))))
    expected = ro.head(F.relu(ro.mix(F.relu(z))))
    torch.testing.assert_close(ro(x), expected)
    # D*N*D + D*N (norm readout) + D + 3 * (D*D + D) + 9*D + 9
    d, n = 6, 4
    count = d * n * d + d * n + d + 3 * (d * d + d) + 9 * d + 9
    assert sum(p.numel() for p in ro.parameters()) == count
    assert MLPReadout(6).double()(x).shape == (2, 7, 9)
