"""sadyn.sudoku: the benchmark task.

Boards and rule checks (:mod:`.board`), an exact solver (:mod:`.solver`), SATNet-style and
RRN-style generators (:mod:`.satnet`, :mod:`.rrn`, :mod:`.minimal`), file formats
(:mod:`.formats`), named and cached data sets (:mod:`.datasets`) and metrics (:mod:`.metrics`).
"""

from sadyn.sudoku.datasets import (
    SudokuDataset,
    data_dir,
    default_size,
    get_dataset,
    resolve_dataset,
)
from sadyn.sudoku.formats import read_puzzles, read_quizzes, write_csv
from sadyn.sudoku.metrics import (
    board_accuracy,
    board_correct,
    cell_accuracy,
    unit_violations,
    violation_rate,
)
from sadyn.sudoku.puzzles import PuzzleSet
from sadyn.sudoku.solver import SolveResult, solve, solve_many
from sadyn.sudoku.tensors import read_satnet, write_satnet

__all__ = [
    "PuzzleSet",
    "SolveResult",
    "SudokuDataset",
    "board_accuracy",
    "board_correct",
    "cell_accuracy",
    "data_dir",
    "default_size",
    "get_dataset",
    "read_puzzles",
    "read_quizzes",
    "read_satnet",
    "resolve_dataset",
    "solve",
    "solve_many",
    "unit_violations",
    "violation_rate",
    "write_csv",
    "write_satnet",
]
