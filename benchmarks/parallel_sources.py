"""Generator functions for bench_parallel.py (module-level, for worker processes)."""

import time

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


_MIB = np.ones(2**18, dtype=np.float32)  # 1 MiB


def arrays_1mib(n):
    """1 MiB float32 arrays (the same one: the benchmark times the transport)."""
    for _ in range(n):
        yield {"x": _MIB}


def rows(n, tag=0, start=0):
    """Small items ``(tag, i)``; resumes in O(1) with ``start``."""
    for i in range(start, n):
        yield {"i": np.array(i), "tag": np.array(tag)}


rows.__shoal_resume_arg__ = "start"  # as shoal.resume_arg("start") marks it


def ring_worker(ring_path, ring_bytes, item_bytes, counters, n):
    """The bare ring's worker: copy ``n`` arrays into the ring, one slot each.

    ``counters`` holds (items written, items read); the slot of item ``k`` is
    ``k % n_slots``. Nothing else: no pickling, no messages.
    """
    import mmap

    with open(ring_path, "r+b") as f:
        ring = mmap.mmap(f.fileno(), ring_bytes)
    view = np.frombuffer(ring, dtype=np.uint8)
    source = _MIB.view(np.uint8)[:item_bytes]
    n_slots = ring_bytes // item_bytes
    for k in range(n):
        while k - counters[1] >= n_slots:
            time.sleep(0)
        slot = (k % n_slots) * item_bytes
        view[slot:slot + item_bytes] = source
        counters[0] = k + 1
    del view
    ring.close()
