"""The worker tests' guard: no test leaves a worker process or a shared-memory ring behind.

A test module that starts workers imports :func:`nothing_left_behind`, an
autouse fixture, and so runs it after each of its tests.
"""

import gc
import multiprocessing
import os

import pytest

__all__ = ["shared_memory_left", "nothing_left_behind"]


def shared_memory_left():
    """The shared-memory rings this process made and did not remove."""
    folder = "/dev/shm"
    mine = f"shoal-{os.getpid()}-"
    return [f for f in os.listdir(folder) if f.startswith(mine)] if os.path.isdir(folder) else []


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """Every test must leave no worker process and no shared memory behind."""
    yield
    gc.collect()
    assert multiprocessing.active_children() == []
    assert shared_memory_left() == []
