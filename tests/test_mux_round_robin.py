"""RoundRobinMux: turns, cycling, permuted cycles, empty streamers, its arguments."""

import pytest

import shoal
from shoal import EmptyStreamError, RoundRobinMux, ShoalError, ShoalValueError


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


def test_permuted_cycle_with_unequal_lengths():
    # Each pass runs every streamer to its end, in the pass's order, round
    # robin; so each pass holds each streamer's items exactly once.
    lengths = [1, 3, 2, 4]
    streamers = [shoal.Streamer([(j, k) for k in range(m)]) for j, m in enumerate(lengths)]
    mux = shoal.RoundRobinMux(streamers, mode="permuted_cycle", random_state=0)
    per_pass = sum(lengths)
    items = list(mux(max_iter=per_pass * 50))
    first_round_orders = set()
    for p in range(50):
        chunk = items[p * per_pass:(p + 1) * per_pass]
        assert sorted(chunk) == sorted((j, k) for j, m in enumerate(lengths) for k in range(m))
        first_round_orders.add(tuple(j for j, k in chunk[: len(lengths)]))
    assert tuple(j for j, _ in items[:4]) == (0, 1, 2, 3)
    assert len(first_round_orders) > 5


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: RoundRobinMux(["a"], mode="permuted"), ShoalValueError, "got 'permuted'"),
    ],
)
def test_bad_arguments_fail_at_construction_naming_parameter_and_value(make, error, message):
    with pytest.raises(error, match=message) as info:
        make()
    assert isinstance(info.value, ShoalError)
    assert isinstance(info.value, (ValueError, TypeError))
