"""reshard_states: the states of a pass split among n shares go on among m, exactly."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipelines import tagged
from resume_checker import rest, roundtrip, take

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
