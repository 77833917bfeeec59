"""Saving and resuming iterations: every stream type, in and across processes."""

import gc
import json
import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from pipelines import CYCLED, PIPELINES, count, forever, plain
from resume_checker import assert_resumes_exactly, roundtrip

import shoal
from shoal import ShoalTypeError, ShoalValueError, Streamer

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_stream_resumes_exactly_from_any_position(name):
    items = assert_resumes_exactly(PIPELINES[name], n_positions=150, n_after=25, normalize=plain)
    assert len(items) >= 15  # the check saw a real stream


@pytest.mark.parametrize("name", CYCLED)
def test_cycling_iterations_resume_exactly_across_passes(name):
    items = assert_resumes_exactly(PIPELINES[name], n_positions=150, n_after=25, cycle=True,
                                   normalize=plain)
    assert len(items) == 175


@pytest.mark.parametrize("name", ["stochastic with_replacement poisson", "chain of muxes",
                                  "cache of a mux", "shuffled unseeded", "buffer_stream"])
def test_a_state_resumes_in_a_fresh_python_process(name):
    it = PIPELINES[name]().iterator()
    for _ in range(37):
        next(it)
    state = json.dumps(it.state_dict())
    expected = [plain(item) for item in islice(it, 40)]
    program = (
        "import json, sys\n"
        "from itertools import islice\n"
        "from pipelines import PIPELINES, plain\n"
        f"it = PIPELINES[{name!r}]().iterator()\n"
        "it.load_state_dict(json.loads(sys.stdin.read()))\n"
        "print(json.dumps([plain(item) for item in islice(it, 40)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], input=state, capture_output=True,
                            text=True, cwd=TESTS, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    # JSON turns tuples into lists: compare both sides that way.
    assert json.loads(result.stdout) == json.loads(json.dumps(expected))


def test_a_state_is_small_plain_and_does_not_grow():
    mux = PIPELINES["stochastic with_replacement binomial"]()
    it = mux.iterator()
    for _ in range(100):
        next(it)
    early = json.dumps(it.state_dict())
    for _ in range(100_000):
        next(it)
    late = json.dumps(it.state_dict())
    assert roundtrip(json.loads(late)) == json.loads(late)
    # The same structure, with larger numbers: a few characters more at most.
    assert len(late) < len(early) + 120


# -- faster resumes ------------------------------------------------------------


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


def test_a_state_with_no_root_loads_as_a_fresh_start_through_a_map():
    # The load-time check of a map's input once read the root of a state
    # without looking: a root of None raised a bare TypeError.
    batches = Streamer(shoal.buffer_stream, shoal.ChainMux([Streamer(range(6))]), 2)
    state = batches.iterator().state_dict()
    state["state"] = None
    resumed = batches.iterator()
    resumed.load_state_dict(state)
    assert [batch.tolist() for batch in resumed] == [[0, 1], [2, 3], [4, 5]]


def test_a_one_shot_source_cannot_be_restored_and_says_so_at_the_load():
    it = Streamer(i for i in range(10)).iterator()  # a generator: one-shot
    next(it)
    resumed = Streamer(i for i in range(10)).iterator()
    with pytest.raises(ShoalValueError, match="wraps an iterator, which cannot be rewound"):
        resumed.load_state_dict(it.state_dict())
    assert list(resumed) == list(range(10))  # refused: it goes on as it was


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


# -- weights that change -----------------------------------------------------------


def shares(items, tags):
    counts = Counter(tag for tag, _ in items)
    total = sum(counts.values())
    return [counts[tag] / total for tag in tags]


@pytest.mark.parametrize("mux_type", ["shuffled", "stochastic"])
def test_set_weights_changes_the_mixture_from_then_on(mux_type):
    streams = [Streamer(forever, t) for t in "ab"]
    if mux_type == "shuffled":
        mux = shoal.ShuffledMux(streams, weights=[1, 1], random_state=0)
    else:
        mux = shoal.StochasticMux(streams, 2, 4, weights=[1, 1], random_state=0)
    it = mux.iterator()
    before = [next(it) for _ in range(20_000)]
    it.set_weights([9, 1])
    after = [next(it) for _ in range(20_000)]
    # With 20000 items, each share is within 0.03 of its target except with a
    # probability far below 1e-6 (fixed seed: deterministic).
    assert shares(before, "ab") == pytest.approx([0.5, 0.5], abs=0.03)
    assert shares(after, "ab") == pytest.approx([0.9, 0.1], abs=0.03)
    np.testing.assert_allclose(it.state_dict()["state"]["base_weights"], [0.9, 0.1])


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


@pytest.mark.parametrize("mux_type", ["shuffled", "with_replacement", "single_active",
                                      "exhaustive"])
def test_a_resume_is_exact_across_a_change_of_weights(mux_type):
    def make():
        streams = [Streamer(forever, t) for t in "abc"]
        if mux_type == "shuffled":
            return shoal.ShuffledMux(streams, weights=[1, 2, 3], random_state=5)
        if mux_type == "exhaustive":
            streams = [Streamer(count, t, 70) for t in "abc"]
        rate = None if mux_type == "exhaustive" else 4
        return shoal.StochasticMux(streams, 2, rate, weights=[1, 2, 3], mode=mux_type,
                                   random_state=5)

    it = make().iterator()
    changes = {40: [3, 0, 1], 41: [1, 1, 5], 90: [0, 0, 1]}
    states, items = [], []
    for n in range(160):
        if n in changes:
            it.set_weights(changes[n])
        if n % 7 == 0 or n in changes:
            states.append(roundtrip(it.state_dict()))  # after any change at n
        items.append(next(it))
    items += [next(it) for _ in range(40)]
    if mux_type != "exhaustive":
        assert {tag for tag, _ in items[90:]} == {"c"}
    for state in states:
        resumed = make().iterator()
        resumed.load_state_dict(state)
        n = state["n_given"]
        # The resumed iteration gets no later change: compare up to the next one.
        end = min([m for m in changes if m > n] + [n + 40])
        assert [next(resumed) for _ in range(end - n)] == items[n:end], n


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


def test_a_bad_schedule_or_bad_new_weights_are_refused_clearly():
    with pytest.raises(ShoalValueError, match=r"weights\(0\) must have one entry per streamer"):
        shoal.ShuffledMux(["a", "b"], weights=lambda n: [1])
    it = shoal.ShuffledMux(["a", "b"], random_state=0).iterator()
    with pytest.raises(ShoalValueError, match=r"weights must be finite and >= 0, got \[1.0, -1.0\]"):
        it.set_weights([1, -1])
    with pytest.raises(ShoalTypeError, match="set_weights\\(\\) is for ShuffledMux and StochasticMux"):
        shoal.ChainMux(["a"]).iterator().set_weights([1])


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


# -- bad states ------------------------------------------------------------------


def test_a_state_of_another_stream_is_refused_clearly():
    state = PIPELINES["shuffled"]().iterator().state_dict()
    with pytest.raises(ShoalValueError, match="state is of an iteration of a ShuffledMux, not of this ChainMux"):
        PIPELINES["chain"]().iterator().load_state_dict(state)
    with pytest.raises(ShoalValueError, match="with cycle=False, this one has cycle=True"):
        PIPELINES["shuffled"]().iterator(cycle=True).load_state_dict(state)
    with pytest.raises(ShoalValueError, match="must be a dict from StreamIterator.state_dict"):
        PIPELINES["shuffled"]().iterator().load_state_dict({"version": 99})
    other = shoal.ShuffledMux(["a", "b"], random_state=0)
    with pytest.raises(ShoalValueError, match="over 4 streamers, but this one has 2"):
        other.iterator().load_state_dict(state)


# -- a state records what its stream was made with -------------------------------


def _stochastic(**settings):
    made = dict(n_active=2, rate=4, weights=[1, 1, 2], mode="with_replacement",
                prune_empty_streams=True, dist="binomial", random_state=0)
    made.update(settings)
    return shoal.StochasticMux([Streamer(forever, tag) for tag in "abc"], **made)


def _lengths(tags):
    return [Streamer(count, tag, 20) for tag in tags]


# (what saved the state, a stream made otherwise, the message)
MADE_OTHERWISE = {
    "seed": (_stochastic, lambda: _stochastic(random_state=1),
             "random_state: the state was saved with 0, this stream has 1"),
    "seed of a seeded mux, unseeded": (
        _stochastic, lambda: _stochastic(random_state=None),
        r"random_state: the state was saved with 0, this stream has None \(unseeded\)"),
    "seed of an unseeded mux, seeded": (
        lambda: _stochastic(random_state=None), _stochastic,
        r"random_state: the state was saved with None \(unseeded\), this stream has 0"),
    "seed given as a SeedSequence": (
        lambda: _stochastic(random_state=np.random.SeedSequence(5, spawn_key=(1,))), _stochastic,
        r"random_state: the state was saved with SeedSequence\(5, spawn_key=\(1,\)\), this "
        "stream has 0"),
    "n_active": (_stochastic, lambda: _stochastic(n_active=3),
                 "n_active: the state was saved with 2, this stream has 3"),
    "rate": (_stochastic, lambda: _stochastic(rate=4.5),
             "rate: the state was saved with 4, this stream has 4.5"),
    "rate None": (_stochastic, lambda: _stochastic(rate=None),
                  "rate: the state was saved with 4, this stream has None"),
    "weights": (_stochastic, lambda: _stochastic(weights=[1, 2, 1]),
                r"weights: the state was saved with \[0.25, 0.25, 0.5\], this stream has "
                r"\[0.25, 0.5, 0.25\]; .*set_weights"),
    "weights schedule": (_stochastic, lambda: _stochastic(weights=lambda n: [1, 1, 2]),
                         r"weights: the state was saved with \[0.25, 0.25, 0.5\], this "
                         "stream has 'schedule'"),
    "dist": (_stochastic, lambda: _stochastic(dist="poisson"),
             "dist: the state was saved with 'binomial', this stream has 'poisson'"),
    "mode": (_stochastic, lambda: _stochastic(mode="single_active"),
             "mode: the state was saved with 'with_replacement', this stream has "
             "'single_active'"),
    "prune_empty_streams": (_stochastic, lambda: _stochastic(prune_empty_streams=False),
                            "prune_empty_streams: the state was saved with True, this stream "
                            "has False"),
    "reseed_each_epoch": (_stochastic, lambda: _stochastic(reseed_each_epoch=True),
                          "reseed_each_epoch: the state was saved with False, this stream has "
                          "True"),
    "shuffled weights": (
        lambda: shoal.ShuffledMux(_lengths("ab"), weights=[1, 3], random_state=2),
        lambda: shoal.ShuffledMux(_lengths("ab"), random_state=2),
        r"weights: the state was saved with \[0.25, 0.75\], this stream has \[0.5, 0.5\]"),
    "shuffled seed": (
        lambda: shoal.ShuffledMux(_lengths("ab"), random_state=2),
        lambda: shoal.ShuffledMux(_lengths("ab"), random_state=3),
        "random_state: the state was saved with 2, this stream has 3"),
    "round robin mode": (
        lambda: shoal.RoundRobinMux(_lengths("ab")),
        lambda: shoal.RoundRobinMux(_lengths("ab"), mode="cycle"),
        "mode: the state was saved with 'exhaustive', this stream has 'cycle'"),
    "round robin seed": (
        lambda: shoal.RoundRobinMux(_lengths("ab"), mode="permuted_cycle", random_state=1),
        lambda: shoal.RoundRobinMux(_lengths("ab"), mode="permuted_cycle", random_state=2),
        "random_state: the state was saved with 1, this stream has 2"),
    "chain mode": (
        lambda: shoal.ChainMux(_lengths("ab")),
        lambda: shoal.ChainMux(_lengths("ab"), mode="cycle"),
        "mode: the state was saved with 'exhaustive', this stream has 'cycle'"),
    "chain seed": (
        lambda: shoal.ChainMux(_lengths("ab"), random_state=4),
        lambda: shoal.ChainMux(_lengths("ab"), random_state=5),
        "random_state: the state was saved with 4, this stream has 5"),
    "share": (
        lambda: shoal.ShuffledMux(_lengths("abcd"), random_state=0).shard(0, 2),
        lambda: shoal.ShuffledMux(_lengths("abcd"), random_state=0).shard(1, 2),
        r"random_state: the state was saved with SeedSequence\(0, spawn_key=\(0,\)\), this "
        r"stream has SeedSequence\(0, spawn_key=\(1,\)\)"),
    "cache seed": (
        lambda: Streamer(shoal.cache, Streamer(count, "a", 50), 4, random_state=0),
        lambda: Streamer(shoal.cache, Streamer(count, "a", 50), 4, random_state=1),
        "random_state: the state was saved with 0, this stream has 1"),
    "cache size": (
        lambda: Streamer(shoal.cache, Streamer(count, "a", 50), 4, random_state=0),
        lambda: Streamer(shoal.cache, Streamer(count, "a", 50), 5, random_state=0),
        "n_cache: the state was saved with 4, this stream has 5"),
    "cache prob": (
        lambda: Streamer(shoal.cache, Streamer(count, "a", 50), 4, prob=0.5),
        lambda: Streamer(shoal.cache, Streamer(count, "a", 50), 4, prob=0.25),
        "prob: the state was saved with 0.5, this stream has 0.25"),
    # Anywhere in a tree: refused at the load, not at the first item.
    "a mux in a chain": (
        lambda: shoal.ChainMux([_stochastic(), Streamer(count, "z", 3)]),
        lambda: shoal.ChainMux([_stochastic(random_state=1), Streamer(count, "z", 3)]),
        "random_state: the state was saved with 0, this stream has 1"),
    "a mux in a mux": (
        lambda: shoal.ShuffledMux([_stochastic(), Streamer(forever, "z")], random_state=0),
        lambda: shoal.ShuffledMux([_stochastic(n_active=1), Streamer(forever, "z")],
                                  random_state=0),
        "n_active: the state was saved with 2, this stream has 1"),
    "a mux in a stochastic mux": (
        lambda: shoal.StochasticMux([_stochastic(), Streamer(forever, "z")], 2, None,
                                    random_state=0),
        lambda: shoal.StochasticMux([_stochastic(dist="constant"), Streamer(forever, "z")], 2,
                                    None, random_state=0),
        "dist: the state was saved with 'binomial', this stream has 'constant'"),
    "a mux in a round robin": (
        lambda: shoal.RoundRobinMux([_stochastic(), Streamer(forever, "z")]),
        lambda: shoal.RoundRobinMux([_stochastic(rate=3), Streamer(forever, "z")]),
        "rate: the state was saved with 4, this stream has 3"),
    "a mux under a map": (
        lambda: Streamer(shoal.buffer_stream, _stochastic(), 2),
        lambda: Streamer(shoal.buffer_stream, _stochastic(mode="single_active"), 2),
        "mode: the state was saved with 'with_replacement', this stream has 'single_active'"),
    "a cache in a mux": (
        lambda: shoal.ShuffledMux([Streamer(shoal.cache, Streamer(forever, "a"), 4)],
                                  random_state=0),
        lambda: shoal.ShuffledMux([Streamer(shoal.cache, Streamer(forever, "a"), 3)],
                                  random_state=0),
        "n_cache: the state was saved with 4, this stream has 3"),
}


@pytest.mark.parametrize("name", MADE_OTHERWISE)
def test_a_state_of_a_stream_made_otherwise_is_refused_at_the_load(name):
    make, other, message = MADE_OTHERWISE[name]
    np.random.seed(0)
    saved = make().iterator()
    for _ in range(7):
        next(saved)
    state = roundtrip(saved.state_dict())
    it = other().iterator()
    first = [plain(next(it)) for _ in range(3)]
    with pytest.raises(ShoalValueError, match=message):
        it.load_state_dict(state)
    # ... and the iteration goes on as it was.
    np.random.seed(1)
    fresh = other().iterator()
    if name not in ("seed of a seeded mux, unseeded", "cache prob"):  # (unseeded: other draws)
        assert [plain(next(fresh)) for _ in range(3)] == first
        assert [plain(next(it)) for _ in range(5)] == [plain(next(fresh)) for _ in range(5)]
    # A stream made as the first one takes the state.
    resumed = make().iterator()
    resumed.load_state_dict(state)
    assert [plain(next(resumed)) for _ in range(5)] == [plain(next(saved)) for _ in range(5)]


def test_a_state_records_what_its_stream_was_made_with():
    it = _stochastic().iterator()
    next(it)
    node = it.state_dict()["state"]
    assert node["recipe"] == {
        "random_state": 0, "n_active": 2, "rate": 4, "weights": [0.25, 0.25, 0.5],
        "mode": "with_replacement", "dist": "binomial", "prune_empty_streams": True,
        "reseed_each_epoch": False,
    }
    assert node["seed"] is None  # nothing drawn: the seed is the recipe's
    it = _stochastic(random_state=None).iterator()
    next(it)
    node = it.state_dict()["state"]
    assert node["recipe"]["random_state"] is None and len(node["seed"]) == 4  # the drawn one
    cached = Streamer(shoal.cache, Streamer(count, "a", 9), 3, random_state=2).iterator()
    next(cached)
    assert cached.state_dict()["state"]["child"]["cache"]["recipe"] == {
        "random_state": 2, "n_cache": 3, "prob": 0.5}


def test_a_state_saved_after_set_weights_loads_into_the_stream_as_it_was_made():
    # The state records the weights the stream was made with (``recipe``) and
    # those in force (``base_weights``, set by set_weights or a schedule).
    it = _stochastic().iterator()
    for _ in range(20):
        next(it)
    it.set_weights([5, 1, 0])
    for _ in range(20):
        next(it)
    state = roundtrip(it.state_dict())
    assert state["state"]["base_weights"] == pytest.approx([5 / 6, 1 / 6, 0.0])
    assert state["state"]["recipe"]["weights"] == [0.25, 0.25, 0.5]
    expected = [next(it) for _ in range(200)]
    resumed = _stochastic().iterator()
    resumed.load_state_dict(state)
    assert [next(resumed) for _ in range(200)] == expected
    assert not any(tag == "c" for tag, _ in expected[20:])  # the new weights go on
    # A stream made with the weights in force is another stream.
    with pytest.raises(ShoalValueError, match=r"weights: the state was saved with \[0.25, "
                                              r"0.25, 0.5\], this stream has \[0.8333"):
        _stochastic(weights=[5, 1, 0]).iterator().load_state_dict(state)


@pytest.mark.parametrize("kind", ["shuffled", "stochastic"])
def test_new_weights_given_after_a_load_are_in_the_state_at_once(kind):
    # The way to change the weights on resuming: load, then set_weights.
    def make():
        streams = [Streamer(forever, tag) for tag in "abc"]
        if kind == "shuffled":
            return shoal.ShuffledMux(streams, random_state=0)
        return shoal.StochasticMux(streams, 2, 4, random_state=0)

    it = make().iterator()
    for _ in range(10):
        next(it)
    resumed = make().iterator()
    resumed.load_state_dict(it.state_dict())
    resumed.set_weights([0, 1, 3])
    state = roundtrip(resumed.state_dict())  # saved before the next item
    assert state["state"]["base_weights"] == [0.0, 0.25, 0.75]
    expected = [next(resumed) for _ in range(100)]
    assert {tag for tag, _ in expected[10:]} == {"b", "c"}
    again = make().iterator()
    again.load_state_dict(state)
    assert [next(again) for _ in range(100)] == expected


def test_a_state_of_another_version_is_refused_naming_both():
    state = PIPELINES["shuffled"]().iterator().state_dict()
    assert state["version"] == shoal.iterator.STATE_VERSION == 3
    old = {**state, "version": 2}
    with pytest.raises(ShoalValueError, match="state must be a dict from StreamIterator.state_dict "
                                              "of version 3, got one of version 2"):
        PIPELINES["shuffled"]().iterator().load_state_dict(old)
    with pytest.raises(ShoalValueError, match=r"states\[0\] must be .* of version 3, got one of "
                                              "version 2"):
        shoal.reshard_states(PIPELINES["chain"](), [old, state], 1)


def test_iterator_arguments_are_checked():
    with pytest.raises(ShoalTypeError, match="cycle must be True or False, got 'yes'"):
        Streamer([1]).iterator(cycle="yes")


# -- the iterator itself ---------------------------------------------------------


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


def test_iterator_needs_a_stream():
    from shoal import StreamIterator

    with pytest.raises(ShoalTypeError, match=r"stream must be a Streamer or a mux, got \[1\] \(list\)"):
        StreamIterator([1])


# -- a loop that loads a state -----------------------------------------------------


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
