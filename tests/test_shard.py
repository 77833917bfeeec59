"""shard(index, count), for every kind of stream: disjoint shares that together are the whole stream.

Resharding the states of the shares among another number of shares
(reshard_states) is in test_reshard.py.
"""

import pickle
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipelines import tagged

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
    assert all(type(share) is Streamer and share.source is buffer_stream for share in shares)
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
