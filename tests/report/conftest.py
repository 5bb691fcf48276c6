"""Synthetic results files covering every figure kind, verdict status and table form."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from sadyn.results import write_results


def _png(path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def synthetic_records(tmp: Path) -> dict[str, dict]:
    """Three claims: a pass with line + complex panels, a fail with scatter/hist/bar, an
    inconclusive one with a referenced PNG. Names chosen so `order` (not the name) sorts."""
    (tmp / "zeta").mkdir(parents=True, exist_ok=True)
    _png(tmp / "zeta" / "made_elsewhere.png")
    line = {
        "kind": "line",
        "series": [
            {"label": "normalized", "x": [2, 4, 8], "y": [1.0, 1.1, 1.05], "yerr": [0.1, 0.1, 0.2]},
            {"label": "plain", "x": [2, 4, 8], "y": [3, None, 30]},
        ],
        "xscale": "log",
        "yscale": "log",
        "xlabel": "tokens",
        "ylabel": "norm",
        "hlines": [{"y": 1.0, "label": "1"}],
    }
    cplx = {
        "kind": "complex",
        "series": [{"label": "J", "re": [0.5, 0.5, -0.2], "im": [0.3, -0.3, 0]}],
    }
    return {
        "alpha": {
            "name": "alpha",
            "title": "Alpha claim",
            "order": 2,
            "preset": "tiny",
            "seed": 3,
            "claim": "Normalization <bounds> the Jacobian & friends.",
            "paper_ref": "Sec. 5.1",
            "config": {"dim": 16, "tokens": [2, 4, 8]},
            "wall_time_s": 1.5,
            "figures": {
                "norms": {"kind": "panels", "panels": [line, cplx], "caption": "two panels"}
            },
            "tables": {"norms": {"columns": ["S", "norm"], "rows": [[2, 1.0], [4, math.inf]]}},
            "verdict": {
                "status": "pass",
                "passed": True,
                "criterion": "norm <= bound",
                "reason": "all 3 below",
                "numbers": {"max_ratio": 0.8},
                "checks": [
                    {
                        "name": "bound",
                        "criterion": "norm <= bound",
                        "status": "pass",
                        "numbers": {"worst": 0.8},
                    }
                ],
            },
            "notes": ["random tokens instead of arXiv text"],
        },
        "beta": {
            "name": "beta",
            "title": "Beta claim",
            "order": 1,
            "preset": "tiny",
            "seed": 0,
            "claim": "Accuracy peaks at criticality.",
            "config": {},
            "wall_time_s": 300.0,
            "figures": {
                "scatter": {
                    "kind": "scatter",
                    "series": [
                        {
                            "label": "m",
                            "x": [0.1, -math.inf, 0.5],
                            "y": [0.9, 0.1, 0.2],
                            "text": ["a", "b", "c"],
                        }
                    ],
                },
                "hist": {
                    "kind": "hist",
                    "series": [{"label": "LE", "values": [0.1, 0.2, -0.3, 0.05]}],
                },
                "bar": {
                    "kind": "bar",
                    "categories": ["none", "spec"],
                    "series": [{"label": "acc", "values": [0.5, 0.7], "errors": [0.1, 0.05]}],
                },
            },
            "verdict": {
                "status": "fail",
                "passed": False,
                "criterion": "best |LE| < 0.3",
                "reason": "best model has LE 0.5",
            },
        },
        "zeta": {
            "name": "zeta",
            "title": "Zeta claim",
            "order": 3,
            "preset": "tiny",
            "seed": 1,
            "claim": "Pseudo-energy decreases.",
            "config": {"x": 1},
            "wall_time_s": 0.2,
            "figures": {"external": {"kind": "png", "path": "made_elsewhere.png"}},
            "verdict": {"passed": None, "criterion": "E_T < E_0", "reason": "model untrained"},
        },
    }


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A results folder with three claims plus a decoy checkpoint cache that must be skipped."""
    root = tmp_path / "results"
    for name, rec in synthetic_records(root).items():
        write_results(root / name / "results.json", rec)
    (root / "cache" / "abc").mkdir(parents=True)
    (root / "cache" / "abc" / "results.json").write_text("{not json")
    return root


@pytest.fixture
def make_records():
    """The synthetic record factory, as a fixture (test folders are not packages)."""
    return synthetic_records


@pytest.fixture(scope="module")
def recipe_results(tmp_path_factory) -> Path:
    """Results files written by real recipes (the two that need no training, tiny preset with
    fewer samples) beside the synthetic ones."""
    from sadyn.experiments.registry import get_recipe

    root = tmp_path_factory.mktemp("recipes")
    # the tiny sweep as it is: its near-miss control needs the preset's 20 states to rise
    get_recipe("claim1-energy").run("tiny", root / "claim1-energy")
    get_recipe("fig1-jacobian-norm").run(
        "tiny", root / "fig1-jacobian-norm", overrides={"samples": 1, "tokens": [2, 8]}
    )
    for name, rec in synthetic_records(root).items():
        write_results(root / name / "results.json", rec)
    return root
