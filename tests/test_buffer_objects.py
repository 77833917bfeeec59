"""buffer_stream over items that carry Python objects: batched as pescador 3.0 batches them."""

import numpy as np
import pytest

from shoal import DataError, Streamer, buffer_stream

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
