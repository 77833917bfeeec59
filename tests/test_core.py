"""Streamer, streamable and resume_arg: restartable streams over any source."""

import collections
import inspect
import itertools
import pickle
import sys
import threading
import traceback

import numpy as np
import pytest
from pipelines import tagged
from resume_checker import assert_resumes_exactly, roundtrip

import shoal
import shoal as pescador
from shoal import (
    ChainMux,
    EmptyStreamError,
    ShoalError,
    ShoalTypeError,
    ShoalValueError,
    SpentSourceError,
    Streamer,
    buffer_stream,
)


def count_up(n, start=0):
    for i in range(start, start + n):
        yield i


class Tracker:
    """A generator function that records how its generators start and end."""

    def __init__(self, n=5):
        self.n = n
        self.started = 0
        self.closed = 0
        self.pulled = 0

    def __call__(self):
        self.started += 1
        try:
            for i in range(self.n):
                self.pulled += 1
                yield i
        finally:
            self.closed += 1


# -- sources -----------------------------------------------------------------


def test_generator_function_restarts_on_every_iteration():
    stream = Streamer(count_up, 3, start=10)
    assert list(stream) == [10, 11, 12]
    assert list(stream) == [10, 11, 12]
    assert list(stream.iterate()) == [10, 11, 12]


@pytest.mark.parametrize(
    "source, expected",
    [
        ([1, 2, 3], [1, 2, 3]),
        ((1, 2), [1, 2]),
        (range(4), [0, 1, 2, 3]),
        ("ab", ["a", "b"]),
        ({"k": 1, "j": 2}, ["k", "j"]),
    ],
)
def test_collections_are_reiterable_sources(source, expected):
    stream = Streamer(source)
    assert list(stream) == expected
    assert list(stream) == expected


def test_numpy_array_source_yields_rows():
    data = np.arange(6).reshape(3, 2)
    rows = list(Streamer(data))
    assert len(rows) == 3
    np.testing.assert_array_equal(rows[2], [4, 5])


def test_any_callable_returning_an_iterable_is_a_source():
    assert list(Streamer(lambda: [1, 2])) == [1, 2]
    assert list(Streamer(lambda n: (i * i for i in range(n)), 3)) == [0, 1, 4]
    assert list(Streamer(range, 2, 5)) == [2, 3, 4]

    class Source:
        def __call__(self, n):
            return iter(range(n))

    assert list(Streamer(Source(), 2)) == [0, 1]


def test_callable_returning_a_non_iterable_fails_clearly():
    stream = Streamer(lambda: 42)
    with pytest.raises(ShoalTypeError, match=r"returned 42 \(int\), which is not iterable"):
        list(stream)


def test_streamer_of_a_streamer_streams_the_inner_one():
    inner = Streamer(count_up, 2)
    assert list(Streamer(inner)) == [0, 1]
    assert list(Streamer(inner).iterate(max_iter=1)) == [0]


@pytest.mark.parametrize("source", [5, 2.5, None, object()])
def test_a_source_that_cannot_stream_is_refused(source):
    with pytest.raises(ShoalTypeError, match="source must be a generator function") as info:
        Streamer(source)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, shoal.PescadorError)
    assert type(source).__name__ in str(info.value)


def test_arguments_for_a_source_that_is_not_callable_are_refused():
    with pytest.raises(ShoalTypeError, match=r"arguments were given for source \[1, 2\]"):
        Streamer([1, 2], 3)
    with pytest.raises(ShoalTypeError, match="not callable"):
        Streamer(Streamer([1]), flag=True)


# -- one-shot sources --------------------------------------------------------


def test_an_iterator_streams_once_then_refuses_to_restart():
    stream = Streamer(count_up(3))
    assert list(stream) == [0, 1, 2]
    with pytest.raises(SpentSourceError, match="streams once, and it has run out"):
        stream.iterate()
    with pytest.raises(SpentSourceError):
        list(stream)
    with pytest.raises(RuntimeError):  # also a RuntimeError
        iter(stream)


def test_a_partly_read_iterator_continues_where_it_stopped():
    stream = Streamer(i for i in range(5))  # a generator: one-shot
    assert list(stream.iterate(max_iter=2)) == [0, 1]
    assert list(stream.iterate(max_iter=2)) == [2, 3]
    assert list(stream) == [4]
    with pytest.raises(SpentSourceError):
        list(stream)


def test_cycle_over_a_one_shot_source_fails_instead_of_spinning():
    stream = Streamer(i for i in [1, 2])  # a generator: one-shot
    with pytest.raises(SpentSourceError):
        list(stream.cycle())


def test_a_one_shot_source_is_not_closed_by_an_early_stop():
    tracker = Tracker(5)
    gen = tracker()
    stream = Streamer(gen)
    for _item in stream:
        break
    assert tracker.closed == 0
    assert list(stream) == [1, 2, 3, 4]


# -- max_iter ----------------------------------------------------------------


@pytest.mark.parametrize("max_iter, expected", [(0, []), (2, [0, 1]), (10, [0, 1, 2]), (None, [0, 1, 2])])
def test_max_iter_limits_the_pass(max_iter, expected):
    stream = Streamer(count_up, 3)
    assert list(stream.iterate(max_iter=max_iter)) == expected
    assert list(stream(max_iter=max_iter)) == expected


def test_max_iter_accepts_numpy_ints_whole_floats_and_inf():
    stream = Streamer(count_up, 3)
    assert list(stream.iterate(np.int64(2))) == [0, 1]
    assert list(stream.iterate(2.0)) == [0, 1]
    assert list(stream.iterate(1e6)) == [0, 1, 2]
    assert list(stream.iterate(float("inf"))) == [0, 1, 2]


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (-1, ShoalValueError, r"max_iter must be None or a whole number >= 0, got -1"),
        (2.5, ShoalValueError, r"got 2.5"),
        (float("nan"), ShoalValueError, r"got nan"),
        ("3", ShoalTypeError, r"got '3' \(str\)"),
        (True, ShoalTypeError, r"got True \(bool\)"),
    ],
)
def test_bad_max_iter_fails_at_the_call(bad, error, message):
    stream = Streamer(count_up, 3)
    for method in (stream.iterate, stream.cycle, stream):
        with pytest.raises(error, match=message):
            method(bad)


def test_max_iter_never_pulls_an_extra_item():
    tracker = Tracker(10)
    assert list(Streamer(tracker).iterate(max_iter=3)) == [0, 1, 2]
    assert tracker.pulled == 3
    assert tracker.closed == 1


# -- cycle -------------------------------------------------------------------


def test_cycle_restarts_the_source():
    stream = Streamer(count_up, 3)
    assert list(stream.cycle(max_iter=7)) == [0, 1, 2, 0, 1, 2, 0]
    assert list(stream(max_iter=4, cycle=True)) == [0, 1, 2, 0]


def test_cycle_without_a_limit_goes_on():
    cycled = Streamer([1]).cycle()
    assert [next(cycled) for _ in range(1000)] == [1] * 1000


@pytest.mark.parametrize("source", [[], (), "", lambda: iter(())])
def test_cycle_over_an_empty_source_raises_instead_of_spinning(source):
    with pytest.raises(EmptyStreamError, match="a whole pass yielded no item"):
        next(Streamer(source).cycle())


def test_cycle_closes_each_pass():
    tracker = Tracker(2)
    assert list(Streamer(tracker).cycle(max_iter=5)) == [0, 1, 0, 1, 0]
    assert tracker.started == 3
    assert tracker.closed == 3


# -- no copies, independent iterations ---------------------------------------


def test_arguments_are_never_copied():
    big = np.zeros(10_000_000, dtype=np.uint8)  # 10 MB: a copy per pass would show

    def first_arg(array):
        yield array

    stream = Streamer(first_arg, big)
    for _ in range(3):
        assert next(iter(stream)) is big


def test_unpicklable_arguments_are_fine():
    lock = threading.Lock()

    def with_lock(lock, fn):
        with lock:
            yield fn(1)

    stream = Streamer(with_lock, lock, lambda x: x + 1)
    assert list(stream) == [2]
    assert list(stream) == [2]


def test_simultaneous_iterations_are_independent():
    stream = Streamer(count_up, 4)
    a, b = iter(stream), iter(stream)
    assert next(a) == 0
    assert next(a) == 1
    assert next(b) == 0
    assert list(a) == [2, 3]
    assert list(b) == [1, 2, 3]


# -- closing -----------------------------------------------------------------


def test_break_closes_the_source_generator():
    tracker = Tracker(5)
    for item in Streamer(tracker):
        if item == 1:
            break
    assert tracker.closed == 1


def test_close_closes_the_source_generator():
    tracker = Tracker(5)
    gen = Streamer(tracker).iterate()
    next(gen)
    gen.close()
    assert tracker.closed == 1


def test_an_exception_in_the_consumer_closes_the_source_generator():
    tracker = Tracker(5)

    def consume():
        for item in Streamer(tracker):
            raise KeyError(item)

    with pytest.raises(KeyError):
        consume()
    assert tracker.closed == 1


def test_with_block_closes_its_pass():
    tracker = Tracker(5)
    stream = Streamer(tracker)
    with stream as items:
        assert next(items) == 0
        assert tracker.closed == 0
    assert tracker.closed == 1


def test_nested_with_blocks_close_their_own_passes():
    stream = Streamer(count_up, 3)
    with stream as outer:
        with stream as inner:
            assert next(inner) == 0
        assert next(outer) == 0
        assert next(inner, "closed") == "closed"


# -- errors from user code ---------------------------------------------------


def broken(n):
    yield from range(n)
    raise ValueError("bad record in file 7")


def test_user_errors_pass_through_unchanged_with_a_note():
    stream = Streamer(broken, 2)
    with pytest.raises(ValueError, match="bad record in file 7") as info:
        list(stream)
    assert type(info.value) is ValueError
    notes = getattr(info.value, "__notes__", [])
    assert any("Streamer(broken, 2)" in note for note in notes), notes
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "broken"


def test_user_errors_reach_the_caller_from_cycle():
    with pytest.raises(ValueError, match="bad record"):
        list(Streamer(broken, 1).cycle(max_iter=10))


# -- streamable and repr -----------------------------------------------------


@shoal.streamable
def numbers(n, step=1):
    """Yield n numbers."""
    yield from range(0, n * step, step)


def test_streamable_returns_a_streamer_and_keeps_the_function_look():
    stream = numbers(3, step=2)
    assert isinstance(stream, Streamer)
    assert list(stream) == [0, 2, 4]
    assert list(stream) == [0, 2, 4]
    assert numbers.__name__ == "numbers"
    assert numbers.__doc__ == "Yield n numbers."
    assert list(inspect.signature(numbers).parameters) == ["n", "step"]
    assert inspect.signature(numbers).parameters["step"].default == 1


def test_streamable_refuses_a_non_callable():
    with pytest.raises(ShoalTypeError, match="streamable decorates a generator function, got 3"):
        shoal.streamable(3)


def test_repr_names_the_source_and_arguments():
    assert repr(Streamer(count_up, 3, start=1)) == "Streamer(count_up, 3, start=1)"
    assert repr(Streamer([1, 2])) == "Streamer([1, 2])"
    long_repr = repr(Streamer(count_up, list(range(1000))))
    assert len(long_repr) < 120


def test_pescador_attribute_names_are_kept():
    stream = Streamer(count_up, 3, start=2)
    assert stream.streamer is count_up
    assert stream.args == (3,)
    assert stream.kwargs == {"start": 2}


def test_errors_are_catchable_as_the_base_error():
    with pytest.raises(ShoalError):
        Streamer(5)
    with pytest.raises(ShoalError):
        Streamer([1]).iterate(-1)


# -- iterators as sources: copied where they stand, as pescador does -----------


class CopyingCountdown:
    """An iterator class that copies itself: each copy reads on on its own."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return self

    def __next__(self):
        if self.n == 0:
            raise StopIteration
        self.n -= 1
        return self.n

    def __copy__(self):
        return CopyingCountdown(self.n)


def _partly_read():
    it = iter([0, 1, 2, 3])
    next(it)
    return it


COPYABLE = {
    "list": (lambda: iter([1, 2]), [1, 2]),
    "tuple": (lambda: iter((1, 2)), [1, 2]),
    "range": (lambda: iter(range(3)), [0, 1, 2]),
    "str": (lambda: iter("ab"), ["a", "b"]),
    "non-ascii str": (lambda: iter("éa"), ["é", "a"]),
    "bytes": (lambda: iter(b"ab"), [97, 98]),
    "dict": (lambda: iter({"a": 1, "b": 2}), ["a", "b"]),
    "dict items": (lambda: iter({"a": 1}.items()), [("a", 1)]),
    "reversed dict": (lambda: reversed({"a": 1, "b": 2}), ["b", "a"]),
    "set": (lambda: iter({5}), [5]),
    "deque": (lambda: iter(collections.deque([1, 2])), [1, 2]),
    "reversed list": (lambda: reversed([1, 2]), [2, 1]),
    "array": (lambda: iter(np.arange(2)), [0, 1]),
    "partly read": (_partly_read, [1, 2, 3]),
    "class with __copy__": (lambda: CopyingCountdown(3), [2, 1, 0]),
}

if sys.version_info < (3, 12):  # itertools objects copy themselves until then
    COPYABLE["itertools.repeat"] = (lambda: itertools.repeat("x", 2), ["x", "x"])
    COPYABLE["itertools.product"] = (lambda: itertools.product("ab", repeat=1), [("a",), ("b",)])


@pytest.mark.parametrize("name", sorted(COPYABLE))
def test_an_iterator_that_copies_restarts_from_where_it_stood_as_in_pescador(name):
    make, expected = COPYABLE[name]
    source = make()
    stream = pescador.Streamer(source)
    assert [list(stream), list(stream), list(stream.iterate(max_iter=1))] == [
        expected, expected, expected[:1]]
    assert list(stream.cycle(max_iter=2 * len(expected))) == expected * 2
    assert next(source) == expected[0]  # the iterator itself is not read
    assert list(stream) == expected  # nor moved by being read elsewhere


def test_an_iterator_is_copied_where_it_stood_when_the_streamer_was_made():
    source = iter([0, 1, 2])
    stream = pescador.Streamer(source)
    next(source)
    assert list(stream) == [0, 1, 2]


def test_a_copied_iterator_resumes_exactly_and_in_a_mux():
    assert_resumes_exactly(lambda: pescador.Streamer(iter(list(range(30)))), n_positions=30,
                           n_after=10)
    assert_resumes_exactly(lambda: pescador.Streamer(iter(range(12))), n_positions=12, n_after=20,
                           cycle=True)
    chain = pescador.ChainMux([pescador.Streamer(iter("ab")), pescador.Streamer(iter(range(2)))],
                              mode="cycle")
    assert list(chain(max_iter=6)) == ["a", "b", 0, 1, "a", "b"]
    assert_resumes_exactly(lambda: pescador.StochasticMux(
        [pescador.Streamer(iter(range(k, k + 9))) for k in (0, 100, 200)], 2, 3, random_state=1),
        n_positions=40, n_after=10)


def test_a_streamer_of_a_copied_iterator_pickles_with_its_start():
    # What a worker process gets (spawn, forkserver).
    source = iter([0, 1, 2])
    next(source)
    stream = pickle.loads(pickle.dumps(pescador.Streamer(source)))
    assert [list(stream), list(stream)] == [[1, 2], [1, 2]]


def one_two_three():
    yield from range(3)


ONE_SHOT = {
    "generator": lambda: one_two_three(),
    "map": lambda: map(int, "012"),  # its copy would share the str iterator inside it
    "zip": lambda: zip(range(3), range(3)),
    "enumerate": lambda: enumerate("abc"),
    "filter": lambda: filter(None, [1, 2, 3]),
    "itertools.chain": lambda: itertools.chain([0], [1, 2]),
    "itertools.islice": lambda: itertools.islice(range(10), 3),
    "callable iterator": lambda: iter(iter([1, 2, 3, None]).__next__, None),
}


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_an_iterator_whose_copy_would_move_with_it_streams_once_then_says_so(name):
    # pescador deep-copies these (and fails on a generator); a shallow copy of a
    # map would share its input, and its second pass would silently be empty.
    stream = pescador.Streamer(ONE_SHOT[name]())
    assert len(list(stream)) == 3
    with pytest.raises(pescador.SpentSourceError, match="streams once, and it has run out"):
        list(stream)


def test_an_endless_one_shot_iterator_goes_on_where_the_last_pass_stopped():
    stream = pescador.Streamer(itertools.cycle("ab"))  # pescador restarts it: "aba" twice
    assert "".join(stream.iterate(max_iter=3)) == "aba"
    assert "".join(stream.iterate(max_iter=3)) == "bab"


def test_an_iterator_class_without_copy_streams_once():
    class Queue:  # a shallow copy would share the list it pops
        def __init__(self):
            self.items = [1, 2, 3]

        def __iter__(self):
            return self

        def __next__(self):
            if not self.items:
                raise StopIteration
            return self.items.pop(0)

    stream = pescador.Streamer(Queue())
    assert list(stream) == [1, 2, 3]
    with pytest.raises(pescador.SpentSourceError, match="streams once"):
        list(stream)


# -- Streamer.active, and with blocks ------------------------------------------


def test_active_counts_the_open_passes_as_pescador_does():
    def count_up(n):
        yield from range(n)

    stream = pescador.Streamer(count_up, 3)
    assert stream.active == 0
    with stream:
        assert stream.active == 1
        with stream:
            assert stream.active == 2
        assert stream.active == 1
    assert stream.active == 0
    first = iter(stream)
    assert stream.active == 0  # a pass counts from its first item
    next(first)
    second = stream.iterate()
    next(second)
    assert stream.active == 2
    assert list(first) == [1, 2]
    assert stream.active == 1  # ended
    second.close()
    assert stream.active == 0  # closed
    cycling = stream.cycle()
    assert [next(cycling) for _ in range(5)] == [0, 1, 2, 0, 1]
    assert stream.active == 1  # one activation, pass after pass
    cycling.close()
    it = stream.iterator()
    next(it)
    assert stream.active == 1
    it.close()
    assert stream.active == 0


def test_active_of_a_streamer_in_a_mux_is_the_muxs():
    # pescador activates copies of a mux's streamers: their activations are not theirs.
    inner = pescador.Streamer("abc")
    mux = pescador.ChainMux([inner, pescador.Streamer("de")])
    items = iter(mux)
    next(items)
    assert (inner.active, mux.active) == (0, 1)
    items.close()
    assert (inner.active, mux.active) == (0, 0)


def test_active_after_an_error_in_the_pass():
    def fails():
        yield 1
        raise OSError("disk")

    stream = pescador.Streamer(fails)
    items = iter(stream)
    next(items)
    with pytest.raises(OSError, match="disk"):
        next(items)
    assert stream.active == 0


def test_exiting_a_streamer_more_times_than_it_was_entered_is_a_pescador_error():
    stream = pescador.Streamer(range(3))
    with pytest.raises(pescador.PescadorError, match=r"exited more times than it was entered"):
        stream.__exit__(None, None, None)
    with stream as items:  # a later block still works, and closes its pass
        assert next(items) == 0
    assert stream.active == 0
    with pytest.raises(ValueError, match=r"exited more times than it was entered"):
        stream.__exit__(None, None, None)


# -- resuming a leaf: resume_arg, a source with a state of its own, a one-shot source ---


def test_resume_arg_starts_the_source_at_the_position():
    calls = []

    @shoal.streamable
    @shoal.resume_arg("start")
    def rows(n, start=0):
        calls.append(start)
        yield from range(start, n)

    it = rows(1000).iterator()
    assert [next(it) for _ in range(600)] == list(range(600))
    resumed = rows(1000).iterator()
    resumed.load_state_dict(roundtrip(it.state_dict()))
    assert next(resumed) == 600
    assert calls == [0, 600]  # started at 600, not replayed from 0


class Countdown:
    """A source whose iterators keep their own state."""

    def __iter__(self):
        return CountdownIterator()


class CountdownIterator:
    def __init__(self):
        self.value = 10
        self.loads = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.value == 0:
            raise StopIteration
        self.value -= 1
        return self.value

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.loads += 1
        self.value = state["value"]


def test_a_source_with_its_own_state_is_restored_through_it():
    it = Streamer(Countdown()).iterator()
    assert [next(it), next(it), next(it)] == [9, 8, 7]
    state = roundtrip(it.state_dict())
    assert state["state"]["child"] == {"source": {"value": 7}}
    resumed = Streamer(Countdown()).iterator()
    resumed.load_state_dict(state)
    assert list(resumed) == [6, 5, 4, 3, 2, 1, 0]


def test_a_skipped_source_must_give_the_same_items():
    lengths = [10]

    def shrinking():
        yield from range(lengths[0])

    it = Streamer(shrinking).iterator()
    for _ in range(8):
        next(it)
    state = it.state_dict()
    lengths[0] = 5
    resumed = Streamer(shrinking).iterator()
    with pytest.raises(ShoalValueError, match="after 8 items: it now yields only 5"):
        resumed.load_state_dict(state)
        next(resumed)


def test_a_one_shot_source_cannot_be_restored_and_says_so_at_the_load():
    it = Streamer(i for i in range(10)).iterator()  # a generator: one-shot
    next(it)
    resumed = Streamer(i for i in range(10)).iterator()
    with pytest.raises(ShoalValueError, match="wraps an iterator, which cannot be rewound"):
        resumed.load_state_dict(it.state_dict())
    assert list(resumed) == list(range(10))  # refused: it goes on as it was


# -- shard: a Streamer over a mux shards the mux, any other is one stream ------


def test_a_streamer_over_a_mux_shards_the_mux():
    wrapped = Streamer(ChainMux(tagged(4)))
    assert list(wrapped.shard(1, 2)) == [(1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]


def one_stream():
    yield from range(3)


@pytest.mark.parametrize("stream", [Streamer(one_stream), Streamer([1, 2]),
                                    Streamer(buffer_stream, [1, 2, 3, 4], 2)],
                         ids=["function", "list", "map over a list"])
def test_one_stream_cannot_be_split(stream):
    with pytest.raises(shoal.ShoalValueError,
                       match="is one stream: it cannot be split into 2 shares without giving "
                             "each the same items"):
        stream.shard(0, 2)
