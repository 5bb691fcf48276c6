"""The reference-family presets: the paper's ItrSA and AKOrN as the paper and the AKOrN code
define them, narrower, with the CPU recipe's departures declared; and ``eval_online``."""

import dataclasses

import torch

from sadyn.models import build_model
from sadyn.models.akorn import AKOrN, AKOrNConfig
from sadyn.models.itrsa import ItrSA, ItrSAConfig
from sadyn.training import read_checkpoint, train
from sadyn.training.logging import read_log
from sadyn.training.presets import get_preset

WIDTH = {"dim": 64, "heads": 4}
# the recipe fields the CPU presets change, and nothing else (docs/training.md)
CPU_DEPARTURES = {
    "epochs": 20,
    "lr": 2e-3,
    "lr_schedule": "cosine",
    "warmup_steps": 100,
    "min_lr_ratio": 0.05,
    "ema_beta": 0.98,
    # bookkeeping only (evaluation size and cadence, online-weight evaluation, checkpoints)
    "eval_size": 300,
    "eval_batch_size": 300,
    "eval_steps": [16, 32, 64],
    "eval_every": 300,
    "eval_online": True,
    "ckpt_every": 100,
}


def _resolved(model_cfg):
    """Every field of the built model's config (defaults filled in)."""
    return dataclasses.asdict(build_model(dict(model_cfg)).cfg)


def test_reference_itrsa_is_the_paper_itrsa_narrower():
    ref, paper = get_preset("reference-itrsa"), get_preset("paper")
    # the training recipe is the paper preset's, field by field; only the width differs
    assert ref.differences(paper) == {"model": (ref.model, paper.model)}
    assert {k: v for k, v in ref.model.items() if k not in WIDTH} == {
        k: v for k, v in paper.model.items() if k not in WIDTH
    }
    assert (ref.model["dim"], ref.model["heads"]) == (64, 4)
    # the architecture is the reference one: every option at the paper's value
    fields = _resolved(ref.model)
    assert fields == dataclasses.asdict(ItrSAConfig(**WIDTH))
    assert fields["pos"] == "gta" and fields["relation_bias"] is False
    assert fields["init"] == "akorn" and fields["init_noise"] == 0.0  # blanks from noise
    assert fields["input_scale"] == "raw" and fields["readout"] == "akorn"
    assert fields["norm"] == "rms_unit" and fields["norm_group"] is None and fields["eta0"] == 1.0
    assert ref.loss_steps == 1 and ref.train_steps == 16  # final-step loss at T=16
    assert (ref.ema_beta, ref.ema_every, ref.ema_start) == (0.995, 10, 100)
    assert (ref.lr, ref.lr_schedule, ref.warmup_steps, ref.batch_size) == (1e-3, "constant", 0, 100)
    assert type(build_model(ref.model)) is ItrSA


def test_reference_akorn_is_the_akorn_code_narrower():
    ref, paper = get_preset("reference-akorn"), get_preset("paper")
    assert set(ref.differences(paper)) == {"model"}
    fields = _resolved(ref.model)
    assert fields == dataclasses.asdict(AKOrNConfig(**WIDTH))
    # AKOrN's Sudoku script: N=4 oscillators on the sphere, Omega 0.5 (learned, one global
    # frequency), the tangent projection, GTA, noise for blanks, raw C, its norm readout over N
    assert fields["norm"] == "sphere" and fields["norm_group"] == 4
    assert fields["project"] and fields["omega"] and fields["global_omega"]
    assert fields["omega_init"] == 0.5 and fields["omega_learnable"]
    assert fields["pos"] == "gta" and fields["init"] == "akorn" and fields["input_scale"] == "raw"
    assert fields["readout"] == "akorn" and build_model(ref.model).cfg.readout_group == 4
    assert type(build_model(ref.model)) is AKOrN


def test_cpu_presets_depart_only_where_declared():
    for kind in ("itrsa", "akorn"):
        cpu, ref = get_preset(f"reference-{kind}-cpu"), get_preset(f"reference-{kind}")
        assert cpu.model == ref.model  # the architecture is untouched
        diff = cpu.differences(ref)
        assert {k: v[0] for k, v in diff.items()} == CPU_DEPARTURES


def test_online_evaluation_is_logged_and_leaves_training_unchanged(tiny_run, make_config, tmp_path):
    """``eval_online`` adds the raw weights' accuracies under ``online/`` and does not change the
    run: weights, EMA and optimizer moments equal to the run without it (bit for bit on CPU)."""
    _config, reference, _ = tiny_run
    out = tmp_path / "run"
    train(make_config(eval_online=True), out, progress=False)
    evals = [r for r in read_log(out / "log.jsonl") if r["kind"] == "eval"]
    assert evals
    for record in evals:
        ema_keys = {k for k in record if "acc@" in k and not k.startswith("online/")}
        assert ema_keys and {f"online/{k}" for k in ema_keys} <= set(record)
    a, b = read_checkpoint(out), read_checkpoint(reference)
    for x, y in ((a.model, b.model), (a.ema, b.ema)):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    optim = [k for k in a.state if k.startswith("optim/")]
    assert optim and all(torch.equal(a.state[k], b.state[k]) for k in optim)


def test_online_evaluation_field_keeps_earlier_configs_and_cache_keys():
    """A field added later is written only when set: a default config serializes without it, so
    the committed trained models keep their cache keys (sadyn.experiments.cache)."""
    import json
    from pathlib import Path

    from sadyn.experiments.cache import config_hash
    from sadyn.training.config import TrainConfig

    assert "eval_online" not in TrainConfig().to_dict()
    on = TrainConfig(eval_online=True)
    assert on.to_dict()["eval_online"] is True and TrainConfig.from_dict(on.to_dict()) == on
    assert TrainConfig().differences(on) == {"eval_online": (False, True)}
    root = Path(__file__).resolve().parents[2]
    entries = sorted(root.glob("results/*/models/*/cache_entry.json"))
    assert entries  # the committed models of the claims
    for path in entries:
        entry = json.loads(path.read_text())
        assert config_hash(TrainConfig.from_dict(entry["config"])) == entry["key"], path.parent.name
