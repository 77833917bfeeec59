"""Fixtures that several test modules use."""

import numpy as np
import pytest


@pytest.fixture
def global_numpy_state():
    """Restore numpy's global random state after a test that reseeds it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)
