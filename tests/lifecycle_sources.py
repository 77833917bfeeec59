"""Generator functions for the worker lifecycle tests: module-level, so spawned workers can import them."""

import os
import random
import time

import numpy as np

import shoal


def producing(folder, tag=0):
    """Items of 4 KB (they cross through the pipe) forever.

    Its ``finally`` leaves a file in ``folder`` named after the worker and ``tag``.
    """
    index = (shoal.worker_info() or (0, 1))[0]
    try:
        i = 0
        while True:
            yield {"x": np.full(1000, i, dtype=np.float32), "i": i, "tag": tag}
            i += 1
    finally:
        with open(os.path.join(folder, f"closed-{index}-{tag}-{os.getpid()}"), "w") as marker:
            marker.write("closed")


def stuck_after(n):
    """``n`` items, then stuck in user code (a read that never returns, say)."""
    yield from range(n)
    while True:
        time.sleep(0.05)


def random_draws(n):
    """``n`` items, each drawn from numpy's global random state and from ``random``'s."""
    index = (shoal.worker_info() or (0, 1))[0]
    for _ in range(n):
        yield (index, int(np.random.randint(2**31)), random.getrandbits(31))


def laid_out():
    """Dicts of small arrays in C order, Fortran order and strided, in runs and apart."""
    c = np.arange(6, dtype=np.float64).reshape(2, 3)
    f = np.asfortranarray(c)
    strided = np.arange(24, dtype=np.int32).reshape(2, 3, 4).transpose(1, 0, 2)
    yield {"a": f, "b": np.arange(3)}             # Fortran order opens a run
    yield {"a": f + 1, "b": np.arange(3)}
    yield {"a": c, "b": np.arange(3)}             # C order after it
    yield {"a": f + 2, "b": np.arange(3)}         # Fortran order inside a run of C order
    yield {"a": c, "b": strided}                   # neither: pickle gives it in C order
    yield {"a": f[:, ::2], "b": f[:, ::2].T}      # strided views of a Fortran array
    yield {"a": np.asfortranarray(np.ones((3, 1, 2), dtype=np.int16)), "b": np.arange(3)}
