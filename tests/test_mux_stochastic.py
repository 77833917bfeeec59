"""StochasticMux: activations and their counts, the three modes, empty streamers, epochs, new weights.

Its statistics (shares, activations and counts follow the weights and the
rate) are in test_statistics.py; what it shares with ShuffledMux (weights,
set_weights) in test_mux_base.py.
"""

from collections import Counter
from itertools import islice

import numpy as np
import pytest
from hang_guard import no_hang
from muxes import Opened, endless
from pipelines import count, forever, tagged
from resume_checker import roundtrip
from tracking import DISTS, CallCounter, Tracker, activation_counts

import shoal
from shoal import EmptyStreamError, ShoalError, ShoalTypeError, ShoalValueError, StochasticMux, Streamer


def test_stochastic_exhaustive_with_rate_none_gives_every_item_once():
    streams = [Streamer(range, k * 100, k * 100 + k + 1) for k in range(10)]
    items = list(StochasticMux(streams, 3, None, mode="exhaustive", random_state=0))
    assert sorted(items) == sorted(i for k in range(10) for i in range(k * 100, k * 100 + k + 1))


def test_stochastic_closes_an_activation_as_soon_as_it_reaches_its_count():
    opened = Opened()
    streams = [Streamer(opened.stream, tag) for tag in "abc"]
    mux = StochasticMux(streams, 1, 4, dist="constant", random_state=0)
    gen = iter(mux)
    for _ in range(4):
        next(gen)
    assert opened.open == 1
    next(gen)  # the fifth item comes from the next activation
    assert opened.open == 1
    assert opened.started == 2
    gen.close()
    assert opened.open == 0


def test_stochastic_with_replacement_can_exceed_the_number_of_streamers():
    mux = StochasticMux([Streamer(endless, 1)], n_active=5, rate=2, random_state=0)
    assert list(mux(max_iter=10)) == [1] * 10


def test_rate_one_and_rate_none():
    # rate=1 means exactly one item per activation whatever the dist;
    # rate=None runs each activation to exhaustion.
    for dist in DISTS:
        counts = activation_counts(2, 1, dist, seed=5, n_items=2000)
        assert np.all(counts == 1), dist
    tracker = Tracker(3)
    mux = shoal.StochasticMux(
        tracker.streamers(length=7), n_active=2, rate=None, random_state=5
    )
    it = iter(mux)
    items = list(islice(it, 3000))
    still_open = set(tracker.open_ids)
    it.close()
    per_activation = Counter(aid for _, aid, _ in items)
    complete = [c for aid, c in per_activation.items() if aid not in still_open]
    assert complete and all(c == 7 for c in complete)


def test_cycling_a_stochastic_mux_that_ends_restarts_it():
    mux = StochasticMux(["ab", "cd", "ef"], 2, None, mode="exhaustive", random_state=5)
    one_pass = "".join(mux)
    assert sorted(one_pass) == sorted("abcdef")
    assert "".join(mux.cycle(max_iter=18)) == one_pass * 3


# -- modes ---------------------------------------------------------------------


@pytest.mark.parametrize("n_active", [2, 4])
def test_single_active_never_doubles_up(n_active):
    # A heavy streamer makes with_replacement double it up often; in
    # single_active mode it must never hold two slots at once.
    weights = [20, 1, 1, 1, 1]
    tracker = Tracker(len(weights))
    mux = shoal.StochasticMux(
        tracker.streamers(length=3),
        n_active=n_active,
        rate=2,
        weights=weights,
        mode="single_active",
        random_state=9,
    )
    items = list(mux(max_iter=20_000))
    assert len(items) == 20_000
    assert max(tracker.max_open) == 1, tracker.max_open
    assert all(s > 0 for s in tracker.starts)
    assert tracker.max_total_open == n_active


def test_with_replacement_can_double_up():
    tracker = Tracker(2)
    mux = shoal.StochasticMux(
        tracker.streamers(), n_active=4, rate=10, mode="with_replacement", random_state=9
    )
    for _ in mux(max_iter=5000):
        pass
    assert max(tracker.max_open) >= 2, tracker.max_open
    assert tracker.max_total_open == 4


@pytest.mark.parametrize("rate", [3, None])
@pytest.mark.parametrize("n_active", [1, 3])
def test_exhaustive_activates_each_streamer_once(rate, n_active):
    weights = [1, 0, 2, 3, 4, 5]
    tracker = Tracker(len(weights))
    length = 10
    mux = shoal.StochasticMux(
        tracker.streamers(length=length),
        n_active=n_active,
        rate=rate,
        weights=weights,
        mode="exhaustive",
        dist="constant",
        random_state=4,
    )
    items = list(mux)  # it ends
    # Every streamer of positive weight is activated exactly once; weight 0: never.
    assert tracker.starts == [1, 0, 1, 1, 1, 1]
    assert max(tracker.max_open) == 1
    per_stream = Counter(i for i, _, _ in items)
    expected = length if rate is None else rate
    assert per_stream == {i: expected for i in (0, 2, 3, 4, 5)}
    # Each activation's items come in order from the start of its stream.
    for i in per_stream:
        assert [k for j, _, k in items if j == i] == list(range(expected))
    # A second pass is the same (seeded), and each streamer again starts once.
    assert [(i, k) for i, _, k in mux] == [(i, k) for i, _, k in items]
    assert tracker.starts == [2, 0, 2, 2, 2, 2]


# -- empty streamers -----------------------------------------------------------


def test_stochastic_prunes_empty_streamers_or_raises_without_pruning():
    assert list(StochasticMux([[], []], 2, 3, random_state=0)) == []
    with pytest.raises(EmptyStreamError, match="prune_empty_streams=False"):
        list(StochasticMux([[], []], 2, 3, prune_empty_streams=False, random_state=0))
    mux = StochasticMux([[], [1]], 1, 3, prune_empty_streams=False, random_state=0)
    assert list(mux(max_iter=20)) == [1] * 20


@pytest.mark.parametrize("mode", ["with_replacement", "single_active"])
def test_stochastic_prunes_empty_streamers(mode):
    calls = CallCounter()
    streamers = [
        shoal.Streamer(calls.empty, "e0"),
        shoal.Streamer(calls.full, "a"),
        shoal.Streamer(calls.empty, "e1"),
        shoal.Streamer(calls.full, "b"),
        shoal.Streamer(calls.empty, "e2"),
    ]
    mux = shoal.StochasticMux(
        streamers, n_active=2, rate=2, mode=mode, prune_empty_streams=True, random_state=1
    )
    items = list(mux(max_iter=5000))
    assert len(items) == 5000
    assert set(items) == {"a", "b"}
    # Never opened again once found empty. Before that, in with_replacement
    # mode, it may already have been opened in another slot too.
    assert not calls.late_calls, calls.late_calls
    for tag in ("e0", "e1", "e2"):
        assert 1 <= calls.calls[tag] <= (1 if mode == "single_active" else 2)
    assert calls.calls["a"] > 100 and calls.calls["b"] > 100


def test_stochastic_without_pruning_retries_empty_streamers():
    calls = CallCounter()
    streamers = [shoal.Streamer(calls.empty, "e"), shoal.Streamer(calls.full, "a")]
    mux = shoal.StochasticMux(
        streamers, n_active=1, rate=2, prune_empty_streams=False, random_state=1
    )
    items = list(mux(max_iter=2000))
    assert items == ["a"] * 2000
    assert calls.calls["e"] > 100


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive"])
@pytest.mark.parametrize("n_active", [1, 3])
def test_stochastic_all_empty_with_pruning_ends(mode, n_active):
    calls = CallCounter()
    streamers = [shoal.Streamer(calls.empty, j) for j in range(3)]
    mux = shoal.StochasticMux(
        streamers, n_active=n_active, rate=3, mode=mode, prune_empty_streams=True, random_state=0
    )
    assert list(mux(max_iter=100)) == []
    assert not calls.late_calls, calls.late_calls
    assert set(calls.calls) == {0, 1, 2}
    if mode != "with_replacement":
        assert calls.calls == {0: 1, 1: 1, 2: 1}
    else:  # open in at most every slot before it is found empty
        assert max(calls.calls.values()) <= n_active


@pytest.mark.parametrize("mode", ["with_replacement", "single_active"])
def test_stochastic_without_pruning_raises_where_weights_all_but_never_draw_the_rest(mode):
    # An empty streamer of overwhelming weight: the other is drawn about once in 1e9
    # activations. It spun for ever; now it says so after a bounded run of empty
    # activations, having given the same items (none) as before.
    mux = StochasticMux([Streamer([]), Streamer([])], 1, 4, weights=[1e9, 1], mode=mode,
                        prune_empty_streams=False, random_state=0)
    with no_hang(30), pytest.raises(EmptyStreamError,
                                    match=r"10000 times in a row without an item: streamers \[0\]"):
        list(mux)
    # A streamer that yields, drawn now and then among empty activations, resets the run.
    mux = StochasticMux([Streamer([]), Streamer(range(3))], 1, 4, weights=[50, 1], mode=mode,
                        prune_empty_streams=False, random_state=0)
    items = list(mux.iterate(max_iter=30))
    assert len(items) == 30 and set(items) <= {0, 1, 2}


@pytest.mark.parametrize("mode", ["with_replacement", "single_active"])
@pytest.mark.parametrize("n_active", [1, 3])
def test_stochastic_all_empty_without_pruning_raises(mode, n_active):
    calls = CallCounter()
    streamers = [shoal.Streamer(calls.empty, j) for j in range(3)]
    mux = shoal.StochasticMux(
        streamers, n_active=n_active, rate=3, mode=mode, prune_empty_streams=False, random_state=0
    )
    with pytest.raises(shoal.EmptyStreamError, match="no streamer that yields an item"):
        list(mux(max_iter=10))
    # It gave up quickly instead of spinning on the empty streamers.
    assert sum(calls.calls.values()) < 1000


# -- epochs --------------------------------------------------------------------


def passes(mux, n_passes, size):
    it = mux.iterator(cycle=True)
    return [[next(it) for _ in range(size)] for _ in range(n_passes)]


def test_a_seeded_mux_repeats_its_order_on_every_pass_by_default():
    mux = shoal.StochasticMux([Streamer(count, t, 4) for t in "abcd"], 2, 2,
                              mode="exhaustive", dist="constant", random_state=1)
    first, second, third = passes(mux, 3, 8)
    assert first == second == third


def reseedable(reseed):
    return shoal.StochasticMux([Streamer(count, t, 4) for t in "abcd"], 2, 2, mode="exhaustive",
                               dist="constant", random_state=1, reseed_each_epoch=reseed)


def test_reseed_each_epoch_gives_each_pass_its_own_reproducible_order():
    reseeded = passes(reseedable(True), 6, 8)
    assert all(sorted(p) == sorted(reseeded[0]) for p in reseeded)  # each pass is complete
    assert len({tuple(p) for p in reseeded}) > 3  # and they differ
    assert passes(reseedable(True), 6, 8) == reseeded  # reproducibly
    assert passes(reseedable(False), 6, 8) == [reseeded[0]] * 6


def test_the_pass_number_is_part_of_the_state():
    it = reseedable(True).iterator(cycle=True)
    for _ in range(20):
        next(it)
    state = roundtrip(it.state_dict())
    assert state["state"]["epoch"] == 2
    rest = [next(it) for _ in range(30)]
    resumed = reseedable(True).iterator(cycle=True)
    resumed.load_state_dict(state)
    assert [next(resumed) for _ in range(30)] == rest


# -- weights that change -------------------------------------------------------


@pytest.mark.parametrize("mode", ["with_replacement", "single_active"])
@pytest.mark.parametrize("position", [1, 10, 100, 1500])
def test_set_weights_on_a_stochastic_mux_applies_to_the_very_next_item(mode, position):
    # The active slots take the new weights at once: a streamer whose new
    # weight is 0 is closed, and the next pick among the active slots and
    # the next activation follow the new weights.
    mux = shoal.StochasticMux([Streamer(forever, t) for t in "abc"], 2, 50, mode=mode,
                              random_state=0)
    it = mux.iterator()
    list(islice(it, position))
    it.set_weights([0, 1, 0])
    assert {tag for tag, _ in islice(it, 300)} == {"b"}
    it.set_weights([1, 0, 1])
    assert {tag for tag, _ in islice(it, 300)} == {"a", "c"}


def test_set_weights_on_an_exhaustive_stochastic_mux_reweighs_the_active_slots_at_once():
    # The order of the pass's activations was drawn when it started; the
    # picks among the active slots follow the new weights from the next item.
    # A streamer of weight 0 stays active and gives its items once no active
    # streamer has a positive weight: nothing is lost.
    mux = shoal.StochasticMux([Streamer(count, t, 200) for t in "ab"], 2, None,
                              mode="exhaustive", random_state=0)
    it = mux.iterator()
    first = list(islice(it, 10))
    it.set_weights([0, 1])
    rest = list(it)
    b_left = 200 - sum(tag == "b" for tag, _ in first)
    assert [tag for tag, _ in rest] == ["b"] * b_left + ["a"] * (400 - 10 - b_left)


def test_a_weights_schedule_of_a_stochastic_mux_applies_at_its_call():
    calls = []

    def schedule(n):
        calls.append(n)
        return [1, 0] if n < 2000 else [0, 1]

    mux = shoal.StochasticMux([Streamer(forever, t) for t in "ab"], 2, 30, weights=schedule,
                              random_state=1)
    items = list(islice(mux, 6000))
    switch = next(i for i, (tag, _) in enumerate(items) if tag == "b")
    assert switch in calls  # called with the number of items given so far, at a block start
    assert 2000 <= switch <= 2000 + 1024
    assert {tag for tag, _ in items[switch:]} == {"b"}


def test_changed_weights_survive_a_resume():
    def make():
        return shoal.StochasticMux([Streamer(forever, t) for t in "abc"], 2, 3, random_state=3)

    it = make().iterator()
    for _ in range(50):
        next(it)
    it.set_weights([0, 1, 1])
    for _ in range(50):
        next(it)
    state = roundtrip(it.state_dict())
    expected = [next(it) for _ in range(500)]
    resumed = make().iterator()
    resumed.load_state_dict(state)
    assert [next(resumed) for _ in range(500)] == expected
    assert "a" not in {tag for tag, _ in expected[50:]}  # a's last activation ends early on


# -- the recipe ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive"])
def test_a_stochastic_mux_never_changes_while_it_runs(mode):
    # Its running state lives in its iterations' nodes: the recipe's attributes
    # are the same objects, with the same values, after iterations that draw,
    # reweigh, save, load, shard and cycle.
    mux = StochasticMux([Streamer(range(7)), Streamer(range(3)), shoal.ChainMux(["ab", "cd"])],
                        2, 3, weights=lambda n: [1, 2, 1 + n % 3], mode=mode, random_state=0)
    before = dict(vars(mux))
    weights = mux.weights.copy()
    it = mux.iterator(cycle=True)
    assert len(list(islice(it, 40))) == 40
    it.set_weights([1, 0, 1])
    state = it.state_dict()
    resumed = mux.iterator(cycle=True)
    resumed.load_state_dict(state)
    assert list(islice(resumed, 20)) == list(islice(it, 20))
    assert list(mux(max_iter=15)) == list(mux(max_iter=15))
    assert list(mux.shard(1, 2)(max_iter=5))
    assert vars(mux).keys() == before.keys()
    assert all(vars(mux)[name] is value for name, value in before.items())
    np.testing.assert_array_equal(mux.weights, weights)


# -- arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: StochasticMux(["a"], 0, 2), ShoalValueError, "n_active must be >= 1, got 0"),
        (lambda: StochasticMux(["a"], 1.5, 2), ShoalTypeError, r"n_active must be an integer, got 1.5"),
        (lambda: StochasticMux(["a"], True, 2), ShoalTypeError, "n_active must be an integer, got True"),
        (lambda: StochasticMux(["a", "b"], 3, 2, mode="single_active"), ShoalValueError,
         r"n_active must be at most the number of streamers \(2\) with mode='single_active', got 3"),
        (lambda: StochasticMux(["a", "b"], 3, 2, mode="exhaustive"), ShoalValueError, "at most the number"),
        (lambda: StochasticMux(["a"], 1, 0), ShoalValueError, "rate must be None or a finite number >= 1.*got 0"),
        (lambda: StochasticMux(["a"], 1, 0.5), ShoalValueError, "got 0.5"),
        (lambda: StochasticMux(["a"], 1, float("nan")), ShoalValueError, "got nan"),
        (lambda: StochasticMux(["a"], 1, float("inf")), ShoalValueError, "got inf"),
        (lambda: StochasticMux(["a"], 1, "5"), ShoalTypeError, r"rate must be None or a number >= 1, got '5'"),
        (lambda: StochasticMux(["a"], 1, 2, mode="with"), ShoalValueError, "mode must be one of 'with_replacement'"),
        (lambda: StochasticMux(["a"], 1, 2, dist="normal"), ShoalValueError, "dist must be one of 'binomial', 'constant', 'poisson', got 'normal'"),
        (lambda: StochasticMux(["a"], 1, 2, prune_empty_streams="yes"), ShoalTypeError, "prune_empty_streams must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments_fail_at_construction_naming_parameter_and_value(make, error, message):
    with pytest.raises(error, match=message) as info:
        make()
    assert isinstance(info.value, ShoalError)
    assert isinstance(info.value, (ValueError, TypeError))


# -- sharing -------------------------------------------------------------------


def test_a_share_keeps_the_settings():
    mux = StochasticMux(tagged(5), 4, 2.5, weights=[1, 2, 3, 4, 5], mode="single_active",
                        dist="poisson", random_state=0, reseed_each_epoch=True)
    share = mux.shard(1, 2)
    assert share.streamers == mux.streamers[1::2]
    assert share.weights.tolist() == [2 / 6, 4 / 6]
    assert share.n_active == 2  # capped: at most one slot per streamer
    assert (share.rate, share.mode, share.dist, share.reseed_each_epoch) == (
        2.5, "single_active", "poisson", True)
    assert mux.shard(1, 2).n_active == 2 and mux.n_active == 4  # the mux is unchanged
    assert StochasticMux(tagged(5), 4, 2).shard(0, 2).n_active == 4  # with replacement
