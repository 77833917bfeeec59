"""ProcessStreamer's workers: how they stop, how they are seeded, what layout their arrays keep."""

import multiprocessing
import os
import pickle
import random
import signal
import sys
import threading
import time

import lifecycle_sources as sources
import numpy as np
import pytest
from hang_guard import in_function, no_hang
from leaks import nothing_left_behind, shared_memory_left  # noqa: F401 (an autouse fixture)

from shoal import ProcessStreamer, RoundRobinMux, Streamer, ZMQStreamer

METHODS = pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])


# -- closing ----------------------------------------------------------------------

# A close that waits for its workers to notice nothing takes the whole timeout:
# with 30 s, any close under 10 s is one where every worker stopped of itself.
TIMEOUT = 30.0


def closed_markers(folder):
    """``(worker index, tag)`` of each generator whose ``finally`` ran."""
    names = [name.split("-") for name in os.listdir(folder) if name.startswith("closed-")]
    return sorted((int(index), int(tag)) for _, index, tag, _ in names)


@METHODS
@pytest.mark.parametrize("n_workers", [1, 2, 4])
def test_closing_a_producing_stream_stops_its_workers_at_once_and_closes_their_generators(
        tmp_path, start_method, n_workers):
    # Items of 4 KB: the workers fill their pipes while the consumer stops reading.
    stream = ProcessStreamer(Streamer(sources.producing, str(tmp_path)), n_workers=n_workers,
                             start_method=start_method, timeout=TIMEOUT)
    with no_hang(120):
        items = iter(stream)
        for _ in range(1000):
            next(items)
        began = time.monotonic()
        items.close()
        took = time.monotonic() - began
    assert took < TIMEOUT / 3, f"close took {took:.1f} s: the workers waited for the timeout"
    # Each worker's generator was closed (its finally ran) before close returned.
    assert closed_markers(tmp_path) == [(index, 0) for index in range(n_workers)]


def test_closing_a_zmq_streamer_stops_its_worker_at_once_and_closes_its_generator(tmp_path):
    stream = ZMQStreamer(Streamer(sources.producing, str(tmp_path)), timeout=TIMEOUT)
    with no_hang(120):
        for count, _ in enumerate(stream):
            if count == 1000:
                break
    assert closed_markers(tmp_path) == [(0, 0)]


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_a_break_closes_every_generator_every_worker_has_open(tmp_path, start_method):
    # Each worker runs a mux over 3 of the 6 streamers, all of them active.
    mux = RoundRobinMux([Streamer(sources.producing, str(tmp_path), tag) for tag in range(6)])
    stream = ProcessStreamer(mux, n_workers=2, start_method=start_method, timeout=TIMEOUT)
    with no_hang(120):
        for count, item in enumerate(stream):  # noqa: B007 (item is read after the loop)
            if count == 600:
                break
    assert item["i"] > 1  # every streamer gave items
    assert closed_markers(tmp_path) == [(0, 0), (0, 2), (0, 4), (1, 1), (1, 3), (1, 5)]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_worker_stuck_in_user_code_is_terminated_after_the_timeout(start_method):
    stream = ProcessStreamer(Streamer(sources.stuck_after, 3), n_workers=2,
                             start_method=start_method, timeout=0.5)
    with no_hang(60):
        items = iter(stream)
        assert [next(items) for _ in range(6)] == [0, 0, 1, 1, 2, 2]
        pids = [child.pid for child in multiprocessing.active_children()]
        items.close()
    assert len(pids) == 2
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)


def interrupt_when_in(thread, name, sent, seconds=30.0):
    """Send Ctrl-C (SIGINT) to ``thread`` once it runs ``name``; note it in ``sent``."""
    deadline = time.monotonic() + seconds
    while not in_function(thread, name):
        if time.monotonic() > deadline:
            return
        time.sleep(0.005)
    time.sleep(0.05)  # well into the wait
    sent.append(name)
    signal.pthread_kill(thread.ident, signal.SIGINT)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and /dev/shm")
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_second_ctrl_c_during_close_leaves_no_worker_and_no_shared_memory(start_method):
    # Both workers are stuck in user code, so that close waits for them
    # (up to the timeout) when the second Ctrl-C comes.
    stream = ProcessStreamer(Streamer(sources.stuck_after, 1), n_workers=2,
                             start_method=start_method, timeout=TIMEOUT)
    with no_hang(60):
        items = iter(stream)
        # An item from worker 0: the consumer has not heard from worker 1 yet,
        # so the rings are still in /dev/shm.
        assert next(items) == 0
        assert len(shared_memory_left()) == 2
        pids = [child.pid for child in multiprocessing.active_children()]
        sent = []
        main = threading.current_thread()
        interrupter = threading.Thread(target=interrupt_when_in, args=(main, "_shut_down", sent))
        interrupter.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                items.close()  # as the first Ctrl-C would
        finally:
            interrupter.join()
    assert sent == ["_shut_down"]
    assert len(pids) == 2
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)
    # nothing_left_behind checks that no worker and no ring remain.


# -- the workers' global random states ----------------------------------------------


@pytest.fixture
def global_random_states():
    """Restore numpy's and random's global states after a test that reseeds them."""
    states = np.random.get_state(), random.getstate()
    yield
    np.random.set_state(states[0])
    random.setstate(states[1])


def draws(start_method, seed=None, n_workers=2):
    if seed is not None:
        np.random.seed(seed)
    stream = ProcessStreamer(Streamer(sources.random_draws, 20), n_workers=n_workers,
                             start_method=start_method)
    with no_hang():
        return list(stream)


@METHODS
def test_workers_repeat_their_random_draws_under_numpys_global_seed(start_method,
                                                                     global_random_states):
    first = draws(start_method, seed=0)
    assert draws(start_method, seed=0) == first
    assert draws(start_method, seed=1) != first
    # Without a new seed, the next pass draws anew, as a generator in the consumer would.
    assert draws(start_method) != first
    by_worker = [[item[1:] for item in first if item[0] == index] for index in (0, 1)]
    assert len(by_worker[0]) == len(by_worker[1]) == 20
    # No two workers draw the same numbers; numpy and random differ in each.
    # (Chance draws of 31 bits that coincide: 2**-31 each.)
    numpy_draws = [draw for worker in by_worker for draw, _ in worker]
    random_draws = [draw for worker in by_worker for _, draw in worker]
    assert len(set(numpy_draws)) == len(set(random_draws)) == 40
    assert not set(numpy_draws) & set(random_draws)


def test_starting_a_pass_takes_one_draw_from_numpys_global_state_and_none_from_randoms(
        global_random_states):
    np.random.seed(5)
    random.seed(5)
    draws("fork")
    after_pass = np.random.randint(2**31), random.getrandbits(31)
    np.random.seed(5)
    random.seed(5)
    np.random.randint(0, 2**32, size=4, dtype=np.uint32)  # the one draw, as documented
    assert after_pass == (np.random.randint(2**31), random.getrandbits(31))


def test_one_worker_is_seeded_too(global_random_states):
    first = draws("fork", seed=3, n_workers=1)
    assert draws("fork", seed=3, n_workers=1) == first
    assert len({draw for _, draw, _ in first}) == 20


# -- layout of small arrays ------------------------------------------------------------


def layout(array):
    return array.dtype, array.shape, array.strides, array.flags.c_contiguous, array.flags.f_contiguous


@METHODS
def test_small_arrays_in_dicts_keep_the_layout_pickle_keeps(start_method):
    expected = [pickle.loads(pickle.dumps(item, protocol=5)) for item in sources.laid_out()]
    with no_hang():
        received = list(ProcessStreamer(Streamer(sources.laid_out), start_method=start_method))
    assert len(received) == len(expected) == 7
    for got, want in zip(received, expected):
        assert list(got) == list(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
            assert layout(got[key]) == layout(want[key]), key
            assert got[key].flags.writeable
    assert received[0]["a"].flags.f_contiguous and not received[0]["a"].flags.c_contiguous
    assert received[3]["a"].flags.f_contiguous and not received[3]["a"].flags.c_contiguous
