"""The maps: buffer_stream, tuples, keras_tuples and cache."""

import collections.abc
import copy
import inspect
import itertools
from itertools import islice

import numpy as np
import pytest

import shoal
from shoal import (
    ChainMux,
    DataError,
    DataKeyError,
    ShoalError,
    ShoalTypeError,
    ShoalValueError,
    Streamer,
    buffer_stream,
    cache,
    keras_tuples,
    tuples,
)


def examples(n, dim=3):
    for i in range(n):
        yield {"x": np.full(dim, i, dtype=np.float32), "y": i}


class Closing:
    def __init__(self, items):
        self.items = items
        self.closed = 0

    def __call__(self):
        try:
            yield from self.items
        finally:
            self.closed += 1


# -- buffer_stream -----------------------------------------------------------


def test_buffer_stacks_dicts_key_by_key():
    batches = list(buffer_stream(Streamer(examples, 5), 2))
    assert len(batches) == 2  # the partial last batch is dropped
    assert batches[0]["x"].shape == (2, 3)
    assert batches[0]["x"].dtype == np.float32
    np.testing.assert_array_equal(batches[1]["y"], [2, 3])


def test_buffer_keeps_a_partial_last_batch_when_asked():
    batches = list(buffer_stream(Streamer(examples, 5), 2, partial=True))
    assert [len(b["y"]) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(batches[2]["x"], [[4, 4, 4]])


def test_buffer_stacks_tuples_lists_and_arrays():
    tuple_batches = list(buffer_stream([(np.zeros(2), 1), (np.ones(2), 2)], 2))
    assert isinstance(tuple_batches[0], tuple)
    np.testing.assert_array_equal(tuple_batches[0][0], [[0, 0], [1, 1]])
    np.testing.assert_array_equal(tuple_batches[0][1], [1, 2])
    list_batches = list(buffer_stream([[1, "a"], [2, "b"]], 2))
    assert isinstance(list_batches[0], list)
    assert list_batches[0][1].tolist() == ["a", "b"]
    array_batches = list(buffer_stream([np.eye(2), np.eye(2) * 2], 2))
    assert array_batches[0].shape == (2, 2, 2)
    scalar_batches = list(buffer_stream(range(6), 3))
    assert [b.tolist() for b in scalar_batches] == [[0, 1, 2], [3, 4, 5]]


def test_buffer_along_an_existing_axis_joins_batches():
    small = [{"x": np.full((2, 4), i)} for i in range(4)]
    batches = list(buffer_stream(small, 2, axis=0))
    assert batches[0]["x"].shape == (4, 4)
    wide = list(buffer_stream(small, 2, axis=1))
    assert wide[0]["x"].shape == (2, 8)


def test_buffer_of_a_mux_and_of_a_generator():
    from shoal import ChainMux

    mux = ChainMux([Streamer(examples, 3), Streamer(examples, 3)])
    assert [b["y"].tolist() for b in buffer_stream(mux, 3)] == [[0, 1, 2], [0, 1, 2]]
    assert len(list(buffer_stream(examples(4), 2))) == 2


def test_buffer_of_an_infinite_stream_is_lazy():
    batches = buffer_stream(Streamer(examples, 10).cycle(), 4)
    assert [next(batches)["y"].tolist() for _ in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]


@pytest.mark.parametrize(
    "items, error, message",
    [
        ([{"x": 1, "y": 2}, {"x": 1}], DataKeyError, r"item 1 of a batch has no key 'y'"),
        ([{"x": 1}, {"x": 1, "z": 2}], DataKeyError, r"item 1 of a batch has keys the first item lacks: \['z'\]"),
        ([{"x": np.zeros(3)}, {"x": np.zeros(4)}], DataError, r"under key 'x': their shapes differ \(\[\(3,\), \(4,\)\]\)"),
        ([{"x": np.zeros((2, 2))}, {"x": np.zeros(4)}], DataError, r"under key 'x': their shapes differ"),
        ([{"x": 1}, 5], DataError, r"item 1 of a batch is 5 \(int\), but the first item is a dict"),
        ([(1, 2), (1,)], DataError, r"item 1 of a batch has 1 fields, the first item has 2"),
        ([(1, 2), "ab"], DataError, r"item 1 of a batch is 'ab' \(str\), but the first item is a tuple"),
        ([(np.zeros(2), 1), (np.zeros(3), 1)], DataError, r"under key 0: their shapes differ"),
    ],
)
def test_buffer_of_mismatched_items_names_the_key(items, error, message):
    with pytest.raises(error, match=message) as info:
        list(buffer_stream(items, 2))
    assert isinstance(info.value, ShoalError)


@pytest.mark.parametrize(
    "items, message",
    [
        ([{}, None], r"item 1 of a batch is None \(NoneType\), but the first item is a dict"),
        ([{"x": 1}, None], r"item 1 of a batch is None \(NoneType\), but the first item is a dict"),
        ([{}, ""], r"item 1 of a batch is '' \(str\), but the first item is a dict"),
        ([{0: 1}, [1]], r"item 1 of a batch is \[1\] \(list\), but the first item is a dict"),
        ([{0: 1}, np.zeros((2, 2))], r"item 1 of a batch is array\(\[\[0\., 0\.\],"),
        ([{"x": 1}, {"x": 2}, np.zeros(0)],
         r"item 2 of a batch is array\(\[\], dtype=float64\) \(ndarray\), but the first"),
        ([{0: 1}, [[1]], {}], r"item 1 of a batch is \[\[1\]\] \(list\), but the first item is a dict"),
        ([{"x": np.zeros(3)}, {"x": np.zeros(3)}, {"x": np.zeros(4)}],
         r"their shapes differ \(\[\(3,\), \(4,\)\]\); item 2 has array\(\[0\., 0\., 0\., 0\.\]\) "
         r"\(shape \(4,\)\), item 0 has shape \(3,\)"),
        ([1, 2, np.zeros(2)], r"their shapes differ \(\[\(\), \(2,\)\]\); item 2 is array\(\[0\., 0\.\]\) "
         r"\(shape \(2,\)\), item 0 has shape \(\)"),
        ([b"\x90", "a"], r"cannot batch the values: 'ascii' codec can't decode .*; item 1 is 'a' "
         r"\(str\), item 0 is b'\\x90' \(bytes\)"),
    ],
)
def test_a_batch_of_mixed_kinds_is_a_data_error_naming_the_item(items, message):
    # [{}, None] raised a bare TypeError (len(None)); [{0: 1}, np.zeros((2, 2))] a
    # TypeError (unhashable); [{}, ""] and [{0: 1}, [1]] were batched as if the
    # str and the list were dicts; [{0: 1}, [[1]], {}] said the list lacked key 0.
    with pytest.raises(DataError, match=message) as info:
        list(buffer_stream(items, len(items)))
    assert isinstance(info.value, ShoalError)
    with pytest.raises(DataError, match=message):  # pescador's way, resumable in shoal
        list(Streamer(buffer_stream, Streamer(items), len(items)))


def test_an_error_of_a_mapping_item_itself_passes_through():
    class Broken(collections.abc.Mapping):
        def __getitem__(self, key):
            raise RuntimeError("cannot read this record")

        def __iter__(self):
            return iter(["x"])

        def __len__(self):
            return 1

    with pytest.raises(RuntimeError, match="cannot read this record"):
        list(buffer_stream([{"x": 1}, Broken()], 2))


def test_mappings_of_any_kind_and_empty_dicts_batch_as_in_pescador():
    class Record(collections.abc.Mapping):
        def __init__(self, **fields):
            self.fields = fields

        def __getitem__(self, key):
            return self.fields[key]

        def __iter__(self):
            return iter(self.fields)

        def __len__(self):
            return len(self.fields)

    batch = next(buffer_stream([Record(x=1, y=2.5), {"x": 3, "y": 4.5}], 2))
    assert batch["x"].tolist() == [1, 3] and batch["y"].tolist() == [2.5, 4.5]
    assert next(buffer_stream([{}, {}], 2)) == {}
    batch = next(buffer_stream([{0: "a", 1: None}, {0: "b", 1: 2}], 2))
    assert batch[0].tolist() == ["a", "b"] and batch[1].tolist() == [None, 2]


def test_buffer_mismatch_along_an_axis_names_the_key():
    with pytest.raises(DataError, match="under key 'x'"):
        list(buffer_stream([{"x": np.zeros((1, 2))}, {"x": np.zeros((1, 3))}], 2, axis=0))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"buffer_size": 0}, ShoalValueError, "buffer_size must be >= 1, got 0"),
        ({"buffer_size": -2}, ShoalValueError, "buffer_size must be >= 1, got -2"),
        ({"buffer_size": 2.0}, ShoalTypeError, r"buffer_size must be an integer, got 2.0 \(float\)"),
        ({"buffer_size": None}, ShoalTypeError, "buffer_size must be an integer, got None"),
        ({"buffer_size": 2, "partial": "yes"}, ShoalTypeError, "partial must be True or False, got 'yes'"),
        ({"buffer_size": 2, "axis": "0"}, ShoalTypeError, "axis must be an integer, got '0'"),
    ],
)
def test_buffer_checks_its_arguments_at_the_call(kwargs, error, message):
    with pytest.raises(error, match=message):
        buffer_stream(examples(4), **kwargs)


def test_maps_refuse_a_stream_that_is_not_iterable():
    for make in (lambda: buffer_stream(5, 2), lambda: tuples(5, "x"),
                 lambda: keras_tuples(5, "x"), lambda: cache(5, 2)):
        with pytest.raises(ShoalTypeError, match=r"stream must be iterable, got 5 \(int\)"):
            make()


def test_buffer_closes_what_it_opened_when_stopped_early():
    source = Closing([{"x": i} for i in range(10)])
    batches = buffer_stream(Streamer(source), 2)
    next(batches)
    batches.close()
    assert source.closed == 1


def test_buffer_does_not_pull_beyond_what_it_needs():
    pulled = []

    def gen():
        for i in range(100):
            pulled.append(i)
            yield i

    batches = buffer_stream(gen(), 4)
    next(batches)
    assert pulled == [0, 1, 2, 3]


# -- tuples and keras_tuples ---------------------------------------------------


def test_tuples_orders_values_by_key():
    items = [{"a": 1, "b": 2, "c": 3}] * 2
    assert list(tuples(items, "c", "a")) == [(3, 1), (3, 1)]
    assert list(tuples(items, "b")) == [(2,), (2,)]


def test_tuples_errors():
    with pytest.raises(ShoalValueError, match="tuples needs at least one key, got none"):
        tuples([{"a": 1}])
    with pytest.raises(ShoalTypeError, match=r"keys must be hashable keys, got \['a'\]"):
        tuples([{"a": 1}], ["a"])
    with pytest.raises(DataKeyError, match=r"item has no key 'b' \(its keys: \['a'\]\)") as info:
        list(tuples([{"a": 1}], "a", "b"))
    assert isinstance(info.value, KeyError)
    with pytest.raises(DataError, match=r"items must be dicts, got 7 \(int\)"):
        list(tuples([7], "a"))


def test_keras_tuples_shapes_x_and_y():
    items = [{"a": 1, "b": 2, "label": 0}]
    assert list(keras_tuples(items, inputs="a", outputs="label")) == [(1, 0)]
    assert list(keras_tuples(items, inputs=["a", "b"], outputs=["label"])) == [([1, 2], [0])]
    assert list(keras_tuples(items, inputs="a")) == [(1, None)]
    assert list(keras_tuples(items, outputs=("label", "a"))) == [(None, [0, 1])]


def test_keras_tuples_errors():
    with pytest.raises(ShoalValueError, match="at least one key in inputs or outputs, got inputs=None, outputs=None"):
        keras_tuples([{"a": 1}])
    with pytest.raises(ShoalValueError, match="got inputs=\\[\\], outputs=None"):
        keras_tuples([{"a": 1}], inputs=[])
    with pytest.raises(ShoalTypeError, match=r"inputs must be None, a key or a list of keys, got 3 \(int\)"):
        keras_tuples([{"a": 1}], inputs=3)
    with pytest.raises(DataKeyError, match="item has no key 'z'"):
        list(keras_tuples([{"a": 1}], inputs="a", outputs="z"))


def test_tuples_and_keras_tuples_close_what_they_opened():
    for make in (lambda s: tuples(s, "a"), lambda s: keras_tuples(s, "a")):
        source = Closing([{"a": i} for i in range(5)])
        gen = make(Streamer(source))
        next(gen)
        gen.close()
        assert source.closed == 1


# -- cache -------------------------------------------------------------------


def test_cache_passes_the_first_items_in_order_then_reuses_them():
    items = list(cache(Streamer(range, 100), 10, prob=0.5, random_state=0))
    assert items[:10] == list(range(10))
    assert len(items) > 100  # reuse stretches the stream
    assert set(items) <= set(range(100))
    assert list(cache(Streamer(range, 100), 10, prob=0.5, random_state=0)) == items


def test_cache_with_prob_one_passes_the_stream_through():
    assert list(cache(range(50), 5, prob=1.0, random_state=1)) == list(range(50))


def test_cache_accepts_streamers_iterables_and_iterators():
    assert list(cache(Streamer(range, 3), 5)) == [0, 1, 2]
    assert list(cache([0, 1, 2], 5)) == [0, 1, 2]
    assert list(cache(iter([0, 1, 2]), 5)) == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"n_cache": 0}, ShoalValueError, "n_cache must be >= 1, got 0"),
        ({"n_cache": 2.5}, ShoalTypeError, "n_cache must be an integer, got 2.5"),
        ({"n_cache": 2, "prob": 0}, ShoalValueError, r"prob must be in \(0, 1\], got 0"),
        ({"n_cache": 2, "prob": 1.5}, ShoalValueError, r"got 1.5"),
        ({"n_cache": 2, "prob": float("nan")}, ShoalValueError, r"got nan"),
        ({"n_cache": 2, "prob": "0.5"}, ShoalTypeError, r"prob must be a number in \(0, 1\], got '0.5'"),
        ({"n_cache": 2, "random_state": "x"}, ShoalTypeError, "random_state must be None"),
    ],
)
def test_cache_checks_its_arguments_at_the_call(kwargs, error, message):
    with pytest.raises(error, match=message):
        cache(range(5), **kwargs)


def test_cache_closes_what_it_opened():
    source = Closing(list(range(100)))
    gen = cache(Streamer(source), 4, random_state=0)
    for _ in range(20):
        next(gen)
    gen.close()
    assert source.closed == 1


def test_cache_first_items_pass_in_order_and_ends_with_stream():
    stream = shoal.Streamer(range, 200)
    out = list(shoal.cache(stream, n_cache=10, prob=0.4, random_state=2))
    assert out[:10] == list(range(10))
    assert set(out) == set(range(200))  # every item of the stream is used
    first_seen = list(dict.fromkeys(out))
    assert first_seen == list(range(200))  # new items come in order
    assert len(out) > 200
    # Shorter than the cache: just the stream.
    assert list(shoal.cache(range(3), n_cache=10, prob=0.4, random_state=2)) == [0, 1, 2]
    assert list(shoal.cache(range(0), n_cache=10, prob=0.4, random_state=2)) == []
    # prob=1 caches nothing: the stream as it is.
    assert list(shoal.cache(range(500), n_cache=10, prob=1, random_state=2)) == list(range(500))


def test_cache_reuses_only_cached_items():
    # The cache only changes when a new item comes in, so between two new
    # items at most n_cache distinct items are reused, all seen before.
    n_cache = 8
    out = list(islice(shoal.cache(itertools.count(), n_cache, 0.2, random_state=6), 20_000))
    seen = set(out[:n_cache])
    highest = n_cache - 1
    window = []  # distinct reused items since the last new item
    for item in out[n_cache:]:
        if item > highest:
            highest = item
            window = []
        else:
            assert item in seen
            if item not in window:
                window.append(item)
            assert len(window) <= n_cache
        seen.add(item)


# -- a map as a stream: Streamer(a map, stream, ...) -----------------------------


def count(n):
    yield from range(n)


def test_a_streamer_over_a_map_reads_as_it_was_made():
    mux = ChainMux(["ab", "cd"])
    batches = Streamer(buffer_stream, mux, 2, partial=True)
    assert isinstance(batches, Streamer)
    assert repr(batches) == "Streamer(buffer_stream, ChainMux(<2 streamers>, mode='exhaustive'), 2, partial=True)"
    assert (batches.source, batches.args, batches.kwargs) == (buffer_stream, (mux, 2), {"partial": True})
    assert type(Streamer(source=buffer_stream, stream=mux, buffer_size=2)) is type(batches)
    assert list(inspect.signature(Streamer).parameters) == ["source", "args", "kwargs"]
    chain = inspect.signature(ChainMux).parameters
    assert list(chain)[:2] == ["streamers", "mode"] and chain["mode"].default == "exhaustive"
    # What makes it resumable is its recipe class, not attributes set on the map functions.
    for function in (buffer_stream, tuples, keras_tuples, cache):
        assert not [name for name in vars(function) if name.startswith("_shoal")], function


def test_a_map_recipe_does_not_change_while_it_is_iterated():
    batches = Streamer(buffer_stream, ChainMux([Streamer(count, 5)]), 2)
    made = dict(vars(batches))
    it = batches.iterator()
    next(it)
    resumed = batches.iterator()
    resumed.load_state_dict(it.state_dict())
    assert [b.tolist() for b in resumed] == [[2, 3]]
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3]]
    assert vars(batches) == made


def test_a_cache_seeded_by_a_generator_draws_its_seed_once_and_resumes():
    # Its seed is drawn from the generator when the Streamer is made; each
    # pass drew a new one, so that a state never loaded (another seed).
    cached = Streamer(cache, Streamer(count, 50), 3, random_state=np.random.default_rng(0))
    assert list(cached) == list(cached) == list(cached.iterator())
    it = cached.iterator()
    before = [next(it) for _ in range(10)]
    resumed = cached.iterator()
    resumed.load_state_dict(it.state_dict())
    assert before + list(resumed) == list(cached)


def test_keras_tuples_keys_given_as_an_iterator_are_read_once():
    # They were read again at every pass, the second time empty.
    pairs = Streamer(keras_tuples, [{"a": 1, "b": 2}], inputs=iter(["a", "b"]))
    assert list(pairs) == list(pairs) == list(pairs.iterator()) == [([1, 2], None)]


def test_the_state_of_a_cache_says_each_thing_once():
    cached = Streamer(cache, Streamer(count, 100), 3, random_state=1)
    it = cached.iterator()
    for _ in range(20):
        next(it)
    state = it.state_dict()["state"]["child"]
    # Its input's state at the snapshot the cache replays from, and the items
    # read up to there (the cache's 'base' once said it again); the cache's own
    # count is of all the input items it read.
    assert set(state) == {"map", "n_input", "input", "cache"}
    assert set(state["cache"]) == {"recipe", "seed", "n_read", "positions", "draws", "ended"}
    assert state["input"] == {"given": state["n_input"]} and state["map"] == "cache"
    assert state["n_input"] <= min(state["cache"]["positions"])
    assert max(state["cache"]["positions"]) == state["cache"]["n_read"] - 1
    assert set(state["cache"]["draws"]) == {"slot", "take_new"}


def test_a_cache_state_that_would_leave_holes_in_the_cache_is_refused_at_the_load():
    cached = Streamer(cache, Streamer(count, 100), 3, random_state=1)
    it = cached.iterator()
    for _ in range(10):
        next(it)
    state = it.state_dict()
    positions = state["state"]["child"]["cache"]["positions"]
    assert len(set(positions)) == 3
    # Two cached items from one input position: the cache gave None for the other.
    duplicated = copy.deepcopy(state)
    duplicated["state"]["child"]["cache"]["positions"] = [positions[0]] * 3
    resumed = cached.iterator()
    with pytest.raises(ShoalValueError, match=r"state is corrupted at state\['state'\]\['child'\]"
                                              r"\['cache'\]\['positions'\]: it must be distinct positions"):
        resumed.load_state_dict(duplicated)
    too_many = copy.deepcopy(state)
    n_read, base = state["state"]["child"]["cache"]["n_read"], state["state"]["child"]["n_input"]
    assert n_read - base >= 4
    too_many["state"]["child"]["cache"]["positions"] = [*range(n_read - 4, n_read)]
    with pytest.raises(ShoalValueError, match=r"at state\['state'\]\['child'\]\['cache'\]"
                                              r"\['positions'\]: it must be at most n_cache=3"):
        resumed.load_state_dict(too_many)
    assert list(resumed)[:3] == [0, 1, 2]  # refused: it goes on as it was


def test_a_map_hands_its_input_the_count_of_the_items_it_read():
    batches = Streamer(buffer_stream, Streamer(count, 10), 3)
    it = batches.iterator()
    next(it)
    state = it.state_dict()
    assert state["state"]["child"]["n_input"] == 3
    state["state"]["child"]["input"]["given"] = 4
    with pytest.raises(ShoalValueError, match=r"state is corrupted at state\['state'\]\['child'\]"
                                              r"\['input'\]\['given'\]: it must be 3, the count of its parent"):
        batches.iterator().load_state_dict(state)


def test_the_state_of_another_map_is_refused_at_the_load():
    def over(function, *args):
        return ChainMux([Streamer(function, Streamer([{"a": i} for i in range(6)]), *args)])

    it = over(tuples, "a").iterator()
    next(it)
    resumed = over(buffer_stream, 2).iterator()
    with pytest.raises(ShoalValueError, match="state is of a 'tuples' map, not of 'buffer_stream'"):
        resumed.load_state_dict(it.state_dict())
    assert next(resumed)["a"].tolist() == [0, 1]



# -- a map in a saved state ----------------------------------------------------


def test_a_state_with_no_root_loads_as_a_fresh_start_through_a_map():
    # The load-time check of a map's input once read the root of a state
    # without looking: a root of None raised a bare TypeError.
    batches = Streamer(shoal.buffer_stream, shoal.ChainMux([Streamer(range(6))]), 2)
    state = batches.iterator().state_dict()
    state["state"] = None
    resumed = batches.iterator()
    resumed.load_state_dict(state)
    assert [batch.tolist() for batch in resumed] == [[0, 1], [2, 3], [4, 5]]


# -- buffer_stream over items that carry Python objects, batched as in pescador 3.0 ------


OBJECT_CASES = {
    "dicts": [{"x": np.zeros(2), "meta": {"path": "a.wav"}},
              {"x": np.ones(2), "meta": {"path": "b.wav", "offset": 3}}],
    "None": [{"x": 1, "meta": None}, {"x": 2, "meta": None}],
    "strings": [{"x": 1, "name": "abc"}, {"x": 2, "name": "de"}],
    "None among numbers": [{"x": 1.5}, {"x": None}],
    "lists of dicts": [{"tags": [{"a": 1}]}, {"tags": [{"b": 2}]}],
}


def _batch(items):
    return next(buffer_stream(iter(items), len(items)))


def _fields(batch):
    if isinstance(batch, dict):
        return sorted(batch.items())
    if isinstance(batch, (tuple, list)):
        return list(enumerate(batch))
    return [(None, batch)]


@pytest.mark.parametrize("name", sorted(OBJECT_CASES))
def test_objects_batch_as_in_pescador(name):
    pescador = pytest.importorskip("pescador")
    items = OBJECT_CASES[name]
    mine = _batch(items)
    theirs = next(pescador.buffer_stream(iter(items), len(items)))
    assert type(mine) is type(theirs)
    for (key, got), (their_key, expected) in zip(_fields(mine), _fields(theirs)):
        assert key == their_key
        assert got.shape == expected.shape, key
        assert got.dtype == expected.dtype, key
        assert got.tolist() == expected.tolist(), key


def test_metadata_rides_along_as_an_object_array_of_shape_n():
    def clips(n):
        for i in range(n):
            yield {"x": np.full(3, i), "meta": {"file": f"f{i}.wav"}, "note": None}

    batch = next(buffer_stream(Streamer(clips, 4), 4))
    assert batch["x"].shape == (4, 3)
    assert batch["meta"].dtype == object and batch["meta"].shape == (4,)
    assert [meta["file"] for meta in batch["meta"]] == ["f0.wav", "f1.wav", "f2.wav", "f3.wav"]
    assert batch["note"].tolist() == [None] * 4


def test_objects_in_tuples_and_as_items_batch_the_same_way():
    # pescador batches dict items only; shoal batches tuples and plain items alike.
    x, meta = _batch([(np.zeros(2), {"id": 1}), (np.ones(2), {"id": 2})])
    assert x.shape == (2, 2)
    assert meta.dtype == object and meta.tolist() == [{"id": 1}, {"id": 2}]
    plain = _batch([None, {"a": 1}])
    assert plain.dtype == object and plain.tolist() == [None, {"a": 1}]


def test_numbers_among_strings_are_kept_as_they_are():
    # numpy (and so pescador) would give array(['1', 'a']): the 1 would become a string.
    batch = _batch([{"m": 1}, {"m": "a"}])
    assert batch["m"].dtype == object
    assert batch["m"].tolist() == [1, "a"]


def test_arrays_of_one_shape_stack_as_before():
    batch = _batch([{"x": np.arange(3, dtype=np.int16)}, {"x": np.arange(3, dtype=np.int16)}])
    assert batch["x"].dtype == np.int16 and batch["x"].shape == (2, 3)


@pytest.mark.parametrize("items, message", [
    ([{"x": np.zeros(3)}, {"x": np.zeros(4)}], r"under key 'x': their shapes differ \(\[\(3,\), \(4,\)\]\)"),
    ([{"x": [1, 2]}, {"x": [3]}], r"under key 'x': their shapes differ"),
    ([{"x": {"a": 1}}, {"x": np.zeros(2)}], r"under key 'x': their shapes differ \(\[\(\), \(2,\)\]\)"),
    ([{"x": np.zeros(2)}, {"x": None}], r"under key 'x': their shapes differ"),
    ([{"x": 1}, np.zeros(2)], r"item 1 of a batch is array\(\[0\., 0\.\]\) \(ndarray\), but the first item is a dict"),
    ([{"x": 1}, [1, 2]], r"item 1 of a batch is \[1, 2\] \(list\), but the first item is a dict"),
])
def test_ragged_or_mixed_batches_are_a_data_error_naming_the_key(items, message):
    with pytest.raises(DataError, match=message):
        _batch(items)


# -- a map over a mux is split by sharding the mux -----------------------------


def test_a_map_over_a_mux_is_split_by_sharding_the_mux():
    mux = ChainMux([Streamer([{"x": k * 10 + i} for i in range(4)]) for k in range(4)])
    batches = Streamer(buffer_stream, mux, 2)
    shares = [batches.shard(i, 2) for i in range(2)]
    # Each share is the same map over a share: a Streamer of the map's own recipe class.
    assert all(type(share) is type(batches) and isinstance(share, Streamer)
               and share.source is buffer_stream for share in shares)
    got = [batch["x"].tolist() for share in shares for batch in share]
    assert sorted(x for batch in got for x in batch) == sorted(item["x"] for item in mux)
    assert [b["x"].tolist() for b in shares[1]] == [[10, 11], [12, 13], [30, 31], [32, 33]]
    assert [pair for pair in Streamer(tuples, mux, "x").shard(1, 2)] == [
        (10,), (11,), (12,), (13,), (30,), (31,), (32,), (33,)]
    assert list(Streamer(keras_tuples, mux, inputs="x").shard(0, 2))[:2] == [(0, None),
                                                                             (1, None)]


def test_a_shared_cache_is_reseeded_for_each_share():
    mux = ChainMux([Streamer(range(k * 100, k * 100 + 50)) for k in range(4)])
    cached = Streamer(cache, mux, 4, 0.5, random_state=3)
    first, second = (list(cached.shard(i, 2)) for i in range(2))
    assert set(first) == set(range(0, 50)) | set(range(200, 250))
    assert set(second) == set(range(100, 150)) | set(range(300, 350))
    assert list(cached.shard(0, 2)) == first  # deterministic
    assert [x % 100 for x in first] != [x % 100 for x in second]  # not the same pattern
