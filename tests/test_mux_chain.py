"""ChainMux: each streamer to its end in turn, cycling, empty streamers, its arguments.

ChainMux over a source of streamers (a generator function, a generator or a
Streamer that gives streamers) is in test_mux_chain_source.py.
"""

import pytest
from muxes import letters

from shoal import ChainMux, EmptyStreamError, ShoalError, ShoalTypeError, ShoalValueError, Streamer


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


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: ChainMux(["a"], mode="loop"), ShoalValueError, "mode must be one of 'exhaustive', 'cycle', got 'loop'"),
        (lambda: ChainMux(["a"], mode=None), ShoalTypeError, r"mode must be one of .* got None"),
    ],
)
def test_bad_arguments_fail_at_construction_naming_parameter_and_value(make, error, message):
    with pytest.raises(error, match=message) as info:
        make()
    assert isinstance(info.value, ShoalError)
    assert isinstance(info.value, (ValueError, TypeError))
