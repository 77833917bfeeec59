"""Properties over many generated inputs (hypothesis)."""

from itertools import chain, islice, zip_longest

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal import ChainMux, RoundRobinMux, ShuffledMux, StochasticMux, Streamer, buffer_stream

lists_of_lists = st.lists(st.lists(st.integers(), max_size=6), min_size=1, max_size=6)
settings.register_profile("shoal", max_examples=60, deadline=None)
settings.load_profile("shoal")

_GAP = object()


@given(lists_of_lists)
def test_chain_is_itertools_chain(data):
    assert list(ChainMux([Streamer(d) for d in data])) == list(chain(*data))


@given(lists_of_lists, st.integers(0, 60))
def test_chain_cycle_repeats_the_whole_chain(data, n):
    flat = list(chain(*data))
    if not flat:
        return
    expected = list(islice(chain.from_iterable([flat] * (n // len(flat) + 1)), n))
    assert list(ChainMux(data, mode="cycle")(max_iter=n)) == expected


@given(lists_of_lists)
def test_round_robin_is_the_itertools_recipe(data):
    expected = [x for row in zip_longest(*data, fillvalue=_GAP) for x in row if x is not _GAP]
    assert list(RoundRobinMux(data)) == expected


@given(lists_of_lists, st.integers(0, 2**32 - 1))
def test_exhaustive_stochastic_with_no_rate_yields_every_item_once(data, seed):
    items = list(StochasticMux(data, n_active=min(2, len(data)), rate=None,
                               mode="exhaustive", random_state=seed))
    assert sorted(items) == sorted(chain(*data))


@given(lists_of_lists, st.integers(0, 2**32 - 1))
def test_exhaustive_stochastic_keeps_each_streamers_order(data, seed):
    tagged = [[(k, i) for i in range(len(d))] for k, d in enumerate(data)]
    items = list(StochasticMux(tagged, n_active=min(3, len(data)), rate=None,
                               mode="exhaustive", random_state=seed))
    for k in range(len(data)):
        assert [i for tag, i in items if tag == k] == list(range(len(data[k])))


@given(st.lists(st.lists(st.integers(), min_size=1, max_size=4), min_size=1, max_size=5),
       st.integers(0, 2**32 - 1))
def test_shuffled_only_yields_items_of_its_streamers(data, seed):
    items = list(ShuffledMux(data, random_state=seed)(max_iter=50))
    assert len(items) == 50
    assert set(items) <= set(chain(*data))


@given(st.integers(0, 40), st.integers(1, 7), st.booleans())
def test_buffer_stream_batches_cover_the_stream(n, size, partial):
    items = [{"x": np.array([i, -i]), "i": i} for i in range(n)]
    batches = list(buffer_stream(items, size, partial=partial))
    seen = [int(i) for b in batches for i in b["i"]]
    n_full = n // size * size
    assert seen == list(range(n if partial else n_full))
    assert all(len(b["i"]) == size for b in batches[: n // size])
    for b in batches:
        np.testing.assert_array_equal(b["x"][:, 0], -b["x"][:, 1])
