"""StreamIterator: an iteration that iterates and closes like an iterator, counts, and loads states.

That every kind of stream resumes exactly from a saved state is checked in
test_resume.py; resharding states among another number of shares in
test_reshard.py.
"""

import gc
from collections import Counter
from itertools import islice

import pytest
from pipelines import PIPELINES, plain, tagged
from resume_checker import roundtrip

from shoal import ChainMux, RoundRobinMux, ShoalTypeError, ShuffledMux, StochasticMux, Streamer


def test_iterator_needs_a_stream():
    from shoal import StreamIterator

    with pytest.raises(ShoalTypeError, match=r"stream must be a Streamer or a mux, got \[1\] \(list\)"):
        StreamIterator([1])


def test_iterator_arguments_are_checked():
    with pytest.raises(ShoalTypeError, match="cycle must be True or False, got 'yes'"):
        Streamer([1]).iterator(cycle="yes")


def closing_source(closed):
    """A generator function of 5 items that records when it is closed."""
    def source():
        try:
            yield from range(5)
        finally:
            closed.append(True)

    return source


def test_a_stream_iterator_iterates_and_closes_like_an_iterator():
    closed = []
    source = closing_source(closed)
    with Streamer(source).iterator() as it:
        assert next(it) == 0
        assert list(islice(it, 2)) == [1, 2]
        assert it.n_given == 3
        assert "3 items given" in repr(it)
    assert closed == [True]
    it = Streamer(source).iterator()
    for _item in it:  # a break leaves it open: it can go on, as a file does
        break
    assert list(it) == [1, 2, 3, 4]


def test_loading_a_state_closes_what_the_iterator_had_open():
    closed = []
    source = closing_source(closed)
    it = Streamer(source).iterator()
    next(it)
    state = it.state_dict()
    next(it)
    it.load_state_dict(state)
    assert closed == [True]
    assert list(it) == [1, 2, 3, 4]


def test_a_dropped_iteration_closes_its_generators_at_once():
    closed = []
    it = Streamer(closing_source(closed)).iterator()
    for item in it:
        if item == 1:
            break
    gc.disable()  # closed by its reference count, not by the garbage collector
    try:
        del it, item
        assert closed == [True]
    finally:
        gc.enable()


# -- the mixture report --------------------------------------------------------


@pytest.mark.parametrize("name", ["shuffled", "round robin cycle", "chain cycle",
                                  "stochastic single_active poisson", "stochastic of chains"])
def test_counts_say_how_many_items_each_streamer_gave(name):
    mux = PIPELINES[name]()
    it = mux.iterator()
    items = list(islice(it, 300))
    counts = it.counts()
    assert sum(counts) == len(items) == it.n_given
    if name != "stochastic of chains":  # there, items are tagged by the inner streamers
        tags = sorted({tag for tag, _ in items})
        by_tag = Counter(tag for tag, _ in items)
        assert [c for c in counts if c] == [by_tag[t] for t in tags]


def test_counts_are_for_muxes():
    with pytest.raises(ShoalTypeError, match="counts\\(\\) is for muxes"):
        Streamer([1]).iterator().counts()


@pytest.mark.parametrize("make", [
    lambda: ChainMux(tagged(3)),
    lambda: RoundRobinMux(tagged(3)),
    lambda: ShuffledMux(tagged(3), random_state=0),
    lambda: StochasticMux(tagged(3), 2, None, mode="exhaustive", random_state=0),
    lambda: StochasticMux(tagged(3), 2, 2, random_state=0),
], ids=["chain", "round robin", "shuffled", "stochastic", "stochastic with replacement"])
def test_counts_of_an_iteration_restored_and_not_run_yet_are_the_saved_counts(make):
    it = make().iterator()
    list(islice(it, 4))
    restored = make().iterator()
    restored.load_state_dict(roundtrip(it.state_dict()))
    assert sum(it.counts()) == 4
    assert restored.counts() == it.counts()


# -- a loop that loads a state -------------------------------------------------


LOOPED = ["streamer", "chain cycle", "shuffled of stochastic", "stochastic with_replacement poisson",
          "buffer_stream", "tuples", "cache of a mux"]


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("name", LOOPED)
def test_a_loop_goes_on_from_each_state_it_loads(name, cycle):
    make = PIPELINES[name]
    reference = [plain(item) for item in islice(make().iterator(cycle), 40)]
    assert len(reference) >= 18  # long enough for the loads below
    # One loop, three loads: back to item 4 at item 9; back to item 7 at item
    # 10 and again at item 9; then on to the end (or to the reference's end).
    expected = reference[:9] + reference[4:10] + reference[7:9] + reference[7:]
    it = make().iterator(cycle)
    got, first, second = [], None, None
    for item in it:
        got.append(plain(item))
        if len(got) == 4:
            first = it.state_dict()  # before item 4
        elif len(got) == 9:
            it.load_state_dict(first)
        elif len(got) == 12:
            second = it.state_dict()  # before item 7
        elif len(got) in (15, 17):
            it.load_state_dict(second)
        elif len(got) == len(expected):
            break
    assert got == expected


def test_a_loop_goes_on_from_a_state_of_another_iteration():
    stream = PIPELINES["stochastic exhaustive poisson"]()  # a random mux that ends
    other = stream.iterator()
    before = [next(other) for _ in range(6)]
    state = other.state_dict()
    rest = list(other)
    it = stream.iterator()
    got = []
    for item in it:
        got.append(item)
        if len(got) == 2:
            it.load_state_dict(state)
    assert got == before[:2] + rest
    assert it.n_given == len(before) + len(rest)


def test_a_loop_over_an_ended_iteration_goes_on_from_a_state_loaded_after_it():
    it = Streamer(range(6)).iterator()
    next(it)
    state = it.state_dict()
    assert list(it) == [1, 2, 3, 4, 5]
    assert next(it, None) is None
    it.load_state_dict(state)
    assert next(it) == 1
    assert list(it) == [2, 3, 4, 5]
    it.load_state_dict(state)
    assert [item for item in it] == [1, 2, 3, 4, 5]


def test_a_loop_that_closes_its_iteration_ends_and_one_that_loads_goes_on():
    it = Streamer(range(6)).iterator()
    state = it.state_dict()
    got = []
    for item in it:
        got.append(item)
        if item == 2:
            it.close()
    assert got == [0, 1, 2]
    got = []
    for item in it:  # closed, then a state loaded: the loop runs from the state
        got.append(item)
    assert got == []
    it.load_state_dict(state)
    assert list(it) == [0, 1, 2, 3, 4, 5]
