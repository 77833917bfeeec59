"""The contract between a recipe and its node (``shoal._contract``), over every stream kind."""

import pickle
from itertools import islice

import pytest
from pipelines import PIPELINES

import shoal
from shoal._contract import Recipe


def _recipes(stream, seen=None):
    """``stream`` and every recipe reachable from it (streamers of muxes, inputs of maps)."""
    seen = {} if seen is None else seen
    if id(stream) in seen:
        return seen
    seen[id(stream)] = stream
    for value in vars(stream).values():
        values = value if isinstance(value, (tuple, list)) else [value]
        for item in values:
            if isinstance(item, Recipe):
                _recipes(item, seen)
    for value in getattr(stream, "args", ()):
        if isinstance(value, Recipe):
            _recipes(value, seen)
    return seen


def _snapshot(stream):
    """What each recipe of ``stream`` holds: its attributes, by name and identity."""
    return {key: (type(recipe).__name__, {name: id(value) for name, value in vars(recipe).items()})
            for key, recipe in _recipes(stream).items()}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_a_recipe_does_not_change_while_it_is_iterated(name):
    stream = PIPELINES[name]()
    before = _snapshot(stream)
    with stream as items:  # a `with` block, and passes of every kind
        list(islice(items, 3))
        list(islice(stream, 5))
        it = stream.iterator()
        list(islice(it, 7))
        state = it.state_dict()
        resumed = stream.iterator()
        resumed.load_state_dict(state)
        list(islice(resumed, 4))
        resumed.close()
        it.close()
    after = _snapshot(stream)
    # (A chain over an iterator of streamers reads more of them as it goes.)
    assert {key: after.get(key) for key in before} == before


@pytest.mark.parametrize("make", [
    lambda: shoal.ChainMux(["ab", "cd"]),
    lambda: shoal.ChainMux(shoal.Streamer(lambda: iter([shoal.Streamer("ab")]))),
    lambda: shoal.RoundRobinMux(["ab"]),
    lambda: shoal.ShuffledMux(["ab"], random_state=0),
    lambda: shoal.StochasticMux(["ab"], 1, 2, random_state=0),
    lambda: shoal.ChainMux(["ab", "cd"]).shard(1, 2),
])
def test_every_recipe_calls_its_base_initialiser(make):
    mux = make()
    # pescador's Streamer attributes, on every recipe
    assert mux.args == ()
    assert mux.kwargs == {}
    assert mux.source is mux.streamers


def test_a_recipe_pickles_without_its_open_passes():
    stream = shoal.Streamer(range(3))
    with stream as items:
        next(items)
        assert stream.active == 1
        copy = pickle.loads(pickle.dumps(stream))
    assert copy.active == 0
    assert list(copy) == [0, 1, 2]
    assert vars(copy).keys() == vars(stream).keys()


def test_a_spent_one_shot_source_stays_spent_in_a_copy():
    stream = shoal.Streamer(iter(x for x in "ab"))
    assert list(stream) == ["a", "b"]
    with pytest.raises(shoal.SpentSourceError, match="streams once"):
        list(stream)
