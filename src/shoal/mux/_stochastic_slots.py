"""The active set of a StochasticMux's pass: its slots, and which of them gives the next item."""

from itertools import compress, islice

from .._counter import BIG
from .._random import SlotPicks

__all__ = ["Slots", "PICKS", "PICKS_NAME"]

PICKS = 1  # block purpose of the slot picks (the policies draw from the others)
PICKS_NAME = "picks"  # ...and their name among the node's draws
FIRST_PICK_BLOCK = 64  # picks in the first block; doubling with each block...
PICK_BLOCK = 1024  # ...up to this

_DEAD = iter(())  # the reader of a hole: spent, so next() raises at C speed


class Slots:
    """The slots of a pass, as parallel lists, and the picks among them.

    Each slot holds one activation: the streamer in it (``sids``; -1 for a
    hole), the count it may give (``limits``; None: to its end), its open
    iterator, its node (when tracking), the counter of the items it gave,
    its reader, its number among the streamer's activations in the pass
    (``numbers``, from which its key is made; None for a streamer that
    takes no key) and its weight (its streamer's base weight). The node
    calls ``next`` on a reader, ``compress(islice(source, count), counter)``:
    islice stops the activation after its count and the counter counts at
    C speed. ``picks`` picks the slot of each item in proportion to the
    weights. A slot whose activation cannot be replaced becomes a hole
    (weight 0); when half the slots are holes they are removed.
    ``busy[j]`` is the number of slots streamer ``j`` holds, ``n_live`` the
    number of slots that are not holes.
    """

    LISTS = ("sids", "limits", "iters", "nodes", "counters", "readers", "numbers", "weights")

    __slots__ = (*LISTS, "busy", "n_live", "picks")

    def __init__(self, random, n_streams):
        for name in self.LISTS:
            setattr(self, name, [])
        self.busy = [0] * n_streams
        self.n_live = 0
        self.picks = SlotPicks(random, PICKS, FIRST_PICK_BLOCK, PICK_BLOCK)

    def clear(self):
        """No slot (a pass starts)."""
        for name in self.LISTS:
            getattr(self, name).clear()
        self.busy[:] = [0] * len(self.busy)
        self.n_live = 0
        self.picks.start()

    def append(self):
        """Add a slot, a hole."""
        self.sids.append(-1)
        self.limits.append(None)
        self.iters.append(None)
        self.nodes.append(None)
        self.counters.append(None)
        self.readers.append(_DEAD)
        self.numbers.append(None)
        self.weights.append(0.0)

    def put(self, k, sid, limit, it, node, counter, left, number, weight):
        """Slot k now reads ``it`` (of streamer ``sid``, of weight ``weight``), for ``left`` more items."""
        self.busy[sid] += 1
        self.sids[k] = sid
        self.limits[k] = limit
        self.iters[k] = it
        self.nodes[k] = node
        self.counters[k] = counter
        self.readers[k] = compress(it if left is None else islice(it, left), counter)
        self.numbers[k] = number
        weights = self.weights
        if weights[k] != weight:
            weights[k] = weight
            if weight > 0:
                self.picks.set_weights(weights)
            else:
                self.changed()

    def make_hole(self, k):
        """Slot k holds nothing (its activation was closed)."""
        self.sids[k] = -1
        self.limits[k] = self.iters[k] = self.nodes[k] = self.counters[k] = None
        self.readers[k] = _DEAD
        self.numbers[k] = None
        if self.weights[k]:
            self.weights[k] = 0.0
            self.changed()

    def drop(self, k):
        """Slot k cannot be refilled: make it a hole; compact the slots when half are holes."""
        self.make_hole(k)
        self.n_live -= 1
        if 2 * self.n_live > len(self.sids):
            return
        keep = [k for k, sid in enumerate(self.sids) if sid >= 0]
        for name in self.LISTS:
            slots = getattr(self, name)
            slots[:] = [slots[k] for k in keep]
        self.changed()  # the picks left follow the slots' new places

    def reweigh(self, weight_of):
        """The open slots take the weights of their streamers in ``weight_of``."""
        weights = self.weights
        for k, sid in enumerate(self.sids):
            if sid >= 0:
                weights[k] = weight_of[sid]
        self.changed()

    def changed(self):
        """Pick the slots by their weights from now on.

        If no open slot has a positive weight (in exhaustive mode, after new
        weights), the open slots are picked uniformly, so that they still end.
        """
        weights = self.weights
        if not any(weights):
            weights = [0.0 if sid < 0 else 1.0 for sid in self.sids]
            if not any(weights):
                self.picks.stop()  # no open slot: no pick
                return
        self.picks.set_weights(weights)

    def state(self, streamers, track):
        """The slots' states, None for a hole.

        A slot's is ``{"streamer": j, "limit": count or None, "n": items given,
        "state": its pass's state, "number": its number or None}``; the
        states of the passes are kept where ``track`` says (else None).
        """
        out = []
        for sid, limit, counter, node, it, number in zip(
                self.sids, self.limits, self.counters, self.nodes, self.iters, self.numbers):
            if sid < 0:
                out.append(None)
                continue
            n = BIG - counter.__length_hint__()  # (given(counter), inlined)
            state = streamers[sid]._node_state(node, it, n) if track else None
            out.append({"streamer": sid, "limit": limit, "n": n, "state": state,
                        "number": number})
        return out
