"""Seeds: a seeded stream repeats, an unseeded one draws afresh, and seeds flow down a tree.

Each activation of a child in a tree of muxes draws from its own key. With
``random_state=None`` (and no seed above), every pass of a mux or a map that
draws (ShuffledMux, StochasticMux, RoundRobinMux's ``permuted_cycle``,
``cache``) draws afresh, as in pescador; a seeded one repeats its passes
unless ``reseed_each_epoch=True``.

The tests of unseeded streams fix numpy's global seed, from which those
streams draw, so each is deterministic; the chances they state (of two
passes or activations that coincide) are those of a run with any other
global seed.
"""

import json
from itertools import islice, pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from muxes import endless
from pipelines import count, forever, lengths, plain
from resume_checker import assert_resumes_exactly

import shoal
from shoal import ChainMux, RoundRobinMux, ShuffledMux, StochasticMux, Streamer

# -- seeds flow down a tree of muxes -------------------------------------------


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


# -- one seed, one sequence: every random mux and cache ------------------------


def shuffled_factory(random_state):
    streamers = [shoal.Streamer(range, 0, 7), shoal.Streamer(endless, "f"), shoal.Streamer("abc")]
    return shoal.ShuffledMux(streamers, weights=[1, 2, 3], random_state=random_state)


def stochastic_factory(mode, dist="binomial"):
    def make(random_state):
        streamers = [shoal.Streamer(range, 10 * j, 10 * j + 3 + j) for j in range(5)]
        return shoal.StochasticMux(
            streamers,
            n_active=3,
            rate=2.5,
            weights=[1, 2, 3, 4, 5],
            mode=mode,
            dist=dist,
            random_state=random_state,
        )

    return make


def permuted_factory(random_state):
    return shoal.RoundRobinMux(
        [shoal.Streamer(range, 10 * j, 10 * j + 1 + j) for j in range(5)],
        mode="permuted_cycle",
        random_state=random_state,
    )


FACTORIES = {
    "shuffled": shuffled_factory,
    "stochastic-with_replacement": stochastic_factory("with_replacement"),
    "stochastic-single_active": stochastic_factory("single_active"),
    "stochastic-poisson": stochastic_factory("with_replacement", "poisson"),
    "stochastic-constant": stochastic_factory("with_replacement", "constant"),
    "round_robin-permuted_cycle": permuted_factory,
}


N_REPRO = 2000


def first_items(mux):
    return list(mux(max_iter=N_REPRO))


@pytest.mark.parametrize("make", FACTORIES.values(), ids=FACTORIES.keys())
def test_same_int_seed_same_sequence(make):
    first = first_items(make(42))
    assert len(first) == N_REPRO
    assert first_items(make(42)) == first  # another mux object
    mux = make(42)
    assert first_items(mux) == first
    assert first_items(mux) == first  # another pass of the same mux
    assert list(islice(iter(mux), N_REPRO)) == first  # plain iteration too


@pytest.mark.parametrize("make", FACTORIES.values(), ids=FACTORIES.keys())
def test_different_seeds_different_sequences(make):
    sequences = [tuple(first_items(make(seed))) for seed in (0, 1, 2, 3)]
    assert len(set(sequences)) == 4


@pytest.mark.parametrize("make", FACTORIES.values(), ids=FACTORIES.keys())
@pytest.mark.parametrize(
    "seed_maker",
    [np.random.SeedSequence, np.random.default_rng, np.random.RandomState],
    ids=["SeedSequence", "Generator", "RandomState"],
)
def test_numpy_seed_objects_are_repeatable(make, seed_maker):
    mux = make(seed_maker(5))
    first = first_items(mux)
    assert len(first) == N_REPRO
    assert first_items(mux) == first  # the same on every pass
    # An equal seed object gives the same sequence in another mux.
    assert first_items(make(seed_maker(5))) == first
    assert first_items(make(seed_maker(6))) != first


def test_generator_seed_is_read_once():
    # The mux draws its seed from the Generator once, when it is built: later
    # use of the generator does not change the mux's sequence.
    rng = np.random.default_rng(5)
    mux = shuffled_factory(rng)
    first = first_items(mux)
    rng.random(100)
    assert first_items(mux) == first


@pytest.mark.parametrize("make", FACTORIES.values(), ids=FACTORIES.keys())
def test_unseeded_mux_follows_numpy_global_seed(make, global_numpy_state):
    mux = make(None)
    np.random.seed(0)
    first = first_items(mux)
    np.random.seed(0)
    assert first_items(mux) == first
    # Without reseeding, the next pass draws a new seed and differs.
    assert first_items(mux) != first
    np.random.seed(1)
    assert first_items(mux) != first


def test_cache_seeds_are_repeatable(global_numpy_state):
    def run(random_state):
        return list(shoal.cache(range(3000), n_cache=20, prob=0.3, random_state=random_state))

    first = run(42)
    assert run(42) == first
    assert run(43) != first
    for maker in (np.random.SeedSequence, np.random.default_rng, np.random.RandomState):
        assert run(maker(5)) == run(maker(5))
    np.random.seed(0)
    unseeded = run(None)
    np.random.seed(0)
    assert run(None) == unseeded


# -- unseeded streams draw afresh at every pass, and still resume exactly ------


def epochs(items, size):
    return [tuple(items[k:k + size]) for k in range(0, len(items), size)]


def gallery_recipe(random_state=None, **kwargs):
    """pescador's "Using cycle mode to create data epochs": 4 streams of 10 items."""
    streams = lengths("abcd", (10, 10, 10, 10))
    return StochasticMux(streams, n_active=2, rate=None, mode="exhaustive",
                         random_state=random_state, **kwargs)


# Each epoch of the recipe has 40 items; while two streams are active (for 30
# items at least) each item comes from either with chance 1/2, so a given epoch
# has chance at most 2**-30 of any one order, and two epochs drawn apart
# coincide with chance at most 2**-30: below 1e-7 for the pairs of 6 epochs.
CYCLES = {
    "cycle()": lambda mux, n: list(mux.cycle(max_iter=n)),
    "__call__(cycle=True)": lambda mux, n: list(mux(max_iter=n, cycle=True)),
    "iterator(cycle=True)": lambda mux, n: list(islice(mux.iterator(cycle=True), n)),
    "Streamer(mux).cycle()": lambda mux, n: list(Streamer(mux).cycle(max_iter=n)),
    "Streamer(mux).iterator(cycle=True)":
        lambda mux, n: list(islice(Streamer(mux).iterator(cycle=True), n)),
}


@pytest.mark.parametrize("how", CYCLES)
def test_the_gallery_recipe_gives_every_epoch_in_a_new_order(how):
    np.random.seed(0)
    mux = gallery_recipe()
    runs = epochs(CYCLES[how](mux, 40 * 6), 40)
    everything = sorted((tag, i) for tag in "abcd" for i in range(10))
    assert all(sorted(run) == everything for run in runs)  # each epoch: every item once
    assert len(set(runs)) == 6, how  # ... in an order of its own (before: the first, 6 times)


def test_a_seeded_recipe_repeats_its_epochs_unless_reseeded():
    runs = epochs(list(gallery_recipe(0).cycle(max_iter=40 * 4)), 40)
    assert len(set(runs)) == 1
    runs = epochs(list(gallery_recipe(0, reseed_each_epoch=True).cycle(max_iter=40 * 4)), 40)
    assert len(set(runs)) == 4  # (chance of a repeat as above)


def test_separate_iterations_of_an_unseeded_mux_differ():
    np.random.seed(1)
    mux = gallery_recipe()
    # Two loops, two orders (a repeat: chance below 2**-30 a pair, as above).
    assert len({tuple(mux) for _ in range(5)}) == 5
    assert len({tuple(islice(mux.iterator(), 40)) for _ in range(5)}) == 5


def test_an_unseeded_mux_repeats_under_numpys_seed():
    # Unseeded draws come from numpy's global state, as in pescador.
    np.random.seed(5)
    first = list(gallery_recipe().cycle(max_iter=120))
    np.random.seed(5)
    assert list(gallery_recipe().cycle(max_iter=120)) == first


def once_per_pass(tag, n):
    """A source that gives its ``n`` items at every other start: a ShuffledMux pass ends.

    A ShuffledMux drops a streamer that yields nothing when restarted, and its
    pass ends when every streamer is dropped; the next pass starts them again.
    """
    starts = [0]

    def source():
        starts[0] += 1
        if starts[0] % 2:
            yield from ((tag, i) for i in range(n))

    return Streamer(source)


def test_each_pass_of_an_unseeded_shuffled_mux_draws_afresh():
    np.random.seed(2)
    mux = ShuffledMux([once_per_pass(tag, 10) for tag in "ab"])
    runs = epochs(list(mux.cycle(max_iter=20 * 6)), 20)
    assert all(sorted(run) == sorted((t, i) for t in "ab" for i in range(10)) for run in runs)
    # Each of the 20 picks of a pass (but those after one streamer ran out) is
    # a or b with chance 1/2 each; a pass has at most C(20, 10)**-1 chance of
    # any one order: two passes coincide with chance below 6e-6, 1e-4 for 15 pairs.
    assert len(set(runs)) == 6
    seeded = ShuffledMux([once_per_pass(tag, 10) for tag in "ab"], random_state=3)
    assert len(set(epochs(list(seeded.cycle(max_iter=20 * 4)), 20))) == 1


def test_each_pass_of_an_unseeded_permuted_round_robin_draws_afresh():
    np.random.seed(3)
    mux = RoundRobinMux(lengths("abcdef", (1,) * 6), mode="permuted_cycle")
    runs = epochs([tag for tag, _ in mux(max_iter=6 * 8)], 6)
    assert runs[0] == tuple("abcdef")  # the first pass keeps the given order, as in pescador
    # 7 permutations of 6: a repeat among them has chance below 21 / 720 = 3%...
    # ... so compare two iterations instead: 7 permutations each, equal with chance 720**-7.
    assert runs != epochs([tag for tag, _ in mux(max_iter=6 * 8)], 6)


def cache_passes(items):
    """The passes of a cache over ``count("a", n)``: each starts with its first 4 items."""
    first = [("a", i) for i in range(4)]
    starts = [k for k in range(len(items) - 3) if items[k:k + 4] == first]
    return [tuple(items[a:b]) for a, b in pairwise(starts)]


def test_each_pass_of_an_unseeded_cache_draws_afresh():
    np.random.seed(4)
    stream = Streamer(shoal.cache, Streamer(count, "a", 40), 4, prob=0.5)
    # Each pass ends when the input does: 36 new items, each into one of 4 slots.
    for items in (list(stream.cycle(max_iter=400)),
                  list(islice(stream.iterator(cycle=True), 400))):
        runs = cache_passes(items)
        assert len(runs) >= 3 and len(set(runs)) == len(runs)


# Inside an unseeded mux, a mux whose passes repeat (a ChainMux or a
# RoundRobinMux in "cycle" mode) draws each pass of what it holds afresh too.
# The inner streams draw 12 items of 4 tags (chance of one order at most
# 2**-12 with two active): two passes coincide with chance below 2**-12, so
# below 1e-2 for the 45 pairs of 10 passes: the global seed is fixed.
def _inner_mux():
    return StochasticMux(lengths("abcd", (3, 3, 3, 3)), 2, None, mode="exhaustive")


INNER = {
    "chain cycle": lambda: ChainMux([_inner_mux()], mode="cycle"),
    "round robin cycle": lambda: RoundRobinMux([_inner_mux()], mode="cycle"),
}


@pytest.mark.parametrize("name", INNER)
def test_a_repeating_mux_under_an_unseeded_one_draws_each_pass_afresh(name):
    np.random.seed(6)
    # Its only streamer never ends: the outer mux's one activation holds every pass.
    outer = StochasticMux([INNER[name]()], 1, None, mode="exhaustive")
    runs = epochs(list(islice(outer, 12 * 10)), 12)
    assert len(set(runs)) == 10
    # Under a seed, the same tree repeats its passes.
    outer = StochasticMux([INNER[name]()], 1, None, mode="exhaustive", random_state=1)
    assert len(set(epochs(list(islice(outer, 12 * 10)), 12))) == 1


def test_seeded_muxes_in_an_unseeded_tree_still_repeat_their_passes():
    def seeded(tags, random_state):
        return StochasticMux(lengths(tags, (5, 5)), 2, None, mode="exhaustive",
                             random_state=random_state)

    np.random.seed(9)
    outer = StochasticMux([seeded("ab", 1), seeded("cd", 2)], 2, None, mode="exhaustive")
    runs = epochs(list(outer.cycle(max_iter=20 * 5)), 20)
    # Each seeded mux gives the same 10 items in the same order at every pass...
    for tags in ("ab", "cd"):
        assert len({tuple(item for item in run if item[0] in tags) for run in runs}) == 1
    # ... and the unseeded one interleaves them anew: while both are active (10
    # items at least), each item is from either with chance 1/2, so two passes
    # coincide with chance below 2**-10: 1e-2 for the 10 pairs (the seed is fixed).
    assert len(set(runs)) == 5


def test_a_cache_in_a_repeating_mux_under_an_unseeded_one_draws_each_pass_afresh():
    def tree(random_state):
        cached = Streamer(shoal.cache, Streamer(count, "a", 12), 4, prob=0.5)
        return StochasticMux([ChainMux([cached], mode="cycle")], 1, None, mode="exhaustive",
                             random_state=random_state)

    np.random.seed(8)
    runs = cache_passes(list(islice(tree(None), 400)))
    # 8 new items a pass, each taken at a step with chance 1/2, into one of 4
    # slots: two passes coincide with chance below 2**-8 * 4**-8: 1e-4 for
    # the pairs of 10 passes or so.
    assert len(runs) >= 10 and len(set(runs)) == len(runs)
    assert len(set(cache_passes(list(islice(tree(1), 400))))) == 1


UNSEEDED = {
    "gallery recipe": gallery_recipe,
    "stochastic with replacement": lambda: StochasticMux(
        [Streamer(forever, t) for t in "abc"], 2, 3),
    "round robin permuted": lambda: RoundRobinMux(lengths("abc", (2, 3, 1)),
                                                  mode="permuted_cycle"),
    "cache": lambda: Streamer(shoal.cache, Streamer(count, "a", 9), 3),
    # A Streamer or a map over an unseeded mux: saved before a pass opens (at
    # the start, or between two passes), the state says what the pass draws.
    "streamer of the gallery recipe": lambda: Streamer(gallery_recipe()),
    "batches of the gallery recipe": lambda: Streamer(shoal.buffer_stream, gallery_recipe(), 8),
    "repeating mux under an unseeded one": lambda: StochasticMux(
        [INNER["chain cycle"]()], 1, None, mode="exhaustive"),
}


@pytest.mark.parametrize("name", UNSEEDED)
def test_an_unseeded_cycling_iteration_resumes_exactly_across_passes(name):
    # What was drawn is in the state: the drawn seed and the pass number.
    np.random.seed(7)
    assert_resumes_exactly(UNSEEDED[name], n_positions=100, n_after=30, cycle=True,
                           normalize=plain)
