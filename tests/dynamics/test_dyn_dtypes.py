"""The dtype policy of sadyn.dynamics: float32/float64 states and maps that keep the dtype.

Each entry point used to return a wrong number here: a complex map's spectral norm came back
as 0.3 for |0.3 + 0.4i| = 0.5, a float64 -> float32 Hénon map gave a two-trajectory exponent
of -inf (true 0.42), half-precision FTLE [-inf, -inf]. Now every one raises a ShapeError.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from sadyn.dynamics import (
    JacobianOperator,
    Propagator,
    StepMapError,
    check_step_map,
    divergence,
    eigenvalues,
    finite_time_lyapunov,
    jacobian,
    lyapunov_spectrum,
    max_lyapunov_two_trajectory,
    singular_values,
    spectral_norm,
    systems,
)
from sadyn.errors import SadynError, ShapeError

F64 = torch.float64

#: Every public entry of sadyn.dynamics that takes a map and a state, called with defaults.
ENTRIES: dict[str, Callable] = {
    "jacobian": lambda f, x: jacobian(f, x),
    "JacobianOperator": lambda f, x: JacobianOperator(f, x),
    "spectral_norm": lambda f, x: spectral_norm(f, x),
    "eigenvalues": lambda f, x: eigenvalues(f, x),
    "singular_values": lambda f, x: singular_values(f, x),
    "lyapunov_spectrum": lambda f, x: lyapunov_spectrum(f, x, 10, progress=False),
    "finite_time_lyapunov": lambda f, x: finite_time_lyapunov(f, x, 5),
    "Propagator": lambda f, x: Propagator(f, x, 5),
    "divergence": lambda f, x: divergence(f, x, 1e-6, 10, progress=False),
    "two_trajectory": lambda f, x: max_lyapunov_two_trajectory(f, x, 10, d0=1e-6, progress=False),
    "check_step_map": lambda f, x: check_step_map(f, x),
}


def _rotation_scale(x: torch.Tensor) -> torch.Tensor:
    return (0.3 + 0.4j) * x


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_states_are_refused_everywhere(entry, dtype):
    x = torch.tensor([1.0 + 0.5j, -0.2 + 0.1j], dtype=dtype)
    with pytest.raises(ShapeError, match="complex"):
        ENTRIES[entry](_rotation_scale, x)
    batched = x.expand(3, 2).clone()
    with pytest.raises(ShapeError, match="complex"):
        lyapunov_spectrum(_rotation_scale, batched, 5, batched=True, progress=False)


def test_complex_numpy_states_and_vectors_are_refused():
    h = systems.henon()
    with pytest.raises(ShapeError, match="complex"):
        spectral_norm(h.f, np.array([0.1 + 1j, 0.2]))
    with pytest.raises(ShapeError, match="complex"):
        lyapunov_spectrum(h.f, h.x0, 5, q0=torch.eye(2, dtype=torch.complex128), progress=False)
    with pytest.raises(ShapeError, match="complex"):
        divergence(h.f, h.x0, 1e-6, 5, direction=torch.tensor([1j, 1.0]), progress=False)


def _henon_to_float32(x: torch.Tensor) -> torch.Tensor:
    return systems.henon().f(x).to(torch.float32)


@pytest.mark.parametrize("entry", sorted(set(ENTRIES) - {"check_step_map"}))
def test_a_map_that_changes_the_dtype_is_refused(entry):
    """float64 in, float32 out: before, the two-trajectory method returned -inf for Hénon
    (the 1e-9 separation rounds to 0 in float32) and other entries raised raw torch errors."""
    with pytest.raises(ShapeError, match="dtype") as err:
        ENTRIES[entry](_henon_to_float32, systems.henon().x0)
    assert "float64" in str(err.value) and "float32" in str(err.value)


def test_a_real_map_with_complex_output_is_refused():
    with pytest.raises(ShapeError, match="dtype"):
        spectral_norm(lambda x: x * (1 + 0j), systems.henon().x0)


def test_check_step_map_reports_the_dtype_change():
    """check_step_map crashed with a raw dtype error; now "dtype" fails and nothing is
    differentiated, and strict mode raises a StepMapError (a SadynError)."""
    rep = check_step_map(_henon_to_float32, systems.henon().x0)
    assert rep["shape"].passed is True
    assert rep["dtype"].passed is False and "float64 -> float32" in rep["dtype"].detail
    assert not rep.passed and [c.name for c in rep.checks] == ["shape", "dtype"]
    with pytest.raises(StepMapError, match="dtype"):
        check_step_map(_henon_to_float32, systems.henon().x0, strict=True)
    good = check_step_map(systems.henon().f, systems.henon().x0)
    assert good.passed and good["dtype"].passed is True


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_states_are_refused_with_a_hint(entry, dtype):
    """Before: FTLE [-inf, -inf] for Hénon in half, QR 'geqrf_cpu not implemented'."""
    h = systems.henon()
    with pytest.raises(ShapeError, match="float32 or float64") as err:
        ENTRIES[entry](h.f, h.x0.to(dtype))
    assert "low-precision" in str(err.value) and isinstance(err.value, SadynError)


def test_numpy_half_and_integer_states_are_refused():
    h = systems.henon()
    with pytest.raises(ShapeError, match="low-precision"):
        jacobian(h.f, np.array([0.1, 0.2], dtype=np.float16))
    with pytest.raises(ShapeError, match="floating"):
        jacobian(h.f, torch.tensor([1, 2]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64_are_accepted(dtype):
    h = systems.henon()
    x = h.x0.to(dtype)
    J = jacobian(h.f, x)
    assert J.dtype == dtype
    torch.testing.assert_close(J, h.jacobian(h.x0).to(dtype))
