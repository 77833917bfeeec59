"""RoundRobinMux: one item from each streamer in turn."""

import copy
from collections.abc import Iterable
from itertools import compress
from typing import Literal

from .. import _schema as schema
from .._checks import check_choice
from .._counter import given
from .._iterutil import close_all, close_quietly, empty_pass
from .._random import PassRandom, RandomStateLike, TreeSeed, key_to_plain
from ._base import (
    NEW,
    BaseMux,
    Progress,
    StreamerLike,
    counted_state,
    note_streamer,
    open_counted,
    tally,
)

__all__ = ["RoundRobinMux"]

_PERMUTE = 1  # block key of the pass permutations


#: The schema of a RoundRobinMux's node's state (see ``shoal._schema``).
ROUND_ROBIN_STATE = {
    "seed": schema.seed,
    "epoch": schema.count,
    "started": schema.flag,  # has this pass begun?
    "first_round": schema.flag,  # is it in the round that opens the streamers?
    "live": schema.streamer_list,  # the streamers of this round, in its order
    "position": schema.count,  # how far the round got
    "dead": schema.streamer_list,  # streamers that ran out in this round
    "children": schema.children,  # the open streamers
    "totals": schema.per_streamer,  # items of finished activations
}


def _check_round(state, path):
    """A round's live streamers are open (have a state), but those dead in it."""
    live, position, children, dead = (state["live"], state["position"], state["children"],
                                      state["dead"])
    if position > len(live):
        raise schema.state_error(f"{path}['position']", f"at most {len(live)}", position)
    if len(set(live)) != len(live) or len(set(dead)) != len(dead):
        raise schema.state_error(f"{path}['live']", "streamers each at most once, as 'dead'",
                                 live)
    if any(j not in live[:position] for j in dead):
        raise schema.state_error(f"{path}['dead']", "streamers of the round already read", dead)
    if any(str(j) not in children for j in live if j not in dead):
        raise schema.state_error(f"{path}['live']", "streamers open in 'children', or 'dead'",
                                 live)


class RoundRobinMux(BaseMux):
    """Take one item from each streamer in turn, in a fixed order.

    A streamer that runs out drops out of the rotation; the others go on.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
    mode : {"exhaustive", "cycle", "permuted_cycle"}
        ``"exhaustive"`` stops when every streamer has run out. ``"cycle"``
        then restarts them all, in the same order. ``"permuted_cycle"``
        restarts them in a new random order each time (the first pass keeps
        the given order, as in pescador).
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed of the permutations in ``"permuted_cycle"`` mode, which
        differ from pass to pass; unseeded (``None``, and no seed above),
        every iteration draws its own, from a seed drawn from numpy's global
        state and kept in the state. It is also the seed that unseeded
        muxes among the streamers draw from, as for ``ChainMux``.

    Raises
    ------
    EmptyStreamError
        In the cycling modes, when a whole pass yields no item.

    Examples
    --------
    >>> "".join(RoundRobinMux(["abc", "de", "f"]))
    'adfbec'
    >>> "".join(RoundRobinMux(["ab", "c"], mode="cycle")(max_iter=7))
    'acbacba'
    >>> mux = RoundRobinMux(["a", "b", "c"], mode="permuted_cycle", random_state=1)
    >>> "".join(mux(max_iter=12))
    'abcacbbacbac'
    """

    def __init__(self, streamers: Iterable[StreamerLike],
                 mode: Literal["exhaustive", "cycle", "permuted_cycle"] = "exhaustive",
                 random_state: RandomStateLike = None) -> None:
        self.mode = check_choice("mode", mode, ("exhaustive", "cycle", "permuted_cycle"))
        super().__init__(streamers, random_state=random_state)

    def _make_node(self, cycle=False, state=None, track=False, key=None):
        return _RoundRobinIterator(self, cycle or self.mode != "exhaustive", state, track, key)

    _STATE_SCHEMA = ROUND_ROBIN_STATE

    def _ready_children(self, state, path, n_given=None):
        if state["started"]:
            _check_round(state, path)
        return super()._ready_children(state, path, n_given)

    def _settings(self):
        return {"mode": self.mode}

    def _recipe(self):
        return {**super()._recipe(), "mode": self.mode}


    def _reshard_refusal(self):
        if self.mode != "exhaustive":
            return (
                f"in mode={self.mode!r} a RoundRobinMux starts its streamers again after each "
                "pass, and each share is somewhere else in its passes: no one pass can be split"
            )
        return None

    def _progress(self, state, n_given):
        """Each streamer's :class:`Progress` in ``state`` (of a pass in exhaustive mode)."""
        node = _RoundRobinIterator(self, False, state, True)  # opens nothing
        if not state["started"]:
            return [NEW] * len(self.streamers)
        totals = state["totals"]
        out = [Progress(True, total, None) for total in totals]
        for j, child in state["children"].items():
            j = int(j)
            key = None
            if self.streamers[j]._takes_key:
                key = key_to_plain(node.seed.child(0, j, 0))
            out[j] = Progress(False, child["n"], child["state"], key)
        return out

    def _elastic_state(self, progress):
        """The state of an iteration of this mux that goes on from ``progress``."""
        live = [j for j, p in enumerate(progress) if not p.done]
        return {
            "type": "RoundRobinMux",
            "n_streams": len(progress),
            "recipe": self._recipe(),
            "seed": None,
            "epoch": 0,
            "started": True,
            "first_round": False,
            "live": live,
            "position": 0,
            "dead": [],
            "children": {str(j): {"n": progress[j].n, "state": progress[j].state} for j in live},
            "totals": [p.n if p.done else 0 for p in progress],
            "keys": {str(j): p.key for j, p in enumerate(progress) if p.key is not None},
        }

class _RoundRobinIterator:
    """The running state of one iteration of a RoundRobinMux.

    A pass goes in rounds over the streamers still running (``live``); a
    round is read through the list iterator ``round``, whose length hint
    tells how far it got. Each streamer is read through
    ``compress(source, counter)``, which counts its items at C speed.
    """

    __slots__ = (
        "mux", "cycle", "track", "seed", "random", "epoch", "first_round", "live",
        "round", "dead", "iters", "nodes", "counters", "totals", "restored", "begun",
    )

    def __init__(self, mux, cycle, state=None, track=False, key=None):
        self.mux = mux
        self.cycle = cycle
        self.track = track or state is not None  # a restored child has a state to load
        permuted = mux.mode == "permuted_cycle"
        # Only the permutations draw; the seed is also what the children inherit.
        self.seed = TreeSeed(mux._seed, key, state.get("seed") if state else None, owner=mux)
        self.random = PassRandom(self.seed.pass_key(mux, 0)) if permuted else None
        self.epoch = 0  # passes completed
        self.first_round = True
        self.live = []  # (streamer index, reader) of the streamers in this round
        self.round = iter(())  # the rest of this round
        self.dead = []  # streamers that ran out in this round
        self.iters = {}  # streamer index -> its open iterator
        self.nodes = {}  # streamer index -> its node (when tracking)
        self.counters = {}  # streamer index -> the counter of its items
        self.totals = [0] * len(mux.streamers)  # items of finished activations
        self.restored = state
        self.begun = False  # has a pass begun? (one that ended has: it is not started again)
        if state is not None:
            self.begun = state["started"]
            if not self.begun:
                self.restored = None  # saved before the first item: start afresh
            self.epoch = state["epoch"]
            self.first_round = state["first_round"]
            self.totals = list(state["totals"])
            self.seed.pin(state.get("keys"))

    def _pass_order(self):
        n = len(self.mux.streamers)
        if self.random is None or self.epoch == 0:
            return list(range(n))
        return self.random.block(_PERMUTE, self.epoch).permutation(n).tolist()

    def _open(self, j, state=None):
        """Open streamer j (where ``state`` says) and return its reader."""
        streamer = self.mux.streamers[j]
        key = None
        if streamer._takes_key:
            # Each streamer is activated once a pass; the passes differ only when permuted.
            key = self.seed.child(self.epoch if self.random is not None else 0, j, 0, self.epoch)
        node, it, counter = open_counted(streamer, self.track, state, key)
        self.nodes[j] = node
        self.iters[j] = it
        self.counters[j] = counter
        return compress(it, counter)

    def _start_pass(self):
        order = self._pass_order()
        self.live = [(j, self._open(j)) for j in order]
        self.round = iter(self.live)
        self.dead = []
        self.first_round = True
        self.begun = True

    def _restore(self, state):
        children = state["children"]
        readers = {int(j): self._open(int(j), child) for j, child in children.items()}
        self.live = [(j, readers.get(j)) for j in state["live"]]
        self.round = iter(self.live[state["position"]:])
        self.dead = list(state["dead"])

    def state_dict(self, n_given=None):
        if self.restored is not None:  # restored, not run since: the state it was given
            return copy.deepcopy(self.restored)
        position = len(self.live) - self.round.__length_hint__()
        children = {
            str(j): counted_state(self.mux.streamers[j], self.nodes.get(j), self.iters[j],
                                  counter, self.track)
            for j, counter in self.counters.items()
        }
        state = {
            "type": "RoundRobinMux",
            "n_streams": len(self.mux.streamers),
            "recipe": self.mux._recipe(),
            "seed": self.seed.saved(),
            "epoch": self.epoch,
            "started": self.begun,
            "first_round": self.first_round,
            "live": [j for j, _ in self.live],
            "position": position,
            "dead": list(self.dead),
            "children": children,
            "totals": list(self.totals),
        }
        if self.seed.pinned:
            state["keys"] = self.seed.pinned_plain()
        return state

    def counts(self):
        waiting = ()
        if self.restored is not None:  # children not reopened yet
            waiting = ((int(j), child["n"]) for j, child in self.restored["children"].items())
        return tally(self.totals, self.counters.items(), waiting)

    def _finish(self, j):
        """Streamer j ran out: close it and count its items."""
        close_quietly(self.iters.pop(j))
        self.totals[j] += given(self.counters.pop(j))
        self.nodes.pop(j, None)
        self.dead.append(j)

    def run(self):
        mux = self.mux
        j = None  # the streamer being read, while one is
        try:
            if self.restored is not None:
                self._restore(self.restored)
                self.restored = None
            else:
                self._start_pass()
            while True:
                while self.live:
                    for j, reader in self.round:
                        try:
                            item = next(reader)
                        except StopIteration:
                            self._finish(j)
                        else:
                            yield item
                    j = None
                    dead = self.dead
                    if dead:
                        if self.first_round and len(dead) == len(self.live) and self.cycle:
                            raise empty_pass(mux)
                        gone = set(dead)
                        self.live = [pair for pair in self.live if pair[0] not in gone]
                        self.dead = []
                    self.round = iter(self.live)
                    self.first_round = False
                if not self.cycle:
                    return
                self.epoch += 1
                self._start_pass()
        except Exception as exc:
            if j is not None:
                note_streamer(exc, mux, j)
            raise
        finally:
            iters = list(self.iters.values())
            self.iters.clear()
            close_all(iters)
