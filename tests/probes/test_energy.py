import json

import numpy as np
import pytest
import torch
from probes_toys import LinearToy, ToyItrSA, puzzles

from sadyn.dynamics import math_attention
from sadyn.probes.energy import (
    PVForm,
    _pv_basis,
    contribution_index,
    eigenspace,
    energy_probe,
    pseudo_energy,
    pv_form,
    top_eigenspace,
)
from sadyn.probes.stepmap import analysis_mode, rollout, single_msa_map

N = 162  # LinearToy: 81 tokens x 2 features; m = floor(0.02 * 162) = 3
D = 2  # ToyItrSA's width: n = 162, m = 3


def linear_toy(seed: int = 0) -> tuple[LinearToy, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(N, N, generator=g, dtype=torch.float64) / N**0.5
    return LinearToy(0.5 * torch.eye(N), m), np.linalg.eigh((m + m.T).numpy())[1][:, ::-1]


@pytest.mark.parametrize("method", ["dense", "matrix-free"])
def test_contribution_index_of_eigenvectors(method):
    model, vecs = linear_toy()
    states = torch.from_numpy(
        np.stack(
            [
                vecs[:, 0],  # top eigenvector: inside -> 1
                vecs[:, 2],  # the m-th: still inside -> 1
                vecs[:, 3],  # the (m+1)-th: outside -> 0
                vecs[:, -1],  # bottom: outside -> 0
                (vecs[:, 1] + vecs[:, 50]) / 2**0.5,  # half in, half out -> 0.5
                3.0 * (0.6 * vecs[:, 0] + 0.8 * vecs[:, 7]),  # scale-free: 0.36
            ]
        )
    ).reshape(6, 81, 2)
    # the block solver to residual 1e-10 ||S||: with the gap at the cut of this 162 x 162
    # Gaussian matrix ~0.05 ||S||, Davis-Kahan bounds the index error by ~2e-9 < 1e-8
    ci = contribution_index(model, states, method=method, tol=1e-10)
    np.testing.assert_allclose(ci, [1, 1, 0, 0, 0.5, 0.36], atol=1e-8)


def test_matrix_free_contribution_index_matches_dense_on_attention():
    model = ToyItrSA(seed=3)
    run = rollout(model, puzzles(2, given=0.0), 3, seed=3)  # no degenerate eigenvalues
    dense = contribution_index(model, run.state(3), method="dense")
    free = contribution_index(model, run.state(3)[:1], method="matrix-free", tol=1e-10)
    # lambda_3 and lambda_4 of this toy's S are 4e-6 apart (1e-5 of ||S||) in a cluster of
    # ~30 within 1e-4: the cut sits in a cluster, and the block solver says how far its index
    # can be from the true one; the true (dense) index lies within that bound
    with analysis_mode(model):
        x0 = run.state(3)[0].reshape(-1)
        space = eigenspace(single_msa_map(model, (81, D)), x0, 3, False, tol=1e-10)
    info = space.info(x0.numpy())
    assert free[0] == pytest.approx(space.share(x0.numpy()), abs=1e-15)
    assert abs(free[0] - dense[0]) <= info["index_error_bound"]
    assert not info["converged"] or info["index_error_bound"] < 1e-3
    # and the dense path itself against eigh of J + J^T from reverse mode
    with analysis_mode(model), math_attention():
        x = run.state(3)[0].reshape(-1)
        j = torch.func.jacrev(single_msa_map(model, (81, D)))(x).numpy()
    basis = np.linalg.eigh(j + j.T)[1][:, ::-1][:, :3]
    a = basis.T @ x.numpy()
    assert dense[0] == pytest.approx(a @ a / (x.numpy() @ x.numpy()), abs=1e-10)


def test_top_eigenspace_of_a_tensor_spans_the_lapack_subspace():
    """The device path (``torch.linalg.eigh`` on the tensor's device, the GPU one in use)
    returns the same top-m eigenspace as LAPACK's top-m ``syevr``, in descending order."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    eigs = np.concatenate([np.linspace(5, 3, 6), rng.uniform(-2, 2, 54)])  # gap after the 6th
    s = (q * eigs) @ q.T
    host = top_eigenspace(s, 6)
    device = top_eigenspace(torch.from_numpy(s), 6)
    assert device.shape == (60, 6) and isinstance(device, np.ndarray)
    np.testing.assert_allclose(device @ device.T, host @ host.T, atol=1e-10)
    np.testing.assert_allclose(np.abs(device.T @ host), np.eye(6), atol=1e-8)  # same order


def test_top_eigenspace_validation():
    with pytest.raises(ValueError, match="m < n"):
        top_eigenspace(np.eye(3), 3)


def test_pseudo_energy_and_its_quadratic_reading_by_hand():
    model = ToyItrSA(seed=1)
    run = rollout(model, puzzles(3), 4, seed=1)
    probe = energy_probe(model, run, ci_steps=[0, 4], samples=1, show_progress=False)
    e = pseudo_energy(model, run)
    assert e.shape == (5, 3)
    with torch.no_grad(), analysis_mode(model):
        for t in range(5):
            x = run.state(t)
            hand = -(x * (run.cond + model.msa(x))).sum((1, 2)).numpy()
            np.testing.assert_allclose(probe.energy[t], hand, rtol=1e-12)
    with analysis_mode(model), math_attention():
        for t in (0, 4):
            for b in range(3):
                x = run.state(t)[b].reshape(-1)
                j = torch.func.jacrev(single_msa_map(model, (81, D)))(x)
                jx = j @ x
                assert probe.quadratic[t, b] == pytest.approx(float(-(x @ jx)), rel=1e-10)
                msa = model.msa(run.state(t)[b : b + 1]).reshape(-1)
                cos = float(msa @ jx / (msa.norm() * jx.norm()))
                assert probe.cosine[t, b] == pytest.approx(cos, rel=1e-10)
    assert probe.contribution.shape == (2, 1)
    assert np.all((probe.contribution >= 0) & (probe.contribution <= 1))


def test_pv_form_is_the_frozen_attention_jacobian():
    model = ToyItrSA(seed=2)
    run = rollout(model, puzzles(2), 2, seed=2)
    x0 = run.state(0)
    pv = pv_form(model, x0)
    assert isinstance(pv, PVForm) and pv.residual < 1e-12 and not pv.positional
    # reference: the Jacobian of X -> sum_h P_h X W^V_h W^O_h with P frozen at X_0, by autograd
    with torch.no_grad():
        p0 = model.attention_probs(x0)[0]
    wv = model.attn.qkv.weight[2 * D :].detach()
    wo = model.attn.out.weight.detach()

    def frozen(v):
        vals = (v.reshape(81, D) @ wv.T).reshape(81, 2, D // 2).transpose(0, 1)  # (H, S, Dh)
        return ((p0 @ vals).transpose(0, 1).reshape(81, D) @ wo.T).reshape(-1)

    ref = torch.func.jacrev(frozen)(x0[0].reshape(-1)).numpy()
    np.testing.assert_allclose(pv.dense(p0), ref, atol=1e-12)
    # the paper's Kronecker form sum_h P_h (x) (W^V_h W^O_h)^T is the same matrix
    m = pv.value_output()
    kron = sum(torch.kron(p0[h], m[h].T.contiguous()) for h in range(2)).numpy()
    np.testing.assert_allclose(kron, ref, atol=1e-12)
    v = torch.randn(2, 81, D, dtype=torch.float64)
    p = model.attention_probs(x0)
    np.testing.assert_allclose(
        pv.apply(p, v)[0].reshape(-1).detach().numpy(), ref @ v[0].reshape(-1).numpy(), atol=1e-12
    )
    np.testing.assert_allclose(
        pv.apply_t(p, v)[0].reshape(-1).detach().numpy(),
        ref.T @ v[0].reshape(-1).numpy(),
        atol=1e-12,
    )
    s = pv.operator(p0) @ v[1].reshape(-1).numpy()
    np.testing.assert_allclose(s, (ref + ref.T) @ v[1].reshape(-1).numpy(), atol=1e-12)


def test_pv_approximation_dense_and_matrix_free_agree():
    model = ToyItrSA(seed=4)
    run = rollout(model, puzzles(2, given=0.0), 3, seed=4)  # generic spectra
    kw = {"ci_steps": [0, 3], "samples": [1], "show_progress": False}
    dense = energy_probe(model, run, method="dense", **kw)
    free = energy_probe(model, run, method="matrix-free", tol=1e-10, approximation=True, **kw)
    assert dense.pv_note.startswith("applies")
    # the toy's spectra (n = 162) have clusters 1e-5 ||S|| wide at the 2% cut, so the block
    # solver's index is as exact as its Davis-Kahan bound, recomputed here for each operator
    pv = pv_form(model, run.state(0))
    p0 = model.attention_probs(run.state(0))
    with analysis_mode(model):
        f = single_msa_map(model, (81, D))
        for i, t in enumerate([0, 3]):
            x1 = run.state(t)[1].reshape(-1)
            pt = model.attention_probs(run.state(t))[1]
            spaces = {
                "contribution": eigenspace(f, x1, 3, False, tol=1e-10),
                "contribution_pv": _pv_basis(pv, pt, 3, False, 1e-10, 0),
                "contribution_pv0": _pv_basis(pv, p0[1], 3, False, 1e-10, 0),
            }
            for name, space in spaces.items():
                bound = space.info(x1.detach().numpy())["index_error_bound"]
                assert getattr(free, name)[i, 0] == pytest.approx(space.share(x1.numpy()), abs=0)
                assert abs(getattr(free, name)[i, 0] - getattr(dense, name)[i, 0]) <= bound
    x = run.state(3)
    hand = -(x * pv.apply(p0, x)).sum((1, 2)).detach().numpy()
    np.testing.assert_allclose(dense.quadratic_pv0[3], hand, rtol=1e-12)
    json.dumps(dense.to_dict())


def test_position_dependent_values_skip_the_pv_form():
    model = ToyItrSA(position_values=True)
    run = rollout(model, puzzles(1), 1)
    reason = pv_form(model, run.state(0))
    assert isinstance(reason, str) and "does not apply" in reason
    probe = energy_probe(model, run, samples=1, show_progress=False)
    assert probe.contribution_pv is None and probe.quadratic_pv0 is None
    assert probe.pv_note == reason and probe.contribution.shape == (2, 1)


def test_models_without_one_attention_module_skip_the_pv_form():
    model, _ = linear_toy()
    run = rollout(model, puzzles(1), 1)
    assert "exactly one attention module" in pv_form(model, run.state(0))
