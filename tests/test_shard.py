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


def test_a_shares_stream_wrapped_in_a_streamer_is_not_copied_into_every_worker():
    # Shares runs its own shares where ProcessStreamer and StreamDataset put them.
    # Wrapped in a Streamer it was taken for one stream and run whole in every
    # worker: every item came once per worker.
    shares = shoal.Shares(shoal.ChainMux([range(k * 10, k * 10 + 2) for k in range(4)]), 2)
    with pytest.raises(shoal.ShoalValueError, match="split into its shares already"):
        shoal.Streamer(shares).shard(0, 2)
    with pytest.raises(shoal.ShoalValueError, match="split into its shares already"):
        shoal.ProcessStreamer(shoal.Streamer(shares), n_workers=2, start_method="fork")
    one = shoal.ProcessStreamer(shoal.Streamer(shares), n_workers=1, start_method="fork")
    assert list(one) == list(shares) == [0, 10, 1, 11, 20, 30, 21, 31]
