"""The LoopedModel protocol, for every model and the main option variants: shapes, consistency
of forward with step/readout/pseudo_energy, determinism, purity, forward-mode derivatives,
rebuilding from JSON, and training on a few batches."""

import json

import torch
from torch.func import jvp, vmap

from sadyn.models import LoopedModel, LoopOutput, build_model


def _model(cfg, dtype=torch.float32):
    torch.manual_seed(1)
    return build_model(cfg).to(dtype)


def test_shapes_and_forward_consistency(tiny_config, boards):
    model = _model(tiny_config, torch.float64)
    assert isinstance(model, LoopedModel) and model.num_classes == 9
    quiz, _ = boards(3)
    given = quiz > 0
    d = tiny_config["dim"]
    cond = model.encode(quiz)
    assert cond.shape == (3, 81, d) and cond.dtype == torch.float64
    x0 = model.init_state(cond, given, generator=torch.Generator().manual_seed(0))
    assert x0.shape == (3, 81, d)
    x1 = model.step(x0, cond)
    for t in (model.msa(x0), model.update(x0, cond), x1):
        assert t.shape == (3, 81, d)
    heads = tiny_config["heads"]
    probs = model.attention_probs(x0)
    assert probs.shape == (3, heads, 81, 81)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, heads, 81, dtype=torch.float64))
    assert model.readout(x0).shape == (3, 81, 9)
    assert model.pseudo_energy(x0, cond).shape == (3,)
    assert model.eta.ndim == 0

    out = model(
        quiz,
        4,
        generator=torch.Generator().manual_seed(0),
        readout_at=[0, 2, 4],
        return_states=True,
        return_energies=True,
    )
    assert isinstance(out, LoopOutput)
    assert out.logits.shape == (3, 81, 9) and sorted(out.logits_at) == [0, 2, 4]
    assert out.states.shape == (5, 3, 81, d) and out.energies.shape == (5, 3)
    torch.testing.assert_close(out.states[0], x0)
    for t in range(4):
        torch.testing.assert_close(out.states[t + 1], model.step(out.states[t], cond))
    for t in range(5):
        torch.testing.assert_close(out.energies[t], model.pseudo_energy(out.states[t], cond))
        # the pseudo-energy is -Tr(X^T (C + MSA(X))) (pre-LN ItrSA: no injected C)
        c = 0 if tiny_config["model"] == "preln-itrsa" else cond
        expected = -(out.states[t] * (c + model.msa(out.states[t]))).sum((1, 2))
        torch.testing.assert_close(out.energies[t], expected)
    for t in (0, 2, 4):
        torch.testing.assert_close(out.logits_at[t], model.readout(out.states[t]))
    torch.testing.assert_close(out.logits, out.logits_at[4])
    plain = model(quiz, 4, generator=torch.Generator().manual_seed(0))
    assert plain.states is None and plain.energies is None and plain.logits_at == {}
    torch.testing.assert_close(plain.logits, out.logits)


def test_step_is_the_normalized_update_and_reuses_the_drive(tiny_config, boards):
    """``step`` (each model's equation) is ``Norm(X + eta Delta X)`` with ``update``'s Delta X
    (pre-LN: ``X + Delta X``), and a ready-made drive ``C + MSA(X)`` gives the same step."""
    model = _model(tiny_config, torch.float64)
    quiz, _ = boards(2)
    cond = model.encode(quiz)
    x = model.init_state(cond, quiz > 0, generator=torch.Generator().manual_seed(0))
    x1 = model.step(x, cond)
    if tiny_config["model"] == "preln-itrsa":
        torch.testing.assert_close(x1, x + model.update(x, cond))
    else:
        torch.testing.assert_close(x1, model.norm(x + model.eta * model.update(x, cond)))
    torch.testing.assert_close(model.step(x, cond, drive=model.drive(x, cond)), x1)


def test_unroll_is_the_loop_of_forward(tiny_config, boards):
    """``unroll`` keeps the asked states and readouts, iterates the given map, and gets each
    pseudo-energy from its step's own drive: T + 1 attention calls for T steps with energies."""
    model = _model(tiny_config, torch.float64)
    quiz, _ = boards(2)
    cond = model.encode(quiz)
    x0 = model.init_state(cond, quiz > 0, deterministic=True)
    ref = model(quiz, 3, deterministic=True, return_states=True, return_energies=True)
    calls = {"msa": 0, "step": 0}
    msa = model.msa

    def counted_msa(x):
        calls["msa"] += 1
        return msa(x)

    def counted_step(x, c, **kw):
        calls["step"] += 1
        return model.step(x, c, **kw)

    model.msa = counted_msa
    out = model.unroll(
        x0, cond, 3, readout_at=[1, 3], states_at=[0, 2], energies=True, step=counted_step
    )
    assert calls == {"msa": 4, "step": 3}
    assert sorted(out.logits_at) == [1, 3] and sorted(out.states_at) == [0, 2]
    torch.testing.assert_close(out.states_at[2], ref.states[2])
    torch.testing.assert_close(out.logits_at[1], model.readout(ref.states[1]))
    torch.testing.assert_close(out.logits, ref.logits)
    torch.testing.assert_close(out.energies, ref.energies)


def test_determinism(tiny_config, boards):
    model = _model(tiny_config)
    quiz, _ = boards(4)
    run = lambda **kw: model(quiz, 3, **kw).logits  # noqa: E731
    torch.testing.assert_close(
        run(generator=torch.Generator().manual_seed(5)),
        run(generator=torch.Generator().manual_seed(5)),
        rtol=0,
        atol=0,
    )
    fixed = run(deterministic=True)
    torch.testing.assert_close(fixed, run(deterministic=True), rtol=0, atol=0)
    # the fixed noise does not depend on where a board sits in the batch
    torch.testing.assert_close(model(quiz[2:3], 3, deterministic=True).logits, fixed[2:3])
    other = run(generator=torch.Generator().manual_seed(6))
    if tiny_config.get("init", "akorn") == "akorn" and tiny_config["model"] != "preln-itrsa":
        assert (other - run(generator=torch.Generator().manual_seed(5))).abs().max() > 0
    else:  # deterministic initial state: the generator plays no role
        assert torch.equal(other, fixed)


def test_step_is_pure(tiny_config, boards):
    model = _model(tiny_config)
    quiz, _ = boards(2)
    cond = model.encode(quiz)
    x = model.init_state(cond, quiz > 0, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    a = model.step(x, cond)
    torch.manual_seed(456)
    b = model.step(x.clone(), cond.clone())
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    # vmap over boards gives the batched map
    per_board = vmap(lambda xi, ci: model.step(xi[None], ci[None])[0])(x, cond)
    torch.testing.assert_close(per_board, a, rtol=1e-5, atol=1e-6)


def test_jvp_matches_finite_differences(tiny_config, boards):
    model = _model(tiny_config, torch.float64)
    quiz, _ = boards(2, seed=3)
    cond = model.encode(quiz)
    x = model.init_state(cond, quiz > 0, generator=torch.Generator().manual_seed(0))
    x = model.step(x, cond)  # an on-trajectory state
    v = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    f = lambda s: model.step(s, cond)  # noqa: E731
    _, tangent = jvp(f, (x,), (v,))
    eps = 1e-6
    fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
    torch.testing.assert_close(tangent, fd, rtol=1e-5, atol=1e-7)
    # batched use (one system per board): vmap of per-board JVPs
    per_board = vmap(
        lambda xi, vi, ci: jvp(lambda s: model.step(s[None], ci[None])[0], (xi,), (vi,))[1]
    )(x, v, cond)
    torch.testing.assert_close(per_board, tangent)


def test_rebuild_from_json(tiny_config, boards):
    model = _model(tiny_config)
    text = json.dumps(model.config)
    config = json.loads(text)
    assert config == model.config and config["model"] == tiny_config["model"]
    for key, value in tiny_config.items():
        assert config[key] == value or key == "pos"
    torch.manual_seed(99)  # a different initialization, overwritten by the state dict
    rebuilt = build_model(config)
    rebuilt.load_state_dict(model.state_dict())
    quiz, _ = boards(2)
    torch.testing.assert_close(
        rebuilt(quiz, 3, deterministic=True).logits,
        model(quiz, 3, deterministic=True).logits,
        rtol=0,
        atol=0,
    )


def test_trains_on_a_few_batches(tiny_config, boards):
    model = _model(tiny_config)
    quiz, sol = boards(8, seed=7)
    grid = sol.view(8, 9, 9)
    digits = torch.arange(1, 10)
    assert (grid.sort(2).values == digits).all() and (grid.sort(1).values == digits[:, None]).all()
    boxes = grid.view(8, 3, 3, 3, 3).transpose(2, 3).reshape(8, 9, 9)
    assert (boxes.sort(2).values == digits).all()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for it in range(25):
        out = model(quiz, 4, generator=torch.Generator().manual_seed(it))
        loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 9), sol.reshape(-1) - 1)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
