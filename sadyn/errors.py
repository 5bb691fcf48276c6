"""Exceptions shared by every layer.

Every error a user can cause (a bad file, a wrong shape, a diverging trajectory, a foreign
checkpoint) is a :class:`SadynError`; the CLI prints its message and exits with status 2
instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class SadynError(Exception):
    """Base class of the errors sadyn raises on bad input or failed runs."""


class DataFormatError(SadynError, ValueError):
    """A puzzle file (or tensor) is malformed. The message names the file and the line."""

    def __init__(self, problem: str, path: str | Path | None = None, line: int | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}, line {line}"
            where += ": "
        super().__init__(where + problem)


class CheckpointError(SadynError):
    """A checkpoint is missing, corrupt, or was not written by sadyn."""


class DivergenceError(SadynError, FloatingPointError):
    """A state, loss or trajectory became non-finite."""


class ShapeError(SadynError, ValueError):
    """A tensor has the wrong shape for the call."""


class ArgumentError(SadynError, ValueError):
    """An argument has the wrong type or lies outside its range (the message names it)."""


class ConvergenceError(SadynError, RuntimeError):
    """An iterative method (e.g. ARPACK) did not converge and no exact fallback fits in memory."""
