"""Resuming worker streams: a state is checked at the call."""

import gc
import multiprocessing
import os

import pytest

import shoal
import worker_sources as sources
from hang_guard import no_hang
from pipelines import plain
from resume_checker import roundtrip
from shoal import ProcessStreamer, ShoalValueError, Streamer, ZMQStreamer


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """Every test must leave no worker process and no shared memory behind."""
    yield
    gc.collect()
    assert multiprocessing.active_children() == []
    if os.path.isdir("/dev/shm"):
        mine = f"shoal-{os.getpid()}-"
        assert [f for f in os.listdir("/dev/shm") if f.startswith(mine)] == []


# How a saved state is loaded: by a ProcessStreamer whose workers fork or
# spawn, or by a ZMQStreamer (one worker), which resumes the same way.
LOADERS = {
    "fork": lambda stream, n_workers=1: ProcessStreamer(stream, n_workers=n_workers,
                                                        start_method="fork"),
    "spawn": lambda stream, n_workers=1: ProcessStreamer(stream, n_workers=n_workers,
                                                         start_method="spawn"),
    "ZMQStreamer": lambda stream, n_workers=1: ZMQStreamer(stream),
}


# -- a state of another stream is refused at the call -------------------------------------------


def numbers(n_streams):
    return [Streamer(sources.rows, 50, k) for k in range(n_streams)]


# How a ProcessStreamer is iterated: as the root, through a Streamer over it, under a map.
WRAPS = {
    "root": lambda stream: stream,
    "Streamer over it": Streamer,
    "map over it": lambda stream: Streamer(shoal.buffer_stream, stream, 4),
}

OTHER_STREAMS = {
    "a ChainMux's state in a StochasticMux": (
        lambda: shoal.ChainMux(numbers(4)),
        lambda: shoal.StochasticMux(numbers(4), 2, None, mode="exhaustive", random_state=1),
        r"^state is of an iteration of a ChainMux, not of this StochasticMux\n"),
    "a state with more streamers": (
        lambda: shoal.ChainMux(numbers(6)),
        lambda: shoal.ChainMux(numbers(4)),
        r"^state is of a ChainMux over {} streamers, but this one has {}\n"),
}


@pytest.mark.parametrize("load_with", list(LOADERS))
@pytest.mark.parametrize("wrap", list(WRAPS))
@pytest.mark.parametrize("case", list(OTHER_STREAMS))
def test_a_state_of_another_stream_is_refused_at_the_call_and_the_iteration_goes_on(
        load_with, wrap, case):
    saved_stream, stream, message = OTHER_STREAMS[case]
    n_workers = 1 if load_with == "ZMQStreamer" else 2

    def make(inner):
        return WRAPS[wrap](LOADERS[load_with](inner(), n_workers))

    with no_hang():
        saved = make(saved_stream).iterator()
        for _ in range(30):
            next(saved)
        state = roundtrip(saved.state_dict())
        saved.close()
        it = make(stream).iterator()
        before = [next(it) for _ in range(10)]
        # Worker 0's share: every n_workers-th streamer, of the state's and of this stream's.
        with pytest.raises(ShoalValueError, match=message.format(6 // n_workers,
                                                                 4 // n_workers)) as raised:
            it.load_state_dict(state)  # at the call, not at the next item
        assert "in the state of worker 0's share" in "\n".join(raised.value.__notes__)
        after = [next(it) for _ in range(10)]  # refused: the iteration goes on as it was
        it.close()
        uninterrupted = make(stream).iterator()
        expected = [next(uninterrupted) for _ in range(20)]
        uninterrupted.close()
    assert plain(before + after) == plain(expected)
