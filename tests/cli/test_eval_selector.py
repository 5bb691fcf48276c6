"""``sadyn eval --vote learned --halt any-confident:P``: the pretrained model's own selector
head is found by name and the learned vote is scored with its AUROC."""

import json

from sadyn.cli import main


def test_eval_learned_vote_with_the_shipped_head(tmp_path):
    out = tmp_path / "e.json"
    argv = ["eval", "small-vote-wide", "--data", "ood", "--n", "2", "--steps", "2,4"]
    argv += ["--votes", "2", "--vote", "learned,confidence", "--restart-noise", "0.3"]
    argv += ["--anchor", "--halt", "any-confident:0.99", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    ood = res["data"]["ood"]
    assert ood["vote"] == "learned" and ood["halt"] == "any-confident:0.99"
    assert set(ood["auroc"]) == {"learned", "confidence"}


def test_a_head_of_another_width_is_refused_before_any_work(tmp_path, capsys):
    """small-vote (D=64) with small-vote-wide's head (D=128): a clear error naming both widths,
    not a matrix-shape RuntimeError in the middle of the rollout; nothing is written."""
    out = tmp_path / "e.json"
    argv = ["eval", "small-vote", "--data", "ood", "--n", "2", "--steps", "2", "--votes", "2"]
    argv += ["--vote", "learned", "--selector", "small-vote-wide", "--out", str(out), "--quiet"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "width 128" in err and "width 64" in err
    assert not out.exists()
