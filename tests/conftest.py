import os

import pytest
import torch

# Tiny test tensors gain nothing from intra-op threads, and lose much on a loaded machine (thread
# hand-offs dominate); one fixed count also keeps float reductions in one order, so the runs some
# tests compare bit for bit agree.
THREADS = int(os.environ.get("SADYN_TEST_THREADS", "1"))
torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts with ``THREADS`` intra-op threads (one unless $SADYN_TEST_THREADS) and
    leaves that count behind whatever it set (a training run applies ``config.threads``)."""
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def royle_path():
    """Royle's 17-clue list (``$SADYN_SUDOKU17`` as the run started, else a copy in the data or
    shared folder); tests needing it skip where there is none."""
    from royle import find_royle_list

    path = find_royle_list()
    if path is None:
        pytest.skip("Royle's 17-clue list is not available (set $SADYN_SUDOKU17)")
    return path
