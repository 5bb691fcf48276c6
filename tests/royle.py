"""Where the tests find Royle's 17-clue list.

Per-test fixtures clear ``$SADYN_SUDOKU17`` (a test sees no pool override unless it sets one),
so its value is read here, when the test run starts, and the tests that need the list use the
file it names.
"""

from __future__ import annotations

import os
from pathlib import Path

from sadyn.sudoku import rrn
from sadyn.sudoku.datasets import data_dir

ROYLE_ENV = os.environ.get(rrn.ENV_POOL)


def find_royle_list(env: str | None = ROYLE_ENV) -> Path | None:
    """The file ``env`` (``$SADYN_SUDOKU17``) names, else a copy under any accepted name in the
    data folder or the project's shared folder (:func:`sadyn.sudoku.rrn.find_pool`); None when
    there is none."""
    if env:
        return Path(env) if Path(env).is_file() else None
    return rrn.find_pool(None, search_dirs=[data_dir()])
