"""The four muxes: order, modes, nesting, closing, errors and arguments."""

from itertools import islice

import numpy as np
import pytest

from shoal import (
    ChainMux,
    EmptyStreamError,
    RoundRobinMux,
    ShoalError,
    ShoalTypeError,
    ShoalValueError,
    ShuffledMux,
    StochasticMux,
    Streamer,
)


def letters(letter, n):
    for _ in range(n):
        yield letter


def forever(tag):
    while True:
        yield tag


class Opened:
    """Generator functions that count how many of their generators are open."""

    def __init__(self):
        self.open = 0
        self.started = 0

    def stream(self, tag, n=None):
        self.open += 1
        self.started += 1
        try:
            i = 0
            while n is None or i < n:
                yield tag
                i += 1
        finally:
            self.open -= 1


KINDS = [
    (ChainMux, {}),
    (ChainMux, {"mode": "cycle"}),
    (RoundRobinMux, {}),
    (RoundRobinMux, {"mode": "cycle"}),
    (RoundRobinMux, {"mode": "permuted_cycle", "random_state": 1}),
    (ShuffledMux, {"random_state": 1}),
    (StochasticMux, {"n_active": 2, "rate": 3, "random_state": 1}),
    (StochasticMux, {"n_active": 2, "rate": 3, "mode": "single_active", "random_state": 1}),
    (StochasticMux, {"n_active": 2, "rate": 3, "mode": "exhaustive", "random_state": 1}),
]


def make_mux(index, streamers):
    mux_type, kwargs = KINDS[index]
    return mux_type(streamers, **kwargs)


def make_muxes(streamers):
    """One of each mux (and mode) over the same streamers."""
    streamers = list(streamers)
    return [make_mux(index, streamers) for index in range(len(KINDS))]


ALL_MUXES = pytest.mark.parametrize("index", range(9))


# -- ChainMux ----------------------------------------------------------------


def test_chain_runs_each_streamer_to_the_end_in_turn():
    mux = ChainMux([Streamer(letters, "a", 2), "bc", Streamer(letters, "d", 1)])
    assert "".join(mux) == "aabcd"
    assert "".join(mux) == "aabcd"


def test_chain_cycle_repeats_every_n_times_m_items():
    n_files, m_examples = 4, 3
    streams = [Streamer(range, f * 10, f * 10 + m_examples) for f in range(n_files)]
    items = list(ChainMux(streams, mode="cycle")(max_iter=5 * n_files * m_examples))
    period = n_files * m_examples
    first = items[:period]
    assert first == [f * 10 + i for f in range(n_files) for i in range(m_examples)]
    for k in range(5):
        assert items[k * period:(k + 1) * period] == first


def test_chain_reads_a_generator_of_streamers_lazily():
    made = []

    def streamers():
        for letter in "abc":
            made.append(letter)
            yield Streamer(letters, letter, 2)

    mux = ChainMux(streamers())
    assert made == []
    gen = iter(mux)
    assert next(gen) == "a"
    assert made == ["a"]
    assert "".join(gen) == "abbcc"
    assert "".join(mux) == "aabbcc"  # the streamers it read are kept


def test_chain_cycles_over_a_generator_of_streamers():
    mux = ChainMux((Streamer(letters, c, 1) for c in "xy"), mode="cycle")
    assert "".join(mux(max_iter=5)) == "xyxyx"


def test_chain_of_nothing():
    assert list(ChainMux([])) == []
    with pytest.raises(ShoalValueError, match="must not be empty with mode='cycle'"):
        ChainMux([], mode="cycle")
    with pytest.raises(EmptyStreamError, match="a whole pass yielded no item"):
        next(iter(ChainMux(iter([]), mode="cycle")))


def test_chain_cycle_of_empty_streamers_raises_instead_of_spinning():
    with pytest.raises(EmptyStreamError, match="cannot cycle ChainMux"):
        next(iter(ChainMux([[], ()], mode="cycle")))


def test_chain_skips_empty_streamers():
    assert list(ChainMux([[], [1], [], [2, 3]], mode="cycle")(max_iter=6)) == [1, 2, 3, 1, 2, 3]


# -- RoundRobinMux -----------------------------------------------------------


def test_round_robin_takes_turns_and_drops_finished_streamers():
    assert "".join(RoundRobinMux(["abc", "d", "ef"])) == "adebfc"


def test_round_robin_cycle_restarts_all_in_the_same_order():
    assert "".join(RoundRobinMux(["ab", "c"], mode="cycle")(max_iter=9)) == "acbacbacb"


def test_round_robin_permuted_cycle_keeps_the_first_pass_and_permutes_later_ones():
    mux = RoundRobinMux(list("abcde"), mode="permuted_cycle", random_state=3)
    items = "".join(mux(max_iter=50))
    passes = [items[i:i + 5] for i in range(0, 50, 5)]
    assert passes[0] == "abcde"
    assert all(sorted(p) == list("abcde") for p in passes)
    assert len(set(passes)) > 3
    assert "".join(mux(max_iter=50)) == items


def test_round_robin_cycle_of_empty_streamers_raises():
    with pytest.raises(EmptyStreamError, match="a whole pass yielded no item"):
        next(iter(RoundRobinMux([[], []], mode="cycle")))
    assert list(RoundRobinMux([[], []])) == []


# -- ShuffledMux -------------------------------------------------------------


def test_shuffled_restarts_streamers_that_run_out():
    items = list(ShuffledMux([[1, 2], [3]], random_state=0)(max_iter=300))
    assert set(items) == {1, 2, 3}
    # a restarted [1, 2] always gives 1 before 2
    ones_and_twos = [i for i in items if i != 3]
    assert ones_and_twos[:2] == [1, 2]


def test_shuffled_drops_empty_streamers_and_ends_when_all_are_dropped():
    opened = Opened()
    mux = ShuffledMux([Streamer(opened.stream, "e", 0), Streamer(letters, "x", 2)], random_state=0)
    items = list(mux(max_iter=50))
    assert items == ["x"] * 50
    assert opened.started == 1
    assert list(ShuffledMux([[], []], random_state=0)) == []


def test_shuffled_never_draws_a_zero_weight_streamer():
    mux = ShuffledMux([Streamer(forever, "a"), Streamer(forever, "b")], weights=[0, 1], random_state=0)
    assert set(mux(max_iter=2000)) == {"b"}


# -- StochasticMux -----------------------------------------------------------


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
    mux = StochasticMux([Streamer(forever, 1)], n_active=5, rate=2, random_state=0)
    assert list(mux(max_iter=10)) == [1] * 10


def test_stochastic_prunes_empty_streamers_or_raises_without_pruning():
    assert list(StochasticMux([[], []], 2, 3, random_state=0)) == []
    with pytest.raises(EmptyStreamError, match="prune_empty_streams=False"):
        list(StochasticMux([[], []], 2, 3, prune_empty_streams=False, random_state=0))
    mux = StochasticMux([[], [1]], 1, 3, prune_empty_streams=False, random_state=0)
    assert list(mux(max_iter=20)) == [1] * 20


@pytest.mark.parametrize("mode", ["with_replacement", "single_active", "exhaustive"])
def test_a_stochastic_mux_never_changes_while_it_runs(mode):
    # Its running state lives in its iterations' nodes: the recipe's attributes
    # are the same objects, with the same values, after iterations that draw,
    # reweigh, save, load, shard and cycle.
    mux = StochasticMux([Streamer(range(7)), Streamer(range(3)), ChainMux(["ab", "cd"])], 2, 3,
                        weights=lambda n: [1, 2, 1 + n % 3], mode=mode, random_state=0)
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


# -- every mux ---------------------------------------------------------------


@ALL_MUXES
def test_every_mux_is_a_streamer_with_its_methods(index):
    mux = make_muxes([Streamer(letters, "a", 3), Streamer(letters, "b", 3)])[index]
    assert isinstance(mux, Streamer)
    assert len(list(mux.iterate(max_iter=4))) == 4
    assert len(list(mux(max_iter=4))) == 4
    assert len(list(mux.cycle(max_iter=20))) == 20
    assert set(mux.cycle(max_iter=50)) <= {"a", "b"}
    assert repr(mux).startswith(type(mux).__name__ + "(<2 streamers>")


@ALL_MUXES
def test_every_mux_accepts_plain_iterables_and_generator_functions(index):
    def gen():
        yield "g"

    mux = make_muxes(["aa", ["b"], gen])[index]
    assert set(mux.cycle(max_iter=60)) == {"a", "b", "g"}


@ALL_MUXES
def test_every_mux_accepts_a_generator_of_streamers(index):
    mux = make_mux(index, (Streamer(letters, c, 2) for c in "ab"))
    assert set(mux.cycle(max_iter=40)) == {"a", "b"}
    assert set(mux.cycle(max_iter=40)) == {"a", "b"}


@ALL_MUXES
def test_every_mux_nests(index):
    inner = make_muxes([Streamer(letters, "a", 2), Streamer(letters, "b", 2)])[index]
    outer = ChainMux([inner, Streamer(letters, "c", 1)], mode="cycle")
    items = set(outer(max_iter=200))
    assert "a" in items or "b" in items
    if index in (0, 2, 8):  # finite inner muxes let the chain move on to "c"
        assert "c" in items
    mux_of_muxes = RoundRobinMux([inner, ShuffledMux(["z"], random_state=0)])
    assert "z" in set(mux_of_muxes(max_iter=20))


@ALL_MUXES
def test_simultaneous_iterations_of_a_mux_are_independent(index):
    mux = make_muxes([Streamer(range, 0, 5), Streamer(range, 10, 15)])[index]
    alone = list(mux(max_iter=30))
    a, b = mux(max_iter=30), mux(max_iter=30)
    interleaved_a, interleaved_b = [], []
    for x, y in zip(a, b):
        interleaved_a.append(x)
        interleaved_b.append(y)
    # Deterministic or seeded: each iteration gives the same sequence as one alone.
    assert interleaved_a == interleaved_b == alone


@ALL_MUXES
def test_stopping_early_closes_every_generator_the_mux_opened(index):
    opened = Opened()
    mux = make_muxes([Streamer(opened.stream, t, 50) for t in "abc"])[index]
    for count, _ in enumerate(mux, 1):
        if count == 10:
            break
    assert opened.open == 0

    gen = iter(mux)
    next(gen)
    assert opened.open >= 1
    gen.close()
    assert opened.open == 0

    def consume():
        for _ in mux:
            raise KeyError("consumer failed")

    with pytest.raises(KeyError):
        consume()
    assert opened.open == 0


@ALL_MUXES
def test_user_errors_reach_the_caller_unchanged_with_the_streamer_named(index):
    def broken():
        raise ZeroDivisionError("bad record")
        yield  # a generator function, which fails on its first item

    mux = make_muxes([Streamer(letters, "a", 100), Streamer(broken)])[index]
    with pytest.raises(ZeroDivisionError, match="bad record") as info:
        list(mux.cycle(max_iter=10_000))
    assert type(info.value) is ZeroDivisionError
    notes = "\n".join(info.value.__notes__)
    assert "Streamer(" in notes and "broken" in notes
    assert f"streamers[1] of {type(mux).__name__}" in notes


def test_errors_name_the_path_through_nested_muxes():
    def broken():
        raise OSError("disk gone")
        yield

    inner = ShuffledMux([Streamer(letters, "a", 1), Streamer(broken)], random_state=0)
    outer = ChainMux(["x", inner])
    with pytest.raises(OSError, match="disk gone") as info:
        list(outer)
    notes = info.value.__notes__
    assert len(notes) == 2  # innermost first
    assert "streamers[1] of ShuffledMux(<2 streamers>): Streamer(broken)" in notes[0]
    assert "streamers[1] of ChainMux(<2 streamers>, mode='exhaustive'): ShuffledMux" in notes[1]


def test_muxes_never_copy_their_streamers_arguments():
    big = np.ones(5_000_000)

    def ref(array):
        yield array

    streams = [Streamer(ref, big), Streamer(ref, big)]
    for mux in make_muxes(streams):
        assert next(iter(mux)) is big
        assert mux.streamers[0] is streams[0]


# -- arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: ChainMux(["a"], mode="loop"), ShoalValueError, "mode must be one of 'exhaustive', 'cycle', got 'loop'"),
        (lambda: ChainMux(["a"], mode=None), ShoalTypeError, r"mode must be one of .* got None"),
        (lambda: RoundRobinMux(["a"], mode="permuted"), ShoalValueError, "got 'permuted'"),
        (lambda: RoundRobinMux([]), ShoalValueError, "streamers must not be empty"),
        (lambda: ShuffledMux([]), ShoalValueError, "streamers must not be empty"),
        (lambda: StochasticMux([], 1, 2), ShoalValueError, "streamers must not be empty"),
        (lambda: RoundRobinMux(Streamer("ab")), ShoalTypeError, "got a single Streamer; wrap it in a list"),
        (lambda: ShuffledMux("abc"), ShoalTypeError, "must be a collection of streamers, got 'abc'"),
        (lambda: ChainMux(5), ShoalTypeError, r"got 5 \(int\)"),
        (lambda: RoundRobinMux(["a", 5]), ShoalTypeError, r"streamers\[1\] must be a Streamer.*got 5"),
        (lambda: ShuffledMux(["a"], random_state="seed"), ShoalTypeError, "random_state must be None, an int"),
        (lambda: ShuffledMux(["a"], random_state=1.5), ShoalTypeError, r"got 1.5 \(float\)"),
        (lambda: ShuffledMux(["a"], random_state=-3), ShoalValueError, "random_state must be >= 0.*got -3"),
        (lambda: ShuffledMux(["a"], random_state=True), ShoalTypeError, "got True"),
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


@pytest.mark.parametrize("mux_type", [ShuffledMux, StochasticMux])
@pytest.mark.parametrize(
    "weights, error, message",
    [
        ([1, -1], ShoalValueError, r"weights must be finite and >= 0, got \[1.0, -1.0\]"),
        ([1, float("nan")], ShoalValueError, r"weights must be finite and >= 0, got \[1.0, nan\]"),
        ([1, float("inf")], ShoalValueError, r"got \[1.0, inf\]"),
        ([0, 0], ShoalValueError, r"weights must contain at least one positive value, got \[0.0, 0.0\]"),
        ([1, 2, 3], ShoalValueError, r"weights must have one entry per streamer \(2\), got 3"),
        ([[1, 2]], ShoalValueError, r"weights must be one-dimensional, got shape \(1, 2\)"),
        (["a", "b"], ShoalTypeError, "weights must be a sequence of numbers"),
        (5, ShoalValueError, "weights must be one-dimensional"),
    ],
)
def test_bad_weights_are_refused_naming_the_value(mux_type, weights, error, message):
    extra = (1, 2) if mux_type is StochasticMux else ()
    with pytest.raises(error, match=message):
        mux_type(["a", "b"], *extra, weights=weights)


HUGE = [1e308, 1e308]  # their sum overflows to inf


@pytest.mark.parametrize("mux_type", [ShuffledMux, StochasticMux])
def test_weights_whose_sum_overflows_are_normalised_safely(mux_type):
    # It used to yield nothing (the sum was inf, so every weight became 0).
    if mux_type is StochasticMux:
        mux = StochasticMux([range(3), range(2)], 2, None, weights=HUGE, mode="exhaustive",
                            random_state=0)
        assert sorted(mux) == [0, 0, 1, 1, 2]
    else:
        mux = ShuffledMux([range(3), range(2)], weights=HUGE, random_state=0)
        assert len(list(mux(max_iter=60))) == 60
    np.testing.assert_array_equal(mux.weights, [0.5, 0.5])
    assert set(mux(max_iter=60)) == {0, 1, 2}
    np.testing.assert_allclose(ShuffledMux(["a", "b"], weights=[1e308, 3e307]).weights,
                               [1 / 1.3, 0.3 / 1.3])


@pytest.mark.parametrize("mux_type", [ShuffledMux, StochasticMux])
def test_new_weights_or_a_schedule_whose_sum_overflows_are_normalised_safely(mux_type):
    extra = (2, 3) if mux_type is StochasticMux else ()
    it = mux_type([forever("a"), forever("b")], *extra, random_state=0).iterator()
    next(it)
    it.set_weights([1e308, 1e308])
    np.testing.assert_array_equal(it.state_dict()["state"]["base_weights"], [0.5, 0.5])
    assert {next(it) for _ in range(100)} == {"a", "b"}
    scheduled = mux_type([forever("a"), forever("b")], *extra, weights=lambda n: [1e308, 1e308],
                         random_state=0)
    np.testing.assert_array_equal(scheduled.weights, [0.5, 0.5])
    assert set(scheduled(max_iter=100)) == {"a", "b"}


@pytest.mark.parametrize("mux_type", [ShuffledMux, StochasticMux])
def test_weights_too_far_apart_to_normalise_are_refused_at_every_call(mux_type):
    extra = (2, 3) if mux_type is StochasticMux else ()
    message = r"weights span too wide a range: the share of the smallest positive weight, 1e-300"
    with pytest.raises(ShoalValueError, match=message):
        mux_type(["a", "b"], *extra, weights=[1e308, 1e-300])
    it = mux_type(["a", "b"], *extra, random_state=0).iterator()
    with pytest.raises(ShoalValueError, match=message):
        it.set_weights([1e308, 1e-300])
    with pytest.raises(ShoalValueError, match=r"weights\(0\) span too wide a range"):
        mux_type(["a", "b"], *extra, weights=lambda n: [1e308, 1e-300])
    # Far apart but representable: kept.
    assert mux_type(["a", "b"], *extra, weights=[1e300, 1e-7]).weights[1] > 0


@pytest.mark.parametrize("mux_type", [ShuffledMux, StochasticMux])
@pytest.mark.parametrize(
    "weights", [[1, 3], (1, 3), np.array([1, 3]), np.array([0.25, 0.75], dtype=np.float32), [np.int64(1), 3.0]]
)
def test_weights_of_any_numeric_kind_are_normalised_and_never_modified(mux_type, weights):
    extra = (1, 2) if mux_type is StochasticMux else ()
    before = np.array(weights, copy=True)
    mux = mux_type(["a", "b"], *extra, weights=weights)
    np.testing.assert_allclose(mux.weights, [0.25, 0.75])
    np.testing.assert_array_equal(np.asarray(weights), before)
    assert not mux.weights.flags.writeable
    list(mux(max_iter=100))
    np.testing.assert_allclose(mux.weights, [0.25, 0.75])


@pytest.mark.parametrize(
    "random_state",
    [None, 7, np.int32(7), np.uint64(7), np.random.SeedSequence(7), np.random.default_rng(7),
     np.random.RandomState(7)],
)
def test_every_kind_of_random_state_is_accepted(random_state):
    mux = ShuffledMux(["a", "b", "c"], random_state=random_state)
    first = "".join(mux(max_iter=100))
    assert set(first) == {"a", "b", "c"}
    if random_state is not None:
        assert "".join(mux(max_iter=100)) == first  # seeded: the same every pass


def test_a_generator_given_as_random_state_is_read_once_at_construction():
    rng = np.random.default_rng(0)
    mux = ShuffledMux(["a", "b"], random_state=rng)
    state = rng.bit_generator.state
    list(mux(max_iter=100))
    list(mux(max_iter=100))
    assert rng.bit_generator.state == state


# -- cycling a mux -------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 2, 8])
def test_cycling_a_finite_mux_repeats_its_pass(index):
    mux = make_mux(index, [Streamer(range, 0, 5), Streamer(range, 10, 13), Streamer(range, 20, 24)])
    one_pass = list(mux)
    assert one_pass  # a finite, seeded pass
    assert list(mux.cycle(max_iter=3 * len(one_pass))) == one_pass * 3


def test_cycling_a_stochastic_mux_that_ends_restarts_it():
    mux = StochasticMux(["ab", "cd", "ef"], 2, None, mode="exhaustive", random_state=5)
    one_pass = "".join(mux)
    assert sorted(one_pass) == sorted("abcdef")
    assert "".join(mux.cycle(max_iter=18)) == one_pass * 3


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


@pytest.mark.parametrize(
    "mux",
    [
        ChainMux([[], ()]),
        RoundRobinMux([[], []]),
        ShuffledMux([[], []], random_state=0),
        StochasticMux([[], []], 1, 2, random_state=0),
        StochasticMux([[], []], 1, 2, mode="exhaustive", random_state=0),
    ],
    ids=["chain", "round_robin", "shuffled", "stochastic", "stochastic_exhaustive"],
)
def test_cycling_a_mux_that_yields_nothing_raises_instead_of_spinning(mux):
    with pytest.raises(EmptyStreamError, match="a whole pass yielded no item"):
        next(mux.cycle())
