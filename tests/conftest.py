import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models: one torch thread (threads only add overhead, and on a busy 2-core machine
    several threads make tiny matmuls 10-100x slower). Use with pytestmark = usefixtures."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
