"""The block eigensolver against dense ``eigh`` on matrices with a known spectrum, clusters
at the cut included, and on the symmetrized Jacobian of attention maps."""

import pytest
import torch

from sadyn.dynamics import jacobian, math_attention
from sadyn.dynamics.block_eigen import SymmetricPart, spectrum_bounds, top_eigenspace
from sadyn.errors import ArgumentError
from sadyn.models import build_model

EPS64 = torch.finfo(torch.float64).eps


def with_spectrum(lam: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, Q)``: ``A = Q diag(lam) Q^T`` with a random orthogonal ``Q`` (float64)."""
    g = torch.Generator().manual_seed(seed)
    n = lam.numel()
    q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    return (q * lam) @ q.T, q


def clustered_spectrum(n: int, m: int, step: float) -> torch.Tensor:
    """Descending: a bulk N(0, 0.1^2) below, a spread top, three equal eigenvalues inside
    the top m (their vectors are not identifiable), and a cluster of six spaced ``step``
    apart straddling the cut (three inside the top m, three outside)."""
    g = torch.Generator().manual_seed(1)
    lam = (0.1 * torch.randn(n, generator=g, dtype=torch.float64)).sort(descending=True)[0]
    lam[: m - 3] = torch.linspace(3.0, 1.1, m - 3, dtype=torch.float64)
    lam[1:4] = 2.5  # a degenerate triple inside
    lam[m - 3 : m + 3] = 1.0 + step * torch.arange(5, -1, -1, dtype=torch.float64)
    return lam


def projector_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||A A^T - B B^T||_2`` for orthonormal ``(n, m)`` bases."""
    return float(torch.linalg.matrix_norm(a @ a.T - b @ b.T, ord=2))


@pytest.mark.parametrize("step", [1e-2, 1e-3])
def test_cluster_straddling_the_cut_gives_the_exact_eigenspace(step):
    n, m = 600, 12  # m = 2% of n
    lam = clustered_spectrum(n, m, step)
    a, q = with_spectrum(lam)
    res = top_eigenspace(
        lambda v: a @ v, n, m, tol=1e-10, generator=torch.Generator().manual_seed(0)
    )
    assert res.converged
    # the gap at the cut is `step`: the estimate may not exceed it (it is theta_m minus an
    # upper estimate of lambda_{m+1}) and, once converged to 1e-10 ||A||, is within a few
    # residuals of it
    assert res.gap * res.scale == pytest.approx(step, abs=1e-8 * res.scale)
    # Davis-Kahan: ||P - P_true|| <= ||R|| / gap, with ||R|| <= sqrt(m) 1e-10 ||A|| = 1e-9
    # (||A|| <= 3 + the Lanczos slack): the bound is below 1e-5 / (step / 1e-3) and holds
    truth = q[:, :m]
    dist = projector_distance(res.vectors, truth)
    assert dist <= res.space_error <= 1e-6 * (1e-3 / step)
    # the contribution index of any x moves by at most the same amount
    x = torch.randn(n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = float((truth.T @ x).square().sum() / (x @ x))
    assert abs(res.share(x) - exact) <= res.space_error
    # the test is about the space: inside the degenerate triple the Ritz vectors are some
    # rotation of the eigenvectors eigh returns (a random start makes them differ)
    cos = (res.vectors[:, 1:4].T @ truth[:, 1:4]).abs()
    assert float(cos.max()) < 1 - 1e-6
    torch.testing.assert_close(res.values, lam[:m], rtol=0, atol=1e-9 * res.scale)


def test_degenerate_cut_is_reported_not_resolved():
    n, m = 400, 8
    lam = clustered_spectrum(n, m, 1e-2)
    lam[m] = lam[m - 1]  # lambda_m == lambda_{m+1}: the top-m space is not unique
    a, q = with_spectrum(lam, seed=2)
    res = top_eigenspace(lambda v: a @ v, n, m, tol=1e-10)
    assert res.gap <= 0 and res.space_error == 1.0
    lo, hi = res.cut_window()
    assert lo == m and hi == m + 1  # the tie is found, the pair below the tie is not in it
    x = torch.randn(n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    low, high = res.share_range(x)
    # the top-(m-1) and top-(m+1) spaces are unique: the shares of every top-m choice lie
    # between theirs; the computed range is [share(m), share(m+1)] to the residual's
    # second-order error (1e-20 relative here)
    top_less = float((q[:, : m - 1].T @ x).square().sum() / (x @ x))
    top_more = float((q[:, : m + 1].T @ x).square().sum() / (x @ x))
    assert top_less - 1e-12 <= low <= res.share(x) <= high
    assert high == pytest.approx(top_more, abs=1e-12)


def test_spectrum_bounds_bracket_the_spectrum():
    lam = torch.linspace(-2.0, 5.0, 300, dtype=torch.float64)
    a, _ = with_spectrum(lam, seed=4)
    lo, up = spectrum_bounds(lambda v: a @ v, 300, steps=30)
    assert lo <= -2.0 and up >= 5.0
    # and not uselessly wide: for a uniform spectrum (the slow case for Lanczos) beta_k tends
    # to width / 4 = 1.75, the widening of each end
    assert up - 5.0 < 2.0 and -2.0 - lo < 2.0


def test_symmetric_part_is_the_symmetrized_jacobian_of_an_attention_map():
    torch.manual_seed(0)
    model = build_model({"model": "itrsa", "dim": 8, "heads": 2}).double().eval()
    x = torch.randn(81 * 8, dtype=torch.float64)

    def f(v):
        return model.msa(v.view(1, 81, 8)).reshape(-1)

    with math_attention():
        j = jacobian(f, x)
    v = torch.randn(81 * 8, 40, dtype=torch.float64)
    op = SymmetricPart(f, x, chunk=16)  # three chunks, the last one short
    # float64 products of an O(1) Jacobian: agreement to n * eps64 ~ 1e-13
    torch.testing.assert_close(op @ v, 0.5 * (j + j.T) @ v, rtol=0, atol=1e-12)
    assert op.products == 40


def test_block_solver_matches_eigh_on_an_attention_jacobian():
    torch.manual_seed(1)
    model = build_model({"model": "itrsa", "dim": 8, "heads": 2}).double().eval()
    x = torch.randn(81 * 8, dtype=torch.float64)

    def f(v):
        return model.msa(v.view(1, 81, 8)).reshape(-1)

    with math_attention():
        j = jacobian(f, x)
    n, m = 648, 12
    evals, evecs = torch.linalg.eigh(0.5 * (j + j.T))
    truth = evecs[:, -m:]
    res = top_eigenspace(SymmetricPart(f, x), n, m, tol=1e-10)
    assert res.converged and res.space_error < 1e-3
    # the bound holds against eigh, and the index of the state itself
    assert projector_distance(res.vectors, truth) <= res.space_error
    exact = float((truth.T @ x).square().sum() / (x @ x))
    assert abs(res.share(x) - exact) <= res.space_error
    torch.testing.assert_close(res.values, evals.flip(0)[:m], rtol=0, atol=1e-9 * res.scale)


def test_validation():
    a = torch.eye(5, dtype=torch.float64)
    with pytest.raises(ArgumentError):
        top_eigenspace(lambda v: a @ v, 5, 5)
    with pytest.raises(ArgumentError):
        top_eigenspace(lambda v: a @ v, 5, 2, tol=0.0)
