import pytest


@pytest.fixture(scope="session")
def puzzle_files(tmp_path_factory):
    """Small generated sets written as CSV files: train (400), id (40), ood (40)."""
    from sadyn.sudoku import get_dataset, write_csv

    root = tmp_path_factory.mktemp("puzzles")
    specs = {
        "train": ("satnet", "train", 400),
        "id": ("satnet", "test", 40),
        "ood": ("rrn", "test", 40),
    }
    return {
        name: write_csv(
            get_dataset(kind, split, n=n, seed=0, cache_dir=root / "cache", progress=False),
            root / f"{name}.csv",
        )
        for name, (kind, split, n) in specs.items()
    }


@pytest.fixture(scope="session")
def make_config(puzzle_files):
    """``make_config(**changes)``: the tiny preset on ``puzzle_files`` (no TensorBoard)."""
    from sadyn.training.presets import get_preset

    def make(**changes):
        ood = str(puzzle_files["ood"])
        values = {
            "train_data": str(puzzle_files["train"]),
            "eval_data": (str(puzzle_files["id"]), ood),
            "select_on": ood,
            "tensorboard": False,
        }
        values.update(changes)
        return get_preset("tiny", **values)

    return make


@pytest.fixture
def cli_data_args(puzzle_files):
    """``sadyn train`` flags selecting ``puzzle_files``."""
    ood = str(puzzle_files["ood"])
    return [
        "--train_data",
        str(puzzle_files["train"]),
        "--eval_data",
        f"{puzzle_files['id']},{ood}",
        "--select_on",
        ood,
    ]


@pytest.fixture(scope="session")
def tiny_run(make_config, tmp_path_factory):
    """One finished tiny run (with TensorBoard), shared read-only by several tests:
    (config, out_dir, summary)."""
    from sadyn.training import train

    config = make_config(tensorboard=True)
    out = tmp_path_factory.mktemp("tiny_run") / "run"
    # under the suite's thread count (tests/conftest.py), as the runs compared with it
    summary = train(config, out, progress=False)
    return config, out, summary
