"""Fuzz every public constructor, method argument and map with odd values.

Every call either works, and then iterating what it made raises nothing but
shoal's own errors, or it raises shoal's error at the call, naming the
parameter (catchable as ValueError or TypeError too). Nothing hangs: the
iteration is bounded, and an alarm fails a call that takes too long.
"""

import copy
import json
import math
import random
import sys
import warnings
from itertools import islice

import numpy as np
import pytest
from hang_guard import no_hang
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pipelines import PIPELINES

from shoal import (
    ChainMux,
    DataError,
    ProcessStreamer,
    RoundRobinMux,
    ShoalError,
    ShoalValueError,
    ShuffledMux,
    StochasticMux,
    Streamer,
    ZMQStreamer,
    buffer_stream,
    cache,
    keras_tuples,
    resume_arg,
    streamable,
    tuples,
)

# derandomize: the same examples on every run, so that the suite is never flaky.
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _gen():
    yield from range(3)


def _dict_items():
    for i in range(4):
        yield {"x": np.full(2, i), "y": i}


# Odd values: of every type the parameters take, out of range, and of other types.
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.sampled_from([2**31, 2**63, 2**64 + 1, 10**20, -(2**63), sys.maxsize + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e20, 1e308, -1e308, 0.5, 1.5, 1e-300]),
    st.text(max_size=4),
    st.binary(max_size=3),
    st.lists(st.integers(-2, 3), max_size=4),
    st.lists(st.text(max_size=2), max_size=3),
    st.lists(st.floats(allow_nan=True), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sampled_from([
        np.array(5), np.array([1.0, 2.0]), np.array([[1, 2]]), np.array(["a", "b"]),
        np.int64(3), np.float32(2.5), np.bool_(True), np.uint8(255), 1 + 2j,
        "exhaustive", "cycle", "with_replacement", "poisson", "x", ("x", "y"),
        object(), lambda n: [1, 1], lambda *a, **k: 7, _gen, Streamer("ab"), ChainMux(["ab"]), {1, 2},
    ]),
)


def sum_overflows(weights):
    """Finite weights whose sum overflows: item 4 of the same issue, tested on its own."""
    try:
        values = [float(w) for w in weights]
    except (TypeError, ValueError, OverflowError):
        return False
    return all(map(math.isfinite, values)) and not math.isfinite(math.fsum(
        v / 2 for v in values) * 2)


def check(call, names, n_items=25):
    """Run ``call``: it works, or raises shoal's error naming one of ``names``.

    ``n_items=None`` only calls (worker processes are not started).
    """
    with no_hang(10):
        try:
            made = call()
        except ShoalError as exc:
            assert isinstance(exc, (ValueError, TypeError, RuntimeError)), repr(exc)
            assert any(name in str(exc) for name in names), f"{names} not named in: {exc}"
            return None
        if n_items is not None:
            drain(made, n_items)
        return made


def drain(made, n_items):
    """Take a few items of what a call made: only shoal's errors may come out."""
    try:
        if isinstance(made, Streamer):
            list(made.iterate(max_iter=n_items))
            it = made.iterator()
            list(islice(it, n_items))
            json.dumps(it.state_dict())
            it.close()
        elif hasattr(made, "__next__"):
            list(islice(made, n_items))
            close = getattr(made, "close", None)
            if close is not None:
                close()
    except ShoalError:
        pass  # a clear error about the data (an empty cycle, a batch of mixed shapes)


def pick(draw, defaults):
    """``defaults`` with one or two of them replaced by odd values; the names replaced."""
    names = draw(st.lists(st.sampled_from(sorted(defaults)), min_size=1, max_size=2,
                          unique=True))
    arguments = dict(defaults)
    for name in names:
        arguments[name] = draw(ODD)
    return arguments, names


STREAMS = [["ab", "cde"], [Streamer("ab"), Streamer(range(3))], ["ab"]]


# -- recipes --------------------------------------------------------------------


@FUZZ
@given(st.data())
def test_streamer(data):
    source = data.draw(ODD)
    args = data.draw(st.lists(ODD, max_size=2))
    check(lambda: Streamer(source, *args), ["source", "arguments"])


@FUZZ
@given(ODD)
def test_streamable_and_resume_arg(value):
    check(lambda: streamable(value), ["streamable"])
    check(lambda: resume_arg(value), ["resume_arg"])


MUXES = {
    ChainMux: {"mode": "exhaustive", "random_state": None},
    RoundRobinMux: {"mode": "exhaustive", "random_state": None},
    ShuffledMux: {"weights": None, "random_state": 0, "reseed_each_epoch": False},
    StochasticMux: {"n_active": 2, "rate": 3, "weights": None, "mode": "with_replacement",
                    "prune_empty_streams": True, "dist": "binomial", "random_state": 0,
                    "reseed_each_epoch": False},
}


@FUZZ
@given(st.sampled_from(list(MUXES)), st.sampled_from(STREAMS), st.data())
def test_muxes(mux, streams, data):
    arguments, names = pick(data.draw, {"streamers": streams, **MUXES[mux]})
    weights = arguments.get("weights")
    assume(weights is None or not sum_overflows(weights))
    names = ["streamers" if name == "streamers" else name for name in names]
    if "weights" in names:
        names.append("weights(")  # a schedule's weights are named with their call
    if "mode" in names and mux is StochasticMux:
        names.append("n_active")  # a mode may make n_active too large
    check(lambda: mux(**arguments), names + ["streamer"])


@FUZZ
@given(st.sampled_from(["iterate", "cycle", "call", "iterator", "shard"]), st.data())
def test_methods(method, data):
    stream = data.draw(st.sampled_from([Streamer("abc"), ChainMux(["ab", "c"]),
                                        ShuffledMux(["ab", "c"], random_state=1)]))
    a, b = data.draw(ODD), data.draw(ODD)
    calls = {
        "iterate": (lambda: stream.iterate(a), ["max_iter"]),
        "cycle": (lambda: stream.cycle(a), ["max_iter"]),
        "call": (lambda: stream(a, b), ["max_iter", "cycle"]),
        "iterator": (lambda: stream.iterator(a), ["cycle"]),
        "shard": (lambda: stream.shard(a, b), ["index", "count", "one stream"]),
    }
    call, names = calls[method]
    check(call, names)


# -- maps -------------------------------------------------------------------------


MAPS = {
    buffer_stream: {"buffer_size": 2, "partial": False, "axis": None},
    cache: {"n_cache": 2, "prob": 0.5, "random_state": 0},
    keras_tuples: {"inputs": "x", "outputs": "y"},
}


@FUZZ
@given(st.sampled_from(list(MAPS)), st.booleans(), st.data())
def test_maps(function, as_streamer, data):
    arguments, names = pick(data.draw, {"stream": Streamer(_dict_items), **MAPS[function]})
    if as_streamer:  # pescador's way: a Streamer over the map, resumable in shoal
        stream = arguments.pop("stream")
        check(lambda: Streamer(function, stream, **arguments), names + ["source"])
    else:
        check(lambda: function(**arguments), names)


@FUZZ
@given(st.lists(ODD, max_size=3), st.data())
def test_tuples(keys, data):
    stream = data.draw(st.one_of(st.just(Streamer(_dict_items)), ODD))
    check(lambda: tuples(stream, *keys), ["keys", "key", "stream", "tuples"])


# -- maps over items of mixed kinds ---------------------------------------------------


# What a stream may give, on purpose or by mistake: values of every kind, and
# items that are dicts of them, tuples, lists or the values themselves.
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, width=32),
    st.text(max_size=2),
    st.binary(max_size=2),
    st.sampled_from([np.zeros(2), np.ones(3), np.array(1.5), np.zeros((2, 2)), np.zeros(0),
                     np.array(["a", "b"]), np.zeros(2, dtype=object), np.int64(2),
                     np.float32(1.5), 1 + 2j]),
    st.tuples(st.integers(0, 2), st.integers(0, 2)),
    st.lists(st.integers(0, 2), max_size=3),
)
_NESTED = st.one_of(_VALUES, st.dictionaries(st.sampled_from("ab"), _VALUES, max_size=2))
MIXED_ITEMS = st.lists(st.one_of(
    _NESTED,
    st.dictionaries(st.sampled_from(["x", "y", 0]), _NESTED, max_size=3),
    st.tuples(_NESTED, _NESTED),
    st.lists(_NESTED, max_size=3),
), min_size=1, max_size=4)


def works_or_names_the_item(call):
    """``call()``, or None if it raised shoal's DataError naming the item (nothing else)."""
    try:
        return call()
    except DataError as exc:
        assert "item" in str(exc), f"no item named in: {exc}"
        return None


def numpy_batch(items, key):
    """numpy's array of the items' values at ``key``, as pescador batches them; None if it fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.array([item[key] for item in items])
    except (ValueError, TypeError):
        return None


@FUZZ
@given(MIXED_ITEMS, st.sampled_from([None, 0]))
def test_maps_over_items_of_mixed_kinds(items, axis):
    n = len(items)
    works_or_names_the_item(lambda: list(Streamer(buffer_stream, Streamer(items), n, axis=axis)))
    for stream in (items, Streamer(items)):
        batches = works_or_names_the_item(
            lambda s=stream: list(buffer_stream(s, n, partial=True, axis=axis)))
        works_or_names_the_item(lambda s=stream: list(tuples(s, "x")))
        works_or_names_the_item(lambda s=stream: list(tuples(s, "x", 0)))
        works_or_names_the_item(lambda s=stream: list(keras_tuples(s, inputs="x", outputs=["y"])))
        assert len(list(cache(stream, 2, random_state=0))) >= n  # any item is cached as it is
    # Dicts with the same keys batch as pescador batches them, key by key: numpy's
    # array of the values, where numpy makes one of numbers, or of strings alone.
    if axis is None and all(type(item) is dict and item.keys() == items[0].keys()
                            for item in items):
        for key in items[0]:
            expected = numpy_batch(items, key)
            if expected is None or expected.dtype == object or (
                    expected.dtype.kind in "US" and not all(
                        isinstance(item[key], (str, bytes)) for item in items)):
                continue
            assert batches is not None, f"a batch pescador makes was refused: {items}"
            got = batches[0][key]
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)


# -- iterators: weights and states -------------------------------------------------


@FUZZ
@given(ODD)
def test_set_weights(weights):
    assume(weights is None or not sum_overflows(weights))
    it = ShuffledMux(["ab", "cd"], random_state=0).iterator()
    next(it)
    check(lambda: it.set_weights(weights), ["weights"])
    list(islice(it, 3))
    it.close()


PATHS_OF = {}


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def _replace(state, path, value):
    state = copy.deepcopy(state)
    if not path:
        return value
    node = state
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return state


STATE_PIPELINES = sorted(PIPELINES)
STATE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 50), st.sampled_from([2**40, 2**63, -(2**70)]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
    st.lists(st.integers(-2, 9), max_size=4), st.dictionaries(st.text(max_size=2),
                                                              st.integers(0, 3), max_size=2),
)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.sampled_from(STATE_PIPELINES), st.integers(0, 40), st.data())
def test_load_state_dict_of_a_corrupted_state(name, position, data):
    make = PIPELINES[name]
    it = make().iterator()
    list(islice(it, position))
    state = json.loads(json.dumps(it.state_dict()))
    it.close()
    paths = list(_paths(state))
    path = data.draw(st.sampled_from(paths))
    value = data.draw(STATE_VALUES)
    corrupted = _replace(state, path, value)
    resumed = make().iterator()
    with no_hang(10):
        try:
            resumed.load_state_dict(corrupted)
        except ShoalError as exc:
            assert isinstance(exc, ValueError), repr(exc)
            return
        try:
            list(islice(resumed, 30))
        except ShoalError:
            pass  # found later, but said clearly (a source that gives fewer items, ...)
        finally:
            resumed.close()


# -- worker processes: their arguments (no process is started) ----------------------


@FUZZ
@given(st.data())
def test_process_streamer_arguments(data):
    arguments, names = pick(data.draw, {
        "stream": Streamer("ab"), "n_workers": 1, "prefetch": 4, "ordered": True,
        "start_method": "fork", "timeout": 5.0, "shared_memory_bytes": 2**20,
    })
    if "start_method" in names and arguments["start_method"] is None:
        arguments["start_method"] = "fork"
    check(lambda: ProcessStreamer(**arguments), names, n_items=None)


@FUZZ
@given(st.data())
def test_zmq_streamer_arguments(data):
    arguments, names = pick(data.draw, {
        "streamer": Streamer("ab"), "min_port": 49152, "max_port": 65535, "max_tries": 10,
        "copy": False, "timeout": 5,
    })
    check(lambda: ZMQStreamer(**arguments), names + ["ports"], n_items=None)


def test_the_fuzz_sees_the_errors_it_must_see():
    # The checker fails a bare error at the call, and an error that names another parameter.
    with pytest.raises(AssertionError, match="not named"):
        check(lambda: ShuffledMux(["a"], weights="x"), ["random_state"])
    with pytest.raises(ValueError, match="math domain"):
        check(lambda: math.sqrt(-1), ["x"])


# -- the bad input the issue lists, one by one --------------------------------------


@pytest.mark.parametrize("call, error, message", [
    (lambda: StochasticMux(["ab"], 1, 1e20), ValueError, r"rate must be at most 2\*\*53"),
    (lambda: StochasticMux(["ab"], 10**8, 2, mode="with_replacement"), ValueError,
     r"n_active must be at most the number of streamers plus 2\*\*16 \(65537\), got 100000000"),
    (lambda: buffer_stream(["a"], sys.maxsize + 1), ValueError, r"buffer_size must be at most"),
    (lambda: cache(["a"], 10**30), ValueError, r"n_cache must be at most"),
    (lambda: ChainMux(np.array(5)), TypeError, r"streamers must be a collection.*array\(5\)"),
    (lambda: RoundRobinMux(np.array(5)), TypeError, r"streamers must be a collection"),
    (lambda: Streamer(np.array(5)), TypeError, r"source must be .*array\(5\)"),
    (lambda: buffer_stream(np.array(5), 2), TypeError, r"stream must be iterable"),
    (lambda: keras_tuples([], inputs=np.array(5)), TypeError, r"inputs must be None, a key"),
    (lambda: ShuffledMux(["a", "b"], weights=["1", "2"]), TypeError,
     r"weights must be a sequence of numbers, got \['1', '2'\]"),
    (lambda: Streamer("ab")(cycle="yes"), TypeError, r"cycle must be True or False, got 'yes'"),
    (lambda: Streamer("ab").iterator(cycle="yes"), TypeError, r"cycle must be True or False"),
    (lambda: list(buffer_stream([{"a": 1}, np.zeros(2)], 2)), DataError,
     r"item 1 of a batch is array\(\[0\., 0\.\]\) \(ndarray\), but the first item is a dict"),
    (lambda: Streamer(_dict_items, 3), TypeError, r"do not fit source"),
    (lambda: Streamer(buffer_stream, Streamer("ab"), 0), ValueError, r"buffer_size must be >= 1"),
    (lambda: ShuffledMux(["a"], weights=lambda: [1]), TypeError, r"weights is a schedule"),
])
def test_bad_input_is_refused_at_the_call(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert isinstance(info.value, ShoalError)


def test_max_iter_beyond_sys_maxsize_means_no_limit():
    assert list(Streamer("abc").iterate(max_iter=sys.maxsize * 4)) == ["a", "b", "c"]
    assert list(islice(ChainMux(["ab"], mode="cycle").cycle(max_iter=10**30), 5)) == list("ababa")


@pytest.mark.parametrize("path, value, message", [
    (["state", "child", "given"], "7", r"state\['state'\]\['child'\]\['given'\]: it must be a whole"),
    (["state", "child", "given"], 10**12, r"\['given'\]: it must be 3, the count of its parent"),
    (["state", "epoch"], None, r"state\['state'\]\['epoch'\]"),
    (["state", "child"], True, r"state\['state'\]\['child'\]: it must be None or a dict"),
    (["n_given"], -1, r"state\['n_given'\]"),
])
def test_a_corrupted_state_names_its_field(path, value, message):
    it = Streamer(_dict_items).iterator()
    list(islice(it, 3))
    state = it.state_dict()
    node = state
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    resumed = Streamer(_dict_items).iterator()
    next(resumed)
    with pytest.raises(ShoalValueError, match=message):
        resumed.load_state_dict(state)
    assert next(resumed)["y"] == 1  # a refused state leaves the iteration as it was


# Plain values a corruption writes: counts at and past the limits, wrong types, shapes of
# the fields of other kinds (a child's progress, a list of streamer numbers...).
CORRUPT_VALUES = [None, True, False, -1, 0, 1, 2, 3, 7, 50, 2**40, 2**63, -(2**70), 0.5,
                  float("nan"), float("inf"), "", "a", "0", [], [0], [1, 2], [-1], [0, 0], {},
                  {"a": 1}, {"0": 1}, {"n": 1, "state": None}, {"n": 0, "state": {"given": 5}}]


def test_many_random_corruptions_of_states_are_refused_or_run():
    # A seeded sweep beside the hypothesis test above: 20,000 states, each with one to
    # three fields replaced, over every pipeline and position. Each is refused at the
    # load with a ShoalValueError, or runs, or says what is wrong with a ShoalError:
    # never a bare error from deep inside, never a hang. (It found a ShuffledMux state
    # whose open streamer had no activation counted: a bare struct.error.)
    rng = random.Random(20261205)
    names = sorted(PIPELINES)
    bare = []
    for _ in range(20_000):
        name = rng.choice(names)
        it = PIPELINES[name]().iterator()
        list(islice(it, rng.randint(0, 40)))
        state = json.loads(json.dumps(it.state_dict()))
        it.close()
        paths = [path for path in _paths(state) if path]
        changes = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            path = rng.choice(paths)
            value = copy.deepcopy(rng.choice(CORRUPT_VALUES))
            try:
                state = _replace(state, path, value)
            except (KeyError, IndexError, TypeError):  # an earlier change removed its parent
                continue
            changes.append((path, value))
        resumed = PIPELINES[name]().iterator()
        try:
            with no_hang(10):
                try:
                    resumed.load_state_dict(state)
                except ShoalError as exc:
                    assert isinstance(exc, ValueError), repr(exc)  # refused at the load
                    continue
                list(islice(resumed, 30))
        except ShoalError:
            pass  # found later, but said clearly (a source that gives fewer items, ...)
        except Exception as exc:  # what must not happen: collected
            bare.append(f"{name}: {changes}: {type(exc).__name__}: {exc}")
        finally:
            resumed.close()
    assert not bare, "\n".join(bare[:10])
