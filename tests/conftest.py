import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests run on 2 cores beside other work: keep torch to one thread for steady, comparable timings."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
