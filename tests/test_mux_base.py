"""What every mux shares (mux/_base.py): the Streamer methods, nesting, errors, arguments, weights.

The tests run over one mux of each kind and mode (tests/muxes.py), or over
the two weighted ones (ShuffledMux, StochasticMux); a test of one kind alone
is in that kind's file, test_mux_<kind>.py.
"""

from collections import Counter

import numpy as np
import pytest
from muxes import ALL_MUXES, endless, letters, make_mux, make_muxes
from pipelines import count, forever
from resume_checker import roundtrip

import shoal
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
    it = mux_type([endless("a"), endless("b")], *extra, random_state=0).iterator()
    next(it)
    it.set_weights([1e308, 1e308])
    np.testing.assert_array_equal(it.state_dict()["state"]["base_weights"], [0.5, 0.5])
    assert {next(it) for _ in range(100)} == {"a", "b"}
    scheduled = mux_type([endless("a"), endless("b")], *extra, weights=lambda n: [1e308, 1e308],
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


# -- weights that change -------------------------------------------------------


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


def test_a_bad_schedule_or_bad_new_weights_are_refused_clearly():
    with pytest.raises(ShoalValueError, match=r"weights\(0\) must have one entry per streamer"):
        shoal.ShuffledMux(["a", "b"], weights=lambda n: [1])
    it = shoal.ShuffledMux(["a", "b"], random_state=0).iterator()
    with pytest.raises(ShoalValueError, match=r"weights must be finite and >= 0, got \[1.0, -1.0\]"):
        it.set_weights([1, -1])
    with pytest.raises(ShoalTypeError, match="set_weights\\(\\) is for ShuffledMux and StochasticMux"):
        shoal.ChainMux(["a"]).iterator().set_weights([1])
