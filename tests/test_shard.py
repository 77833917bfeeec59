"""shard(index, count): disjoint shares that together are the whole stream."""

import pickle
from collections import Counter
from itertools import islice

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from resume_checker import roundtrip

import shoal
from shoal import (
    ChainMux,
    RoundRobinMux,
    ShuffledMux,
    StochasticMux,
    Streamer,
    buffer_stream,
    cache,
    keras_tuples,
    tuples,
)


def tagged(n_streams, length=3):
    """Streamers whose items say where they come from: (streamer, position)."""
    return [Streamer([(k, i) for i in range(length)]) for k in range(n_streams)]


FINITE = {
    "chain": lambda s, seed: ChainMux(s),
    "round_robin": lambda s, seed: RoundRobinMux(s),
    "stochastic": lambda s, seed: StochasticMux(s, min(2, len(s)), None, mode="exhaustive",
                                                random_state=seed),
}


@pytest.mark.parametrize("kind", sorted(FINITE))
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_the_shares_of_a_finite_mux_are_disjoint_and_cover_it(kind, count):
    mux = FINITE[kind](tagged(7), 5)
    shares = [list(mux.shard(i, count)) for i in range(count)]
    everything = Counter(item for share in shares for item in share)
    assert everything == Counter(mux)  # nothing twice, nothing missing
    for i, share in enumerate(shares):
        assert {k for k, _ in share} == set(range(i, 7, count))


@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from(sorted(FINITE)),
       st.integers(0, 2**32 - 1))
def test_any_split_gives_every_item_once(n_streams, count, kind, seed):
    if count > n_streams:
        return
    mux = FINITE[kind](tagged(n_streams, 2), seed)
    items = [item for i in range(count) for item in mux.shard(i, count)]
    assert sorted(items) == sorted((k, i) for k in range(n_streams) for i in range(2))


def test_a_share_is_deterministic_from_the_seed_and_differs_by_index():
    mux = ShuffledMux(tagged(6, 1000), random_state=4)
    first = list(mux.shard(1, 3)(max_iter=60))
    assert list(mux.shard(1, 3)(max_iter=60)) == first
    assert list(pickle.loads(pickle.dumps(mux.shard(1, 3)))(max_iter=60)) == first
    assert list(ShuffledMux(tagged(6, 1000), random_state=4).shard(1, 3)(max_iter=60)) == first
    other_seed = list(ShuffledMux(tagged(6, 1000), random_state=5).shard(1, 3)(max_iter=60))
    assert other_seed != first  # 60 draws among 2 streamers: equal by chance with p = 2**-60


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


def test_the_share_of_one_is_the_stream_itself():
    mux = ChainMux(tagged(2))
    assert mux.shard(0, 1) is mux
    plain = Streamer(range(3))
    assert plain.shard(0, 1) is plain


@pytest.mark.parametrize("args, error, message", [
    ((2, 2), shoal.ShoalValueError, r"index must be in 0..count-1 \(count=2\), got 2"),
    ((-1, 2), shoal.ShoalValueError, "index must be >= 0, got -1"),
    ((0, 0), shoal.ShoalValueError, "count must be >= 1, got 0"),
    ((0, 2.0), shoal.ShoalTypeError, r"count must be an integer, got 2.0 \(float\)"),
    (("0", 2), shoal.ShoalTypeError, r"index must be an integer, got '0' \(str\)"),
    ((True, 2), shoal.ShoalTypeError, r"index must be an integer, got True \(bool\)"),
])
@pytest.mark.parametrize("stream", [ChainMux(tagged(4)), StochasticMux(tagged(4), 2, 3),
                                    Streamer(range(3))], ids=["chain", "stochastic", "plain"])
def test_bad_arguments_are_refused(stream, args, error, message):
    with pytest.raises(error, match=message):
        stream.shard(*args)


def test_numpy_integers_are_accepted():
    assert list(ChainMux(tagged(4)).shard(np.int64(1), np.int32(2))) == [
        (1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]


@pytest.mark.parametrize("mux", [ChainMux(tagged(3)), RoundRobinMux(tagged(3)),
                                 ShuffledMux(tagged(3)), StochasticMux(tagged(3), 1, None)])
def test_fewer_streamers_than_shares_is_refused(mux):
    # Rather than an empty share, or a copy of the whole mux (items repeated):
    # refuse, naming both numbers.
    with pytest.raises(shoal.ShoalValueError,
                       match=r"count must be at most the number of streamers of .* \(3\), got 4: "
                             "every share needs at least one streamer"):
        mux.shard(0, 4)


def test_a_chain_over_an_iterator_of_streamers_cannot_be_sharded():
    chain = ChainMux(iter(tagged(4)))
    with pytest.raises(shoal.ShoalValueError, match="streamers are not known until they are read"):
        chain.shard(0, 2)
    assert chain.shard(0, 1) is chain


def test_a_share_of_streamers_of_weight_zero_is_refused():
    mux = ShuffledMux(tagged(4), weights=[1, 0, 1, 0])
    with pytest.raises(shoal.ShoalValueError,
                       match=r"share 1 of 2 .* has only streamers of weight 0 "
                             r"\(weights\[1::2\]\)"):
        mux.shard(1, 2)
    assert mux.shard(0, 2).weights.tolist() == [0.5, 0.5]


def forever(k):
    while True:
        yield k


def test_a_share_follows_its_streamers_weights_in_a_schedule():
    def schedule(n):
        return [1, 1, 1, 1] if n < 10 else [1, 4, 1, 0]

    mux = ShuffledMux([Streamer(forever, k) for k in range(4)], weights=schedule, random_state=0)
    odd = list(mux.shard(1, 2)(max_iter=2000))
    assert set(odd[:10]) == {1, 3}
    assert set(odd[1024:]) == {1}  # the schedule is asked again within 1024 items
    even = mux.shard(0, 2)
    assert even.weights.tolist() == [0.5, 0.5]

    def moves_away(n):
        return [1, 1, 1, 1] if n < 10 else [1, 0, 1, 0]

    mux = ShuffledMux([Streamer(forever, k) for k in range(4)], weights=moves_away)
    with pytest.raises(shoal.ShoalValueError, match=r"weights\(\d+\) must contain at least one "
                                                    "positive value, got \\[0.0, 0.0\\]"):
        list(mux.shard(1, 2)(max_iter=2000))


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


def test_a_streamer_over_a_mux_shards_the_mux():
    wrapped = Streamer(ChainMux(tagged(4)))
    assert list(wrapped.shard(1, 2)) == [(1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]


def one_stream():
    yield from range(3)


@pytest.mark.parametrize("stream", [Streamer(one_stream), Streamer([1, 2]),
                                    Streamer(buffer_stream, [1, 2, 3, 4], 2)],
                         ids=["function", "list", "map over a list"])
def test_one_stream_cannot_be_split(stream):
    with pytest.raises(shoal.ShoalValueError,
                       match="is one stream: it cannot be split into 2 shares without giving "
                             "each the same items"):
        stream.shard(0, 2)


# -- reshard_states: a pass split among n shares goes on among m --------------------


def nested(k, length):
    """Streamer k: a plain list, or a mux of its two halves: a child with a state of its own.

    The unseeded StochasticMux draws from the key its parent hands it: resumed
    in another share, it must keep that key.
    """
    items = [(k, i) for i in range(length)]
    halves = [Streamer(items[: length // 2]), Streamer(items[length // 2:])]
    if k % 3 == 2:
        return ChainMux(halves)
    if k % 3 == 1:
        return StochasticMux(halves, 1, None, mode="exhaustive")
    return Streamer(items)


EXACT = {
    "chain": lambda s, seed: ChainMux(s, random_state=seed),
    "round_robin": lambda s, seed: RoundRobinMux(s, random_state=seed),
    "stochastic": lambda s, seed: StochasticMux(s, min(len(s), 1 + seed % 3), None,
                                                mode="exhaustive", random_state=seed),
    "weighted stochastic": lambda s, seed: StochasticMux(
        s, min(len(s), 2), None, weights=[1 + (k * seed) % 5 for k in range(len(s))],
        mode="exhaustive",
        random_state=seed),
    "unseeded stochastic": lambda s, seed: StochasticMux(s, min(len(s), 2), None,
                                                         mode="exhaustive"),
}


def take(stream, state, n):
    """Iterate ``stream`` from ``state``; take ``n`` items: (items, new state)."""
    it = stream.iterator()
    if state is not None:
        it.load_state_dict(roundtrip(state))
    items = list(islice(it, n))
    saved = it.state_dict()
    it.close()
    return items, saved


def rest(stream, state):
    it = stream.iterator()
    it.load_state_dict(roundtrip(state))
    return list(it)


# An unseeded chain hands no seed down: a child not started yet draws its own
# when it starts, so only the items, not their order, are fixed.
ONE_PASS = {**EXACT, "unseeded chain": lambda s, seed: ChainMux(s)}


def flat(items, batched):
    """The (streamer, position) pairs of items, or of batches of them."""
    if not batched:
        return list(items)
    return [pair for batch in items for pair in zip(*(column.tolist() for column in batch))]


@given(st.lists(st.integers(0, 5), min_size=1, max_size=8), st.sampled_from(sorted(ONE_PASS)),
       st.integers(0, 2**16), st.booleans(), st.data())
def test_resharding_gives_exactly_one_pass(lengths, kind, seed, batched, data):
    mux = ONE_PASS[kind]([nested(k, n) for k, n in enumerate(lengths)], seed)
    stream = Streamer(buffer_stream, mux, 2, partial=True) if batched else mux
    one_pass = sorted((k, i) for k, n in enumerate(lengths) for i in range(n))
    shares_counts = data.draw(st.lists(st.integers(1, len(lengths)), min_size=2, max_size=3))
    before = []
    states = None
    count = shares_counts[0]
    for step, new_count in enumerate(shares_counts):
        if step:  # the states of `count` shares, split among `new_count`
            states = shoal.reshard_states(stream, states, new_count)
            assert len(states) == new_count
            count = new_count
        taken = []
        for i in range(count):
            n = data.draw(st.integers(0, len(one_pass) + 1))
            items, saved = take(stream.shard(i, count), states[i] if states else None, n)
            before.extend(flat(items, batched))
            taken.append(saved)
        states = taken
    after = [pair for i in range(count)
             for pair in flat(rest(stream.shard(i, count), states[i]), batched)]
    assert sorted(before + after) == one_pass  # nothing repeated, nothing lost
    assert len(set(before + after)) == len(one_pass)


@pytest.mark.parametrize("kind", sorted(EXACT))
def test_a_resharded_iteration_resumes_exactly_from_any_position(kind):
    mux = EXACT[kind]([nested(k, 3 + k % 3) for k in range(7)], 5)
    states = [take(mux.shard(i, 3), None, 2 + i)[1] for i in range(3)]
    for k, state in enumerate(shoal.reshard_states(mux, states, 2)):
        share = mux.shard(k, 2)
        it = share.iterator()
        it.load_state_dict(roundtrip(state))
        saved, items = [], []
        while True:
            saved.append(roundtrip(it.state_dict()))
            item = next(it, None)
            if item is None:
                break
            items.append(item)
        assert items  # the share had items left
        for position, state_at in enumerate(saved):
            assert rest(share, state_at) == items[position:], (kind, k, position)


@pytest.mark.parametrize("wrap", ["buffer_stream", "tuples", "keras_tuples", "streamer"])
def test_resharding_a_map_over_a_mux_goes_through_the_map(wrap):
    mux = StochasticMux([Streamer([{"id": k * 10 + i} for i in range(5)]) for k in range(6)],
                        2, None, mode="exhaustive", random_state=1)
    stream = {
        "buffer_stream": lambda: Streamer(buffer_stream, mux, 2, partial=True),
        "tuples": lambda: Streamer(tuples, mux, "id"),
        "keras_tuples": lambda: Streamer(keras_tuples, mux, "id"),
        "streamer": lambda: Streamer(mux),
    }[wrap]()

    def ids(item):
        if isinstance(item, dict):
            value = item["id"]
        elif isinstance(item, tuple):
            value = item[0]
        return np.atleast_1d(value).tolist()

    before, states = [], []
    for i in range(3):
        items, state = take(stream.shard(i, 3), None, i + 1)
        before += [x for item in items for x in ids(item)]
        states.append(state)
    states = shoal.reshard_states(stream, states, 2)
    after = [x for k in range(2) for item in rest(stream.shard(k, 2), states[k])
             for x in ids(item)]
    assert sorted(before + after) == sorted(k * 10 + i for k in range(6) for i in range(5))


def test_shares_not_started_and_ended_reshard():
    mux = ChainMux(tagged(4, 2))
    states = [mux.shard(0, 2).iterator().state_dict()]  # never iterated
    done = mux.shard(1, 2).iterator()
    everything = list(done)
    states.append(done.state_dict())  # its pass ended
    new = shoal.reshard_states(mux, states, 4)
    after = [item for k in range(4) for item in rest(mux.shard(k, 4), new[k])]
    assert sorted(everything + after) == sorted(mux)
    batches = Streamer(buffer_stream, ChainMux([[k * 10, k * 10 + 1] for k in range(4)]), 2)
    it = batches.shard(1, 2).iterator()
    assert [b.tolist() for b in it] == [[10, 11], [30, 31]]
    new = shoal.reshard_states(batches, [batches.shard(0, 2).iterator().state_dict(),
                                         it.state_dict()], 1)
    assert [b.tolist() for b in rest(batches, new[0])] == [[0, 1], [20, 21]]


def test_the_same_count_gives_the_states_back_for_any_stream():
    mux = ShuffledMux(tagged(4, 100), random_state=0)
    states = [take(mux.shard(i, 2), None, 5)[1] for i in range(2)]
    again = shoal.reshard_states(mux, states, 2)
    assert again == states and again[0] is not states[0]


@pytest.mark.parametrize("make", [
    lambda: Streamer(buffer_stream, ChainMux(tagged(2)), 2, partial=True),
    lambda: Streamer(tuples, ChainMux([[{"a": 1}], [{"a": 2}]]), "a"),
    lambda: Streamer(ChainMux(tagged(2))),
    lambda: Streamer(range(3)),
], ids=["buffer_stream", "tuples", "streamer over a mux", "list"])
def test_a_stream_resumed_from_the_end_of_its_pass_gives_nothing_more(make):
    # Before: a Streamer (a map over a mux, or a leaf) resumed from the state
    # saved at the end of its pass gave the whole pass again.
    it = make().iterator()
    assert list(it)
    assert rest(make(), it.state_dict()) == []
    cycling = make().iterator(cycle=True)
    first = list(islice(cycling, 7))
    resumed = make().iterator(cycle=True)
    resumed.load_state_dict(roundtrip(cycling.state_dict()))
    assert len(list(islice(resumed, 3))) == 3 and first


def test_a_finished_round_robin_is_not_started_again():
    # Before: a RoundRobinMux resumed from the state saved at the end of its
    # pass gave the whole pass again.
    mux = RoundRobinMux(["ab", "c"])
    it = mux.iterator()
    assert list(it) == ["a", "c", "b"]
    assert rest(mux, it.state_dict()) == []


@pytest.mark.parametrize("mux, why", [
    (ChainMux(tagged(4), mode="cycle"), r"in mode='cycle' a ChainMux starts its streamers again"),
    (RoundRobinMux(tagged(4), mode="permuted_cycle"),
     r"in mode='permuted_cycle' a RoundRobinMux starts its streamers again"),
    (ShuffledMux(tagged(4)), "a ShuffledMux restarts each streamer as soon as it ends"),
    (StochasticMux(tagged(4), 2, None), r"in mode='with_replacement' a StochasticMux activates "
                                        "streamers again and again"),
    (StochasticMux(tagged(4), 2, 3, mode="exhaustive"),
     r"with rate=3 each activation stops after a random number of items.*use rate=None"),
    (Streamer(cache, ChainMux(tagged(4)), 2),
     "a cache gives the items it holds again and again"),
], ids=["chain cycle", "permuted cycle", "shuffled", "with replacement", "rate", "cache"])
def test_resharding_refuses_where_it_cannot_be_exact(mux, why):
    states = [take(mux.shard(i, 2), None, 3)[1] for i in range(2)]
    with pytest.raises(shoal.ShoalValueError,
                       match=f"cannot reshard the states of .* exactly: {why}"):
        shoal.reshard_states(mux, states, 3)


def test_resharding_refuses_a_cycling_iteration_and_foreign_states():
    mux = ChainMux(tagged(4))
    cycling = [mux.shard(i, 2).iterator(cycle=True) for i in range(2)]
    with pytest.raises(shoal.ShoalValueError,
                       match=r"states\[0\] is of an iteration with cycle=True: each share is "
                             "somewhere else in its passes"):
        shoal.reshard_states(mux, [it.state_dict() for it in cycling], 1)
    states = [mux.shard(i, 2).iterator().state_dict() for i in range(2)]
    with pytest.raises(shoal.ShoalValueError,
                       match=r"states\[1\] is of an iteration of a ChainMux, not of a share "
                             "of this RoundRobinMux"):
        shoal.reshard_states(RoundRobinMux(tagged(4)), [states[0] | {"stream": "RoundRobinMux"},
                                                        states[1]], 1)
    with pytest.raises(shoal.ShoalValueError, match=r"states\[0\] must be a dict from "
                                                    r"StreamIterator.state_dict \(version 3\)"):
        shoal.reshard_states(mux, [{}, states[1]], 1)
    with pytest.raises(shoal.ShoalValueError) as error:
        shoal.reshard_states(mux, [mux.iterator().state_dict()] * 2, 1)
    assert str(error.value) == "state is of a ChainMux over 4 streamers, but this one has 2"
    assert error.value.__notes__ == ["in the state of share 0 of 2 of ChainMux(<4 streamers>, "
                                     "mode='exhaustive')"]


def test_resharding_checks_its_arguments():
    mux = ChainMux(tagged(4))
    states = [mux.shard(i, 2).iterator().state_dict() for i in range(2)]
    with pytest.raises(shoal.ShoalTypeError,
                       match=r"stream must be a Streamer or a mux, got \[1\]"):
        shoal.reshard_states([1], states, 1)
    with pytest.raises(shoal.ShoalTypeError,
                       match="states must be a non-empty list of the state "):
        shoal.reshard_states(mux, states[0], 1)
    with pytest.raises(shoal.ShoalTypeError, match="states must be a non-empty list"):
        shoal.reshard_states(mux, [], 1)
    with pytest.raises(shoal.ShoalValueError, match="new_count must be >= 1, got 0"):
        shoal.reshard_states(mux, states, 0)
    with pytest.raises(shoal.ShoalTypeError, match=r"new_count must be an integer, got 1.5"):
        shoal.reshard_states(mux, states, 1.5)
    with pytest.raises(shoal.ShoalValueError, match=r"\(4\), got 5: every share needs at least "
                                                    "one streamer"):
        shoal.reshard_states(mux, states, 5)
    plain = Streamer(range(5))
    with pytest.raises(shoal.ShoalValueError, match="is one stream: it cannot be split into 2"):
        shoal.reshard_states(plain, [plain.iterator().state_dict()], 2)


@pytest.mark.parametrize("make", [
    lambda: ChainMux(tagged(3)),
    lambda: RoundRobinMux(tagged(3)),
    lambda: ShuffledMux(tagged(3), random_state=0),
    lambda: StochasticMux(tagged(3), 2, None, mode="exhaustive", random_state=0),
    lambda: ShuffledMux([ChainMux(tagged(2)), RoundRobinMux(tagged(2))], random_state=1),
    lambda: Streamer(tuples, ChainMux([[{"a": k * 10 + i} for i in range(3)] for k in range(3)]),
                     "a"),
], ids=["chain", "round robin", "shuffled", "stochastic", "nested", "map"])
def test_a_state_saved_right_after_restoring_is_the_state_restored(make):
    # Before: an iteration restored and saved before its next item lost the
    # progress of what it had not reopened yet (items repeated or lost).
    it = make().iterator()
    list(islice(it, 4))
    expected = list(islice(it, 4))
    restored = make().iterator()
    restored.load_state_dict(roundtrip(take(make(), None, 4)[1]))
    again = make().iterator()
    again.load_state_dict(roundtrip(restored.state_dict()))
    assert list(islice(again, 4)) == expected


@pytest.mark.parametrize("kind", sorted(EXACT))
def test_the_counts_of_resharded_iterations_are_what_each_streamer_gave(kind):
    mux = EXACT[kind]([nested(k, 4) for k in range(6)], 3)
    iterations = [mux.shard(i, 2).iterator() for i in range(2)]
    before = [next(it) for it in iterations for _ in range(7)]
    given_by = Counter(k for k, _ in before)
    resumed = []
    for k, state in enumerate(shoal.reshard_states(mux, [it.state_dict() for it in iterations],
                                                   3)):
        it = mux.shard(k, 3).iterator()
        it.load_state_dict(state)
        resumed.append(it)
        # share k holds streamers k and k + 3
        assert it.counts() == [given_by[k], given_by[k + 3]]
    for it in resumed:
        list(it)
        assert it.counts() == [4, 4]


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
