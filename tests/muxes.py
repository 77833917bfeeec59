"""What the mux tests share: small generator functions, and one mux of each kind and mode."""

import pytest

from shoal import ChainMux, RoundRobinMux, ShuffledMux, StochasticMux


def letters(letter, n):
    for _ in range(n):
        yield letter


def endless(tag):
    """``tag`` for ever."""
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
