"""TrainConfig: typed coercion from JSON and CLI strings, validation, presets as data."""

import json
from pathlib import Path

import pytest

from sadyn.training.config import ConfigError, TrainConfig, coerce, field_types
from sadyn.training.presets import PRESETS, get_preset


def test_round_trip_through_json():
    cfg = get_preset("small", seed=3, train_steps_random=(8, 24), model={"dim": 64})
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.train_steps_random == (8, 24)
    assert again.model == {**PRESETS["small"]["model"], "dim": 64}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("lr", "5e-4", 5e-4),
        ("epochs", "3", 3),
        ("tensorboard", "false", False),
        ("max_minutes", "none", None),
        ("max_minutes", "1.5", 1.5),
        ("eval_steps", "16,32,64", (16, 32, 64)),
        ("train_steps_random", "8,24", (8, 24)),
        ("train_steps_random", "None", None),
        ("model", '{"model": "akorn", "dim": 64}', {"model": "akorn", "dim": 64}),
    ],
)
def test_cli_strings_are_coerced_to_field_types(name, text, expected):
    assert coerce(field_types()[name], text, name) == expected


@pytest.mark.parametrize(
    ("name", "text"),
    [("epochs", "two"), ("epochs", "1.5"), ("tensorboard", "maybe"), ("train_steps_random", "8")],
)
def test_bad_strings_raise_config_error(name, text):
    with pytest.raises(ConfigError, match=name):
        coerce(field_types()[name], text, name)


@pytest.mark.parametrize(
    "change",
    [
        {"lr_schedule": "linear"},
        {"train_steps_random": (9, 4)},
        {"select_on": "nope"},
        {"loss_steps": -1},
        {"model": {"dim": 3}},
        {"batch_size": 0},
    ],
)
def test_invalid_values_are_rejected(change):
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({**TrainConfig().to_dict(), **change})


def test_unknown_field_and_unknown_preset():
    with pytest.raises(ConfigError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="huge"):
        get_preset("huge")


def test_differences_lists_changed_fields():
    a = get_preset("tiny")
    b = a.replace(lr=0.5, max_minutes=2.0)
    assert set(a.differences(b)) == {"lr", "max_minutes"}


def test_presets_follow_the_brief():
    paper = get_preset("paper")
    assert (paper.model["dim"], paper.model["heads"], paper.batch_size, paper.epochs) == (
        512,
        8,
        100,
        100,
    )
    assert paper.grad_clip == 1.0 and paper.weight_decay == 0.0 and paper.ema_beta == 0.995
    small = get_preset("small")
    # the tuned CPU recipe: still the paper's ItrSA step (unit RMSNorm, no MLP in the loop)
    assert small.model["model"] == "itrsa" and small.model.get("norm", "rms_unit") == "rms_unit"
    assert small.max_minutes is not None and small.max_minutes <= 60 and small.train_steps == 16
    tiny = get_preset("tiny")
    assert tiny.epochs == 1 and tiny.train_size <= 500 and tiny.model["dim"] == 32


def test_small_akorn_preset_is_small_with_akorn():
    from sadyn.models import build_model

    cfg = get_preset("small-akorn")
    assert cfg == get_preset("small", model={"model": "akorn"}, epochs=20)
    assert type(build_model(cfg.model)).__name__ == "AKOrN"


OLD_RUNS = Path(__file__).parent / "old_runs"  # files as sadyn wrote them before issue 14
AKORN_ONLY = {"project", "omega", "omega_init", "omega_learnable", "global_omega"}


@pytest.mark.parametrize("run", ["small-itrsa", "small-akorn"])
def test_an_old_run_config_still_loads(run):
    """A committed config.json of an older run (no augment, precision, compile): it loads, the
    fields added since take their defaults, and its model builds."""
    from sadyn.models import build_model

    saved = json.loads((OLD_RUNS / run / "config.json").read_text())
    cfg = TrainConfig.from_dict(saved)
    assert cfg.to_dict() == {**TrainConfig().to_dict(), **saved}
    added = set(TrainConfig().to_dict()) - set(saved)
    assert {"augment", "precision", "compile"} <= added
    assert build_model({**cfg.model, "dim": 16}).name == saved["model"]["model"]


def test_old_flat_model_configs_still_load():
    """Full model configs of older checkpoints: AKOrN's keys stand in every ItrSA-family
    config. AKOrN rebuilds with them, in the parameter order its checkpoint's optimizer state
    records (so the run resumes); ItrSA drops them when they switch nothing on."""
    from sadyn.models import ModelConfigError, build_model

    old = json.loads((OLD_RUNS / "model_configs.json").read_text())
    akorn = {**old["akorn"]["model_config"], "dim": 16, "heads": 2}
    model = build_model(akorn)
    assert model.config == akorn
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names == old["akorn"]["optimizer_names"]
    itrsa = old["itrsa"]["model_config"]
    assert AKORN_ONLY <= set(itrsa)
    model = build_model(itrsa)
    assert model.config == {k: v for k, v in itrsa.items() if k not in AKORN_ONLY}
    with pytest.raises(ModelConfigError, match="omega"):
        build_model({**itrsa, "omega": True})  # that was AKOrN's step: not an ItrSA any more
