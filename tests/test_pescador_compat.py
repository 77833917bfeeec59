"""Code written for pescador 3.0 runs unchanged with ``import shoal as pescador``."""

import collections
import itertools
import pickle
import sys

import numpy as np
import pytest
from resume_checker import assert_resumes_exactly

import shoal as pescador


@pescador.streamable
def data_gen(seed, n, dim=4):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield {"X": rng.normal(size=dim).astype(np.float32), "y": np.int64(seed)}


def test_training_pipeline_as_written_for_pescador():
    streams = [data_gen(i, 20) for i in range(6)]
    mux = pescador.StochasticMux(streams, n_active=3, rate=8, random_state=42)
    batches = pescador.buffer_stream(mux, 16)
    for step, (X, y) in enumerate(pescador.tuples(batches, "X", "y")):
        assert X.shape == (16, 4) and X.dtype == np.float32
        assert y.shape == (16,)
        if step == 10:
            break


def test_keras_style_generators_as_written_for_pescador():
    streams = [data_gen(i, 5) for i in range(3)]
    train = pescador.ShuffledMux(streams, weights=[0.5, 0.25, 0.25], random_state=0)
    batches = pescador.maps.keras_tuples(pescador.maps.buffer_stream(train, 8), inputs="X", outputs="y")
    x, y = next(batches)
    assert x.shape == (8, 4) and y.shape == (8,)
    validation = pescador.ChainMux([data_gen(i, 5) for i in range(3)], mode="cycle")
    labels = [int(item["y"]) for item in validation(max_iter=30)]
    assert labels == ([0] * 5 + [1] * 5 + [2] * 5) * 2


def test_module_paths_and_classic_calls():
    streamer = pescador.core.Streamer(data_gen, 1, 3)
    assert len(list(streamer.iterate())) == 3
    assert len(list(streamer.cycle(max_iter=7))) == 7
    assert len(list(streamer(max_iter=2))) == 2
    assert len(list(streamer(cycle=True, max_iter=5))) == 5
    assert isinstance(pescador.mux.RoundRobinMux([streamer]), pescador.Streamer)
    assert pescador.util.batch_length({"a": [1, 2]}) == 2
    assert "".join(pescador.RoundRobinMux(["ab", "cd"], mode="cycle")(max_iter=6)) == "acbdac"


def test_pescador_docstring_streamer_examples():
    def my_generator(n):
        for i in range(n):
            yield i

    stream = pescador.Streamer(my_generator, 5)
    assert list(stream) == [0, 1, 2, 3, 4]
    assert list(stream(max_iter=3)) == [0, 1, 2]
    assert list(stream.cycle(max_iter=7)) == [0, 1, 2, 3, 4, 0, 1]


def test_pescador_error_names_catch_shoal_errors():
    with pytest.raises(pescador.PescadorError):
        pescador.StochasticMux([], 1, 2)
    with pytest.raises(pescador.exceptions.PescadorError):
        pescador.ChainMux(["a"], mode="bogus")
    with pytest.raises(pescador.DataError):
        list(pescador.buffer_stream([{"a": np.zeros(2)}, {"a": np.zeros(3)}], 2))


def test_keyword_arguments_by_pescador_names():
    streams = [pescador.Streamer("ab"), pescador.Streamer("cd")]
    mux = pescador.StochasticMux(
        streamers=streams, n_active=2, rate=None, weights=[1, 1], mode="exhaustive",
        prune_empty_streams=True, dist="poisson", random_state=3,
    )
    assert sorted(mux) == ["a", "b", "c", "d"]
    assert len(list(pescador.cache(stream=pescador.Streamer("abcdef"), n_cache=2, prob=0.5, random_state=1))) >= 6
    assert next(pescador.buffer_stream(stream=streams[0], buffer_size=2, partial=False, axis=None)).tolist() == ["a", "b"]


# -- Streamer.active ------------------------------------------------------------


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


# -- pescador's modules and names -----------------------------------------------


def test_pescador_modules_and_names():
    from shoal.zmq_stream import ZMQStreamer

    assert ZMQStreamer is pescador.ZMQStreamer is pescador.zmq_stream.ZMQStreamer
    assert pescador.version.version == pescador.__version__
    assert pescador.__version__.startswith(pescador.version.short_version + ".")
    assert pescador.version.short_version.count(".") == 1
    assert pescador.get_rng is pescador.util.get_rng
    assert pescador.mux.get_rng is pescador.maps.get_rng is pescador.get_rng


# -- iterators as sources ---------------------------------------------------------


class Countdown:
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
        return Countdown(self.n)


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
    "class with __copy__": (lambda: Countdown(3), [2, 1, 0]),
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


def numbers():
    yield from range(3)


ONE_SHOT = {
    "generator": lambda: numbers(),
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


def test_exiting_a_streamer_more_times_than_it_was_entered_is_a_pescador_error():
    stream = pescador.Streamer(range(3))
    with pytest.raises(pescador.PescadorError, match=r"exited more times than it was entered"):
        stream.__exit__(None, None, None)
    with stream as items:  # a later block still works, and closes its pass
        assert next(items) == 0
    assert stream.active == 0
    with pytest.raises(ValueError, match=r"exited more times than it was entered"):
        stream.__exit__(None, None, None)
