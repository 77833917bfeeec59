"""How many items an activation of a StochasticMux may give: a count distribution per ``dist``.

An activation policy draws the counts of its activations in blocks, with the
streamers they activate (:meth:`CountDist.draw`, at numpy's speed). A count
is the number of items the activation may give before it is closed; None
runs it to its end (``rate=None``). A binomial count depends on the share of
the active weight its slot has, known only when the activation starts: its
block holds what the count is made from, and :meth:`CountDist.limit` turns
that into the count then.
"""

import math

import numpy as np

from .._random import binomial_count, poisson_count

__all__ = ["CountDist", "ToTheEnd", "Constant", "Poisson", "Binomial", "DISTS", "count_dist"]


class CountDist:
    """The distribution of the number of items per activation, with mean ``rate``.

    ``to_limit`` is None where a drawn value is the count itself; else it is
    :meth:`limit`, which the node calls with the slot's share ``p`` of the
    active weight.
    """

    __slots__ = ("rate", "to_limit")

    def __init__(self, rate):
        self.rate = rate
        self.to_limit = None

    def draw(self, rng, size):
        """What each of ``size`` activations is given, from ``rng``: a list."""
        raise NotImplementedError

    def limit(self, drawn, p):
        """The count of an activation given ``drawn``, in a slot with share ``p``."""
        return drawn


class ToTheEnd(CountDist):
    """``rate=None``: every activation runs to its end."""

    __slots__ = ()

    def draw(self, rng, size):
        return [None] * size


class Constant(CountDist):
    """``rate`` items, randomly rounded when it is not whole."""

    __slots__ = ()

    def draw(self, rng, size):
        return _randomly_rounded(rng, self.rate, size).tolist()


class Poisson(CountDist):
    """``1 + Poisson(rate - 1)`` items."""

    __slots__ = ()

    def draw(self, rng, size):
        return (1 + rng.poisson(self.rate - 1, size)).tolist()


class Binomial(CountDist):
    """``1 + Binomial((rate - 1) / (1 - p), 1 - p)`` items, ``p`` the slot's share.

    ``p`` is the chance that an item comes from the slot (as in pescador);
    with ``p = 1`` (the only slot with a weight) the count is its limit,
    ``1 + Poisson(rate - 1)``. Each activation is drawn a pair: its count if
    ``p = 1 / n_active`` (every slot open, equal weights: the common case,
    drawn at numpy's speed), and a uniform that :meth:`limit` turns into the
    count for any other ``p``.
    """

    __slots__ = ("n_active",)

    def __init__(self, rate, n_active):
        super().__init__(rate)
        self.n_active = n_active
        self.to_limit = self.limit

    def draw(self, rng, size):
        rate = self.rate
        if self.n_active == 1:
            counts = 1 + rng.poisson(rate - 1, size)  # p = 1: the limit
        else:
            success = 1 - 1 / self.n_active
            counts = 1 + rng.binomial(_randomly_rounded(rng, (rate - 1) / success, size), success)
        return list(zip(counts.tolist(), rng.random(size).tolist()))

    def limit(self, drawn, p):
        count, u = drawn
        if abs(p * self.n_active - 1.0) < 1e-9:
            return count  # drawn for p = 1 / n_active
        if p >= 1.0:
            return 1 + poisson_count(u, self.rate - 1)
        return 1 + binomial_count(u, (self.rate - 1) / (1.0 - p), 1.0 - p)


#: The distribution of each ``dist``.
DISTS = {"binomial": Binomial, "constant": Constant, "poisson": Poisson}


def count_dist(dist, rate, n_active):
    """The count distribution ``dist`` (a StochasticMux's) with mean ``rate``."""
    if rate is None:
        return ToTheEnd(rate)
    if dist == "binomial":
        return Binomial(rate, n_active)
    return DISTS[dist](rate)


def _randomly_rounded(rng, value, size):
    """``size`` integers floor(value) or ceil(value), with mean ``value``."""
    whole = math.floor(value)
    frac = value - whole
    if frac == 0:
        return np.full(size, whole, dtype=np.int64)
    return whole + (rng.random(size) < frac)
