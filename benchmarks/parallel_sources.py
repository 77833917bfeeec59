"""Generator functions for bench_parallel.py (module-level, for worker processes)."""

import numpy as np

_SMALL = {f"f{j}": np.array(j, dtype=np.float32) for j in range(10)}
_BIG = np.ones(1_000_000, dtype=np.float32)  # 4 MB


def small(n):
    """Dicts of 10 float32 values (0-d arrays, which pescador can send)."""
    for _ in range(n):
        yield dict(_SMALL)


def arrays_4mb(n):
    """4 MB float32 arrays (the same one: the benchmark times the transport)."""
    for _ in range(n):
        yield {"x": _BIG}


def busy(n, seconds=0.001):
    """A CPU-bound generator: about ``seconds`` of work per item."""
    import time

    for i in range(n):
        end = time.perf_counter() + seconds
        x = 0
        while time.perf_counter() < end:
            x += 1
        yield {"i": np.array(i)}
