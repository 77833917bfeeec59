"""Streamers that record their activations, and sources that count how often they are opened.

Shared by the statistical tests (tests/test_statistics.py) and the behaviour
tests of the random muxes (tests/test_mux_stochastic.py, tests/test_mux_shuffled.py).
"""

import itertools
from collections import Counter, defaultdict
from itertools import islice

import numpy as np
from muxes import endless

import shoal

DISTS = ["constant", "poisson", "binomial"]


def tagged_streamers(n, length=None):
    """``n`` streamers; streamer i yields ``i`` forever, or ``length`` times."""
    if length is None:
        return [shoal.Streamer(endless, i) for i in range(n)]
    return [shoal.Streamer([i] * length) for i in range(n)]


class Tracker:
    """Streamers that record every activation (start of their generator body).

    Streamer i yields ``(i, activation_id, k)`` for k = 0, 1, ... (forever, or
    ``length`` items); ``activation_id`` is unique per activation. The tracker
    records, per streamer, how many activations started and the largest
    number of its activations that were open at once (started and not yet
    closed or run out).
    """

    def __init__(self, n):
        self.n = n
        self.ids = itertools.count()
        self.starts = [0] * n
        self.open = [0] * n
        self.max_open = [0] * n
        self.max_total_open = 0
        self.open_ids = set()

    def streamers(self, length=None):
        return [shoal.Streamer(self._gen, i, length) for i in range(self.n)]

    def _gen(self, i, length):
        aid = next(self.ids)
        self.starts[i] += 1
        self.open[i] += 1
        self.max_open[i] = max(self.max_open[i], self.open[i])
        self.open_ids.add(aid)
        self.max_total_open = max(self.max_total_open, len(self.open_ids))
        try:
            k = 0
            while length is None or k < length:
                yield (i, aid, k)
                k += 1
        finally:
            self.open[i] -= 1
            self.open_ids.discard(aid)


def activation_counts(n_active, rate, dist, seed, n_items=50_000, n_streams=4):
    """The number of items of every completed activation of a StochasticMux."""
    tracker = Tracker(n_streams)
    mux = shoal.StochasticMux(
        tracker.streamers(), n_active=n_active, rate=rate, dist=dist, random_state=seed
    )
    it = iter(mux)
    items = list(islice(it, n_items))
    still_open = set(tracker.open_ids)  # cut off by the end of the sample
    it.close()
    assert len(items) == n_items
    per_activation = defaultdict(int)
    for _, aid, k in items:
        # Within an activation the items come in order and none is skipped.
        assert k == per_activation[aid]
        per_activation[aid] += 1
    counts = np.array([c for aid, c in per_activation.items() if aid not in still_open])
    assert len(counts) > 0.9 * n_items / rate
    return counts


class CallCounter:
    """Sources that count how often they are called (how often a mux opens them).

    ``empty(tag)`` returns an iterator that yields nothing and records, when
    it is found to be empty, that ``tag`` is known empty; ``late_calls``
    counts the calls made after that, which a pruning mux must never make.
    """

    def __init__(self):
        self.calls = Counter()
        self.known_empty = set()
        self.late_calls = Counter()

    def empty(self, tag):
        self.calls[tag] += 1
        if tag in self.known_empty:
            self.late_calls[tag] += 1
        return self._empty_body(tag)

    def _empty_body(self, tag):
        self.known_empty.add(tag)
        return
        yield  # pragma: no cover  (makes this a generator function)

    def full(self, tag):
        self.calls[tag] += 1
        return endless(tag)
