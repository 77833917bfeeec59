"""An unseeded stream draws afresh at every pass and every iteration, and still resumes exactly.

The rule: with ``random_state=None`` (and no seed above), every pass of a
mux or a map that draws (ShuffledMux, StochasticMux, RoundRobinMux's
``permuted_cycle``, ``cache``) draws afresh, as in pescador; a seeded one
repeats its passes unless ``reseed_each_epoch=True``.

Every test fixes numpy's global seed, from which unseeded streams draw, so
each is deterministic; the false-failure rates stated are those of a test
run with any other global seed.
"""

from itertools import islice, pairwise

import numpy as np
import pytest
from pipelines import count, forever, lengths, plain
from resume_checker import assert_resumes_exactly

import shoal
from shoal import ChainMux, RoundRobinMux, ShuffledMux, StochasticMux, Streamer


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


def cache_passes(items):
    """The passes of a cache over ``count("a", n)``: each starts with its first 4 items."""
    first = [("a", i) for i in range(4)]
    starts = [k for k in range(len(items) - 3) if items[k:k + 4] == first]
    return [tuple(items[a:b]) for a, b in pairwise(starts)]


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
