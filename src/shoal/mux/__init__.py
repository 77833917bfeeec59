"""Muxes: streamers that draw their items from several streamers.

=================  ========================================================
``ChainMux``       one streamer after another (``exhaustive`` or ``cycle``)
``RoundRobinMux``  one item from each streamer in turn
``ShuffledMux``    every streamer active, each item drawn at random by weight
``StochasticMux``  a random set of ``n_active`` streamers, each active for a
                   random number of items
=================  ========================================================
"""

from ..util import get_rng  # noqa: F401 - pescador's mux module holds it too
from ._base import BaseMux
from .chain import ChainMux
from .round_robin import RoundRobinMux
from .shuffled import ShuffledMux
from .stochastic import StochasticMux

__all__ = ["BaseMux", "ChainMux", "RoundRobinMux", "ShuffledMux", "StochasticMux"]
