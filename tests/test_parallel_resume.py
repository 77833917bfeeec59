"""Resuming worker streams: a worker checks what it skips, and a state is checked at the call.

A worker's saved state is a snapshot of its share's state and the items its
consumer took after it; the worker resumes from the snapshot and skips those
items. These tests save such states with few snapshots (so that there is
something to skip), change what the workers would read, and check that the
resume is exact or refused with a clear error, never silently off.
"""

import multiprocessing
from collections import Counter

import numpy as np
import pytest
import worker_sources as sources
from hang_guard import no_hang
from leaks import nothing_left_behind  # noqa: F401 (an autouse fixture)
from pipelines import PIPELINES, plain
from resume_checker import roundtrip

import shoal
import shoal.parallel._state
import shoal.parallel._worker
from shoal import ProcessStreamer, ShoalValueError, Streamer, ZMQStreamer


@pytest.fixture
def few_snapshots(monkeypatch):
    """Forked workers snapshot their share only after their first item, when they wait, and at the end.

    So a state saved after a few items has items to skip, whatever the
    speed of the machine.
    """
    monkeypatch.setattr(shoal.parallel._worker, "SNAPSHOT_RATIO", 10**9)


# How a saved state is loaded: by a ProcessStreamer whose workers fork or
# spawn, or by a ZMQStreamer (one worker), which resumes the same way.
LOADERS = {
    "fork": lambda stream, n_workers=1: ProcessStreamer(stream, n_workers=n_workers,
                                                        start_method="fork"),
    "spawn": lambda stream, n_workers=1: ProcessStreamer(stream, n_workers=n_workers,
                                                         start_method="spawn"),
    "ZMQStreamer": lambda stream, n_workers=1: ZMQStreamer(stream),
}


def write_files(folder, sizes):
    """Files of ``sizes`` lines each; their paths."""
    paths = []
    for k, size in enumerate(sizes):
        path = str(folder / f"part-{k}.txt")
        sources.write_lines(path, size)
        paths.append(path)
    return paths


def files(paths):
    """A chain of the files: items ``(file number, line)``."""
    return shoal.ChainMux([Streamer(sources.lines, path, k) for k, path in enumerate(paths)])


def save_after(stream, n_items, n_workers=1):
    """The state of a forked ProcessStreamer over ``stream`` after ``n_items``, and those items.

    Iterated through a Streamer over it, so that the state also loads into a
    Streamer over a ZMQStreamer.
    """
    it = Streamer(ProcessStreamer(stream, n_workers=n_workers, start_method="fork")).iterator()
    items = [next(it) for _ in range(n_items)]
    state = roundtrip(it.state_dict())
    it.close()
    return state, items


def load(load_with, stream, n_workers=1):
    """A Streamer over a worker stream of ``stream``, as ``save_after`` saves."""
    return Streamer(LOADERS[load_with](stream, n_workers))


def shares(state):
    return state["state"]["child"]["shares"]


# -- a worker checks what it skips ---------------------------------------------------------


SHORTER = r"cannot restore Streamer\(lines, .*, 0\) after {} items: it now yields only 15;"


@pytest.mark.parametrize("load_with", list(LOADERS))
def test_a_file_now_shorter_is_refused_not_skipped_into_the_next_file(tmp_path, few_snapshots,
                                                                       load_with):
    paths = write_files(tmp_path, (1000, 1000))
    one_process = files(paths).iterator()
    for _ in range(20):
        next(one_process)
    one_process_state = roundtrip(one_process.state_dict())
    one_process.close()
    with no_hang():
        state, before = save_after(files(paths), 20)
        assert before == [(0, i) for i in range(20)]
        # The worker resumes from its snapshot after item 1 and skips 19 items.
        assert [(share["state"]["n_given"], share["n_skip"]) for share in shares(state)] == [(1, 19)]
        resumed = load(load_with, files(paths)).iterator()
        resumed.load_state_dict(state)
        assert [next(resumed) for _ in range(5)] == [(0, i) for i in range(20, 25)]  # exact
        resumed.close()

        sources.write_lines(paths[0], 15)  # rewritten between the runs: 15 lines, not 1000
        resumed = load(load_with, files(paths)).iterator()
        resumed.load_state_dict(state)
        # Skipping 19 items would run into file 1 and lose its first 4 lines:
        # refused, as one process refuses a source that now yields fewer items.
        with pytest.raises(ShoalValueError, match=SHORTER.format(r"\d+")):
            next(resumed)
        resumed.close()
    one_process = files(paths).iterator()
    one_process.load_state_dict(one_process_state)
    with pytest.raises(ShoalValueError, match=SHORTER.format(20)):
        next(one_process)
    one_process.close()


@pytest.mark.parametrize("load_with", ["fork", "spawn"])
def test_a_file_now_longer_is_refused_not_read_again(tmp_path, few_snapshots, load_with):
    paths = write_files(tmp_path, (10, 1000))
    with no_hang():
        state, before = save_after(files(paths), 20)
        assert before[-1] == (1, 9) and shares(state)[0]["n_skip"] == 19
        sources.write_lines(paths[0], 12)  # two lines more
        resumed = load(load_with, files(paths)).iterator()
        resumed.load_state_dict(state)
        # The worker, resumed in file 0, would skip its 2 new lines and give
        # lines 8 and 9 of file 1 again: refused, naming where it went astray.
        with pytest.raises(ShoalValueError, match=(
                r"\d+ items after its saved state, it is not where it was when the state was "
                r"saved \(at state\['state'\]\['offset'\]: 12, saved: 10\)")):
            next(resumed)
        resumed.close()


def batches(paths, size):
    return Streamer(shoal.buffer_stream, files(paths), size, partial=True)


def rows(items):
    """The (file, line) rows of batches of them."""
    return [tuple(row) for batch in items for row in zip(*(part.tolist() for part in batch))]


@pytest.mark.parametrize("load_with", ["fork", "spawn"])
def test_another_batch_size_is_refused_naming_the_difference(tmp_path, few_snapshots, load_with):
    paths = write_files(tmp_path, (1000,) * 4)
    with no_hang():
        state, _before = save_after(batches(paths, 4), 20, n_workers=2)
        assert [share["n_skip"] for share in shares(state)] == [9, 9]
        resumed = load(load_with, batches(paths, 5), n_workers=2).iterator()
        resumed.load_state_dict(state)
        # Skipping 9 batches of 5 would lose 9 rows in each worker.
        with pytest.raises(ShoalValueError, match=(
                r"cannot restore Streamer\(buffer_stream, .*, 5, True\) from a worker's "
                r"saved state: \d+ items after its saved state, it is not where it was when the "
                r"state was saved \(at state\['state'\]\['child'\]\['n_input'\]: \d+, saved: "
                r"\d+\).*not in a map with another buffer_size")):
            next(resumed)
        resumed.close()


def test_another_batch_size_goes_on_exactly_from_a_state_at_the_snapshots(tmp_path,
                                                                        few_snapshots):
    paths = write_files(tmp_path, (1000,) * 4)
    with no_hang():
        # One batch from each worker: each is at its snapshot, with nothing to skip.
        state, before = save_after(batches(paths, 4), 2, n_workers=2)
        assert [share["n_skip"] for share in shares(state)] == [0, 0]
        resumed = load("fork", batches(paths, 5), n_workers=2).iterator()
        resumed.load_state_dict(state)
        after = list(resumed)
    assert {len(batch[0]) for batch in after[:-2]} == {5}
    assert Counter(rows(before + after)) == Counter((k, i) for k in range(4) for i in range(1000))


def test_another_number_of_workers_refuses_a_shorter_file_at_the_call(tmp_path, few_snapshots):
    paths = write_files(tmp_path, (1000,) * 4)
    with no_hang():
        state, _ = save_after(files(paths), 20, n_workers=2)
        sources.write_lines(paths[0], 15)
        resumed = load("fork", files(paths), n_workers=3).iterator()
        # The consumer brings the saved shares to where they were, here: checked as a worker does.
        with pytest.raises(ShoalValueError, match=SHORTER.format(r"\d+")) as raised:
            resumed.load_state_dict(state)
        assert "while loading a state saved with n_workers=2" in "\n".join(raised.value.__notes__)
        assert multiprocessing.active_children() == []
        resumed.close()


def test_a_state_without_the_share_ahead_still_refuses_a_skip_past_the_end(tmp_path,
                                                                          few_snapshots):
    paths = write_files(tmp_path, (1000,))
    with no_hang():
        state, _ = save_after(Streamer(sources.lines, paths[0]), 20)
        for share in shares(state):
            share.pop("ahead", None)  # as in a state saved before workers sent it
        sources.write_lines(paths[0], 10)
        resumed = load("fork", Streamer(sources.lines, paths[0])).iterator()
        resumed.load_state_dict(state)
        with pytest.raises(ShoalValueError, match=(
                r"cannot restore Streamer\(lines, .*\) from a worker's saved state: it now yields "
                r"only 9 of the 19 items its consumer had taken after its saved state")):
            next(resumed)
        resumed.close()


def test_a_corrupted_share_ahead_is_refused_at_the_call(tmp_path, few_snapshots):
    paths = write_files(tmp_path, (1000,))
    with no_hang():
        state, _ = save_after(files(paths), 20)
    shares(state)[0]["ahead"]["n"] += 1  # it no longer counts the items to its state
    resumed = load("fork", files(paths)).iterator()
    with pytest.raises(ShoalValueError, match=r"state is corrupted at .*\['shares'\]\[0\]\['ahead'\]: "
                                              r"it must be \{'n': n >= 1, 'state': the share's state"):
        resumed.load_state_dict(state)
    resumed.close()


def test_a_state_saved_while_a_worker_waits_for_room_in_its_ring_resumes_exactly(few_snapshots):
    # 1 MB items: a worker keeps at most 4 of them in its ring ahead of the
    # consumer, and waits there; saving the state must not wait for ever.
    def big(n):
        for i in range(n):
            yield {"x": np.full(2**18, i, dtype=np.float32), "i": i}

    def make_big():
        return ProcessStreamer(Streamer(big, 60), prefetch=8, start_method="fork")

    with no_hang():
        it = make_big().iterator()
        before = [next(it)["i"] for _ in range(2)]
        state = roundtrip(it.state_dict())
        assert shares(state)[0]["n_skip"] == 1
        rest = [item["i"] for item in it]
        resumed = make_big().iterator()
        resumed.load_state_dict(state)
        after = [(item["i"], float(item["x"][-1])) for item in resumed]
    assert before + rest == list(range(60))
    assert after == [(i, float(i)) for i in range(2, 60)]


# Positions in a pass: a snapshot, the items the consumer took after it, the next snapshot.
POSITIONS = [(0, 1, 1), (0, 3, 7), (2, 5, 20), (4, 4, 60), (9, 12, 13)]


@pytest.mark.parametrize("name", list(PIPELINES))
def test_a_share_that_gives_the_same_items_is_never_refused(name):
    # What a worker checks on resuming, for every kind of stream, up to the
    # end of its pass: the items after the consumer's position and the state
    # after them are those the uninterrupted iteration gave.
    make = PIPELINES[name]
    it = make().iterator()
    states, items = [], []
    while len(items) < 80:
        states.append(roundtrip(it.state_dict()))
        item = next(it, None)
        if item is None:
            states[-1] = roundtrip(it.state_dict())  # a worker's last snapshot: after the end
            break
        items.append(plain(item))
    it.close()
    for start, position, ahead in POSITIONS:
        if position >= len(states):
            continue
        end = min(position + ahead, len(states) - 1)
        if end == position:
            continue
        resumed, held, at = shoal._resume.resumed_share(
            make(), states[start], position - start,
            {"n": end - position, "state": states[end]}, at_position=True)
        resumed.close()
        assert [plain(item) for item in held] == items[position:end]
        assert shoal._checks.state_difference(at, states[position]) is None


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
