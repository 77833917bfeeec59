"""Seeds flow down a tree of muxes: each activation of a child draws from its own key."""

import json
from itertools import islice

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipelines import count, forever, plain
from resume_checker import assert_resumes_exactly

import shoal
from shoal import ChainMux, RoundRobinMux, ShuffledMux, StochasticMux, Streamer


def per_class(seed, tags="abcd"):
    """A seeded mux over endless streams, as one would make for each class."""
    return ShuffledMux([Streamer(forever, tag) for tag in tags], random_state=seed)


def activations(items, size):
    return [tuple(items[k:k + size]) for k in range(0, len(items), size)]


def test_successive_activations_of_a_seeded_child_differ():
    # The recipe: a seeded mux inside another mux, 20 items an activation.
    outer = StochasticMux([per_class(100)], n_active=1, rate=20, dist="constant",
                          random_state=0)
    runs = activations(list(islice(outer, 20 * 40)), 20)
    # Before, all 40 were the same 20 items. Two activations drawn from distinct
    # keys coincide with chance 4**-20 a pair: below 1e-9 for the 780 pairs.
    assert len(set(runs)) == 40
    # A child's first activation is keyed too: not what the mux gives on its own.
    assert runs[0] != tuple(islice(per_class(100), 20))


def test_successive_activations_differ_in_every_mux_that_restarts_a_child():
    # ShuffledMux restarts a child that ran out; StochasticMux reactivates one.
    child = StochasticMux([per_class(1), per_class(2)], n_active=1, rate=10, dist="constant",
                          mode="exhaustive", random_state=3)  # 20 items, then it ends
    for parent in (ShuffledMux([child], random_state=4),
                   StochasticMux([child], 1, 20, dist="constant", random_state=4,
                                 mode="with_replacement")):
        runs = activations(list(islice(parent, 20 * 10)), 20)
        assert len(set(runs)) == 10, parent


def test_a_child_iterated_on_its_own_still_gives_what_it_gave():
    # A root's key is its seed: a mux alone draws exactly what it drew before.
    mux = per_class(100)
    assert list(islice(mux, 8)) == list(islice(mux, 8))
    # (The docstring's example, whose output predates seeds flowing down.)
    assert "".join(islice(ShuffledMux(["a", "b", "c"], random_state=0), 12)) == "cacaccababbb"


def nested_tree(seed=7):
    """A tree with seeded and unseeded muxes, a map and a chain, under a seeded root."""
    return StochasticMux([
        per_class(100, "ab"),
        ShuffledMux([Streamer(forever, t) for t in "cd"]),  # unseeded: inherits
        ChainMux([StochasticMux([Streamer(count, t, 5) for t in "ef"], 1, 2,
                                mode="exhaustive")]),
        Streamer(shoal.cache, per_class(None, "gh"), 3, random_state=None),
        RoundRobinMux([per_class(5, "ij"), Streamer(count, "k", 3)], mode="permuted_cycle"),
    ], n_active=2, rate=4, random_state=seed)


def test_the_whole_tree_is_reproducible_from_its_seeds():
    np.random.seed(1)
    first = list(islice(nested_tree(), 600))
    np.random.seed(2)  # unseeded muxes under a seeded one do not draw from numpy's state
    again = list(islice(nested_tree(), 600))
    assert first == again
    assert list(islice(nested_tree(8), 600)) != first
    assert {tag[0] for tag, _ in first} == set("abcdefghijk")


def test_tracked_and_plain_iterations_give_the_same_items():
    # iter(), iterate() and iterator() hand the children the same keys.
    tree = nested_tree()
    expected = list(islice(tree, 600))
    assert list(islice(tree.iterator(), 600)) == expected
    assert list(tree.iterate(max_iter=600)) == expected
    wrapped = Streamer(shoal.tuples, ShuffledMux([Streamer(forever, t) for t in "ab"]), 0)
    outer = ChainMux([wrapped, wrapped], random_state=3)
    assert list(islice(outer.iterator(), 50)) == list(islice(outer, 50))


def test_an_unseeded_tree_repeats_with_numpys_seed():
    tree = ChainMux([StochasticMux([per_class(None)], 1, 12, dist="constant")])
    np.random.seed(3)
    first = list(islice(tree, 12 * 20))
    np.random.seed(3)
    assert list(islice(tree, 12 * 20)) == first
    # ... and the activations of the unseeded child differ all the same (were two
    # drawn apart, they would coincide with chance 4**-12 a pair: 1e-5 for 190 pairs).
    assert len(set(activations(first, 12))) == 20


def validation_set():
    """A validation recipe: a cycling chain over seeded muxes with nested seeded muxes."""
    a, b = per_class(10, "ab"), per_class(11, "cd")
    return ChainMux([
        # The same child twice in one pass: each appearance has its own key. 12 items.
        StochasticMux([a, b, a], n_active=2, rate=4, dist="constant", mode="exhaustive",
                      random_state=1),
        # 6 items in 3 batches.
        Streamer(shoal.buffer_stream,
                 StochasticMux([b, Streamer(count, "e", 3)], 1, 3, dist="constant",
                               mode="exhaustive", random_state=2), 2),
        # 5 items.
        RoundRobinMux([StochasticMux([per_class(12, "fg")], 1, 3, dist="constant",
                                     mode="exhaustive", random_state=5),
                       Streamer(count, "h", 2)]),
    ], mode="cycle")


def test_a_cycling_chain_over_seeded_muxes_repeats_exactly_every_pass():
    chain = validation_set()
    one_pass = [plain(item) for item in ChainMux(chain.streamers)]  # exhaustive: one pass
    assert len(one_pass) == 12 + 3 + 5
    assert [plain(item) for item in islice(chain, 20 * 6)] == one_pass * 6
    assert [plain(item) for item in islice(chain.iterator(), 20 * 6)] == one_pass * 6
    # Within a pass, the three activations (a, b and a again) all differ.
    assert len(set(activations(one_pass[:12], 4))) == 3


@pytest.mark.parametrize("reseed", [False, True])
def test_a_seeded_mux_alone_repeats_every_pass_unless_reseeded(reseed):
    # One activation of the nested mux a pass: only its key can change the pass.
    mux = StochasticMux([per_class(100)], 1, 12, dist="constant", mode="exhaustive",
                        random_state=0, reseed_each_epoch=reseed)
    runs = activations(list(islice(mux.cycle(), 12 * 10)), 12)
    assert runs[0] == tuple(mux) and list(mux) == list(mux)
    if reseed:
        # A pass keyed by its number: two passes coincide with chance 4**-12 a pair.
        assert len(set(runs)) == 10
    else:
        assert len(set(runs)) == 1


def test_a_childs_activations_do_not_depend_on_the_parents_draws():
    # The k-th activation of streamer i is keyed by (pass, i, k): a parent with
    # another seed activates the children in another order, with the same items.
    def by_child(parent_seed):
        parent = StochasticMux([per_class(100, "abcd"), per_class(200, "wxyz")], 1, 5,
                               dist="constant", random_state=parent_seed)
        runs = activations(list(islice(parent, 5 * 40)), 5)
        first = [run for run in runs if run[0][0] in "abcd"]
        second = [run for run in runs if run[0][0] in "wxyz"]
        assert len(first) >= 5 and len(second) >= 5
        return first[:5], second[:5]

    assert by_child(1) == by_child(2)
    assert list(islice(StochasticMux([per_class(100, "abcd"), per_class(200, "wxyz")], 1, 5,
                                     dist="constant", random_state=1), 100)) != list(
        islice(StochasticMux([per_class(100, "abcd"), per_class(200, "wxyz")], 1, 5,
                             dist="constant", random_state=2), 100))


def test_a_childs_activations_do_not_depend_on_the_parents_weights():
    def by_child(weights):
        parent = StochasticMux([per_class(100, "abcd"), per_class(200, "wxyz")], 1, 5,
                               weights=weights, dist="constant", random_state=1)
        runs = activations(list(islice(parent, 5 * 60)), 5)
        first = [run for run in runs if run[0][0] in "abcd"]
        second = [run for run in runs if run[0][0] in "wxyz"]
        assert len(first) >= 3 and len(second) >= 3
        return first[:3], second[:3]

    assert by_child([1, 3]) == by_child([3, 1])


def test_an_unseeded_chain_hands_down_no_seed_unless_given_one():
    # With no seed anywhere above, an unseeded mux draws a new seed at each
    # activation (from numpy's state), so a cycling chain's passes differ...
    inner = StochasticMux([per_class(None)], 1, 12, dist="constant", mode="exhaustive")
    np.random.seed(0)
    runs = activations(list(islice(ChainMux([inner], mode="cycle"), 12 * 5)), 12)
    assert len(set(runs)) == 5  # a repeat has chance 4**-12 a pair
    # ... and the chain's random_state is the seed they inherit: then they repeat.
    seeded = ChainMux([inner], mode="cycle", random_state=3)
    runs = activations(list(islice(seeded, 12 * 5)), 12)
    assert len(set(runs)) == 1


def test_maps_pass_the_key_on_and_a_cache_draws_from_it():
    batches = Streamer(shoal.buffer_stream, per_class(1), 3)
    parent = StochasticMux([batches], 1, 4, dist="constant", random_state=0)
    runs = activations([plain(batch) for batch in islice(parent, 4 * 10)], 4)
    assert len(set(map(str, runs))) == 10  # 12 picks of 4 an activation: apart, 45 * 4**-12
    # An unseeded cache over a leaf: its draws are its only randomness.
    cached = Streamer(shoal.cache, Streamer(count, "a", 1000), 4, prob=0.5)
    parent = StochasticMux([cached], 1, 12, dist="constant", random_state=0)
    np.random.seed(1)
    items = list(islice(parent, 12 * 10))
    assert len(set(activations(items, 12))) == 10
    np.random.seed(2)
    assert list(islice(parent, 12 * 10)) == items  # it inherits the parent's seed
    # A seeded cache: its activations differ as well.
    cached = Streamer(shoal.cache, Streamer(count, "a", 1000), 4, prob=0.5, random_state=9)
    parent = StochasticMux([cached], 1, 12, dist="constant", random_state=0)
    assert len(set(activations(list(islice(parent, 12 * 10)), 12))) == 10


def test_a_cache_over_a_collection_resumes_exactly_and_draws_from_its_key():
    # Its input is read through a Streamer: the cache's seed is in the state.
    # (Resumed by restarting and skipping, an unseeded cache drew another seed.)
    stream = Streamer(shoal.cache, list(range(100)), 4)
    it = stream.iterator()
    next(it)
    states, items = [], []
    for _ in range(40):
        states.append(json.loads(json.dumps(it.state_dict())))
        items.append(next(it))
    items += list(islice(it, 10))
    for position, state in enumerate(states):
        resumed = stream.iterator()
        resumed.load_state_dict(state)
        assert list(islice(resumed, 10)) == items[position:position + 10]
    inside = StochasticMux([Streamer(shoal.cache, list(range(100)), 4)], 1, 9, random_state=2)
    assert_resumes_exactly(lambda: inside, n_positions=40, n_after=10)
    cached = Streamer(shoal.cache, list(range(1000)), 4, random_state=9)
    parent = StochasticMux([cached], 1, 12, dist="constant", random_state=0)
    assert len(set(activations(list(islice(parent, 12 * 10)), 12))) == 10


def restarting_from_its_seed(stream):
    parent = StochasticMux([stream], 1, 5, dist="constant", random_state=0)
    runs = activations(list(islice(parent, 5 * 4)), 5)
    return len(set(runs)) == 1


def test_a_mux_iterated_inside_a_generator_function_is_a_root_each_time():
    mux = per_class(1)
    assert restarting_from_its_seed(Streamer(lambda: iter(mux)))
    assert not restarting_from_its_seed(Streamer(mux))


def test_a_mux_run_by_worker_processes_is_a_root_each_time():
    assert restarting_from_its_seed(shoal.ProcessStreamer(per_class(1)))


def test_two_places_in_a_tree_never_share_a_key():
    from shoal._random import TreeSeed

    class Reseeded:
        _seed = None
        reseed_each_epoch = True

    keys = []

    def visit(tree_seed, depth):
        keys.extend(tuple(tree_seed.pass_key(Reseeded(), e)) for e in range(3))
        if depth:
            for v, i, a in np.ndindex(2, 2, 2):
                visit(TreeSeed(None, tree_seed.child(v, i, a)), depth - 1)

    visit(TreeSeed(np.random.SeedSequence(5)), 2)  # every node inherits the root's seed
    assert len(keys) == 3 * (1 + 8 + 64) == len(set(keys))


def test_unseeded_siblings_draw_apart():
    # Both inherit the parent's seed; their places (index 0 and 1) set them apart.
    parent = StochasticMux([per_class(None, "ab"), per_class(None, "cd")], n_active=1,
                           rate=20, dist="constant", mode="exhaustive", random_state=0)
    patterns = {}
    for tag, _ in parent:
        patterns.setdefault(tag in "ab", []).append(tag in "ac")  # which of its two streams
    assert len(patterns[True]) == len(patterns[False]) == 20
    # Drawn from one key, the two patterns would be equal; apart, with chance 2**-20.
    assert patterns[True] != patterns[False]


def test_the_state_carries_counters_not_generators():
    it = nested_tree().iterator()
    for _ in range(123):
        next(it)
    state = it.state_dict()
    text = json.dumps(state)
    assert json.loads(text) == state and len(text) < 4000
    node = state["state"]
    assert node["seed"] is None  # seeded: nothing drawn to keep
    assert sum(node["n_activations"]) >= 30
    # Each open slot knows its activation's number, from which its key is rebuilt.
    assert all(isinstance(slot["number"], int) for slot in node["slots"] if slot)


# -- random trees of seeded muxes ---------------------------------------------

leaves = st.builds(lambda tag, n, endless: Streamer(forever, tag) if endless
                   else Streamer(count, tag, n),
                   st.sampled_from("abcdefgh"), st.integers(1, 6), st.booleans())
seeds = st.one_of(st.none(), st.integers(0, 2**32 - 1))


def _mux(kind, children, seed, choice):
    n = len(children)
    if kind == "map":  # a map over the first child: a cache (it draws) or batches
        if choice or not children[0]._plain_leaf:
            return Streamer(shoal.cache, children[0], 3, random_state=seed)
        # (Batches of a leaf only: a mux may mix batches and items.)
        return Streamer(shoal.buffer_stream, children[0], 2, partial=True)
    if kind == "shuffled":
        return ShuffledMux(children, random_state=seed, reseed_each_epoch=choice)
    if kind == "stochastic":
        return StochasticMux(children, n_active=1 + (seed or 0) % n, rate=3,
                             mode="exhaustive" if choice else "with_replacement",
                             random_state=seed)
    if kind == "chain":
        return ChainMux(children, mode="cycle" if choice else "exhaustive", random_state=seed)
    return RoundRobinMux(children, mode="permuted_cycle" if choice else "exhaustive",
                         random_state=seed)


def trees(depth):
    if depth == 0:
        return leaves
    children = st.lists(st.one_of(leaves, trees(depth - 1)), min_size=1, max_size=3)
    kinds = st.sampled_from(["shuffled", "stochastic", "chain", "round robin", "map"])
    return st.builds(_mux, kinds, children, seeds, st.booleans())


@settings(max_examples=40, deadline=None)
@given(trees(3), st.integers(0, 2**32 - 1))
def test_random_trees_are_reproducible_and_resume_exactly(tree, seed):
    root = StochasticMux([tree], 1, 7, random_state=seed)  # seeded root: all reproducible
    np.random.seed(0)
    expected = [plain(item) for item in islice(root, 80)]
    np.random.seed(1)
    assert [plain(item) for item in islice(root, 80)] == expected
    assert [plain(item) for item in islice(root.iterator(), 80)] == expected
    assert_resumes_exactly(lambda: root, n_positions=12, n_after=10, normalize=plain)
