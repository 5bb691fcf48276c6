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


def _attention_map(seed: int):
    """A float64 ItrSA attention map (D=8, H=2) at a random state: ``(f, x, J)``, n = 648."""
    torch.manual_seed(seed)
    model = build_model({"model": "itrsa", "dim": 8, "heads": 2}).double().eval()
    x = torch.randn(81 * 8, dtype=torch.float64)

    def f(v):
        return model.msa(v.view(1, 81, 8)).reshape(-1)

    with math_attention():
        j = jacobian(f, x)
    return f, x, j


def test_symmetric_part_is_the_symmetrized_jacobian_of_an_attention_map():
    f, x, j = _attention_map(0)
    v = torch.randn(81 * 8, 40, dtype=torch.float64)
    op = SymmetricPart(f, x, chunk=16)  # three chunks, the last one short
    # float64 products of an O(1) Jacobian: agreement to n * eps64 ~ 1e-13
    torch.testing.assert_close(op @ v, 0.5 * (j + j.T) @ v, rtol=0, atol=1e-12)
    assert op.products == 40


def test_block_solver_matches_eigh_on_an_attention_jacobian():
    f, x, j = _attention_map(1)
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


def wings_and_bulk(n: int, m: int, step: float) -> torch.Tensor:
    """Descending, shaped like the symmetrized Jacobian of an attention step at initialization
    (measured at paper width): a positive wing of m/2 eigenvalues in [0.05, 0.45], a dense bulk
    in [-0.05, 0.05] whose upper edge holds the 2% cut, a negative wing of m/2 down to -0.45,
    and six eigenvalues spaced ``step`` apart straddling the cut (three inside the top m)."""
    w = m // 2
    bulk = n - 2 * w - 6
    above = m - w - 3  # bulk eigenvalues above the cluster
    centre = 0.02
    cluster = centre + step * torch.arange(2.5, -3.0, -1.0, dtype=torch.float64)
    lam = torch.cat(
        [
            torch.linspace(0.45, 0.05, w, dtype=torch.float64),
            torch.linspace(0.049, float(cluster[0]) + 1e-3, above, dtype=torch.float64),
            cluster,
            torch.linspace(float(cluster[-1]) - 1e-3, -0.05, bulk - above, dtype=torch.float64),
            torch.linspace(-0.051, -0.45, w, dtype=torch.float64),
        ]
    )
    assert lam.numel() == n and bool((lam[:-1] >= lam[1:]).all())
    return lam


def edge_error(a: torch.Tensor, res, k: int) -> float:
    """Davis-Kahan bound ``||R_k||_2 / gap_k`` on the top-``k`` Ritz space of a result for the
    matrix ``a`` (the solver's estimate of the gap: ``theta_k - theta_{k+1} - r_{k+1}``)."""
    if k == 0:
        return 0.0
    theta, r = res.ritz_values, res.residuals * res.scale
    gap = float(theta[k - 1] - theta[k] - r[k])
    if gap <= 0:
        return 1.0
    v = res.ritz_vectors[:, :k]
    big_r = a @ v - v * theta[:k]
    return min(1.0, float(torch.linalg.matrix_norm(big_r, ord=2)) / gap)


@pytest.mark.parametrize("lock", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_paper_shaped_spectrum_with_a_resolvable_cluster_at_the_cut(lock):
    n, m, tol = 2000, 40, 1e-6
    step = 1e-3  # the gap at the cut: 2000 times tol * ||A||
    lam = wings_and_bulk(n, m, step)
    a, q = with_spectrum(lam, seed=6)
    res = top_eigenspace(
        lambda v: a @ v, n, m, tol=tol, lock=lock, generator=torch.Generator().manual_seed(0)
    )
    assert res.converged and not res.stalled
    r = tol * res.scale
    # Davis-Kahan: ||R_m||_2 <= ||R_m||_F <= sqrt(m) r and the estimated gap is at least
    # step - 2 r (theta_m within r of lambda_m, and the estimate subtracts r_{m+1})
    assert res.gap * res.scale >= step - 2 * r
    assert res.space_error <= m**0.5 * r / (step - 2 * r)
    truth = q[:, :m]
    assert projector_distance(res.vectors, truth) <= res.space_error
    x = torch.randn(n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    exact = float((truth.T @ x).square().sum() / (x @ x))
    assert abs(res.share(x) - exact) <= res.space_error
    assert res.share_range(x) == (res.share(x), res.share(x))  # the cut is resolved
    # Ritz values of converged pairs: within r of eigenvalues, and below them (interlacing)
    assert bool((res.values <= lam[:m] + 1e-12).all())
    assert bool((lam[:m] - res.values <= r).all())


def test_unresolvable_cluster_at_the_cut_is_reported_and_bracketed():
    n, m, tol = 2000, 40, 1e-6
    step = 1e-9  # 500 times below tol * ||A||: no computation at this tolerance splits it
    lam = wings_and_bulk(n, m, step)
    a, q = with_spectrum(lam, seed=8)
    res = top_eigenspace(lambda v: a @ v, n, m, tol=tol, generator=torch.Generator().manual_seed(1))
    assert res.converged  # the residuals reach tol: the pairs are fine, the cut is not
    assert res.gap <= 0 and res.space_error == 1.0
    lo, hi = res.cut_window()
    assert lo <= m - 2 and hi >= m + 3  # the whole cluster (sizes m-2 .. m+3, 1-based)
    # the true top m holds the top lo - 1 and lies in the top hi, both separated from the
    # cluster by the bulk spacing (4e-5 >> r): the true index lies in the reported range up to
    # the Davis-Kahan bounds of those two spaces
    eps = max(edge_error(a, res, lo - 1), edge_error(a, res, hi))
    assert eps < 1e-2
    x = torch.randn(n, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    exact = float((q[:, :m].T @ x).square().sum() / (x @ x))
    low, high = res.share_range(x)
    assert low - eps <= exact <= high + eps
    assert low < high  # the range is not a point: the cut's place in the cluster matters


@pytest.mark.slow  # about 30 CPU seconds: the 2592 JVPs of the dense Jacobian and tol 1e-8
def test_block_solver_matches_eigh_on_an_akorn_attention_jacobian_at_2592():
    torch.manual_seed(2)
    model = build_model({"model": "akorn", "dim": 32, "heads": 4}).double().eval()
    x = torch.randn(81 * 32, dtype=torch.float64)

    def f(v):
        return model.msa(v.view(1, 81, 32)).reshape(-1)

    with math_attention():
        j = jacobian(f, x)
    n, m, tol = 81 * 32, 51, 1e-8
    evals, evecs = torch.linalg.eigh(0.5 * (j + j.T))
    evals, evecs = evals.flip(0), evecs.flip(1)
    res = top_eigenspace(SymmetricPart(f, x), n, m, tol=tol)
    assert res.converged
    r = tol * res.scale
    true_gap = float(evals[m - 1] - evals[m])
    assert true_gap > 10 * r  # resolvable at this tolerance: the bound below is informative
    # Davis-Kahan as in the constructed case: ||R||_2 <= sqrt(m) r, gap >= true gap - 2 r
    assert res.space_error <= m**0.5 * r / (true_gap - 2 * r)
    truth = evecs[:, :m]
    assert projector_distance(res.vectors, truth) <= res.space_error
    exact = float((truth.T @ x).square().sum() / (x @ x))
    assert abs(res.share(x) - exact) <= res.space_error
    assert bool((evals[:m] - res.values).abs().max() <= r)


@pytest.mark.parametrize("tol", [1e-3, 1e-4])
def test_inside_a_dense_bulk_the_index_converges_with_the_residual(tol):
    # the paper-width situation in small: float32 products, the cut inside a bulk whose
    # spacing (6e-5 ||S||) is far below the residuals, so neither the cut nor the window's
    # edges are resolved and no Davis-Kahan bound applies (the flags say so). The index then
    # errs by about the mixing of the Ritz vectors near the cut, measured on an AKOrN attention
    # Jacobian at n = 5,184 at one to four times the relative residual (module docstring):
    # 5 tol is the tolerance here
    n, m = 2000, 40
    lam = wings_and_bulk(n, m, 3.4e-5)  # the cluster spaced like the bulk below it
    a, q = with_spectrum(lam, seed=10)
    a32 = a.float()
    xs = torch.randn(n, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = top_eigenspace(
        lambda v: a32 @ v, n, m, tol=tol, dtype=torch.float32,
        generator=torch.Generator().manual_seed(2), track=xs,
    )  # fmt: skip
    assert res.converged and res.space_error == 1.0
    lo, hi = res.cut_window()
    assert hi - lo >= 2  # r covers several bulk eigenvalues around theta_m
    exact = (q[:, :m].T @ xs).square().sum(0) / xs.square().sum(0)
    got = torch.tensor(res.history[-1]["shares"], dtype=torch.float64)
    for j in range(xs.shape[1]):
        assert res.share(xs[:, j].float()) == pytest.approx(float(got[j]), abs=1e-6)
    assert float((got - exact).abs().max()) <= 5 * tol
