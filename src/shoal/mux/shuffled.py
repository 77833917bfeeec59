"""ShuffledMux: every streamer active at once, items drawn at random by weight."""

import copy
from collections.abc import Iterable
from itertools import compress

import numpy as np

from .. import _schema as schema
from .._counter import given
from .._iterutil import END, close_all, close_quietly
from .._random import PassRandom, RandomStateLike, Supply, TreeSeed, block_size, weighted_picks
from ._base import (
    BaseMux,
    Reweighable,
    StreamerLike,
    WeightsLike,
    check_flag,
    counted_state,
    note_streamer,
    open_counted,
    tally,
    weight_spec,
    weighted_share_settings,
    weights_recipe,
)

__all__ = ["ShuffledMux"]

_PICKS = 1  # block key of the per-item draws
FIRST_BLOCK = 64  # draws in the first block; each next block doubles...
BLOCK_SIZE = 1024  # ...up to this


_NOT_STARTED = iter(())  # the reader of a streamer not started: next() raises StopIteration


def _exhaust(picks):
    """Drop the picks left in ``picks`` (a list iterator), for whoever reads it."""
    picks.__setstate__(1 << 62)  # past the end: a list iterator then stops


#: The schema of a ShuffledMux's node's state (see ``shoal._schema``).
SHUFFLED_STATE = {
    "seed": schema.seed,
    "epoch": schema.count,
    "yielded": schema.flag,  # has this pass given an item?
    "base_weights": schema.weights,  # the weights in force, but for the dropped streamers
    "dropped": schema.streamer_list,  # streamers dropped for giving nothing
    "draws": schema.draws("picks"),  # which streamer gives each item
    "children": schema.children,  # the open streamers
    "totals": schema.per_streamer,  # items of finished activations
    "n_activations": schema.per_streamer,  # activations of each streamer in this pass
}


class ShuffledMux(BaseMux):
    """Draw each item from a streamer chosen at random, in proportion to its weight.

    Every streamer is active all the time; one that runs out is restarted at
    once. A streamer that yields nothing when (re)started is dropped, and the
    mux ends when every streamer has been dropped.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
    weights : None, array-like of float >= 0, or callable
        ``weights[i]`` is the share of items drawn from ``streamers[i]``;
        ``None`` means equal shares. Normalised to sum to 1; the array given
        is not modified. A callable ``weights(n)`` is a schedule: it is
        called with the number of items the iteration has given, at its
        start and then at least every 1024 items, and returns the weights
        to use from there on.
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed. Unseeded (``None``, and no seed above), every pass and
        every iteration draws afresh, from a seed drawn from numpy's global
        state and kept in the state; seeded, every pass repeats the same
        sequence unless ``reseed_each_epoch=True``.
    reseed_each_epoch : bool
        Give each pass of a cycling iteration (``cycle()``) its own order,
        derived from the seed and the pass number, instead of repeating the
        first pass's.

    Examples
    --------
    >>> mux = ShuffledMux(["a", "b", "c"], random_state=0)
    >>> "".join(mux(max_iter=12))
    'cacaccababbb'
    >>> "".join(mux(max_iter=12))  # same seed, same order
    'cacaccababbb'

    Draw ``a`` twice as often as ``b`` or ``c``:

    >>> mux = ShuffledMux(["a", "b", "c"], weights=[2, 1, 1], random_state=0)
    >>> "".join(mux(max_iter=12))
    'aabaabacaabc'
    """

    def __init__(self, streamers: Iterable[StreamerLike], weights: WeightsLike = None,
                 random_state: RandomStateLike = None, *, reseed_each_epoch: bool = False) -> None:
        super().__init__(streamers, random_state=random_state)
        self.weights, self.weight_schedule = weight_spec(weights, len(self.streamers))
        self.reseed_each_epoch = check_flag("reseed_each_epoch", reseed_each_epoch)

    _STATE_SCHEMA = SHUFFLED_STATE

    def _settings(self):
        return {"reseed_each_epoch": True} if self.reseed_each_epoch else {}

    def _recipe(self):
        return {**super()._recipe(), "weights": weights_recipe(self),
                "reseed_each_epoch": self.reseed_each_epoch}

    def _make_node(self, cycle=False, state=None, track=False, key=None):
        return _ShuffledIterator(self, cycle, state, track, key)


    def _share_settings(self, index, count):
        return weighted_share_settings(self, index, count)

    def _ready_children(self, state, path, n_given=None):
        # An open streamer that draws from a key is in its activation n_activations[j] - 1
        # (only those are counted: the count numbers their keys).
        for j in state["children"]:
            if self.streamers[int(j)]._takes_key and state["n_activations"][int(j)] < 1:
                raise schema.state_error(
                    f"{path}['n_activations'][{int(j)}]",
                    "at least 1 for a streamer open in 'children'", state["n_activations"][int(j)])
        return super()._ready_children(state, path, n_given)

    def _reshard_refusal(self):
        return (
            "a ShuffledMux restarts each streamer as soon as it ends: it has no pass whose "
            "items could be split"
        )

class _Picks(Supply):
    """Which streamer gives each item: a supply of picks, drawn with the weights in force.

    Block ``k`` is ``weighted_picks`` of block ``(_PICKS, k)`` of the pass's
    random draws; a change of weights drops the rest of the block (the next
    item comes from a new block, drawn with the new weights).
    """

    __slots__ = ("weights", "block")

    def __init__(self, random):
        super().__init__(random, _PICKS, FIRST_BLOCK, BLOCK_SIZE)
        self.weights = None
        self.block = iter(())  # the rest of the current block

    def start(self):
        """Start again from block 0 (a new pass)."""
        self.n_blocks = 0
        self.block = iter(())

    def left(self):
        return self.block.__length_hint__()

    def _make(self, k):
        return weighted_picks(self.random.block(self.purpose, k), self.weights,
                              block_size(k, self.first, self.largest))

    def next_block(self):
        """The picks of a new block."""
        self.block = iter(self._make(self.n_blocks))
        self.n_blocks += 1
        return self.block

    def _resume(self, left):
        self.block = iter(())
        if self.n_blocks and left:
            picks = self._make(self.n_blocks - 1)
            self.block = iter(picks[len(picks) - left:])


class _ShuffledIterator(Reweighable):
    """The running state of one iteration of a ShuffledMux.

    Each item comes from the streamer named by the next pick of the current
    block; block ``k`` is a fixed function of the seed and the weights, so
    the picks are described by the blocks made and the picks left. Each
    streamer is read through ``compress(source, counter)``, which counts its
    items at C speed.
    """

    __slots__ = (
        "mux", "cycle", "track", "seed", "random", "epoch", "yielded", "base_weights",
        "weights", "dropped", "iters", "nodes", "counters", "readers", "totals",
        "picks", "restored", "n_activations",
    )

    def __init__(self, mux, cycle, state=None, track=False, key=None):
        n = len(mux.streamers)
        self.mux = mux
        self.cycle = cycle  # start a new pass when every streamer is dropped
        self.track = track or state is not None  # a restored child has a state to load
        self.seed = TreeSeed(mux._seed, key, state.get("seed") if state else None, owner=mux)
        self.epoch = 0  # passes completed
        self.random = PassRandom.take(self.seed.pass_key(mux, 0))
        self.iters = [None] * n  # each streamer's open iterator
        self.nodes = [None] * n  # their nodes, when tracking
        self.counters = [None] * n  # the counters of their items
        self.readers = [_NOT_STARTED] * n  # what next() is called on; started on first use
        self.totals = [0] * n  # items of finished activations
        self.base_weights = mux.weights.copy()  # as set by the recipe, a schedule or set_weights
        self.restored = state
        self.picks = _Picks(self.random)  # which streamer gives each item
        self._start_pass()
        if state is not None:
            self.epoch = state["epoch"]
            self.random.rekey(self.seed.pass_key(mux, self.epoch))
            self.yielded = state["yielded"]
            self.base_weights = np.array(state["base_weights"], dtype=float)
            self.dropped = list(state["dropped"])
            self._reweigh()
            self.totals = list(state["totals"])
            self.n_activations = list(state["n_activations"])
            self.picks.restore(state["draws"]["picks"])

    def set_weights(self, weights):
        super().set_weights(weights)
        if self.restored is not None:  # restored, not run since: its state has the new weights
            self.restored = {**self.restored, "base_weights": self.base_weights.tolist(),
                             "draws": {"picks": [self.restored["draws"]["picks"][0], 0]}}
            # (the picks left were dropped)

    def _start_pass(self):
        self.yielded = False  # has this pass given an item?
        self.dropped = []  # streamers dropped for yielding nothing
        self.n_activations = [0] * len(self.mux.streamers)  # of each streamer in this pass
        self.picks.start()
        self._reweigh()

    def _reweigh(self):
        """The weights in use: the base weights, with dropped streamers at 0.

        Picks drawn with other weights no longer apply: the rest of the block
        is dropped. ``run`` may be part-way through the block, so the
        iterator it reads is exhausted in place; the next item comes from a
        new block drawn with these weights.
        """
        self.weights = self.base_weights.copy()
        self.weights[self.dropped] = 0.0
        self.picks.weights = self.weights
        _exhaust(self.picks.block)

    def _next_picks(self):
        """The picks left in the current block, or those of a new one."""
        if self.picks.left():
            return self.picks.block
        self._scheduled()  # a schedule may change the weights of the new block
        return self.picks.next_block()

    def _open(self, i, state=None):
        """Open streamer i, where ``state`` says; return its first item, or END."""
        streamer = self.mux.streamers[i]
        key = None
        if streamer._takes_key:  # a mux or a map inside draws from a key of its own
            number = self.n_activations[i]  # this activation's number in the pass
            if state is None:
                self.n_activations[i] = number + 1
            else:
                number -= 1  # restoring the activation that was open
            variant = self.epoch if self.mux.reseed_each_epoch else 0
            key = self.seed.child(variant, i, number, self.epoch)
        node, it, counter = open_counted(streamer, self.track, state, key)
        self.nodes[i] = node
        self.counters[i] = counter
        self.iters[i] = it
        reader = compress(it, counter)
        if state is not None:
            self.readers[i] = reader
            return None
        item = next(reader, END)
        if item is END:
            close_quietly(it)
            self.iters[i] = self.nodes[i] = self.counters[i] = None
            self.readers[i] = _NOT_STARTED
            self.dropped.append(i)  # it yields nothing: drop it
            self._reweigh()
        else:
            self.readers[i] = reader
            self.yielded = True
        return item

    def _restart(self, i):
        """Streamer i ran out (or never started): restart it; return its first item, or END."""
        if self.iters[i] is not None:
            close_quietly(self.iters[i])
            self.totals[i] += given(self.counters[i])
        return self._open(i)

    def state_dict(self, n_given=None):
        if self.restored is not None:  # restored, not run since: the state it was given
            return copy.deepcopy(self.restored)
        children = {
            str(i): counted_state(self.mux.streamers[i], self.nodes[i], self.iters[i], counter,
                                  self.track)
            for i, counter in enumerate(self.counters) if counter is not None
        }
        return {
            "type": "ShuffledMux",
            "n_streams": len(self.mux.streamers),
            "recipe": self.mux._recipe(),
            "seed": self.seed.saved(),
            "epoch": self.epoch,
            "yielded": self.yielded,
            "base_weights": self.base_weights.tolist(),
            "dropped": list(self.dropped),
            "draws": {"picks": self.picks.state()},
            "children": children,
            "totals": list(self.totals),
            "n_activations": list(self.n_activations),
        }

    def counts(self):
        running = ((i, counter) for i, counter in enumerate(self.counters) if counter is not None)
        waiting = ()
        if self.restored is not None:  # children not reopened yet
            waiting = ((int(i), child["n"]) for i, child in self.restored["children"].items())
        return tally(self.totals, running, waiting)

    def run(self):
        mux = self.mux
        readers = self.readers
        next_item = next
        i = None  # the streamer being read, while one is
        try:
            if self.restored is not None:
                for key, child in self.restored["children"].items():
                    self._open(int(key), child)
                self.restored = None
            while True:
                while self.weights.any():
                    for i in self._next_picks():
                        try:
                            item = next_item(readers[i])
                        except StopIteration:
                            pass
                        else:
                            yield item
                            continue
                        # Streamer i ran out (or never started): restart it.
                        item = self._restart(i)
                        if item is END:
                            break  # dropped: the weights changed, draw a new block
                        yield item
                    i = None
                # Every streamer was dropped: the pass is over.
                if not self._next_pass():
                    return
        except Exception as exc:
            if i is not None:
                note_streamer(exc, mux, i)
            raise
        finally:
            try:
                close_all(self.iters)
            finally:
                self.random.give_back()
