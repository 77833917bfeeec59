"""ShuffledMux: each item from a streamer drawn by weight, restarts, empty streamers, new weights.

Its statistics (the shares of the items follow the weights) are in
test_statistics.py; what it shares with StochasticMux (weights, set_weights)
in test_mux_base.py.
"""

from collections import Counter
from itertools import islice

import pytest
from muxes import Opened, endless, letters
from pipelines import PIPELINES, forever
from tracking import CallCounter

import shoal
from shoal import ShoalValueError, ShuffledMux, Streamer


def test_shuffled_restarts_streamers_that_run_out():
    items = list(ShuffledMux([[1, 2], [3]], random_state=0)(max_iter=300))
    assert set(items) == {1, 2, 3}
    # a restarted [1, 2] always gives 1 before 2
    ones_and_twos = [i for i in items if i != 3]
    assert ones_and_twos[:2] == [1, 2]


def test_shuffled_never_draws_a_zero_weight_streamer():
    mux = ShuffledMux([Streamer(endless, "a"), Streamer(endless, "b")], weights=[0, 1], random_state=0)
    assert set(mux(max_iter=2000)) == {"b"}


def test_cycling_a_shuffled_mux_restarts_it_when_every_streamer_is_dropped():
    # The source gives "xy" on odd calls and nothing on even ones: each pass
    # streams "xy", restarts it, finds it empty and drops it, which ends the pass.
    calls = []

    def every_other_time():
        calls.append(None)
        return iter("xy" if len(calls) % 2 else "")

    mux = ShuffledMux([Streamer(every_other_time)], random_state=0)
    assert "".join(mux) == "xy"
    calls.clear()
    assert "".join(mux.cycle(max_iter=6)) == "xyxyxy"
    assert len(calls) == 5  # the third pass stops at max_iter, before its restart


# -- empty streamers -----------------------------------------------------------


def test_shuffled_drops_empty_streamers_and_ends_when_all_are_dropped():
    opened = Opened()
    mux = ShuffledMux([Streamer(opened.stream, "e", 0), Streamer(letters, "x", 2)], random_state=0)
    items = list(mux(max_iter=50))
    assert items == ["x"] * 50
    assert opened.started == 1
    assert list(ShuffledMux([[], []], random_state=0)) == []


def test_shuffled_all_empty_ends():
    calls = CallCounter()
    mux = shoal.ShuffledMux([shoal.Streamer(calls.empty, j) for j in range(3)], random_state=0)
    assert list(mux) == []
    assert calls.calls == {0: 1, 1: 1, 2: 1}


def test_shuffled_finite_streamers_dropped_when_restart_is_empty():
    # A streamer that yields items on its first pass but nothing when
    # restarted is dropped; the mux ends when all have been.
    passes = Counter()

    def once(tag, n):
        passes[tag] += 1
        if passes[tag] == 1:
            yield from [tag] * n

    mux = shoal.ShuffledMux(
        [shoal.Streamer(once, "x", 30), shoal.Streamer(once, "y", 50)], random_state=8
    )
    items = list(mux)
    assert Counter(items) == {"x": 30, "y": 50}
    assert passes == {"x": 2, "y": 2}


# -- weights that change -------------------------------------------------------


@pytest.mark.parametrize("position", [1, 63, 64, 100, 1500])
def test_set_weights_on_a_shuffled_mux_applies_to_the_very_next_item(position):
    # The picks drawn with the old weights, left in the block being read,
    # are dropped (they used to be used up first: tens to hundreds of items).
    mux = shoal.ShuffledMux([Streamer(forever, "a"), Streamer(forever, "b")], random_state=0)
    it = mux.iterator()
    list(islice(it, position))
    it.set_weights([0, 1])
    assert {tag for tag, _ in islice(it, 300)} == {"b"}
    it.set_weights([1, 0])
    assert {tag for tag, _ in islice(it, 300)} == {"a"}


def test_a_weights_schedule_is_called_with_the_items_given():
    calls = []

    def schedule(n):
        calls.append(n)
        return [1, 0] if n < 2000 else [0, 1]

    mux = shoal.ShuffledMux([Streamer(forever, t) for t in "ab"], weights=schedule, random_state=1)
    items = list(islice(mux, 6000))
    assert calls[0] == 0
    assert calls == sorted(calls) and all(n <= 6000 for n in calls)
    switch = next(i for i, (tag, _) in enumerate(items) if tag == "b")
    assert 2000 <= switch <= 2000 + 1024  # applied at the next block, within 1024 items
    assert {tag for tag, _ in items[switch:]} == {"b"}


def test_a_state_with_an_open_streamer_never_activated_is_refused_at_the_load():
    # Found by random corruption of saved states: an open streamer with no
    # activation counted drew its key from activation -1, a bare struct.error.
    make = PIPELINES["shuffled of seeded stochastic"]
    it = make().iterator()
    list(islice(it, 10))
    state = it.state_dict()
    j = next(iter(state["state"]["children"]))
    state["state"]["n_activations"][int(j)] = 0
    resumed = make().iterator()
    with pytest.raises(ShoalValueError, match=rf"state\['state'\]\['n_activations'\]\[{j}\]: it "
                                              "must be at least 1 for a streamer open"):
        resumed.load_state_dict(state)
    assert next(resumed) == next(make().iterator())  # refused: it goes on as it was
