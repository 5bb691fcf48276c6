"""The selector head: its features, the board log-probability, the stable logit, its loss and
its training on a separable toy, and the shipped-head files (SHA-256 checked)."""

import math

import pytest
import torch

from sadyn.errors import CheckpointError
from sadyn.nn.selector import (
    SelectorConfig,
    SelectorData,
    SelectorHead,
    board_logit,
    selector_features,
)
from sadyn.probes.selectors import auroc
from sadyn.training.objective import selector_loss
from sadyn.training.selector import SelectorTrainConfig, train_selector


def test_features_by_hand():
    torch.manual_seed(0)
    x, y, xp = torch.randn(2, 3, 4), 3.0 * torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    logits = torch.randn(2, 3, 9)
    f = selector_features(x, y, logits, xp)
    assert f.shape == (2, 3, 2 * 4 + 5)
    p = logits.softmax(-1)
    rms = y.pow(2).mean(-1).sqrt()
    torch.testing.assert_close(f[..., :4], x)
    torch.testing.assert_close(f[..., 4:8], y / rms[..., None])
    torch.testing.assert_close(f[..., 8:10], p.sort(-1, descending=True).values[..., :2])
    torch.testing.assert_close(f[..., 10], -(p * p.log()).sum(-1))
    change = (x - xp).norm(dim=-1) / x.norm(dim=-1)
    torch.testing.assert_close(f[..., 11], (change + 1e-6).log())
    torch.testing.assert_close(f[..., 12], rms.log())


def test_board_log_prob_and_logit():
    z = torch.tensor([[2.0, -1.0, 5.0], [0.0, 0.0, 0.0]])
    blank = torch.tensor([[True, True, False], [False, False, False]])
    lp = SelectorHead.board_log_prob(z, blank)
    expect = math.log(torch.sigmoid(torch.tensor(2.0))) + math.log(
        torch.sigmoid(torch.tensor(-1.0))
    )
    assert lp[0].item() == pytest.approx(expect, rel=1e-6)
    assert lp[1].item() == 0.0  # no blanks: certain
    p = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    torch.testing.assert_close(board_logit(p.log()), torch.logit(p))
    assert torch.isfinite(board_logit(torch.tensor([0.0, -1e-12]))).all()  # capped near 1


def _toy(n=400, s=6, d=3, seed=0) -> SelectorData:
    """Cells right iff state channel 0 > 0; a board right iff all its blank cells are."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, s, d, generator=g)
    y = torch.randn(n, s, d, generator=g)
    x[..., 0] += 1.5  # most cells right, so that some boards are
    feats = selector_features(x, y, torch.randn(n, s, 9, generator=g), x)
    blank = torch.rand(n, s, generator=g) < 0.7
    cell_ok = (x[..., 0] > 0) | ~blank
    return SelectorData(
        feats.half(),
        blank,
        cell_ok,
        cell_ok.all(-1),
        torch.zeros(n, dtype=torch.long),
        torch.arange(n),
    )


def test_training_learns_a_separable_toy():
    data = _toy()
    assert 0.2 < data.board_ok.float().mean() < 0.8
    head = SelectorHead(SelectorConfig(dim=3, hidden=16))
    before, _ = selector_loss(head, data.feats, data.blank, data.cell_ok, data.board_ok)
    head = train_selector(data, 3, SelectorTrainConfig(hidden=16, epochs=30, batch=64, lr=1e-2))
    after, _ = selector_loss(head, data.feats, data.blank, data.cell_ok, data.board_ok)
    assert after < 0.5 * before
    test = _toy(seed=1)
    with torch.no_grad():
        score = head.board_log_prob(head.cell_logits(test.feats.float()), test.blank)
    assert auroc(score, test.board_ok) > 0.95  # the rule is a threshold on one feature


def test_shipped_head_round_trip_and_sha_check(tmp_path):
    from sadyn.pretrained.selector import load_selector, save_selector

    torch.manual_seed(0)
    head = SelectorHead(SelectorConfig(dim=4, hidden=3))
    manifest = save_selector(head, "toy", "0" * 64, {"note": "test"}, root=tmp_path)
    back, info = load_selector("toy", root=tmp_path)
    assert info["model"] == "toy" and info["config"] == {"dim": 4, "hidden": 3}
    for a, b in zip(head.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    weights = tmp_path / info["weights"]
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_selector(manifest)
    with pytest.raises(CheckpointError, match="no selector head"):
        load_selector("other", root=tmp_path)


def test_the_shipped_head_loads_and_matches_its_model():
    from sadyn.pretrained import load_pretrained
    from sadyn.pretrained.selector import load_selector

    head, info = load_selector("small-vote-wide")
    _, cfg, meta = load_pretrained("small-vote-wide")
    assert info["model_sha256"] == meta["sha256"]
    assert head.config.dim == cfg["dim"]
