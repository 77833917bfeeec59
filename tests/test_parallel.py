"""ProcessStreamer and ZMQStreamer: workers that are fast, bounded and never silent."""

import gc
import mmap
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import worker_sources as sources
from hang_guard import no_hang
from leaks import nothing_left_behind  # noqa: F401 (an autouse fixture)
from resume_checker import assert_resumes_exactly, roundtrip

import shoal
import shoal.parallel._state
from shoal import ProcessStreamer, ShoalTypeError, ShoalValueError, Streamer, WorkerError, ZMQStreamer
from shoal._contract import OneStream
from shoal.parallel._ring import DEFAULT_RING_BYTES, ROOM_ITEMS, Ring, Writer, max_ring_bytes, ring_sizes

METHODS = pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])


# -- items ----------------------------------------------------------------------


@METHODS
def test_items_arrive_in_order(start_method):
    with no_hang():
        items = list(ProcessStreamer(Streamer(sources.numbered, 200), start_method=start_method))
    assert [item["i"] for item in items] == list(range(200))
    np.testing.assert_array_equal(items[57]["x"], [57, 57, 57])


@METHODS
def test_any_picklable_item_crosses(start_method):
    with no_hang():
        items = list(ProcessStreamer(Streamer(sources.anything), start_method=start_method))
    assert items[:3] == [7, "text", sources.Point(1, 2)]
    np.testing.assert_array_equal(items[3]["a"][0], [0, 1, 2])
    np.testing.assert_array_equal(items[3]["a"][1][0], np.ones((2, 2)))
    assert items[3]["a"][1][1] == "b" and items[3]["c"] is None
    assert items[4][0] == np.float32(1.5) and items[4][1] == [1, 2, 3]
    np.testing.assert_array_equal(items[5], np.arange(200_000, dtype=np.float64))


def test_dicts_of_plain_values_and_empty_dicts_cross_exactly():
    # Runs of dicts carry plain values as they are; empty dicts were once lost.
    expected = list(sources.dicts_of_values())
    with no_hang():
        items = list(ProcessStreamer(Streamer(sources.dicts_of_values), start_method="fork"))
    assert len(items) == len(expected) == 14
    for got, want in zip(items, expected):
        assert list(got) == list(want)
        for key in want:
            assert type(got[key]) is type(want[key])
            if isinstance(want[key], np.ndarray):
                np.testing.assert_array_equal(got[key], want[key])
            else:
                assert got[key] == want[key]


@METHODS
def test_received_arrays_are_writable_and_survive_a_reused_buffer(start_method):
    with no_hang():
        items = list(ProcessStreamer(Streamer(sources.reusing, 30), prefetch=4,
                                     start_method=start_method))
    assert [float(item["x"][0]) for item in items] == list(range(30))
    assert all(float(item["x"][-1]) == i for i, item in enumerate(items))
    items[0]["x"][:] = -1  # writable, and the consumer's own
    assert float(items[1]["x"][0]) == 1


@pytest.mark.parametrize("n_workers", [1, 2])
def test_arrays_the_consumer_holds_stay_intact_while_the_ring_wraps(n_workers):
    # 1 MB items through a 4 MiB ring: it wraps 10 times while the consumer holds them all.
    stream = ProcessStreamer(Streamer(sources.reusing, 40, size=2**18), n_workers=n_workers,
                             shared_memory_bytes=2**22, start_method="fork")
    with no_hang():
        items = list(stream)
    assert len(items) == 40 * n_workers
    for i, item in enumerate(items):
        expected = i // n_workers  # the workers take turns
        assert item["x"].flags.writeable
        assert item["x"].min() == item["x"].max() == expected
        item["x"][:] = -1  # writable, and the consumer's own: no other item changes
    assert all(item["x"].max() == -1 for item in items)


@pytest.mark.parametrize("n_workers", [1, 2])
def test_items_of_every_size_cross_intact_as_the_ring_window_widens(n_workers):
    # A worker uses 4 MiB of its ring until an item needs more: then it waits
    # for the consumer to read what is in flight and widens, up to the whole
    # ring (16 MiB here); larger items go through the pipe.
    mib = 2**18  # float32 values in 1 MiB
    sizes = [mib // 16, mib, 3 * mib // 2, mib // 8, 3 * mib, 2 * mib, 5 * mib, mib // 16] * 3
    stream = ProcessStreamer(Streamer(sources.sized, sizes), n_workers=n_workers, prefetch=8,
                             shared_memory_bytes=16 * 2**20, start_method="fork")
    with no_hang():
        items = list(stream)
    expected = [i for i in range(len(sizes)) for _ in range(n_workers)]
    assert [item["x"].size for item in items] == [sizes[i] for i in expected]
    assert [(item["x"].min(), item["x"].max()) for item in items] == [(i, i) for i in expected]
    assert all(item["x"].flags.writeable for item in items)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_workers", [1, 2])
def test_arrays_kept_and_dropped_at_random_stay_intact_and_nothing_waits_forever(seed, n_workers):
    # Items of random sizes through an 8 MiB ring, the consumer keeping some
    # of them for a while, some for good, and dropping the rest at once: the
    # ring fills with kept arrays, fragments, switches to copies and to the
    # pipe; every array must still hold its own values at the end.
    rng = np.random.default_rng(seed)
    n_items = 120
    sizes = rng.choice([4_000, 20_000, 100_000, 300_000, 700_000], size=n_items).tolist()
    stream = ProcessStreamer(Streamer(sources.sized, sizes), n_workers=n_workers,
                             shared_memory_bytes=8 * 2**20, start_method="fork")
    kept_for_good, kept_a_while = [], []
    with no_hang():
        for k, item in enumerate(stream):
            i = k // n_workers
            assert item["x"].size == sizes[i] and item["x"].min() == item["x"].max() == i
            choice = rng.random()
            if choice < 0.15:
                kept_for_good.append((i, item))
            elif choice < 0.5:
                kept_a_while.append((i, item))
                if len(kept_a_while) > 6:
                    kept_a_while.pop(int(rng.integers(len(kept_a_while))))
    assert len(kept_for_good) > 10
    for i, item in kept_for_good + kept_a_while:
        assert item["x"].min() == item["x"].max() == i  # never overwritten
        item["x"][:] = -1  # and writable


def test_a_ring_of_any_size_is_cut_in_the_same_chunks_by_worker_and_consumer():
    # 200,000 bytes is no whole number of 64 KiB chunks: worker and consumer
    # must still agree on which chunks an array holds, or dropping one array
    # frees the chunk of another the consumer keeps.
    sizes = [16_500] * 40  # 66,000 bytes: more than one 64 KiB chunk
    stream = ProcessStreamer(Streamer(sources.sized, sizes), shared_memory_bytes=200_000,
                             start_method="fork")
    kept = []
    with no_hang():
        for i, item in enumerate(stream):
            if i % 2:
                kept.append((i, item))  # every other one kept, the rest dropped
    assert [(item["x"].min(), item["x"].max()) for _, item in kept] == [(i, i) for i, _ in kept]


def _in_ring(array):
    """Is ``array`` a view into a worker's ring (not a copy the consumer made)?"""
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return False


@pytest.mark.parametrize("n_workers", [1, 2])
def test_batches_larger_than_half_the_default_ring_cross_as_views_and_exact(n_workers):
    # Batches of 48 images of 224x224x3 float32 (27.6 MiB) made in the
    # workers: with the default settings a ring grows to hold them, so the
    # consumer takes each as a view (it used to copy every one, the ring of
    # 64 MiB being half full or more) and nothing is lost, repeated or altered.
    batches = Streamer(shoal.buffer_stream, Streamer(sources.images, 48 * 3), 48)
    stream = ProcessStreamer(batches, n_workers=n_workers, prefetch=8, start_method="fork")
    assert stream.shared_memory_bytes is None
    with no_hang():
        got = [(batch["image"], batch["label"], _in_ring(batch["image"])) for batch in stream]
    expected = list(shoal.buffer_stream(sources.images(48 * 3), 48))
    assert len(got) == 3 * n_workers
    for k, (image, label, in_ring) in enumerate(got):
        want = expected[k // n_workers]  # the workers take turns, each running the whole stream
        assert image.dtype == np.float32 and image.shape == (48, 224, 224, 3)
        assert image.nbytes > 32 * 2**20 // 2
        np.testing.assert_array_equal(image, want["image"])
        np.testing.assert_array_equal(label, want["label"])
        assert in_ring  # a view into the ring: no copy
        assert image.flags.writeable


def test_a_ring_of_the_users_size_stays_that_size():
    # shared_memory_bytes is a limit the user chose: a 40 MiB item in a fixed
    # 64 MiB ring is more than half of it, so the consumer copies it out.
    stream = ProcessStreamer(Streamer(sources.sized, [10 * 2**20] * 3),
                             shared_memory_bytes=64 * 2**20, start_method="fork")
    with no_hang():
        got = [(float(item["x"][0]), _in_ring(item["x"])) for item in stream]
    assert got == [(0.0, False), (1.0, False), (2.0, False)]


def test_ring_sizes_default_and_fixed():
    size, room = ring_sizes(None, 3)
    assert room == min(DEFAULT_RING_BYTES, size) and size <= max_ring_bytes(3)
    assert ring_sizes(2**20, 3) == (2**20, None)


def _writer(size, room, n_workers=1):
    ring = Ring(multiprocessing.get_context("fork"), size, False, room)
    writer = Writer(ring.path, ring.size, ring.chunk, ring.chunks, ring.limit, ring.taken,
                    n_workers)
    return ring, writer


def _never_waits():
    raise AssertionError("the writer waited")


def test_a_growing_ring_makes_room_for_twelve_of_its_largest_item():
    ring, writer = _writer(2**30, 2**20)
    try:
        assert ring.limit.value * ring.chunk == 2**20
        small = np.ones(2**16, dtype=np.uint8)  # fits: no growth
        assert writer.put([memoryview(small)], _never_waits) == ([(0, 2**16)], 2**16)
        assert ring.limit.value * ring.chunk == 2**20
        large = np.full(3 * 2**20 + 1, 7, dtype=np.uint8)  # larger than the room
        places, total = writer.put([memoryview(large)], _never_waits)
        assert total == large.nbytes
        room = ring.limit.value * ring.chunk
        assert room == writer.room and ROOM_ITEMS * large.nbytes <= room < ROOM_ITEMS * large.nbytes + ring.chunk
        offset, size = places[0]
        assert bytes(ring.view[offset:offset + size]) == large.tobytes()
    finally:
        writer.map.close()
        ring.close()


def test_a_fixed_ring_never_grows():
    ring, writer = _writer(4 * 2**20, None)
    try:
        big = np.ones(3 * 2**20, dtype=np.uint8)
        assert writer.put([memoryview(big)], _never_waits)[1] == big.nbytes
        assert ring.limit.value * ring.chunk == 4 * 2**20 == writer.room
        assert writer.put([memoryview(np.ones(5 * 2**20, dtype=np.uint8))], _never_waits) is None
    finally:
        writer.map.close()
        ring.close()


def test_a_ring_grows_within_its_share_of_the_free_shared_memory(monkeypatch):
    calls = []

    class Full:
        f_bavail, f_frsize = 12 * 2**20 // 4096, 4096  # 12 MiB free, for 2 workers

    def statvfs(path):
        calls.append(path)
        return Full

    ring, writer = _writer(2**30, 2**20, n_workers=2)
    monkeypatch.setattr(shoal.parallel._ring.os, "statvfs", statvfs)
    try:
        item = np.ones(2**20 - 10, dtype=np.uint8)
        assert writer.put([memoryview(item)], _never_waits) is not None
        assert ring.limit.value * ring.chunk == 2**20 + 6 * 2**20  # its half of what is free
        assert len(calls) == 1
        writer.taken.value = writer.sent  # the consumer took it...
        ring.chunks[:] = bytes(len(ring.chunks))  # ...and dropped it
        assert writer.put([memoryview(item)], _never_waits) is not None
        assert len(calls) == 1  # refused once: not asked again for the same size
    finally:
        writer.map.close()
        ring.close()


def _drop(held):
    held.clear()  # a forked child drops the arrays it shares with the consumer
    gc.collect()


def test_a_forked_child_dropping_a_received_array_frees_nothing_of_the_ring():
    # Received arrays are views into the ring, freed for the worker when the
    # consumer drops them: a child forked from the consumer shares them, and
    # its dropping them must not let the worker overwrite the consumer's.
    stream = ProcessStreamer(Streamer(sources.reusing, 60, size=2**18),  # 1 MiB items
                             shared_memory_bytes=8 * 2**20, start_method="fork")
    with no_hang():
        items = iter(stream)
        held = [next(items)]
        second = next(items)  # (the stream's frame lets go of the first)
        child = multiprocessing.get_context("fork").Process(target=_drop, args=(held,))
        child.start()
        child.join()
        assert child.exitcode == 0
        rest = [float(item["x"][0]) for item in items]  # each dropped before the next
    assert rest == list(range(2, 60))
    assert held[0]["x"].min() == held[0]["x"].max() == 0
    assert second["x"].min() == second["x"].max() == 1


def test_items_larger_than_the_shared_memory_go_through_the_pipe():
    stream = ProcessStreamer(Streamer(sources.reusing, 3, size=100_000), start_method="fork",
                             shared_memory_bytes=2**16)
    with no_hang():
        assert [float(item["x"][5]) for item in stream] == [0, 1, 2]


@METHODS
@pytest.mark.parametrize("size", [3, 40_000])  # runs of small arrays, and the ring
def test_every_dtype_crosses_intact(start_method, size):
    with no_hang():
        got = list(ProcessStreamer(Streamer(sources.every_dtype, size), start_method=start_method))
    expected = list(sources.every_dtype(size))
    assert len(got) == len(expected)
    for item, original in zip(got, expected):
        assert item.keys() == original.keys()
        for key in item:
            assert item[key].dtype == original[key].dtype, key
            assert item[key].shape == original[key].shape, key
            np.testing.assert_array_equal(item[key], original[key])
    assert got[0]["record"]["c"][1] == b"xyz" and got[0]["big_endian"].dtype.byteorder == ">"


# -- nothing held back ---------------------------------------------------------------


@METHODS
@pytest.mark.parametrize("ordered", [True, False])
def test_the_items_before_an_error_reach_the_consumer_first(start_method, ordered):
    got = []
    stream = ProcessStreamer(Streamer(sources.failing, 50), ordered=ordered, start_method=start_method)
    with no_hang(), pytest.raises(KeyError, match="record 3 is missing"):
        for item in stream:
            got.append(item)
    assert got == list(range(50))


@METHODS
@pytest.mark.parametrize("n_burst", [1, 20])
def test_an_item_is_sent_at_once_whatever_the_generator_does_next(start_method, n_burst, tmp_path):
    # The generator blocks (as on I/O) until the consumer has taken its burst:
    # a worker that held the burst back would leave both waiting, until the
    # generator gives up and yields "held back".
    go = tmp_path / "go"
    stream = ProcessStreamer(Streamer(sources.burst_then_block, n_burst, str(go)),
                             start_method=start_method)
    with no_hang():
        items = iter(stream)
        burst = [int(next(items)["i"]) for _ in range(n_burst)]
        go.touch()
        rest = list(items)
    assert burst == list(range(n_burst))
    assert rest == ["after"]


def test_max_iter_and_cycle():
    stream = ProcessStreamer(Streamer(sources.numbered, 5), start_method="fork")
    with no_hang():
        assert [item["i"] for item in stream.iterate(max_iter=3)] == [0, 1, 2]
        assert [item["i"] for item in stream.cycle(max_iter=12)] == [0, 1, 2, 3, 4] * 2 + [0, 1]


# -- workers ----------------------------------------------------------------------


def tagged_mux(n_streams=6, length=7):
    streams = [Streamer(sources.numbered, length, tag=k) for k in range(n_streams)]
    return shoal.StochasticMux(streams, 2, None, mode="exhaustive", random_state=3)


@METHODS
def test_workers_split_a_mux_so_that_every_item_comes_once(start_method):
    with no_hang():
        items = list(ProcessStreamer(tagged_mux(), n_workers=2, start_method=start_method))
    pairs = Counter((item["tag"], item["i"]) for item in items)
    assert pairs == Counter((tag, i) for tag in range(6) for i in range(7))


@METHODS
def test_ordered_workers_give_the_same_stream_every_run(start_method):
    def run():
        mux = shoal.ShuffledMux([Streamer(sources.forever, k) for k in range(5)], random_state=9)
        with no_hang():
            return list(ProcessStreamer(mux, n_workers=2, start_method=start_method)(max_iter=300))

    first = run()
    assert first == run()
    assert {tag for tag, _ in first} == set(range(5))


def test_unordered_workers_give_the_same_items():
    with no_hang():
        items = list(ProcessStreamer(tagged_mux(), n_workers=2, ordered=False, start_method="fork"))
    assert sorted((item["tag"], item["i"]) for item in items) == sorted(
        (tag, i) for tag in range(6) for i in range(7))


def test_workers_seed_their_copies_of_a_small_mux_differently():
    mux = shoal.ShuffledMux([Streamer(sources.forever, k) for k in range(2)], random_state=1)
    with no_hang():
        items = list(ProcessStreamer(mux, n_workers=2, start_method="fork")(max_iter=400))
    from_worker = [items[0::2], items[1::2]]  # strict turns: worker 0, 1, 0, 1, ...
    assert from_worker[0] != from_worker[1]


@METHODS
def test_workers_split_a_map_over_a_mux_so_that_every_item_comes_once(start_method):
    batches = Streamer(shoal.tuples, tagged_mux(), "tag", "i")
    with no_hang():
        items = list(ProcessStreamer(batches, n_workers=2, start_method=start_method))
    assert Counter(items) == Counter((tag, i) for tag in range(6) for i in range(7))


def test_a_mux_with_fewer_streamers_than_workers_is_refused_at_the_call():
    # Copies of the mux in each worker would give every item once per worker.
    with pytest.raises(shoal.ShoalValueError, match="count must be at most the number of streamers.*got 3"):
        ProcessStreamer(shoal.ChainMux(["ab", "cd"]), n_workers=3)
    with pytest.raises(ValueError, match="streamers"):
        ProcessStreamer(Streamer(shoal.tuples, shoal.ChainMux([[{"x": 1}]]), "x"), n_workers=2)


ONE_STREAM_OR_NOT = {
    "generator function": (lambda: Streamer(sources.numbered, 4), True),
    "list": (lambda: Streamer([1, 2, 3]), True),
    "streamer over a generator function": (lambda: Streamer(Streamer(sources.numbered, 4)), True),
    "map over a generator function": (
        lambda: Streamer(shoal.tuples, Streamer(sources.numbered, 4), "i"), True),
    "map over a list": (lambda: Streamer(shoal.buffer_stream, [1, 2, 3, 4], 2), True),
    "worker stream": (lambda: ProcessStreamer(tagged_mux(), n_workers=2, start_method="fork"), True),
    "mux": (tagged_mux, False),
    "streamer over a mux": (lambda: Streamer(tagged_mux()), False),
    "map over a mux": (lambda: Streamer(shoal.tuples, tagged_mux(), "tag", "i"), False),
}


@pytest.mark.parametrize("kind", list(ONE_STREAM_OR_NOT))
def test_workers_run_one_stream_whole_and_split_what_the_stream_says_can_be_split(kind):
    # Decided by what the stream says of its shares (the recipe contract's
    # share refusal), not by the text of the error its shard() raises.
    make, is_one_stream = ONE_STREAM_OR_NOT[kind]
    stream = make()
    refusal = stream._share_refusal(2)
    shares = ProcessStreamer(stream, n_workers=2, start_method="fork")._shares
    if is_one_stream:
        assert isinstance(refusal, OneStream) and "is one stream" in refusal
        assert shares[0] is stream and shares[1] is stream  # each worker reads worker_info
    else:
        assert refusal is None
        assert [type(share) for share in shares] == [type(stream)] * 2
        assert shares[0] is not stream and shares[0] is not shares[1]


def test_a_mux_too_small_for_the_workers_is_not_one_stream():
    for stream in (shoal.ChainMux(["ab"]), Streamer(shoal.buffer_stream, shoal.ChainMux(["ab"]), 2)):
        refusal = stream._share_refusal(2)
        assert not isinstance(refusal, OneStream)
        assert "every share needs at least one streamer" in refusal


def test_a_worker_stream_is_a_streamer_over_its_stream_and_one_stream_to_shard():
    mux = tagged_mux()
    for stream in (ProcessStreamer(mux, n_workers=2, start_method="fork"), ZMQStreamer(mux)):
        # Made by Streamer's own initialiser, as every recipe is.
        assert stream.source is mux and stream.streamer is mux
        assert stream.args == () and stream.kwargs == {}
        assert stream.shard(0, 1) is stream
        with pytest.raises(ShoalValueError, match="is one stream: it cannot be split into 2 shares"):
            stream.shard(1, 2)


def test_a_generator_function_can_read_its_own_share():
    assert shoal.worker_info() is None
    with no_hang():
        items = list(ProcessStreamer(Streamer(sources.sharded, 50), n_workers=2,
                                     start_method="fork"))
    assert sorted(items) == list(range(50))


def test_prefetch_bounds_what_workers_produce_ahead():
    counter = multiprocessing.get_context("fork").Value("q", 0)
    stream = ProcessStreamer(Streamer(sources.counted, counter), prefetch=5, start_method="fork")
    with no_hang():
        items = iter(stream)
        assert next(items) == 0
        time.sleep(0.5)  # a slow consumer: the worker must wait for it
        produced = counter.value
        items.close()
    # The item taken, the 5 in flight, and one being made at most.
    assert 2 <= produced <= 7


# -- failures -----------------------------------------------------------------------


@METHODS
def test_a_worker_error_is_raised_as_itself_with_the_worker_traceback(start_method):
    with no_hang(), pytest.raises(KeyError, match="record 3 is missing") as info:
        list(ProcessStreamer(Streamer(sources.failing, 3), start_method=start_method))
    notes = "\n".join(info.value.__notes__)
    assert "raised in worker 0" in notes
    assert "in failing" in notes  # the worker's traceback names the generator


def test_an_error_that_cannot_cross_is_raised_as_a_worker_error():
    with no_hang(), pytest.raises(WorkerError, match="Unpicklable: cannot cross") as info:
        list(ProcessStreamer(Streamer(sources.failing_unpicklably), start_method="fork"))
    assert isinstance(info.value, RuntimeError)
    assert "failing_unpicklably" in "\n".join(info.value.__notes__)


@METHODS
def test_a_killed_worker_is_detected_instead_of_hanging(start_method):
    stream = ProcessStreamer(Streamer(sources.killed_after, 3), start_method=start_method)
    with no_hang(30), pytest.raises(WorkerError, match=r"killed by signal 9 \(SIGKILL\)"):
        list(stream)


@pytest.mark.parametrize("ordered", [True, False])
def test_a_silent_worker_raises_after_item_timeout(ordered):
    stream = ProcessStreamer(Streamer(sources.silent_after, 3, 30), ordered=ordered,
                             item_timeout=0.5, timeout=0.5, start_method="fork")
    got = []
    with no_hang(), pytest.raises(WorkerError, match=r"worker 0 \(pid \d+\) of .* has sent nothing "
                                  r"for \d+\.\d s .*\(item_timeout=0\.5 s\)"):
        for item in stream:
            got.append(item)
    assert got == [0, 1, 2]


def test_item_timeout_is_off_by_default():
    assert ProcessStreamer(Streamer(sources.numbered, 3)).item_timeout is None
    stream = ProcessStreamer(Streamer(sources.slow, 3, 0.3), item_timeout=20, start_method="fork")
    with no_hang():
        assert list(stream) == [0, 1, 2]


CONSUMER = """
import os, sys, threading, time
sys.path.insert(0, {tests!r})
import shoal, worker_sources

def consume():
    stream = shoal.ProcessStreamer(shoal.Streamer(worker_sources.silent_after, 1, 600),
                                   start_method={method!r})
    items = iter(stream)
    next(items)
    import multiprocessing
    print(multiprocessing.active_children()[0].pid, flush=True)
    time.sleep(600)

if __name__ == "__main__":
    if {in_thread!r}:
        threading.Thread(target=consume).start()
    else:
        consume()
"""


def run_script(tmp_path, text):
    script = tmp_path / "consumer.py"
    script.write_text(text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(shoal.__path__[0]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("start_method, in_thread", [("fork", False), ("spawn", False),
                                                     ("fork", True)])
def test_a_worker_stuck_in_user_code_dies_with_its_killed_consumer(tmp_path, start_method,
                                                                   in_thread):
    tests = os.path.dirname(os.path.abspath(__file__))
    consumer = run_script(tmp_path, CONSUMER.format(tests=tests, method=start_method,
                                                    in_thread=in_thread))
    with no_hang():
        worker_pid = int(consumer.stdout.readline())
        assert pid_alive(worker_pid)
        consumer.kill()  # SIGKILL: the consumer cleans nothing up
        consumer.communicate()
        deadline = time.monotonic() + 10  # a second is expected; ten leave room for a busy machine
        while pid_alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pid_alive(worker_pid)


UNGUARDED = """
import sys
sys.path.insert(0, {tests!r})
import shoal, worker_sources
# No `if __name__ == "__main__":`, so each spawned worker runs this again.
print(list(shoal.ProcessStreamer(shoal.Streamer(worker_sources.numbered, 2),
                                 start_method="spawn")))
"""


def shared_memory_of_dead_processes():
    names = [f for f in os.listdir("/dev/shm") if f.startswith("shoal-")]
    return {f for f in names if not pid_alive(int(f.split("-")[1]))}


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_a_spawned_worker_that_cannot_start_says_why_and_leaves_nothing(tmp_path):
    before = shared_memory_of_dead_processes()
    tests = os.path.dirname(os.path.abspath(__file__))
    consumer = run_script(tmp_path, UNGUARDED.format(tests=tests))
    with no_hang():
        _, err = consumer.communicate()
    assert consumer.returncode != 0
    assert "RuntimeError: \n        An attempt has been made to start a new process" in err
    assert "can only join a started process" not in err
    assert "WorkerError: worker 0" in err and "if __name__ == '__main__':" in err
    assert shared_memory_of_dead_processes() <= before


def test_a_source_that_cannot_be_pickled_is_refused_before_any_worker_starts():
    with pytest.raises(ShoalTypeError, match=r"stream Streamer\(<lambda>\) cannot be sent to a worker started with 'spawn'"):
        ProcessStreamer(Streamer(lambda: iter([1])), start_method="spawn")
    assert multiprocessing.active_children() == []


def test_streamable_functions_cross_to_spawned_workers():
    with no_hang():
        assert list(ProcessStreamer(sources.streamed(4), start_method="spawn")) == [0, 1, 2, 3]
        decorated_here = shoal.streamable(sources.numbered)  # not what the module holds
        stream = ProcessStreamer(decorated_here(4), start_method="spawn")
        assert [item["i"] for item in stream] == [0, 1, 2, 3]


# -- stopping -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["break", "close", "exception", "keyboard interrupt",
                                 "garbage collection"])
def test_stopping_the_consumer_stops_every_worker(how):
    mux = shoal.ShuffledMux([Streamer(sources.forever, k) for k in range(4)], random_state=0)
    stream = ProcessStreamer(mux, n_workers=2, start_method="fork")
    with no_hang():
        if how == "break":
            for count, _ in enumerate(stream):
                if count == 100:
                    break
        elif how == "close":
            items = iter(stream)
            next(items)
            items.close()
        elif how in ("exception", "keyboard interrupt"):
            error = ValueError if how == "exception" else KeyboardInterrupt
            with pytest.raises(error):
                for count, _ in enumerate(stream):
                    if count == 100:
                        raise error("the consumer stops")
        else:
            items = iter(stream)
            next(items)
            del items
            gc.collect()
    # nothing_left_behind checks that no worker and no shared memory remain.


# -- arguments and pescador's ZMQStreamer ------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_workers": 0}, ShoalValueError, "n_workers must be >= 1, got 0"),
    ({"prefetch": 0}, ShoalValueError, "prefetch must be >= 1, got 0"),
    ({"ordered": "yes"}, ShoalTypeError, "ordered must be True or False, got 'yes'"),
    ({"start_method": "thread"}, ShoalValueError, "start_method must be one of"),
    ({"timeout": 0}, ShoalValueError, "timeout must be a number of seconds > 0 and <= 9223372036, got 0"),
    ({"shared_memory_bytes": 10}, ShoalValueError, "shared_memory_bytes must be >= "),
])
def test_bad_arguments_are_refused_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        ProcessStreamer(Streamer(sources.numbered, 3), **kwargs)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"shared_memory_bytes": 2**62}, ShoalValueError,
     r"shared_memory_bytes must be <= \d+ \(the shared-memory file system holds \d+ bytes.*got 4611686018427387904"),
    ({"timeout": float("inf")}, ShoalValueError, r"timeout must be a number of seconds > 0 and <= 9223372036, got inf"),
    ({"timeout": float("nan")}, ShoalValueError, r"timeout must be .* got nan"),
    ({"n_workers": 2**40}, ShoalValueError, r"n_workers must be <= \d+ .*got 1099511627776"),
    ({"prefetch": 2**40}, ShoalValueError, r"prefetch must be <= 2147483647, got 1099511627776"),
    ({"item_timeout": 0}, ShoalValueError, r"item_timeout must be a number of seconds > 0 .* got 0"),
    ({"item_timeout": float("inf")}, ShoalValueError, r"item_timeout must be .* got inf"),
    ({"item_timeout": "1"}, ShoalTypeError, r"item_timeout must be a number of seconds, got '1'"),
])
def test_settings_that_would_break_later_are_refused_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        ProcessStreamer(Streamer(sources.numbered, 3), **kwargs)
    assert multiprocessing.active_children() == []


def test_zmq_streamer_runs_code_written_for_pescador():
    import shoal as pescador

    streamer = pescador.Streamer(sources.numbered, 10)
    zmq = pescador.ZMQStreamer(streamer)
    with no_hang():
        assert [item["i"] for item in zmq] == list(range(10))
        assert [item["i"] for item in zmq.iterate(max_iter=4)] == [0, 1, 2, 3]
        assert len(list(zmq(max_iter=15, cycle=True))) == 15
    assert zmq.streamer is streamer
    copying = pescador.ZMQStreamer(streamer, min_port=50000, max_port=50100, max_tries=3,
                                   copy=True, timeout=2)
    with no_hang():
        assert len(list(copying)) == 10


def _overwrite(item):
    item["x"][:] = -1


@pytest.mark.parametrize("copy", [True, False])
def test_zmq_streamer_copy_gives_arrays_of_the_consumers_own(copy):
    # copy=False gives views into shared memory (as ProcessStreamer does),
    # which a process forked from the consumer shares; copy=True copies.
    stream = ZMQStreamer(Streamer(sources.reusing, 3, size=2**18), copy=copy)
    with no_hang():
        items = iter(stream)
        first = next(items)
        child = multiprocessing.get_context("fork").Process(target=_overwrite, args=(first,))
        child.start()
        child.join()
        assert child.exitcode == 0
        assert [float(item["x"][0]) for item in items] == [1, 2]
    assert first["x"].flags.writeable
    assert float(first["x"].max()) == (0 if copy else -1)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_port": 70000}, "ports must satisfy 1 <= min_port < max_port <= 65535"),
    ({"min_port": 5000, "max_port": 4000}, "got min_port=5000, max_port=4000"),
    ({"max_tries": 0}, "max_tries must be >= 1, got 0"),
])
def test_zmq_streamer_checks_its_arguments(kwargs, message):
    with pytest.raises(ShoalValueError, match=message):
        ZMQStreamer(Streamer(sources.numbered, 3), **kwargs)


# -- resuming -------------------------------------------------------------------------


def test_a_parallel_stream_resumes_exactly():
    def make():
        mux = shoal.ShuffledMux([Streamer(sources.forever, k) for k in range(4)], random_state=2)
        return ProcessStreamer(mux, n_workers=2, start_method="fork")

    with no_hang(120):
        assert_resumes_exactly(make, n_positions=40, n_after=20)


def test_a_chain_over_an_iterator_of_streamers_cannot_be_split():
    chain = shoal.ChainMux(Streamer(sources.numbered, 2, tag=k) for k in range(4))
    with pytest.raises(ShoalValueError, match="cannot be split among workers"):
        ProcessStreamer(chain, n_workers=2, start_method="fork")
    with no_hang():  # one worker reads it as it is
        items = list(ProcessStreamer(chain, start_method="fork"))
    assert [(item["tag"], item["i"]) for item in items] == [(k, i) for k in range(4) for i in range(2)]


# -- a worker state is its share's state -----------------------------------------------


def files(n_files=8, length=1000):
    """A chain of files whose rows resume in O(1)."""
    return shoal.ChainMux([Streamer(sources.rows, length, k) for k in range(n_files)])


def one_pass(n_files=8, length=1000):
    return Counter((k, i) for k in range(n_files) for i in range(length))


@pytest.mark.parametrize("ordered", [True, False])
def test_a_state_saved_mid_pass_resumes_with_nothing_repeated_or_lost(ordered):
    def make():
        return ProcessStreamer(files(), n_workers=2, ordered=ordered, start_method="fork")

    with no_hang():
        it = make().iterator()
        before = [next(it) for _ in range(3000)]
        state = roundtrip(it.state_dict())
        uninterrupted = list(it)
        resumed = make().iterator()
        resumed.load_state_dict(state)
        after = list(resumed)
    assert Counter(before + after) == one_pass()
    if ordered:
        assert after == uninterrupted


def test_a_worker_state_holds_its_share_state_not_a_count():
    with no_hang():
        it = ProcessStreamer(files(), n_workers=2, start_method="fork").iterator()
        for _ in range(3000):
            next(it)
        state = it.state_dict()
        it.close()
    node = state["state"]["child"]
    assert node["type"] == "ProcessStreamer" and node["n_workers"] == 2
    for index, share in enumerate(node["shares"]):
        # The state an iteration of the worker's share saves, and a few items after it.
        assert share["state"]["stream"] == "ChainMux" and share["n_skip"] >= 0
        own = files().shard(index, 2).iterator()
        own.load_state_dict(share["state"])
        rows = [row for _, row in zip(range(share["n_skip"] + 1), own)]
        # Each worker had given 1500 items: its share goes on at its item 1500.
        assert share["state"]["n_given"] + share["n_skip"] == 1500
        assert rows[-1][0] in range(index, 8, 2)


@shoal.resume_arg("start")
def counted_rows(counter, n, tag, start=0):
    for i in range(start, n):
        with counter.get_lock():
            counter.value += 1
        yield (tag, i)


def test_restoring_starts_each_worker_where_it_was_without_replaying():
    counter = multiprocessing.get_context("fork").Value("q", 0)

    def make():
        chain = shoal.ChainMux([Streamer(counted_rows, counter, 1000, k) for k in range(8)])
        return ProcessStreamer(chain, n_workers=2, start_method="fork")

    with no_hang():
        it = make().iterator()
        before = [next(it) for _ in range(6000)]
        state = it.state_dict()
        it.close()
        counter.value = 0
        resumed = make().iterator()
        resumed.load_state_dict(state)
        after = list(resumed)
    assert Counter(before + after) == one_pass()
    # 2,000 items to go: replaying would make 8,000. The workers make those
    # 2,000 and the few after their last state snapshot (at most a few ms of items).
    assert 2000 <= counter.value < 4000


def elastic_mux(kind):
    streams = [Streamer(sources.rows, 300, k) for k in range(6)]
    if kind == "chain":
        return shoal.ChainMux(streams)
    if kind == "round robin":
        return shoal.RoundRobinMux(streams, mode="exhaustive")
    return shoal.StochasticMux(streams, 2, None, mode="exhaustive", random_state=4)


@pytest.mark.parametrize("kind", ["chain", "round robin", "stochastic"])
@pytest.mark.parametrize("n_before, n_after", [(2, 1), (2, 3), (3, 2)])
def test_a_state_loads_into_another_number_of_workers_exactly(kind, n_before, n_after):
    def make(n_workers):
        return ProcessStreamer(elastic_mux(kind), n_workers=n_workers, ordered=False,
                               start_method="fork")

    with no_hang():
        it = make(n_before).iterator()
        before = [next(it) for _ in range(700)]
        state = roundtrip(it.state_dict())
        it.close()
        resumed = make(n_after).iterator()
        resumed.load_state_dict(state)
        middle = [next(resumed) for _ in range(300)]
        again = roundtrip(resumed.state_dict())  # a resharded state saves and loads again
        resumed.close()
        last = make(n_before).iterator()
        last.load_state_dict(again)
        after = list(last)
    assert Counter(before + middle + after) == one_pass(6, 300)


# How a ProcessStreamer is iterated: as the root, through a Streamer over it, under a map.
WRAPS = {
    "root": lambda stream: stream,
    "Streamer over it": Streamer,
    "map over it": lambda stream: Streamer(shoal.buffer_stream, stream, 4),
}


def plain(items):
    """The items, with a batch's arrays as lists (to compare with ==)."""
    return [item if isinstance(item, tuple) and not isinstance(item[0], np.ndarray)
            else [np.asarray(part).tolist() for part in item] for item in items]


def inexact_stream(kind):
    """A stream whose pass cannot be split exactly among another number of workers."""
    streams = [Streamer(sources.forever, k) for k in range(6)]
    if kind == "ShuffledMux":
        return shoal.ShuffledMux(streams, random_state=2)
    if kind == "StochasticMux with a rate":
        return shoal.StochasticMux(streams, 2, 64, mode="exhaustive", random_state=3)
    return Streamer(sources.forever, 7)  # one generator: every worker runs it whole


@pytest.mark.parametrize("wrap", list(WRAPS))
@pytest.mark.parametrize("kind, why", [
    ("ShuffledMux", "cannot reshard the states of ShuffledMux.* exactly: a ShuffledMux restarts"),
    ("StochasticMux with a rate", "cannot reshard the states of StochasticMux.* exactly: "
                                  "with rate=64 each activation stops"),
    ("one generator", r"Streamer\(forever, 7\) is one stream"),
], ids=["ShuffledMux", "StochasticMux with a rate", "one generator"])
def test_a_state_that_cannot_be_split_among_other_workers_is_refused_at_load(wrap, kind, why):
    def make(n_workers):
        return WRAPS[wrap](ProcessStreamer(inexact_stream(kind), n_workers=n_workers,
                                           start_method="fork"))

    with no_hang():
        saved = make(2).iterator()
        for _ in range(50):
            next(saved)
        state = roundtrip(saved.state_dict())
        saved.close()
        it = make(3).iterator()
        before = [next(it) for _ in range(10)]
        with pytest.raises(ShoalValueError, match=r"^cannot load a state saved with n_workers=2 "
                                                  r"into ProcessStreamer\(.*n_workers=3\): " + why):
            it.load_state_dict(state)  # at the call, not at the next item
        # Refused: the iteration goes on from where it was, its workers still running.
        after = [next(it) for _ in range(10)]
        it.close()
        uninterrupted = make(3).iterator()
        expected = [next(uninterrupted) for _ in range(20)]
        uninterrupted.close()
    assert plain(before + after) == plain(expected)


def test_a_refused_state_leaves_a_new_iteration_unstarted():
    def make(n_workers):
        return ProcessStreamer(inexact_stream("ShuffledMux"), n_workers=n_workers,
                               start_method="fork")

    with no_hang():
        saved = make(2).iterator()
        for _ in range(30):
            next(saved)
        state = saved.state_dict()
        saved.close()
        it = make(3).iterator()
        with pytest.raises(ShoalValueError, match="saved with n_workers=2"):
            it.load_state_dict(state)
        assert multiprocessing.active_children() == []  # nothing started for it
        first = [next(it) for _ in range(5)]  # the pass starts from its beginning
        it.close()
    assert first == list(make(3)(max_iter=5))


@pytest.mark.parametrize("wrap", list(WRAPS))
def test_an_elastic_load_reshards_once_at_the_call_and_starts_no_worker(wrap, monkeypatch):
    calls = []
    reshard = shoal.parallel._state.reshard_states

    def counted(stream, states, new_count):
        calls.append((len(states), new_count))
        return reshard(stream, states, new_count)

    monkeypatch.setattr(shoal.parallel._state, "reshard_states", counted)

    def make(n_workers):
        return WRAPS[wrap](ProcessStreamer(elastic_mux("chain"), n_workers=n_workers,
                                           start_method="fork"))

    with no_hang():
        it = make(2).iterator()
        before = [next(it) for _ in range(100)]
        state = roundtrip(it.state_dict())
        it.close()
        resumed = make(3).iterator()
        resumed.load_state_dict(state)
        assert calls == [(2, 3)]
        assert multiprocessing.active_children() == []  # the workers start at the next item
        # Saved before any item, its state is the resharded one: three workers' shares.
        ready = roundtrip(resumed.state_dict())
        after = list(resumed)
    assert calls == [(2, 3)]  # not again when the workers start
    child = ready["state"]["child"]
    assert (child["input"] if wrap == "map over it" else child)["n_workers"] == 3
    rows = [row for batch in plain(before + after) for row in
            (zip(*batch) if wrap == "map over it" else [batch])]
    assert Counter(map(tuple, rows)) == one_pass(6, 300)


def test_a_corrupted_worker_state_is_refused_at_load():
    with no_hang():
        it = ProcessStreamer(files(), n_workers=2, start_method="fork").iterator()
        next(it)
        state = it.state_dict()
        it.close()
    del state["state"]["child"]["running"]
    resumed = ProcessStreamer(files(), n_workers=2, start_method="fork").iterator()
    with pytest.raises(ShoalValueError, match=r"state is corrupted at .*it must be a state with 'running'"):
        resumed.load_state_dict(state)
    resumed.close()


@pytest.mark.parametrize("field, value, message", [
    ("type", "ChainMux", r"\['type'\]: it must be 'ProcessStreamer', got 'ChainMux'"),
    ("n_workers", 3, r"\['n_workers'\]: it must be 2, the number of its shares, got 3"),
    ("ordered", "yes", r"\['ordered'\]: it must be True or False, got 'yes'"),
    ("running", [0, 2], r"\['running'\]: it must be a list of worker numbers below 2"),
    ("position", -1, r"\['position'\]: it must be a whole number"),
    ("shares", [], r"\['shares'\]: it must be a list of the workers' shares, one per worker"),
])
def test_each_field_of_a_worker_state_is_checked_at_load(field, value, message):
    with no_hang():
        it = ProcessStreamer(files(), n_workers=2, start_method="fork").iterator()
        next(it)
        state = it.state_dict()
        it.close()
    state["state"]["child"][field] = value
    resumed = ProcessStreamer(files(), n_workers=2, start_method="fork").iterator()
    with pytest.raises(ShoalValueError, match=r"state is corrupted at .*" + message):
        resumed.load_state_dict(state)
    assert multiprocessing.active_children() == []  # nothing started for it
    resumed.close()


def test_a_mux_saves_a_worker_stream_it_opened_and_has_not_read_yet():
    def make():
        streams = [ProcessStreamer(Streamer(sources.rows, 5, "p"), start_method="fork"),
                   Streamer(sources.rows, 5, "s")]
        # Seed 4 draws the plain streamer first: the worker stream is open, not started.
        return shoal.StochasticMux(streams, 2, None, mode="exhaustive", random_state=4)

    with no_hang():
        it = make().iterator()
        assert next(it) == ("s", 0)
        state = roundtrip(it.state_dict())
        rest = list(it)
        resumed = make().iterator()
        resumed.load_state_dict(state)
        assert list(resumed) == rest


# -- where an iteration waits -----------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
def test_worker_stats_count_each_workers_items_exactly(ordered):
    mux = shoal.ChainMux([Streamer(sources.numbered, 30), Streamer(sources.numbered, 10),
                          Streamer(sources.numbered, 5)])
    it = ProcessStreamer(mux, n_workers=2, ordered=ordered, start_method="fork").iterator()
    assert it.worker_stats() is None  # no worker has started yet
    with no_hang():
        first = [next(it) for _ in range(3)]
        stats = it.worker_stats()
        assert len(stats.n_items) == 2 and sum(stats.n_items) >= 3
        rest = list(it)
    assert len(first) + len(rest) == 45
    stats = it.worker_stats()  # the pass ended: its figures stay
    assert isinstance(stats, shoal.WorkerStats)
    assert stats.n_items == (35, 10)  # worker 0 runs streamers 0 and 2, worker 1 streamer 1
    assert stats.consumer_wait_s >= 0
    assert all(wait >= 0 for wait in stats.credit_wait_s + stats.ring_wait_s)


def test_worker_stats_show_workers_waiting_for_a_slow_consumer():
    it = ProcessStreamer(Streamer(sources.numbered, 40), prefetch=2,
                         start_method="fork").iterator()
    with no_hang():
        for _ in it:
            time.sleep(0.005)  # the training step: slower than the worker
    stats = it.worker_stats()
    assert stats.n_items == (40,)
    assert stats.credit_wait_s[0] > 0
    assert stats.ring_wait_s == (0.0,)  # small items: no ring


def test_worker_stats_show_workers_waiting_for_room_in_their_ring():
    # 1 MiB items, a fixed 4 MiB ring and a consumer that holds on to the
    # last few: the worker runs out of room long before it runs out of credit.
    stream = ProcessStreamer(Streamer(sources.sized, [2**18] * 30), shared_memory_bytes=4 * 2**20,
                             start_method="fork")
    it = stream.iterator()
    held = []
    with no_hang():
        for item in it:
            held = [*held[-2:], item]
            time.sleep(0.005)
    stats = it.worker_stats()
    assert stats.n_items == (30,)
    assert stats.ring_wait_s[0] > 0


def test_worker_stats_show_the_consumer_waiting_for_a_slow_loader():
    batches = Streamer(shoal.buffer_stream, ProcessStreamer(Streamer(sources.slow, 8, 0.01),
                                                            start_method="fork"), 4)
    it = batches.iterator()  # a map over the workers reports theirs
    with no_hang():
        assert len(list(it)) == 2
    stats = it.worker_stats()
    assert stats.n_items == (8,)
    assert stats.consumer_wait_s > 0
    assert stats.credit_wait_s == (0.0,) and stats.ring_wait_s == (0.0,)


def test_worker_stats_are_for_worker_streams():
    it = Streamer(range, 3).iterator()
    with pytest.raises(ShoalTypeError, match=r"worker_stats\(\) is for a ProcessStreamer.*range"):
        it.worker_stats()
    next(it)
    with pytest.raises(ShoalTypeError, match=r"worker_stats\(\) is for a ProcessStreamer"):
        it.worker_stats()
    mux_it = shoal.ChainMux([ProcessStreamer(Streamer(range, 3), start_method="fork")]).iterator()
    with pytest.raises(ShoalTypeError, match=r"worker_stats\(\) is for a ProcessStreamer"):
        mux_it.worker_stats()
