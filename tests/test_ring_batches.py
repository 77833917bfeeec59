"""Batches made in a worker are built in its ring and handed to the consumer where they are.

``buffer_stream`` in a worker process copies each item's large arrays into a
batch reserved in the ring as the item comes (``shoal._arena``), and the
worker sends the batch with no further copy (``Writer.put`` hands the place
over). What must hold: the batches are those of one process, whatever the
items; the worker's own objects are never changed; a place the worker
still holds is never written again; and outside a worker's main thread
nothing of this applies.
"""

import gc
import multiprocessing
import threading

import numpy as np
import pytest
import worker_sources as sources
from hang_guard import no_hang
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leaks import nothing_left_behind  # noqa: F401 (an autouse fixture)

import shoal
from shoal import DataError, ProcessStreamer, Shares, Streamer, _arena, buffer_stream
from shoal.parallel._ring import CHUNK_BYTES, Ring, Writer, free_chunks

FORK = multiprocessing.get_context("fork")
LARGE = 2**16  # float32 values: 256 KiB an item, a batch of 4 is 1 MiB


def _writer(size=2**26, room=None):
    ring = Ring(FORK, size, False, room)
    writer = Writer(ring.path, ring.size, ring.chunk, ring.chunks, ring.limit, ring.taken)
    return ring, writer


def _never_waits():
    raise AssertionError("the writer waited")


def _close(ring, writer):
    gc.collect()
    ring.close()


def _in_worker(stream, **kwargs):
    with no_hang():
        return list(ProcessStreamer(stream, n_workers=1, start_method="fork", **kwargs))


def assert_same(got, expected):
    """Equal batches, structure, key order, dtype and shape included."""
    assert type(got) is type(expected)
    if isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            assert_same(got[key], expected[key])
    elif isinstance(expected, (tuple, list)):
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert_same(a, b)
    elif isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == expected


# -- the writer: reserve, hand over, pin ---------------------------------------------------


def test_a_reserved_place_sent_whole_is_handed_over_where_it_is():
    ring, writer = _writer()
    try:
        place = writer.reserve(3 * CHUNK_BYTES + 5)
        assert place.dtype == np.uint8 and place.nbytes == 3 * CHUNK_BYTES + 5
        place[:] = 7
        offset = place.__array_interface__["data"][0] - np.frombuffer(
            writer.map, np.uint8, count=1).__array_interface__["data"][0]
        assert offset % ring.chunk == 0
        assert bytes(ring.table[offset // ring.chunk:][:4]) == bytes(4)  # not the consumer's yet
        places, total = writer.put([memoryview(place)], _never_waits)
        assert places == [(offset, place.nbytes)] and total == place.nbytes
        assert bytes(ring.table[offset // ring.chunk:][:4]) == b"\x01" * 4  # now it is
        place[0] = 9  # no copy was made: the consumer's view is this memory
        assert ring.view[offset] == 9
        del place
    finally:
        _close(ring, writer)


def test_a_place_sent_again_or_in_part_is_copied():
    ring, writer = _writer()
    try:
        place = writer.reserve(2 * CHUNK_BYTES)
        place[:] = 3
        first, _ = writer.put([memoryview(place)], _never_waits)
        again, _ = writer.put([memoryview(place)], _never_waits)
        assert again[0][0] != first[0][0]  # a second place: a copy
        assert bytes(ring.view[again[0][0]:again[0][0] + 4]) == b"\x03" * 4
        other = writer.reserve(2 * CHUNK_BYTES)
        part, _ = writer.put([memoryview(other[:CHUNK_BYTES])], _never_waits)
        other_offset = other.__array_interface__["data"][0] - place.__array_interface__["data"][0] \
            + first[0][0]
        assert part[0][0] != other_offset  # half of it: copied, the place stays the worker's
        del place, other
    finally:
        _close(ring, writer)


def test_the_workers_place_is_never_given_out_while_it_holds_an_array_there():
    ring, writer = _writer(size=16 * CHUNK_BYTES)  # fixed: it never grows
    try:
        batch = writer.reserve(4 * CHUNK_BYTES).view(np.float32)
        batch[:] = 1.5
        (offset, _), = writer.put([memoryview(batch)], _never_waits)[0]
        assert offset == 0
        # The consumer is done with it (frees its chunks); the worker still holds it.
        free_chunks(ring.chunks, 0, 4)
        for _ in range(3):
            places, _ = writer.put([memoryview(np.full(CHUNK_BYTES, 2, np.uint8))], _never_waits)
            assert places[0][0] == 4 * CHUNK_BYTES  # the first chunk not pinned
            free_chunks(ring.chunks, 4, 1)
        assert (batch == 1.5).all()
        del batch
        gc.collect()
        # Gone from the worker too: its chunks are used again.
        places, _ = writer.put([memoryview(np.full(CHUNK_BYTES, 2, np.uint8))], _never_waits)
        assert places[0][0] == 0
    finally:
        _close(ring, writer)


def test_a_place_never_sent_goes_back_when_its_arrays_are_gone():
    ring, writer = _writer(size=16 * CHUNK_BYTES)
    try:
        place = writer.reserve(4 * CHUNK_BYTES)
        assert bytes(ring.table) == bytes(16)  # the worker's, not the consumer's
        one = np.ones(CHUNK_BYTES, np.uint8)
        assert writer.put([memoryview(one)], _never_waits)[0] == [(4 * CHUNK_BYTES, CHUNK_BYTES)]
        free_chunks(ring.chunks, 4, 1)
        view = place[CHUNK_BYTES:]
        del place
        gc.collect()
        assert writer.put([memoryview(one)], _never_waits)[0] == [(4 * CHUNK_BYTES, CHUNK_BYTES)]
        free_chunks(ring.chunks, 4, 1)  # a view keeps the place the worker's
        del view
        gc.collect()
        assert writer.put([memoryview(one)], _never_waits)[0] == [(0, CHUNK_BYTES)]
        assert not writer.reserved and not writer.pins
    finally:
        _close(ring, writer)


def test_no_place_when_the_ring_cannot_hold_the_window():
    ring, writer = _writer(size=4 * CHUNK_BYTES)  # fixed: it never grows
    try:
        assert writer.reserve(2 * CHUNK_BYTES) is None
    finally:
        _close(ring, writer)


def test_the_arena_is_lent_to_one_thread_of_one_process():
    ring, writer = _writer()
    try:
        _arena.lend(writer)
        assert _arena.active() is writer
        seen = []
        thread = threading.Thread(target=lambda: seen.append(_arena.active()))
        thread.start()
        thread.join()
        assert seen == [None]
        child = FORK.Process(target=_exit_with_active)
        child.start()
        child.join(30)
        assert child.exitcode == 0  # a process forked from a worker has no ring of its own
        values = [np.ones(LARGE, np.float32)] * 8
        stacked = _arena.stack(values, None)
        assert stacked.shape == (8, LARGE) and writer.reserved
        del stacked
    finally:
        _arena.lend(None)
        assert _arena.active() is None
        _close(ring, writer)


def _exit_with_active():
    raise SystemExit(0 if _arena.active() is None else 1)


# -- in a worker: the batches of one process ----------------------------------------------


def _items(kind, n, dtype="float32"):
    for i in range(n):
        x = np.full((4, LARGE // 4), i, dtype=dtype)
        if kind == "dict":
            yield {"x": x, "y": np.int64(i), "meta": {"i": i}}
        elif kind == "tuple":
            yield (x, i)
        elif kind == "list":
            yield [x, np.float64(i) * x[:1]]
        else:
            yield x


@pytest.mark.parametrize("kind", ["dict", "tuple", "list", "array"])
@pytest.mark.parametrize("partial", [False, True])
def test_batches_made_in_a_worker_are_those_of_one_process(kind, partial):
    items = list(_items(kind, 11))
    expected = list(buffer_stream(iter(items), 4, partial=partial))
    got = _in_worker(Streamer(buffer_stream, Streamer(sources.shaped, items), 4, partial=partial))
    assert len(got) == len(expected) == (3 if partial else 2)
    for a, b in zip(got, expected):
        assert_same(a, b)


@pytest.mark.parametrize("dtype", ["float64", "int8", "uint16", "complex64", "bool", "<U4",
                                   "datetime64[s]", ">f4"])
def test_every_dtype_batches_as_in_one_process(dtype):
    # 2**17 values: 128 KiB or more an item, so that a batch of 3 is built in the ring.
    items = [{"x": (np.arange(2**17) % (i + 2) == 0) if dtype == "bool" else
              np.arange(2**17).astype(dtype)[::-1]} for i in range(6)]
    expected = list(buffer_stream(iter(items), 3))
    got = _in_worker(Streamer(buffer_stream, Streamer(sources.shaped, items), 3))
    for a, b in zip(got, expected):
        assert_same(a, b)


def assert_as_in_one_process(items, batch_size, error=None, **kwargs):
    """A worker batches ``items`` as one process does, or raises the DataError one process raises.

    ``error``: None if the batches must be made, else a pattern of the error.
    """
    stream = Streamer(buffer_stream, Streamer(sources.shaped, items), batch_size, **kwargs)
    if error is not None:
        with pytest.raises(DataError, match=error) as local:
            list(buffer_stream(iter(items), batch_size, **kwargs))
        with pytest.raises(DataError, match=error) as remote:
            _in_worker(stream)
        assert str(remote.value) == str(local.value)
        return
    expected = list(buffer_stream(iter(items), batch_size, **kwargs))
    got = _in_worker(stream)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert_same(a, b)


def test_items_that_break_a_batch_batch_as_in_one_process():
    base = [np.full(LARGE, i, dtype=np.float32) for i in range(8)]
    promoted = base[:2] + [base[2].astype(np.float64)] + base[3:]  # numpy promotes the batch
    assert_as_in_one_process(promoted, 4)
    fortran = [np.asfortranarray(np.full((256, 256), i, np.float32)) for i in range(4)]
    assert_as_in_one_process(fortran, 4)
    extra_key = [{"x": b} for b in base[:3]] + [{"x": base[3], "z": 1}]
    assert_as_in_one_process(extra_key, 4, error="item 3 of a batch has keys the first item lacks")


@pytest.mark.parametrize(("kinds", "error"), [
    (("dict", "tuple"), "item 2 of a batch is"), (("array", "list"), "item 2 is"),
    (("tuple", "dict"), "item 2 of a batch is"), (("tuple", "list"), "under key 1: .* item 2 has"),
    (("list", "array"), "item 2 of a batch is"),
])
def test_items_of_another_kind_in_a_batch_batch_as_in_one_process(kinds, error):
    # The first item decides where its arrays go in the ring; an item of
    # another kind is left as it is, and the batch fails as in one process.
    first, other = (list(_items(kind, 4)) for kind in kinds)
    assert_as_in_one_process(first[:2] + other[2:3] + first[3:], 4, error=error)


def test_a_batch_of_mismatched_shapes_raises_the_error_of_one_process():
    items = [np.zeros(LARGE, np.float32)] * 3 + [np.zeros(LARGE + 1, np.float32)]
    with pytest.raises(DataError, match=r"cannot batch the values: their shapes differ") as local:
        list(buffer_stream(iter(items), 4))
    with pytest.raises(DataError, match=r"cannot batch the values: their shapes differ") as remote:
        _in_worker(Streamer(buffer_stream, Streamer(sources.shaped, items), 4))
    assert str(remote.value) == str(local.value)


def test_batches_joined_along_an_axis_are_those_of_one_process():
    items = [np.full((2, LARGE), i, np.int32) for i in range(6)]
    expected = list(buffer_stream(iter(items), 3, axis=0))
    got = _in_worker(Streamer(buffer_stream, Streamer(sources.shaped, items), 3, axis=0))
    for a, b in zip(got, expected):
        assert_same(a, b)


def test_a_worker_that_keeps_its_batches_and_sends_them_again():
    # Every batch arrives twice with its own values, though the worker holds
    # them all and the consumer holds all it got: no place is written twice.
    got = _in_worker(Streamer(sources.replayed, 6, 4))
    expected = list(sources.replayed(6, 4))
    assert len(got) == 12
    for a, b in zip(got, expected):
        assert_same(a, b)
    for i, batch in enumerate(got):
        assert batch["x"][:, 0].tolist() == [4.0 * (i % 6) + r for r in range(4)]


def test_the_workers_own_items_are_left_as_they_were():
    got = _in_worker(Streamer(sources.kept_dicts, 8, 4))
    assert got[-1] is True
    assert [batch["i"].tolist() for batch in got[:-1]] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_a_worker_batches_the_values_its_generator_yielded():
    # A generator that overwrites its array after yielding it: the worker takes
    # each item as it comes, as it does one by one; one process stacks the array
    # as it is when the batch is full.
    got = _in_worker(Streamer(buffer_stream, Streamer(sources.yield_time, 8), 4))
    assert [batch[:, 0].tolist() for batch in got] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    got = _in_worker(Streamer(sources.yield_time, 4))
    assert [item[0] for item in got] == [0, 1, 2, 3]


def test_large_batched_shares_are_the_same_in_workers():
    streams = [Streamer(sources.large_rows, 12, 2**15) for _ in range(4)]
    stream = Streamer(buffer_stream, Shares(shoal.ChainMux(streams), 4), 16)
    expected = list(stream)
    with no_hang():
        for n_workers in (1, 2, 4):
            got = list(ProcessStreamer(stream, n_workers=n_workers, start_method="fork"))
            assert len(got) == len(expected) == 3
            for a, b in zip(got, expected):
                assert_same(a, b)


def test_a_small_fixed_ring_still_gives_the_batches():
    items = list(_items("dict", 8))
    expected = list(buffer_stream(iter(items), 4))
    got = _in_worker(Streamer(buffer_stream, Streamer(sources.shaped, items), 4),
                     shared_memory_bytes=2**20)
    for a, b in zip(got, expected):
        assert_same(a, b)


_DTYPES = st.sampled_from(["float32", "float64", "int16", "uint8", "complex128", "bool"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["dict", "tuple", "list", "array"]), dtype=_DTYPES,
       rows=st.integers(1, 40_000), n=st.integers(1, 12), batch_size=st.integers(1, 6),
       partial=st.booleans(), odd=st.integers(-1, 11))
def test_random_batches_in_a_worker_are_those_of_one_process(kind, dtype, rows, n, batch_size,
                                                             partial, odd):
    # Item ``odd`` (if any) has another shape: its batch raises as in one process.
    items = []
    for i in range(n):
        x = (np.arange(rows + (i == odd)) % (i + 3)).astype(dtype)
        items.append({"x": x, "i": i} if kind == "dict" else (x, i) if kind == "tuple"
                     else [x, x[:3]] if kind == "list" else x)
    error = None
    if 0 <= odd < n:
        start = odd // batch_size * batch_size
        size = min(batch_size, n - start)  # of the odd item's batch
        if size > 1 and (size == batch_size or partial):
            error = "cannot batch"  # the batch is made, and its shapes differ
    assert_as_in_one_process(items, batch_size, error=error, partial=partial)
