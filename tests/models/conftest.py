"""Tiny configs of every model (and of the main option variants), and valid Sudoku boards."""

import pytest
import torch

# dim 16: head widths and per-head ranks stay even, so GTA fits every model
TINY_CONFIGS = {
    "itrsa": {"model": "itrsa", "dim": 16, "heads": 2},
    "symsa": {"model": "symsa", "dim": 16, "heads": 1},
    "gensym-single": {"model": "gensym-single", "dim": 16, "heads": 1, "relation_bias": True},
    "gensym-multi": {"model": "gensym-multi", "dim": 16, "heads": 2},
    "akorn": {"model": "akorn", "dim": 16, "heads": 2},
    "preln-itrsa": {"model": "preln-itrsa", "dim": 16, "heads": 2},
    # option variants
    "itrsa-options": {
        "model": "itrsa",
        "dim": 16,
        "heads": 2,
        "pos": "gta+rcb",
        "relation_bias": True,
        "input_scale": 3.0,
        "norm": "layernorm",
        "norm_group": 4,
        "readout": "mlp",
        "init": "cond",
        "eta_learnable": False,
        "eta0": 0.7,
        "gta_learnable": False,
    },
    "itrsa-rms": {
        "model": "itrsa",
        "dim": 16,
        "heads": 4,
        "norm": "rms",
        "norm_group": 8,
        "pos": "rcb",
        "readout_n": 2,
    },
    "itrsa-orthogonal-vo": {"model": "itrsa", "dim": 16, "heads": 2, "orthogonal_vo": True},
    "akorn-rmsnorm": {
        "model": "akorn",
        "dim": 16,
        "heads": 2,
        "norm": "rms_unit",
        "global_omega": False,
    },
    "preln-gta": {
        "model": "preln-itrsa",
        "dim": 16,
        "heads": 2,
        "pos": "gta+sin2d",
        "relation_bias": True,
    },
}


def valid_boards(n: int, blanks: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` solved grids (a relabelled, band/stack-shuffled pattern) with ``blanks`` random
    cells erased: ``(quizzes, solutions)``, each ``(n, 81)`` long."""
    g = torch.Generator().manual_seed(seed)
    r = torch.arange(9)
    base = (r[:, None] * 3 + r[:, None] // 3 + r[None, :]) % 9  # a valid grid
    quizzes, solutions = [], []
    for _ in range(n):
        digits = torch.randperm(9, generator=g) + 1
        rows = torch.cat(
            [3 * b + torch.randperm(3, generator=g) for b in torch.randperm(3, generator=g)]
        )
        cols = torch.cat(
            [3 * b + torch.randperm(3, generator=g) for b in torch.randperm(3, generator=g)]
        )
        sol = digits[base[rows][:, cols]].reshape(81)
        quiz = sol.clone()
        quiz[torch.randperm(81, generator=g)[:blanks]] = 0
        quizzes.append(quiz)
        solutions.append(sol)
    return torch.stack(quizzes), torch.stack(solutions)


@pytest.fixture
def boards():
    return valid_boards


def pytest_generate_tests(metafunc):
    """Tests that take ``model_key`` run once per entry of TINY_CONFIGS."""
    if "model_key" in metafunc.fixturenames:
        metafunc.parametrize("model_key", list(TINY_CONFIGS))


@pytest.fixture
def tiny_config(model_key):
    return dict(TINY_CONFIGS[model_key])
