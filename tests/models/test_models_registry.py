"""Configs, errors, and parameter counts against the reference AKOrN code."""

import pytest
import torch
from torch import nn

from sadyn.errors import DataFormatError, SadynError, ShapeError
from sadyn.models import ModelConfigError, build_model, default_config, model_names


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("dim", "heads", "preln", "akorn"),
    [
        # counts of the reference code (autonomousvision/akorn), docs/calibration.md
        (512, 8, 2_155_017, 2_982_412),
        (128, 4, 145_545, 215_308),
    ],
)
def test_parameter_counts_match_the_reference(dim, heads, preln, akorn):
    assert _count(build_model({"model": "preln-itrsa", "dim": dim, "heads": heads})) == preln
    # the reference AKOrN also declares an unused x0 parameter of D * 81 entries
    model = build_model({"model": "akorn", "dim": dim, "heads": heads})
    assert _count(model) == akorn - 81 * dim
    gta = model.attention.gta
    assert sum(p.numel() for p in gta.parameters()) == 8 * 81 * dim // heads  # 41,472 at 512/8


def test_default_configs_rebuild():
    assert set(model_names()) == {
        "itrsa",
        "symsa",
        "gensym-single",
        "gensym-multi",
        "akorn",
        "preln-itrsa",
    }
    for name in model_names():
        cfg = default_config(name)
        assert cfg["model"] == name
        small = {**cfg, "dim": 16, "heads": 1 if name in ("symsa", "gensym-single") else 2}
        assert build_model(small).config == small


def test_attention_modules():
    for name in ("itrsa", "akorn", "preln-itrsa"):
        mods = build_model({"model": name, "dim": 16, "heads": 2}).attention_modules()
        assert len(mods) == 1
        assert isinstance(mods[0].qkv, nn.Linear) and isinstance(mods[0].out, nn.Linear)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"dim": 16}, "'model' key"),
        ({"model": "transformer"}, "unknown model"),
        ({"model": "itrsa", "width": 16}, "no option"),
        ({"model": "itrsa", "dim": 16, "heads": 3}, "divisible"),
        ({"model": "itrsa", "dim": 16, "heads": 2, "norm_group": 5}, "norm_group"),
        ({"model": "itrsa", "dim": 16, "heads": 2, "norm": "batch"}, "norm must be"),
        ({"model": "itrsa", "dim": 16, "heads": 2, "pos": "rope"}, "positional"),
        ({"model": "itrsa", "dim": 16, "heads": 2, "input_scale": -1}, "input_scale"),
        ({"model": "itrsa", "dim": 16, "heads": 2, "input_scale": "big"}, "input_scale"),
        ({"model": "itrsa", "dim": 16, "heads": 2, "init": "zeros"}, "init"),
        ({"model": "itrsa", "dim": 16, "heads": 2, "eta_learnable": "yes"}, "eta_learnable"),
        ({"model": "preln-itrsa", "dim": 18, "heads": 2}, "divisible by 4"),
    ],
)
def test_bad_configs(config, match):
    with pytest.raises(ModelConfigError, match=match) as err:
        build_model(config)
    assert isinstance(err.value, SadynError)


def test_numeric_string_input_scale():
    model = build_model({"model": "itrsa", "dim": 16, "heads": 2, "input_scale": "2.5"})
    assert model.config["input_scale"] == 2.5


def test_bad_puzzles():
    model = build_model({"model": "itrsa", "dim": 16, "heads": 2})
    with pytest.raises(ShapeError, match=r"\(B, 81\)"):
        model(torch.zeros(2, 80, dtype=torch.long), 1)
    with pytest.raises(DataFormatError, match=r"0\.\.9"):
        model(torch.full((2, 81), 10), 1)
    with pytest.raises(DataFormatError, match="integer"):
        model(torch.zeros(2, 81), 1)
    with pytest.raises(ShapeError, match="given"):
        model(torch.zeros(2, 81, dtype=torch.long), 1, given=torch.ones(2, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="readout_at"):
        model(torch.zeros(2, 81, dtype=torch.long), 2, readout_at=[3])
