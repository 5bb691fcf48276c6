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
