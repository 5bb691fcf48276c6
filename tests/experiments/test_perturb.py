"""Post-hoc knobs: each scales exactly the quantity it names, on a copy."""

from __future__ import annotations

import pytest
import torch

from sadyn.experiments.perturb import perturbed
from sadyn.models import build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model({"model": "itrsa", "dim": 16, "heads": 2, "pos": "none"}).eval()


def test_output_knob_scales_msa(model):
    x = torch.randn(2, 81, 16)
    new = perturbed(model, "output", 3.0)
    torch.testing.assert_close(new.msa(x), 3.0 * model.msa(x))


def test_value_knob_scales_the_value_path(model):
    x = torch.randn(2, 81, 16)
    b_out = model.attention_modules()[0].out.bias
    new = perturbed(model, "value", 0.5)
    torch.testing.assert_close(new.msa(x) - b_out, 0.5 * (model.msa(x) - b_out))
    # queries and keys untouched: same attention pattern
    torch.testing.assert_close(new.attention_probs(x), model.attention_probs(x))


def test_input_knob_scales_the_injected_input_everywhere(model):
    puzzles = torch.randint(0, 10, (2, 81))
    new = perturbed(model, "input", 2.0)
    torch.testing.assert_close(new.encode(puzzles), 2.0 * model.encode(puzzles))
    out_new = new(puzzles, 3, deterministic=True, return_states=True)
    out_old = model(puzzles, 3, deterministic=True, return_states=True)
    assert not torch.allclose(out_new.states[1], out_old.states[1])  # forward sees it


def test_eta_knob_and_the_original_is_untouched(model):
    eta = float(model.eta.detach())
    new = perturbed(model, "eta", 4.0)
    assert float(new.eta.detach()) == pytest.approx(4.0 * eta)
    assert float(model.eta.detach()) == eta


def test_knobs_a_model_does_not_have_return_none():
    torch.manual_seed(0)
    sym = build_model({"model": "symsa", "dim": 16, "heads": 1, "pos": "none"})
    assert perturbed(sym, "value", 2.0) is None
    assert perturbed(sym, "input", 2.0) is not None
    with pytest.raises(ValueError, match="unknown knob"):
        perturbed(sym, "gamma", 2.0)
