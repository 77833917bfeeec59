"""ProcessStreamer(backend="thread"): the same contract as worker processes.

Each check that holds for both backends runs on both (``BACKENDS``): the
same items, in the same order, as the shares of the stream give in one
process; the same states, which load into either backend and into another
number of workers; the same errors; and every worker stopped, its
generators closed, when the stream is closed. What differs for threads is
checked apart: the items are the generator's own objects (no copy), and a
thread busy in its generator's code stops at its next item, ``close()``
waiting for it at most ``timeout``.
"""

import gc
import re
import threading
import time
import traceback
from collections import Counter
from itertools import islice

import lifecycle_sources
import numpy as np
import pytest
import worker_sources as sources
from hang_guard import in_function, no_hang
from leaks import nothing_left_behind  # noqa: F401 (an autouse fixture)
from pipelines import PIPELINES, plain
from resume_checker import assert_resumes_exactly, roundtrip

import shoal
import shoal.parallel._state
import shoal.parallel._worker
from shoal import ProcessStreamer, ShoalError, Streamer, WorkerError

BACKENDS = ["thread", "process"]


def workers(stream, backend, **kwargs):
    """A ProcessStreamer over ``stream`` with ``backend``: processes fork (quick to start)."""
    if backend == "process":
        kwargs.setdefault("start_method", "fork")
    return ProcessStreamer(stream, backend=backend, **kwargs)


def worker_threads():
    """The worker threads running now."""
    return [t for t in threading.enumerate() if t.name.startswith("shoal-worker-")]


@pytest.fixture(autouse=True)
def no_thread_left():
    """No test leaves a worker thread running (nothing_left_behind checks the processes)."""
    yield
    gc.collect()
    assert worker_threads() == []


@pytest.fixture
def few_snapshots(monkeypatch):
    """Workers snapshot their share only after their first item, when they wait, and at the end."""
    monkeypatch.setattr(shoal.parallel._worker, "SNAPSHOT_RATIO", 10**9)


# -- the items: those of the shares, as in one process ----------------------------------------


def in_turn(shares):
    """The items of ``shares`` run in this process, one from each in turn (an ended one leaves)."""
    its = [share.iterate() for share in shares]
    while its:
        for it in list(its):
            item = next(it, None)
            if item is None:
                its.remove(it)
            else:
                yield item


# Unseeded: each run draws anew, so only what every run gives can be compared.
UNSEEDED = {"shuffled unseeded"}
N_ITEMS = 120


def pipeline_or_refusal(name, backend, n_workers, ordered=True):
    try:
        return workers(PIPELINES[name](), backend, n_workers=n_workers, ordered=ordered), None
    except ShoalError as exc:
        return None, str(exc)


def outcome(items, n=N_ITEMS):
    """The first ``n`` of ``items``, plain, and the error that ended them (its type and message)."""
    got = []
    try:
        for item in islice(items, n):
            got.append(plain(item))
    except ShoalError as exc:
        return got, (type(exc), str(exc).splitlines()[0])
    return got, None


@pytest.mark.parametrize("n_workers", [1, 2])
@pytest.mark.parametrize("name", [name for name in PIPELINES if name not in UNSEEDED])
def test_ordered_threads_give_the_items_of_the_shares_in_turn_as_processes_do(name, n_workers):
    stream, refusal = pipeline_or_refusal(name, "thread", n_workers)
    # A stream that cannot be split among the workers is refused alike.
    assert refusal == pipeline_or_refusal(name, "process", n_workers)[1]
    if stream is None:
        assert "split" in refusal or "streamers" in refusal
        return
    with no_hang():
        threads = outcome(stream)
        processes = outcome(workers(PIPELINES[name](), "process", n_workers=n_workers))
    # (A share of a cycling chain that has no item raises, as it would in one process.)
    expected = outcome(in_turn(stream._shares))
    assert len(threads[0]) == len(expected[0]) > 0
    assert threads == expected
    assert processes == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [name for name in PIPELINES if name not in UNSEEDED])
def test_threads_as_they_come_give_the_same_multiset(name, backend):
    stream, _ = pipeline_or_refusal(name, backend, 2, ordered=False)
    if stream is None:
        return
    # A pass that ends: all of it; one that does not: each worker's first items, in its order.
    expected, error = outcome(in_turn(stream._shares), 10**4)
    with no_hang():
        if error is not None:  # (a share of a cycling chain that has no item)
            with pytest.raises(error[0], match=re.escape(error[1])):
                list(stream)
        elif len(expected) < 10**4:
            got = list(stream)
            assert Counter(map(repr, map(plain, got))) == Counter(map(repr, expected))
        else:
            got = [plain(item) for item in islice(stream, N_ITEMS)]
            got_counts = Counter(map(repr, got))
            firsts = [[plain(item) for item in islice(share.iterate(), N_ITEMS)]
                      for share in stream._shares]
            # Each item is one of some worker's first N_ITEMS, no more often than there.
            allowed = Counter(repr(item) for first in firsts for item in first)
            assert all(allowed[key] >= n for key, n in got_counts.items())


def tagged_mux(n_streams=6, length=7):
    streams = [Streamer(sources.numbered, length, tag=k) for k in range(n_streams)]
    return shoal.StochasticMux(streams, 2, None, mode="exhaustive", random_state=3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_workers_split_a_mux_so_that_every_item_comes_once(backend, n_workers):
    with no_hang():
        items = list(workers(tagged_mux(), backend, n_workers=n_workers))
    assert Counter((item["tag"], item["i"]) for item in items) == Counter(
        (tag, i) for tag in range(6) for i in range(7))
    shares = [Counter(item["tag"] for item in items[w::n_workers]) for w in range(n_workers)]
    assert {tag for share in shares for tag in share} == set(range(6))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mux_with_fewer_streamers_than_workers_is_refused_at_the_call(backend):
    with pytest.raises(shoal.ShoalValueError, match="count must be at most the number of streamers.*got 3"):
        workers(shoal.ChainMux(["ab", "cd"]), backend, n_workers=3)


@pytest.mark.parametrize("n_workers", [1, 2, 3, 4])
@pytest.mark.parametrize("backend", BACKENDS)
def test_shares_give_the_same_items_with_any_number_of_workers(backend, n_workers):
    def make():
        streams = [Streamer(sources.rows, 5 + 3 * k, k) for k in range(8)]
        return shoal.Shares(shoal.StochasticMux(streams, 2, None, mode="exhaustive",
                                                random_state=5), 4)

    def batches():
        streams = [Streamer(sources.numbered, 5 + 3 * k, k) for k in range(8)]
        return Streamer(shoal.buffer_stream, shoal.Shares(shoal.ChainMux(streams), 4), 8)

    one_process = list(make())
    with no_hang():
        assert list(workers(make(), backend, n_workers=n_workers)) == one_process
        got = [plain(b) for b in workers(batches(), backend, n_workers=n_workers)]
        assert got == [plain(b) for b in batches()]
        it = workers(make(), backend, n_workers=n_workers).iterator()
        before = [next(it) for _ in range(17)]
        state = roundtrip(it.state_dict())
        it.close()
        other = 4 // n_workers if n_workers in (1, 4) else n_workers
        resumed = workers(make(), "thread" if backend == "process" else "process",
                          n_workers=other).iterator()
        resumed.load_state_dict(state)
        assert before + list(resumed) == one_process


def test_ordered_threads_and_processes_give_the_same_stream_every_run():
    def run(backend):
        mux = shoal.ShuffledMux([Streamer(sources.forever, k) for k in range(5)], random_state=9)
        with no_hang():
            return list(workers(mux, backend, n_workers=2)(max_iter=300))

    first = run("thread")
    assert first == run("thread") == run("process")
    assert {tag for tag, _ in first} == set(range(5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_generator_function_reads_its_own_share_through_worker_info(backend):
    def where(n):
        yield shoal.worker_info()
        yield from sources.sharded(n)

    assert shoal.worker_info() is None
    with no_hang():
        items = list(workers(Streamer(where, 50), backend, n_workers=2))
    assert items[:2] == [(0, 2), (1, 2)]
    assert sorted(items[2:]) == list(range(50))
    assert shoal.worker_info() is None  # the consumer's thread is no worker


def test_threads_hand_on_the_generators_own_objects():
    arrays = [np.full(2**20, i, dtype=np.float32) for i in range(4)]  # 4 MiB each
    objects = [{"x": arrays[0]}, arrays[1], (arrays[2], "b"), [arrays[3]]]
    with no_hang():
        items = list(workers(Streamer(objects), "thread"))
        many = list(workers(Streamer(shoal.ChainMux([Streamer(objects[:2]),
                                                     Streamer(objects[2:])])),
                            "thread", n_workers=2))
    assert all(got is sent for got, sent in zip(items, objects)) and len(items) == 4
    assert items[0]["x"] is arrays[0]  # no copy of any array
    assert sorted(map(id, many)) == sorted(map(id, objects))
    # So a generator that reuses its buffer hands on the same array each time:
    # with threads, copy it if you keep it.
    with no_hang():
        reused = list(workers(Streamer(sources.reusing, 3, size=8), "thread", prefetch=1))
    assert reused[0]["x"] is reused[1]["x"] is reused[2]["x"]


def test_prefetch_bounds_what_thread_workers_produce_ahead():
    made = []

    def counted():
        for i in range(10**6):
            made.append(i)
            yield i

    with no_hang():
        items = iter(workers(Streamer(counted), "thread", prefetch=5))
        assert next(items) == 0
        time.sleep(0.3)  # a slow consumer: the worker must wait for it
        produced = len(made)
        items.close()
    # The item taken, the 5 in flight, and one being made at most.
    assert 2 <= produced <= 7


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_error_is_raised_as_itself_after_the_items_before_it(backend, ordered):
    got = []
    stream = workers(Streamer(sources.failing, 50), backend, ordered=ordered)
    with no_hang(), pytest.raises(KeyError, match="record 3 is missing") as info:
        for item in stream:
            got.append(item)
    assert got == list(range(50))
    notes = "\n".join(info.value.__notes__)
    assert "raised in worker 0" in notes and repr(stream) in notes
    # The worker's traceback names the generator: on the exception itself for a
    # thread, in the note for a process.
    trace = notes + "".join(traceback.format_exception(info.value))
    assert ", in failing\n" in trace


def test_a_thread_worker_error_is_the_generators_own_exception():
    error = KeyError("record 3 is missing")

    def failing():
        yield 1
        raise error

    with no_hang(), pytest.raises(KeyError) as info:
        list(workers(Streamer(failing), "thread", n_workers=2))
    assert info.value is error  # not a copy
    assert ("raised in worker 0 (a thread) of ProcessStreamer("
                                       "Streamer(failing), n_workers=2, backend='thread')") in info.value.__notes__


def test_an_error_no_pickle_could_carry_reaches_the_consumer_from_a_thread():
    with no_hang(), pytest.raises(sources.Unpicklable, match="cannot cross"):
        list(workers(Streamer(sources.failing_unpicklably), "thread"))


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_silent_worker_raises_after_item_timeout(backend, ordered):
    release = threading.Event()

    def silent_after(n):
        yield from range(n)
        release.wait(30)  # silent until the test ends
        yield n

    # (timeout: the silent worker is stopped, or left, within half a second of the error)
    stream = workers(Streamer(silent_after, 3), backend, ordered=ordered, item_timeout=0.5,
                     timeout=0.5)
    where = r"\(a thread\)" if backend == "thread" else r"\(pid \d+\)"
    got = []
    with no_hang(), pytest.raises(WorkerError, match=(
            rf"worker 0 {where} of .* has sent nothing for \d+\.\d s .*\(item_timeout=0\.5 s\)")):
        try:
            for item in stream:
                got.append(item)
        finally:
            release.set()  # (a forked worker has its own copy of the event: it is terminated)
    assert got == [0, 1, 2]
    wait_until(lambda: not worker_threads())  # the silent thread, left at close, ends now


def test_item_timeout_counts_for_the_silent_thread_while_another_one_talks():
    release = threading.Event()

    def silent_or_talking():
        index = shoal.worker_info()[0]
        yield index
        if index == 0:
            release.wait(30)
        yield from range(10, 10**6)

    stream = workers(Streamer(silent_or_talking), "thread", n_workers=2, item_timeout=0.5,
                     prefetch=4, timeout=0.5)
    with no_hang(), pytest.raises(WorkerError, match=r"worker 0 \(a thread\) .*has sent nothing"):
        try:
            list(stream)
        finally:
            release.set()
    wait_until(lambda: not worker_threads())  # the silent thread, left at close, ends now


# -- closing ------------------------------------------------------------------------------


def closed_markers(folder):
    """``(worker index, tag)`` of each generator whose ``finally`` ran."""
    return sorted((int(name.split("-")[1]), int(name.split("-")[2]))
                  for name in (p.name for p in folder.iterdir()) if name.startswith("closed-"))


TIMEOUT = 30.0  # a close that waits for a worker to notice nothing takes all of it


@pytest.mark.parametrize("how", ["break", "close", "exception", "garbage collection"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_stopping_the_consumer_closes_every_generator_every_worker_has_open(tmp_path, backend,
                                                                             how):
    mux = shoal.RoundRobinMux([Streamer(lifecycle_sources.producing, str(tmp_path), tag)
                               for tag in range(6)])
    stream = workers(mux, backend, n_workers=2, timeout=TIMEOUT)
    with no_hang(120):
        began = None
        if how == "break":
            for count, _ in enumerate(stream):
                if count == 600:
                    began = time.monotonic()
                    break
        elif how == "close":
            items = iter(stream)
            for _ in range(600):
                next(items)
            began = time.monotonic()
            items.close()
        elif how == "exception":
            with pytest.raises(ValueError, match="the consumer stops"):
                for count, _ in enumerate(stream):
                    if count == 600:
                        began = time.monotonic()
                        raise ValueError("the consumer stops")
        else:
            items = iter(stream)
            for _ in range(600):
                next(items)
            began = time.monotonic()
            del items
            gc.collect()
        took = time.monotonic() - began
    # Each worker's generators were closed (their finally ran) before the stream returned,
    # the workers stopping of themselves, well within the timeout.
    assert closed_markers(tmp_path) == [(0, 0), (0, 2), (0, 4), (1, 1), (1, 3), (1, 5)]
    assert took < TIMEOUT / 3
    assert worker_threads() == []


def test_a_thread_busy_in_its_generator_stops_at_its_next_item_and_close_waits_at_most_timeout():
    go, ended = threading.Event(), []

    def busy():
        try:
            yield 0
            go.wait(60)  # busy (a read that takes long, say) when the stream is closed
            yield 1
            yield 2
        finally:
            ended.append(threading.current_thread().name)

    stream = workers(Streamer(busy), "thread", timeout=0.2)
    with no_hang():
        items = iter(stream)
        assert next(items) == 0
        [thread] = worker_threads()
        items.close()  # waits 0.2 s for the thread, which is still busy
        assert thread.is_alive() and ended == []
        go.set()  # its generator gives its next item: the thread sees the stop there
        thread.join(30)
    assert not thread.is_alive()
    assert ended == ["shoal-worker-0"]  # it closed its generator as it stopped


def test_close_waits_for_a_busy_thread_that_stops_within_the_timeout():
    ended = []

    def slow_then_closed():
        try:
            yield 0
            time.sleep(0.3)
            yield 1
        finally:
            ended.append(True)

    with no_hang():
        items = iter(workers(Streamer(slow_then_closed), "thread", n_workers=2, timeout=TIMEOUT))
        assert next(items) == 0
        began = time.monotonic()
        items.close()
        took = time.monotonic() - began
    assert ended == [True, True]  # both generators closed before close returned
    assert worker_threads() == []
    assert took < TIMEOUT / 3


@pytest.mark.parametrize("ordered", [True, False])
def test_every_thread_ends_with_its_pass(ordered):
    stream = workers(tagged_mux(), "thread", n_workers=3, ordered=ordered)
    with no_hang():
        assert len(list(stream)) == 42
        assert worker_threads() == []
        assert len(list(islice(stream.cycle(), 100))) == 100
        assert worker_threads() == []
        with pytest.raises(KeyError):
            list(workers(Streamer(sources.failing, 2), "thread", n_workers=2))
        assert worker_threads() == []


# -- save and resume ----------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_a_thread_stream_resumes_exactly_from_any_position(n_workers, ordered, few_snapshots):
    def make():
        mux = shoal.StochasticMux([Streamer(sources.rows, 40, k) for k in range(6)], 2, None,
                                  mode="exhaustive", random_state=2)
        return workers(mux, "thread", n_workers=n_workers, ordered=ordered)

    with no_hang(120):
        if ordered:
            assert_resumes_exactly(make, n_positions=80, n_after=20)
            return
        # As they come: what follows a state is the rest of the pass, nothing lost or repeated.
        it = make().iterator()
        items, states = [], []
        for item in it:
            states.append(roundtrip(it.state_dict()))
            items.append(item)
        for position in range(0, 240, 7):
            resumed = make().iterator()
            resumed.load_state_dict(states[position])
            rest = list(resumed)
            assert Counter(items[:position + 1] + rest) == Counter(items)


@pytest.mark.parametrize("name", [name for name in PIPELINES if name not in UNSEEDED])
def test_every_pipeline_resumes_exactly_in_threads(name):
    # Two workers, where the stream can be split into two shares that each give items.
    two, _ = pipeline_or_refusal(name, "thread", 2)
    n_workers = 2 if two is not None and outcome(in_turn(two._shares))[1] is None else 1

    def make():
        return workers(PIPELINES[name](), "thread", n_workers=n_workers)

    with no_hang(120):
        assert_resumes_exactly(make, n_positions=25, n_after=10, normalize=plain)


@pytest.mark.parametrize("saved_with, loaded_with", [("thread", "process"), ("process", "thread")])
@pytest.mark.parametrize("n_before, n_after", [(2, 2), (2, 3), (3, 1)])
def test_a_state_of_one_backend_loads_into_the_other(saved_with, loaded_with, n_before, n_after,
                                                     few_snapshots):
    def make(backend, n_workers):
        chain = shoal.ChainMux([Streamer(sources.rows, 300, k) for k in range(6)])
        return workers(chain, backend, n_workers=n_workers)

    with no_hang():
        one_pass = list(make("thread", n_before))
        for position in (0, 1, 5, 299, 700, 1799):
            it = make(saved_with, n_before).iterator()
            before = [next(it) for _ in range(position)]
            state = roundtrip(it.state_dict())
            it.close()
            resumed = make(loaded_with, n_after).iterator()
            resumed.load_state_dict(state)
            after = list(resumed)
            assert Counter(before + after) == Counter(one_pass)
            if n_before == n_after:
                assert before + after == one_pass  # the same workers: the same order


@pytest.mark.parametrize("wrap", ["root", "Streamer over it", "map over it"])
def test_a_state_of_another_stream_is_refused_at_the_call_and_threads_go_on(wrap):
    wraps = {"root": lambda s: s, "Streamer over it": Streamer,
             "map over it": lambda s: Streamer(shoal.buffer_stream, s, 4)}

    def make(n_streams):
        return wraps[wrap](workers(shoal.ChainMux([Streamer(sources.rows, 50, k)
                                                   for k in range(n_streams)]),
                                   "thread", n_workers=2))

    with no_hang():
        saved = make(6).iterator()
        for _ in range(30):
            next(saved)
        state = roundtrip(saved.state_dict())
        saved.close()
        it = make(4).iterator()
        before = [plain(next(it)) for _ in range(10)]
        with pytest.raises(shoal.ShoalValueError, match=r"^state is of a ChainMux over 3 streamers, "
                                                        r"but this one has 2\n"):
            it.load_state_dict(state)
        after = [plain(next(it)) for _ in range(10)]
        it.close()
        expected = [plain(item) for item in islice(make(4), 20)]
    assert before + after == expected


# -- worker_stats ---------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_stats_count_each_workers_items_exactly(backend, ordered):
    mux = shoal.ChainMux([Streamer(sources.numbered, 30), Streamer(sources.numbered, 10),
                          Streamer(sources.numbered, 5)])
    it = workers(mux, backend, n_workers=2, ordered=ordered).iterator()
    assert it.worker_stats() is None
    with no_hang():
        first = [next(it) for _ in range(3)]
        assert sum(it.worker_stats().n_items) >= 3
        rest = list(it)
    assert len(first) + len(rest) == 45
    stats = it.worker_stats()
    assert stats.n_items == (35, 10)
    assert stats.consumer_wait_s >= 0
    assert stats.ring_wait_s == (0.0, 0.0)


def test_worker_stats_show_a_thread_waiting_for_a_slow_consumer():
    it = workers(Streamer(sources.numbered, 40), "thread", prefetch=2).iterator()
    with no_hang():
        for _ in it:
            time.sleep(0.005)
    stats = it.worker_stats()
    assert stats.n_items == (40,)
    assert stats.credit_wait_s[0] > 0
    assert stats.ring_wait_s == (0.0,)  # threads have no ring


def test_worker_stats_show_the_consumer_waiting_for_a_slow_thread():
    it = Streamer(shoal.buffer_stream, workers(Streamer(sources.slow, 8, 0.01), "thread"),
                  4).iterator()
    with no_hang():
        assert len(list(it)) == 2
    stats = it.worker_stats()
    assert stats.n_items == (8,)
    assert stats.consumer_wait_s > 0
    assert stats.credit_wait_s == (0.0,)


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({"backend": "x"}, ValueError, r"^backend must be one of 'process', 'thread', got 'x'$"),
    ({"backend": 1}, TypeError, r"^backend must be one of 'process', 'thread', got 1 \(int\)$"),
    ({"backend": None}, TypeError, r"^backend must be one of 'process', 'thread', got None"),
    ({"backend": "thread", "start_method": "fork"}, ValueError,
     r"^start_method and shared_memory_bytes are for backend='process'.*start_method='fork'"),
    ({"backend": "thread", "shared_memory_bytes": 2**20}, ValueError,
     r"^start_method and shared_memory_bytes are for backend='process'.*"
     r"shared_memory_bytes=1048576"),
])
def test_bad_backend_arguments_are_refused_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message) as raised:
        ProcessStreamer(Streamer([1, 2]), **kwargs)
    assert isinstance(raised.value, ShoalError)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_workers": 0}, "n_workers must be >= 1, got 0"),
    ({"prefetch": 0}, "prefetch must be >= 1, got 0"),
    ({"timeout": 0}, "timeout must be a number of seconds > 0"),
    ({"item_timeout": -1}, "item_timeout must be a number of seconds > 0"),
])
def test_the_other_arguments_are_checked_for_threads_too(kwargs, message):
    with pytest.raises(shoal.ShoalValueError, match=message):
        ProcessStreamer(Streamer([1, 2]), backend="thread", **kwargs)


def test_a_thread_stream_says_its_backend_and_needs_no_pickling():
    stream = ProcessStreamer(Streamer(lambda: iter([1, 2])), n_workers=1, backend="thread")
    assert repr(stream) == "ProcessStreamer(Streamer(<lambda>), n_workers=1, backend='thread')"
    assert "backend" not in repr(workers(Streamer([1]), "process"))
    with no_hang():
        assert list(stream) == [1, 2]  # a lambda: no worker process could import it


def wait_until(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the workers never got there"
        time.sleep(0.01)


@pytest.mark.parametrize("item_timeout", [None, 30.0])
def test_items_a_state_dict_received_for_a_worker_already_passed_are_taken_as_they_come(
        few_snapshots, item_timeout):
    # Saving the state waits for worker 0's next snapshot; the messages before
    # it, from every thread, are received then: worker 1's end, and worker 0's
    # items up to where it waits for credit. The consumer must then take those
    # items, not wait for a message that will never come (nor fail on no one
    # to wait for).
    go = {0: threading.Event(), 1: threading.Event()}

    def stepped():
        index = shoal.worker_info()[0]
        if index == 0:
            yield (0, 0)
            yield (0, 1)
            go[0].wait(30)
            yield from ((0, i) for i in range(2, 10))
        else:
            go[1].wait(30)
            yield (1, 0)

    stream = workers(Streamer(stepped), "thread", n_workers=2, ordered=False, prefetch=4,
                     item_timeout=item_timeout)
    with no_hang(60):
        it = stream.iterator()
        got = [next(it), next(it)]
        assert got == [(0, 0), (0, 1)]
        threads = {int(t.name.rsplit("-", 1)[1]): t for t in worker_threads()}
        go[1].set()
        threads[1].join(20)
        go[0].set()  # worker 0 gives its items until it waits for credit
        wait_until(lambda: in_function(threads[0], "credit")
                   and in_function(threads[0], "acquire"))
        got.append(next(it))
        assert got[-1] == (1, 0)
        state = roundtrip(it.state_dict())
        got.extend(it)
    assert got == [(0, 0), (0, 1), (1, 0)] + [(0, i) for i in range(2, 10)]
    assert state["state"]["child"]["shares"][1]["n_skip"] == 0
