"""shoal.torch.to_device: a stream's batches as tensors on a device, made ready by a thread.

On the CPU the feed runs the same thread, queue and conversion as on CUDA
(only the page-locked buffers, the copy stream and its events are CUDA's):
these tests check that it is exact, in order, closes what it opens and
says what goes wrong. The few CUDA checks run where CUDA is.
"""

import gc
import threading
import time
import traceback
from collections import namedtuple

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install torch, or pip install '.[torch]')"
)
from hang_guard import no_hang  # noqa: E402
from leaks import nothing_left_behind  # noqa: E402, F401 (an autouse fixture)
from resume_checker import roundtrip  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import shoal  # noqa: E402
from shoal.torch import DeviceFeed, to_device  # noqa: E402

CUDA = torch.cuda.is_available()
Pair = namedtuple("Pair", ["image", "label"])


def feed_threads():
    return [t for t in threading.enumerate() if t.name == "shoal-to-device" and t.is_alive()]


@pytest.fixture(autouse=True)
def no_feed_thread_left():
    """Every test ends with no copy thread running."""
    yield
    gc.collect()
    assert feed_threads() == []


def assert_same(got, expected, path="batch"):
    """``got`` is ``expected`` with every array as an equal tensor (dtype, shape, values)."""
    if isinstance(expected, np.ndarray):
        assert isinstance(got, torch.Tensor), path
        assert got.device.type == "cpu", path
        assert got.dtype == torch.from_numpy(np.empty(0, expected.dtype.newbyteorder("="))).dtype, path
        assert tuple(got.shape) == expected.shape, path
        native = expected.astype(expected.dtype.newbyteorder("="))
        np.testing.assert_array_equal(got.numpy(), native, err_msg=path, strict=True)
    elif isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == expected.dtype, path
        assert torch.equal(got.cpu(), expected.cpu()), path
    elif isinstance(expected, dict):
        assert type(got) is type(expected) and list(got) == list(expected), path
        for key in expected:
            assert_same(got[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (tuple, list)):
        assert type(got) is type(expected) and len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, f"{path}[{i}]")
    else:
        assert got is expected or (type(got) is type(expected) and got == expected), path


def every_dtype_batch(seed):
    rng = np.random.default_rng(seed)
    batch = {}
    for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64", "complex64", "complex128"):
        batch[name] = (rng.normal(size=(4, 3)) * 50).astype(name)
    return batch


def odd_arrays(seed):
    """Arrays that are not plain C-contiguous native ones."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(6, 5, 4)).astype("float32")
    return [
        base.transpose(2, 0, 1),  # Fortran-like strides
        base[::-1, ::2],  # negative and gapped strides
        base[:, 1, :],  # a slice of the middle axis
        np.asfortranarray(base),
        base.astype(">f4"),  # byte-swapped
        np.broadcast_to(np.arange(3), (4, 3)),  # zero strides, read-only
        np.full((), seed, dtype="float64"),  # 0-d
        np.empty((0, 3), dtype="int16"),  # empty
    ]


def nested(seed):
    rng = np.random.default_rng(seed)
    image, label = rng.normal(size=(2, 3, 4)).astype("f4"), np.array([seed, seed + 1])
    return {
        "pair": Pair(image, label),
        "tuple": (image[0], [label, {"deep": image.T}]),
        "id": seed,
        "name": f"batch {seed}",
        "none": None,
        "tensor": torch.arange(3) + seed,
    }


BATCHES = {
    "dict of every dtype": [every_dtype_batch(s) for s in range(3)],
    "tuple": [(np.arange(4) + s, np.ones((2, 2), "f8") * s) for s in range(3)],
    "named tuple": [Pair(np.full((2, 2), s, "u1"), np.array(s)) for s in range(3)],
    "list of odd arrays": [odd_arrays(s) for s in range(3)],
    "array": [np.arange(6, dtype="int32").reshape(2, 3) * s for s in range(3)],
    "nested": [nested(s) for s in range(3)],
}


@pytest.mark.parametrize("kind", list(BATCHES))
def test_every_batch_comes_as_equal_tensors_with_its_structure(kind):
    batches = BATCHES[kind]
    with to_device(shoal.Streamer(batches), "cpu") as feed:
        got = list(feed)
    assert len(got) == len(batches)
    for g, e in zip(got, batches):
        assert_same(g, e)


def test_the_tensors_are_contiguous_copies_that_the_source_may_reuse():
    shared = np.zeros(5, dtype="int64")

    def reusing():  # writes every batch into the same array
        for i in range(50):
            shared[:] = i
            yield shared

    got = [t.tolist() for t in to_device(reusing(), "cpu", prefetch=4)]
    assert got == [[i] * 5 for i in range(50)]
    feed = to_device(shoal.Streamer([odd_arrays(0)]), "cpu")
    assert all(t.is_contiguous() for t in next(feed))
    feed.close()


@pytest.mark.parametrize("prefetch", [1, 2, 7])
def test_every_batch_once_in_order(prefetch):
    mux = shoal.StochasticMux([shoal.Streamer(np.arange(f * 1000, f * 1000 + 96)) for f in range(5)],
                              n_active=2, rate=None, mode="exhaustive", random_state=3)
    stream = shoal.Streamer(shoal.buffer_stream, shoal.Streamer(lambda: ({"id": i} for i in mux)), 8)
    expected = [batch["id"].tolist() for batch in stream]
    got = [batch["id"].tolist() for batch in to_device(stream, "cpu", prefetch=prefetch)]
    assert got == expected
    assert sorted(i for batch in got for i in batch) == sorted(
        f * 1000 + i for f in range(5) for i in range(96))  # 60 whole batches of 8


def test_the_sources_it_takes():
    batches = [{"x": np.arange(3) + i} for i in range(4)]
    expected = [[i, i + 1, i + 2] for i in range(4)]

    def values(feed):
        return [batch["x"].tolist() for batch in feed]

    assert values(to_device(batches, "cpu")) == expected  # a list
    assert values(to_device(iter(batches), "cpu")) == expected  # an iterator
    assert values(to_device(shoal.Streamer(batches).iterator(), "cpu")) == expected
    loader = DataLoader(shoal.torch.StreamDataset(shoal.Streamer(batches)), batch_size=None)
    assert values(to_device(loader, "cpu")) == expected  # tensors
    assert values(to_device(shoal.ProcessStreamer(shoal.Streamer(batches)), "cpu")) == expected


def test_the_first_batch_is_taken_in_the_calling_thread_the_next_ones_in_the_copy_thread():
    # So a ProcessStreamer forks its workers from the caller's thread, before the copy thread is.
    threads = []

    def recording():
        for i in range(3):
            threads.append(threading.current_thread().name)
            yield np.array([i])

    assert [t.item() for t in to_device(recording(), "cpu")] == [0, 1, 2]
    assert threads == [threading.current_thread().name, "shoal-to-device", "shoal-to-device"]


def test_an_empty_stream_gives_nothing():
    feed = to_device(shoal.Streamer([]), "cpu")
    assert list(feed) == []
    assert list(feed) == []
    assert feed.state_dict()["n_given"] == 0


def test_it_makes_ready_at_most_prefetch_batches_ahead():
    taken = []

    def counting():
        for i in range(100):
            taken.append(i)
            yield np.array([i])

    with no_hang(30), to_device(counting(), "cpu", prefetch=3) as feed:
        assert next(feed).tolist() == [0]
        while len(taken) < 4:  # the first, and 3 ahead
            time.sleep(0.001)
        time.sleep(0.05)
        assert len(taken) == 4
        assert next(feed).tolist() == [1]
        while len(taken) < 5:
            time.sleep(0.001)
        time.sleep(0.05)
        assert len(taken) == 5


# -- errors


class Boom(Exception):
    pass


def failing_after(n):
    for i in range(n):
        yield {"x": np.array([i])}
    raise Boom(f"source failed after {n}")


@pytest.mark.parametrize("n_before", [0, 1, 5])
def test_an_error_of_the_source_comes_after_the_batches_before_it(n_before):
    feed = to_device(shoal.Streamer(failing_after, n_before), "cpu", prefetch=2)
    got = []
    with pytest.raises(Boom, match=f"source failed after {n_before}") as info:
        for batch in feed:
            got.append(batch["x"].item())
    assert got == list(range(n_before))
    functions = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "failing_after" in functions  # the source's own traceback
    assert list(feed) == []  # then it has ended
    feed.close()


def test_an_array_torch_cannot_hold_is_a_data_error_after_the_batches_before_it():
    batches = [{"x": np.zeros(2), "name": np.array(["a", "b"])}]
    batches = [{"x": np.zeros(2)}, {"x": np.ones(2)}, *batches]
    feed = to_device(batches, "cpu")
    assert [b["x"].tolist() for b in (next(feed), next(feed))] == [[0, 0], [1, 1]]
    with pytest.raises(shoal.DataError, match=r"batch\['name'\] is an array of dtype <U1"):
        next(feed)
    feed.close()


def closing_log(log, n=10**6, delay=0.0):
    try:
        for i in range(n):
            if delay:
                time.sleep(delay)
            yield np.array([i])
    finally:
        log.append("finally")


@pytest.mark.parametrize("how", ["close", "with", "break", "collected", "load_then_close"])
def test_stopping_early_stops_the_thread_and_closes_the_source(how):
    log = []
    stream = shoal.Streamer(closing_log, log)
    with no_hang(30):
        if how == "close":
            feed = to_device(stream, "cpu")
            next(feed)
            feed.close()
            assert [t.item() for t in feed] == []
        elif how == "with":
            with to_device(stream, "cpu") as feed:
                next(feed)
        elif how == "break":
            for _ in to_device(stream, "cpu"):
                break
        elif how == "collected":
            feed = to_device(stream, "cpu")
            next(feed)
            del feed
        else:
            feed = to_device(stream, "cpu")
            saved = feed.state_dict()
            next(feed)
            feed.load_state_dict(saved)
            assert log == ["finally"]  # the pass it was taking is closed
            next(feed)
            feed.close()
            assert log == ["finally"] * 2
            return
    assert log == ["finally"]
    assert feed_threads() == []


def test_closing_waits_only_for_the_batch_being_taken():
    log, started = [], []

    def slow():
        try:
            for i in range(100):
                started.append(i)
                time.sleep(0.05)
                yield np.array([i])
        finally:
            log.append("finally")

    feed = to_device(slow(), "cpu", prefetch=4)
    with no_hang(30):
        next(feed)
        n_started = len(started)
        feed.close()
    # At most the batch it had begun to take when close() was called: not the 4 ahead.
    assert len(started) <= n_started + 1
    assert log == ["finally"] and feed_threads() == []


def test_a_feed_closed_from_its_own_thread_stops_and_closes_the_source():
    # What garbage collection does when it collects a feed in the copy thread.
    log, feeds = [], []

    def closing_itself():
        try:
            for i in range(100):
                if i == 3:
                    feeds[0].close()  # in the copy thread, inside the source
                    log.append("closed")  # it returned, without waiting for itself
                yield np.array([i])
        finally:
            log.append("finally")

    feeds.append(to_device(closing_itself(), "cpu", prefetch=8))
    with no_hang(30):
        assert next(feeds[0]).tolist() == [0]
        while feed_threads() or "finally" not in log:
            time.sleep(0.001)
    assert log == ["closed", "finally"]
    assert list(feeds[0]) == []


def test_a_caller_waiting_for_a_batch_when_another_thread_closes_the_feed_stops():
    log = []
    feed = to_device(closing_log(log, delay=0.3), "cpu")
    closer = threading.Timer(0.05, feed.close)
    with no_hang(30):
        assert next(feed).tolist() == [0]
        closer.start()
        with pytest.raises(StopIteration):
            next(feed)  # waits for the next batch when the feed is closed
        closer.join()
    assert log == ["finally"]


def test_closing_a_feed_of_workers_stops_them():
    log = []
    stream = shoal.ProcessStreamer(shoal.Streamer(closing_log, log, 10**6), n_workers=2)
    with no_hang(60), to_device(stream, "cpu") as feed:
        assert [next(feed).item() for _ in range(3)] == [0, 0, 1]
    # the nothing_left_behind fixture checks that no worker and no ring is left


@pytest.mark.parametrize("arguments, error, match", [
    ({"device": "nowhere"}, ValueError, "device must name a torch device.*'nowhere'"),
    ({"device": 1.5}, TypeError, "device must be a torch.device.*1.5"),
    ({"device": True}, TypeError, "device must be a torch.device"),
    ({"device": "cpu", "prefetch": 0}, ValueError, "prefetch must be >= 1, got 0"),
    ({"device": "cpu", "prefetch": 2.0}, TypeError, "prefetch must be an integer, got 2.0"),
    ({"device": "cpu", "pin_memory": True}, ValueError, "pin_memory=True is for CUDA.*'cpu'"),
    ({"device": "cpu", "pin_memory": "yes"}, TypeError, "pin_memory must be True or False"),
    ({"device": "cpu", "non_blocking": None}, TypeError, "non_blocking must be True or False"),
])
def test_bad_arguments_are_refused_at_the_call(arguments, error, match):
    with pytest.raises(error, match=match) as info:
        to_device([np.zeros(1)], **arguments)
    assert isinstance(info.value, shoal.ShoalError)


@pytest.mark.parametrize("stream", [5, None, "text"])
def test_a_stream_that_is_no_iterable_of_batches_is_refused(stream):
    with pytest.raises(shoal.ShoalTypeError, match="stream must be an iterable of batches"):
        to_device(stream, "cpu")


@pytest.mark.skipif(CUDA, reason="checks the refusal of CUDA where there is none")
def test_cuda_is_refused_where_there_is_none():
    with pytest.raises(shoal.ShoalValueError, match="device is 'cuda', but CUDA is not available"):
        to_device([np.zeros(1)], "cuda")


# -- state


def id_batches(n_files=4, n_rows=23, batch_size=5):
    @shoal.streamable
    def rows(f):
        for i in range(n_rows):
            yield {"id": np.int64(1000 * f + i), "x": np.full(3, f, "f4")}

    mux = shoal.StochasticMux([rows(f) for f in range(n_files)], n_active=2, rate=None,
                              mode="exhaustive", random_state=11)
    return shoal.Streamer(shoal.buffer_stream, mux, batch_size)


def ids(feed):
    return [batch["id"].tolist() for batch in feed]


@pytest.mark.parametrize("prefetch", [1, 3])
def test_the_state_is_at_the_batches_taken_and_resumes_exactly(prefetch):
    stream = id_batches()
    expected = ids(stream)
    for position in range(len(expected) + 1):
        feed = to_device(stream, "cpu", prefetch=prefetch)
        got = [feed.__next__()["id"].tolist() for _ in range(position)]
        time.sleep(0.002)  # lets the thread run ahead
        saved = roundtrip(feed.state_dict())
        assert saved["n_given"] == position
        feed.close()
        resumed = to_device(id_batches(), "cpu", prefetch=prefetch)
        resumed.load_state_dict(saved)
        assert got + ids(resumed) == expected, f"resumed at batch {position}"
        assert resumed.state_dict()["n_given"] == len(expected)


def test_the_state_of_a_feed_of_workers_resumes_exactly():
    stream = shoal.ProcessStreamer(id_batches(), n_workers=2)
    expected = ids(stream)
    for position in (0, 3, 11):
        with to_device(stream, "cpu", prefetch=2) as feed:
            got = [next(feed)["id"].tolist() for _ in range(position)]
            saved = roundtrip(feed.state_dict())
        with to_device(stream, "cpu") as resumed:
            resumed.load_state_dict(saved)
            assert got + ids(resumed) == expected, f"resumed at batch {position}"


def test_a_state_loaded_while_iterating_goes_on_from_it_and_a_refused_one_changes_nothing():
    stream = id_batches()
    expected = ids(stream)
    feed = to_device(stream, "cpu", prefetch=3)
    [next(feed) for _ in range(5)]
    at_5 = feed.state_dict()
    [next(feed) for _ in range(2)]
    feed.load_state_dict(at_5)
    assert ids(feed) == expected[5:]
    feed.load_state_dict(at_5)  # after its end, too
    assert next(feed)["id"].tolist() == expected[5]
    with to_device(id_batches(n_files=3), "cpu") as of_another_mux:
        next(of_another_mux)
        other = of_another_mux.state_dict()
    time.sleep(0.01)  # the thread has made batches ready, which the refusal keeps
    with pytest.raises(shoal.ShoalValueError, match="streamers"):
        feed.load_state_dict(other)
    assert ids(feed) == expected[6:]
    feed.close()
    with pytest.raises(shoal.ShoalValueError, match="closed DeviceFeed"):
        feed.load_state_dict(at_5)


def test_a_feed_of_a_plain_iterable_has_no_state():
    feed = to_device([np.zeros(1)], "cpu")
    for method, args in (("state_dict", ()), ("load_state_dict", ({},))):
        with pytest.raises(shoal.ShoalTypeError, match=f"{method}\\(\\) needs a feed over a shoal"):
            getattr(feed, method)(*args)
    feed.close()


def test_the_feed_is_exported():
    assert isinstance(to_device([], "cpu"), DeviceFeed)
    assert {"to_device", "DeviceFeed"} <= set(shoal.torch.__all__)


# -- CUDA (where there is one)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_on_cuda_the_batches_are_exact_and_ready_for_the_callers_stream():
    batches = [nested(s) for s in range(20)]
    with to_device(batches, "cuda", prefetch=3) as feed:
        got = []
        for batch in feed:
            batch["pair"].image.mul_(1.0)  # the caller's stream reads and writes it
            got.append(batch)
    torch.cuda.synchronize()
    for g, e in zip(got, batches):
        assert g["pair"].image.device.type == "cuda"
        assert_same(torch.utils._pytree.tree_map(
            lambda t: t.cpu() if isinstance(t, torch.Tensor) else t, g), e)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_on_cuda_a_source_that_reuses_its_array_is_copied_before_it_changes():
    shared = np.zeros((256, 1024), dtype="float32")

    def reusing():
        for i in range(64):
            shared[:] = i
            yield shared

    total = [float(t.mean()) for t in to_device(reusing(), "cuda", prefetch=4)]
    assert total == [float(i) for i in range(64)]
