import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests use tiny tensors: intra-op threads only add synchronization (many times
    slower on a shared 2-core machine). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
