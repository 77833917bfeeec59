"""cache: items reused at random from a cache, to stretch a slow stream; its running state."""

import numbers
from collections.abc import Generator, Iterable
from typing import Any

import numpy as np

from .. import _schema
from .._checks import check_int, check_recipe, short_repr
from .._contract import NotResharded
from .._counter import given
from .._iterutil import END
from .._random import (
    Draws,
    PassRandom,
    RandomStateLike,
    TreeSeed,
    as_seed_sequence,
    seed_to_plain,
    share_seed,
)
from ..exceptions import ShoalTypeError, ShoalValueError
from ._recipe import MAP_STATE, MapStreamer, _MapNode, check_iterable, reading

__all__ = ["cache"]


def cache(stream: Iterable[Any], n_cache: int, prob: float = 0.5,
          random_state: RandomStateLike = None) -> Generator[Any, None, None]:
    """Reuse items at random from a cache, to stretch a slow stream.

    The first ``n_cache`` items pass through in order and fill the cache.
    Then, at each step, a cached item is chosen at random; with probability
    ``prob`` it is first replaced by a new item from ``stream``. The chosen
    item is yielded. The stream ends when ``stream`` does.

    Parameters
    ----------
    stream : iterable
        The items to cache: a Streamer, a mux, or any iterable.
    n_cache : int >= 1
        The size of the cache.
    prob : float in (0, 1]
        The chance to take a new item at each step; ``1`` caches nothing.
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed. Unseeded (``None``, and no seed above), every pass draws
        afresh, from a seed drawn from numpy's global state (kept in the
        state of a resumable iteration); seeded, every pass repeats. A
        Generator or a RandomState is asked for a seed once: by each call
        of ``cache``, and by ``Streamer(cache, stream, ...)`` when it is
        made (its passes then repeat, as a mux's do).

    Yields
    ------
    item
        Items of ``stream``, some of them more than once.

    Examples
    --------
    >>> list(cache(range(6), n_cache=2, prob=0.5, random_state=0))
    [0, 1, 1, 2, 1, 2, 1, 1, 3, 3, 3, 3, 1, 1, 4, 3, 5]
    """
    check_iterable(stream)
    return _cache(stream, *_cache_settings(n_cache, prob, random_state))


def _cache_settings(n_cache, prob, random_state):
    """``(n_cache, prob, seed)`` checked, as :class:`_CacheRun` takes them."""
    n_cache = check_int("n_cache", n_cache, minimum=1)
    if isinstance(prob, (bool, np.bool_)) or not isinstance(prob, numbers.Real):
        raise ShoalTypeError(f"prob must be a number in (0, 1], got {short_repr(prob)}")
    if not 0 < prob <= 1:
        raise ShoalValueError(f"prob must be in (0, 1], got {prob!r}")
    return n_cache, float(prob), as_seed_sequence(random_state)


def _cache(stream, n_cache, prob, seed):
    with reading(stream) as it:
        yield from _CacheRun(n_cache, prob, seed).run(it)


class _CacheRun:
    """The running state of :func:`cache`: the cached items and the draws.

    When it tracks its state, it also knows the input position of every
    cached item, and keeps a few snapshots of its input's state (one every
    ``n_cache`` input items, back to the oldest cached item), so that a
    restored cache replays its input from a snapshot, not from the start.
    """

    def __init__(self, n_cache, prob, seed, saved=None, node=None, counter=None, key=None):
        self.n_cache = n_cache
        self.prob = prob
        self.recipe = _cache_recipe(n_cache, prob, seed)
        self.seed = TreeSeed(seed, key, saved)
        self.stored = []
        random = PassRandom(self.seed.pass_key())
        self.slot = Draws(random, 1, lambda rng, size: rng.integers(0, n_cache, size).tolist())
        self.take_new = Draws(random, 2, lambda rng, size: (rng.random(size) <= prob).tolist())
        # When tracking: the input's node and item counter, the input position
        # of each cached item, and snapshots (position, input state).
        self.node = node
        self.counter = counter
        self.positions = []
        self.snapshots = [(0, None)]
        self.ended = False  # has its input run out (so the cache has ended)?

    def run(self, it):
        if self.ended:  # restored after its input ran out
            return
        stored = self.stored
        tracking = self.counter is not None
        n_cache = self.n_cache
        while len(stored) < n_cache:
            item = next(it, END)
            if item is END:
                self.ended = True
                return
            stored.append(item)
            if tracking:
                self._inserted(len(stored) - 1)
            yield item
        slot, take_new, always_new = self.slot, self.take_new, self.prob == 1.0
        while True:
            index = slot()
            if always_new or take_new():
                item = next(it, END)
                if item is END:
                    self.ended = True
                    return
                stored[index] = item
                if tracking:
                    self._inserted(index)
            yield stored[index]

    def _inserted(self, index):
        """The item at the input position just read went into ``stored[index]``."""
        n = given(self.counter)
        if index < len(self.positions):
            self.positions[index] = n - 1
        else:
            self.positions.append(n - 1)
        if n % self.n_cache == 0:
            self.snapshots.append((n, self.node.input_state(n)))
            oldest = min(self.positions)
            while len(self.snapshots) > 1 and self.snapshots[1][0] <= oldest:
                del self.snapshots[0]

    def state_dict(self):
        """The cache's own state (see ``CACHE_STATE``); its input's is at its snapshot."""
        return {
            "recipe": dict(self.recipe),
            "seed": self.seed.saved(),
            "n_read": given(self.counter),
            "positions": list(self.positions),
            "draws": {"slot": self.slot.state(), "take_new": self.take_new.state()},
            "ended": self.ended,
        }

    def check(self, state):
        """Refuse the state of a cache made otherwise (see ``check_recipe``)."""
        _check_cache_recipe(state, self.recipe)

    def replay(self, it, state, base, base_state):
        """Refill the cache by reading ``it`` from the snapshot up to the saved position.

        ``state`` is the cache's own state; ``it`` starts at the snapshot: at
        input item ``base``, whose input state is ``base_state``.
        """
        self.slot.restore(state["draws"]["slot"])
        self.take_new.restore(state["draws"]["take_new"])
        self.ended = state["ended"]
        wanted = {}
        for index, position in enumerate(state["positions"]):
            wanted[position] = index
        self.stored.extend([None] * len(state["positions"]))
        self.positions = list(state["positions"])
        self.snapshots = [(base, base_state)]
        for position in range(base, state["n_read"]):
            item = next(it, END)
            if item is END:
                raise ShoalValueError(
                    f"cannot restore the cache: its input ended at item {position}, before "
                    f"item {state['n_read']}; its source must give the same items every time"
                )
            index = wanted.get(position)
            if index is not None:
                self.stored[index] = item
            if (position + 1) % self.n_cache == 0 and position + 1 > base:
                self.snapshots.append((position + 1, self.node.input_state(position + 1)))
        oldest = min(self.positions) if self.positions else 0
        while len(self.snapshots) > 1 and self.snapshots[1][0] <= oldest:
            del self.snapshots[0]


def _cache_recipe(n_cache, prob, seed):
    """What the state of a cache records of the settings it was made with."""
    return {"random_state": seed_to_plain(seed), "n_cache": n_cache, "prob": prob}


def _check_cache_recipe(state, recipe):
    """Refuse ``state``, a cache's, if it was saved by a cache made otherwise than ``recipe``."""
    if "recipe" not in state:
        raise ShoalValueError("state of a cache lacks 'recipe'")
    check_recipe(state["recipe"], recipe,
                 what=f"cache(n_cache={recipe['n_cache']}, prob={recipe['prob']}, ...)")


def _positions(value, path, n_streams=None):
    """The input positions of the cached items: distinct counts."""
    _schema.count_list(value, path)
    if len(set(value)) != len(value):
        raise _schema.state_error(path, "distinct positions, one per cached item", value)


#: The cache's own state, under ``"cache"`` in the state of its map (whose
#: ``"n_input"`` and ``"input"`` are its input's at the snapshot it replays from:
#: at most ``n_cache`` input items before the oldest cached item).
CACHE_STATE = {
    "recipe": _schema.settings,  # what it was made with: see _cache_recipe
    "seed": _schema.seed,  # the seed it drew, unseeded (None if seeded)
    "n_read": _schema.count,  # the input items it read
    "positions": _positions,  # the input position of each cached item
    "draws": _schema.draws("slot", "take_new"),
    "ended": _schema.flag,  # has its input run out?
}


def _cache_state(value, path, n_streams=None):
    _schema.check_fields(value, CACHE_STATE, path)


#: The state of a pass of a cache over a stream.
CACHE_MAP_STATE = {**MAP_STATE, "cache": _cache_state}


class _CacheNode(_MapNode):
    """A pass of a cache over a tracked input: the cache's state, and its input's at
    the snapshot the cache replays from."""

    __slots__ = ("cache_run",)

    def state_dict(self, n_given=None):
        base, base_state = self.cache_run.snapshots[0]
        return {"map": self.name, "n_input": base, "input": base_state,
                "cache": self.cache_run.state_dict()}


class CacheStreamer(MapStreamer, function=cache):
    """``Streamer(cache, stream, ...)``: a cache over a stream, resumed through it.

    Its seed is made once, when it is made: a Generator or a RandomState
    given as ``random_state`` is asked for one then, and every pass repeats.
    """

    name = "cache"
    _schema = CACHE_MAP_STATE
    _settings = staticmethod(_cache_settings)

    def _map(self, items):
        return _cache(items, *self._arguments)

    @property
    def _takes_key(self):
        """A cache over a stream draws from its parent's key (if it has no seed of its own)."""
        return self._input is not None

    def _make_node(self, stream, input_node, input_it, counter):
        return _CacheNode(self.name, stream, input_node, input_it, counter)

    def _map_node(self, node, reader, state, track, key):
        n_cache, prob, seed = self._arguments
        run = node.cache_run = _CacheRun(
            n_cache, prob, seed, state and state["cache"]["seed"], node,
            node.counter if track else None, key)
        if state is not None:
            run.check(state["cache"])
            run.replay(reader, state["cache"], state["n_input"], state["input"])
        return run.run(reader)

    def _check_state(self, state, path):
        cache = state["cache"]
        base, n_read, positions = state["n_input"], cache["n_read"], cache["positions"]
        if base > n_read:
            raise _schema.state_error(f"{path}['n_input']", f"at most {n_read}, the cache's "
                                      "'n_read'", base)
        if positions and (max(positions) != n_read - 1 or min(positions) < base):
            raise _schema.state_error(f"{path}['cache']['positions']",
                                      f"positions in {base}..{n_read - 1}, the last one read "
                                      "among them", positions)
        n_cache, prob, seed = self._arguments
        _check_cache_recipe(cache, _cache_recipe(n_cache, prob, seed))
        if len(positions) > n_cache:
            raise _schema.state_error(f"{path}['cache']['positions']",
                                      f"at most n_cache={n_cache} positions", cache["positions"])

    def _share_arguments(self, arguments, index):
        seed = self._arguments[2]
        if seed is not None:
            arguments["random_state"] = share_seed(seed, index)

    def _reshard_refusal(self):
        return ("a cache gives the items it holds again and again, so its items are not a "
                "split of its input's")

    def _reshard_pass(self, passes, count, new_count):
        raise NotResharded(
            f"cannot reshard the states of {self!r} exactly: {self._reshard_refusal()}")
