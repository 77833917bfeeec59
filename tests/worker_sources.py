"""Generator functions for the worker tests: module-level, so spawned workers can import them."""

import os
import time

import numpy as np

import shoal


class Point:
    """A picklable object of the test's own."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def numbered(n, tag=0):
    for i in range(n):
        yield {"x": np.full(3, i, dtype=np.int64), "tag": tag, "i": i}


def anything():
    yield 7
    yield "text"
    yield Point(1, 2)
    yield {"a": [np.arange(3), (np.ones((2, 2)), "b")], "c": None}
    yield (np.float32(1.5), [1, 2, 3])
    yield np.arange(200_000, dtype=np.float64)  # large: through shared memory


def reusing(n, size=1_000_000):
    """Yields the same 4 MB array, overwritten for each item."""
    buffer = np.zeros(size, dtype=np.float32)
    for i in range(n):
        buffer[:] = i
        yield {"x": buffer}


def sized(sizes):
    """Item i: a float32 array of ``sizes[i]`` values, all equal to i."""
    for i, size in enumerate(sizes):
        yield {"x": np.full(size, i, dtype=np.float32)}


def failing(n):
    for i in range(n):
        yield i
    raise KeyError("record 3 is missing")


class Unpicklable(Exception):
    def __init__(self, lock):
        super().__init__("cannot cross")
        self.lock = lock

    def __reduce__(self):
        raise TypeError("no pickling")


def failing_unpicklably():
    yield 1
    raise Unpicklable(object())


def killed_after(n):
    for i in range(n):
        yield i
    os.kill(os.getpid(), 9)
    yield n


def forever(tag=0):
    i = 0
    while True:
        yield (tag, i)
        i += 1


def counted(counter):
    """Counts the items it produced in a shared counter."""
    i = 0
    while True:
        with counter.get_lock():
            counter.value += 1
        yield i
        i += 1


def sharded(n):
    """Each worker reads its own share, through worker_info()."""
    index, n_workers = shoal.worker_info() or (0, 1)
    for i in range(index, n, n_workers):
        yield i


def slow(n, delay):
    for i in range(n):
        time.sleep(delay)
        yield i


@shoal.streamable
def streamed(n):
    """A @streamable generator function."""
    yield from range(n)


def every_dtype(size):
    """Arrays of dtypes a dtype string loses or mangles: records, datetimes, byte orders."""
    record = np.zeros(size, dtype=[("a", "i4"), ("b", "f4"), ("c", "S3")])
    record["a"] = np.arange(size)
    record["b"] = 0.5
    record["c"] = b"xyz"
    yield {"record": record,
           "when": np.arange(size).astype("datetime64[s]"),
           "big_endian": np.arange(size, dtype=">f8"),
           "nested": np.zeros(2, dtype=[("p", [("q", "<u2", (2,))])])}
    yield {"record": record[0]}  # a 0-d record


def wait_for_file(path, seconds=10.0):
    """Wait until ``path`` exists; False if ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def burst_then_block(n_burst, path):
    """Yields a burst of items, then blocks (as on I/O) until ``path`` exists."""
    for i in range(n_burst):
        yield {"i": np.array(i)}
    if not wait_for_file(path):
        yield "held back"  # the consumer never saw the burst while the generator blocked
    yield "after"


def silent_after(n, seconds):
    """Yields ``n`` items, then is silent for ``seconds``."""
    yield from range(n)
    time.sleep(seconds)
    yield n


def rows(n, tag=0, start=0):
    """Items ``(tag, i)``; resumes in O(1) with ``start``."""
    for i in range(start, n):
        yield (tag, i)


rows = shoal.resume_arg("start")(rows)


def lines(path, tag=0):
    """Items ``(tag, number)``, one per line of the file at ``path``: what a run reads from disk."""
    with open(path) as f:
        for line in f:
            yield (tag, int(line))


def write_lines(path, n):
    """Write a file of ``n`` lines, 0 to n - 1, for :func:`lines`."""
    with open(path, "w") as f:
        f.write("".join(f"{i}\n" for i in range(n)))


def images(n, shape=(224, 224, 3), tag=0):
    """Item i: a float32 image, its value at [y, x, c] y + x + c + i, and a label."""
    y, x, c = np.indices(shape, dtype=np.float32)
    base = y + x + c
    for i in range(n):
        yield {"image": base + np.float32(i + tag), "label": np.int64(i)}


# -- batches built in a worker's ring (test_ring_batches) ---------------------------------


def shaped(items):
    """Yields the given items (dicts, tuples, arrays, ...) one by one."""
    yield from items


def large_rows(n, size=2**16, dtype="float32"):
    """``n`` dicts of a large array (row i full of i), a small label and metadata."""
    for i in range(n):
        yield {"x": np.full(size, i, dtype=dtype), "y": np.int64(i), "meta": f"row {i}"}


def replayed(n_batches, batch_size, size=2**16):
    """Batches made in the worker, each yielded, kept, and all yielded again at the end.

    The worker holds the batches it sent: their places in the ring must not
    be written again while it does, and a batch sent twice arrives twice.
    """
    kept = []
    for batch in shoal.buffer_stream(large_rows(n_batches * batch_size, size), batch_size):
        kept.append(batch)
        yield batch
    yield from kept


def kept_dicts(n, batch_size, size=2**16):
    """Batches of the worker's own dicts, then whether the batching left those dicts as they were."""
    own = [{"x": np.full(size, i, dtype=np.float32), "i": i} for i in range(n)]
    arrays = [item["x"] for item in own]
    yield from shoal.buffer_stream(iter(own), batch_size)
    yield all(item["x"] is array and float(array[0]) == i and list(item) == ["x", "i"]
              for i, (item, array) in enumerate(zip(own, arrays)))


def yield_time(n, size=2**16):
    """A large array overwritten in place after each item (a generator that reuses its buffer)."""
    buffer = np.zeros(size, dtype=np.float32)
    for i in range(n):
        buffer[:] = i
        yield buffer


def dicts_of_values():
    """Dicts sent in runs: empty ones, plain values of every kind, small arrays beside them."""
    for _ in range(3):
        yield {}
    for i in range(4):
        yield {"label": i, "path": f"{i}.wav", "w": 0.5 * i, "ok": i % 2 == 0, "none": None,
               "raw": bytes([i]), "z": complex(i, 1), "big": 10**30 + i}
    for i in range(4):
        yield {"x": np.full(2, i, np.int16), "label": i}
    yield {"x": np.full(2, 9, np.int16), "label": np.int64(9)}  # a numpy scalar: pickled
    yield {"x": np.full(2, 10, np.int16), "label": True}  # a bool where ints were
    yield {}
