"""Fixtures that several test modules use."""

import gc

import numpy as np
import pytest


@pytest.fixture
def global_numpy_state():
    """Restore numpy's global random state after a test that reseeds it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


# PyTorch's DataLoader waits MP_STATUS_CHECK_INTERVAL (5 s) for each of its workers to
# end, then terminates it; a worker that stopped after an error (what the tests of
# refusals check) never ends by itself, so each such DataLoader cost 10 s when it was
# collected, in whatever test came next. Half a second is enough to see it end.
try:
    import torch.utils.data._utils as _torch_data_utils
except ImportError:  # PyTorch is not installed: nothing waits
    pass
else:
    _torch_data_utils.MP_STATUS_CHECK_INTERVAL = 0.5

# The objects made so far (modules and what they hold: PyTorch's are many) are
# never garbage: left out of every collection, the gc.collect() of the fixtures
# that check that nothing was left behind takes milliseconds, not half a second.
gc.freeze()
