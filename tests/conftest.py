import os

import pytest
import torch

# Tiny test tensors gain nothing from intra-op threads, and lose much on a loaded machine.
torch.set_num_threads(int(os.environ.get("SADYN_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
