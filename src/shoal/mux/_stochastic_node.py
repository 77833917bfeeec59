"""The running state of one iteration of a StochasticMux: its passes and their fast loop.

The node opens activations in the slots of the active set (``_stochastic_slots``)
and reads them; which streamer is activated when a slot is free, and with
what count, is its activation policy's decision (``_stochastic_policy``,
with a count distribution from ``_stochastic_counts``).
"""

import copy
from itertools import chain, repeat

import numpy as np

from .._counter import BIG, counter_at
from .._iterutil import close_all
from .._random import PassRandom, TreeSeed
from .._schema import (
    check_fields,
    children,
    count,
    draws,
    flag,
    is_count,
    keys,
    optional_count,
    per_streamer,
    seed,
    state_error,
    stream_state,
    weights,
)
from ._base import Reweighable, note_streamer, open_child, tally
from ._stochastic_policy import POLICIES, make_policy
from ._stochastic_slots import PICKS_NAME, Slots

__all__ = ["StochasticNode", "STATE_SCHEMA", "check_node_state"]


def _streamer(value, path, n_streams=None):
    if not is_count(value) or (n_streams is not None and value >= n_streams):
        raise state_error(path, "a streamer number", value)


#: An open slot's state (a hole's is None).
SLOT_SCHEMA = {"streamer": _streamer, "limit": optional_count, "n": count,
               "state": stream_state, "number": optional_count}


def _slots(value, path, n_streams=None):
    if not isinstance(value, list):
        raise state_error(path, "a list of slots", value)
    for k, slot in enumerate(value):
        if slot is not None:
            where = f"{path}[{k}]"
            check_fields(slot, SLOT_SCHEMA, where, n_streams)
            if slot["limit"] is not None and slot["n"] > slot["limit"]:
                raise state_error(f"{where}['n']", f"at most the slot's limit, {slot['limit']}",
                                  slot["n"])


#: The fields of a StochasticNode's state (see ``shoal._schema``), with those of
#: its activation policy (its ``SCHEMA``, and its supplies under ``draws``),
#: and, where they are, ``resume`` and ``keys`` (``OPTIONAL``). The envelope,
#: ``type``, ``n_streams`` and ``recipe``, is every mux's (``check_state``).
STATE_SCHEMA = {
    "seed": seed,
    "epoch": count,
    "yielded": flag,
    "base_weights": weights,
    "slots": _slots,
    "totals": per_streamer,
    "n_activations": per_streamer,
}
OPTIONAL = {"resume": children, "keys": keys}


def check_node_state(mux, state, path):
    """Check the fields of ``state``, a state of a StochasticNode of ``mux`` (not its children's).

    Raises ShoalValueError naming the path of the first field that does not fit.
    """
    policy = POLICIES[mux.mode]
    n_streams = len(mux.streamers)
    schema = {**STATE_SCHEMA, **policy.SCHEMA, "draws": draws(PICKS_NAME, *policy.SUPPLIES)}
    check_fields(state, schema, path, n_streams, OPTIONAL)
    slots = state["slots"]
    if len(slots) > mux.n_active:
        raise state_error(f"{path}['slots']", f"at most n_active ({mux.n_active}) slots",
                          slots)
    for k, slot in enumerate(slots):
        if slot is not None and slot["number"] is None and (
                mux.streamers[slot["streamer"]]._takes_key):
            raise state_error(f"{path}['slots'][{k}]['number']",
                              "the activation's number, from which its key is made", None)


class StochasticNode(Reweighable):
    """The running state of one iteration of a StochasticMux.

    Each item comes from the slot ``slots.picks`` picks, in proportion to
    the base weight of its streamer. When the activation in a slot ends
    (it ran out or gave its count), it is closed, and the activation policy
    (``policy``) chooses the streamer to activate in its place and draws its
    count, which ``_limit`` turns into the number of items it may give; if
    the policy has none, the slot becomes a hole. Random draws come in
    numbered blocks that are fixed functions of the seed, so the state
    holds counters, not generators.

    A state made by :func:`~shoal.reshard_states` gives the streamers to
    resume where their state says (``resume``), and the policy its plan.
    """

    __slots__ = (
        "mux", "streamers", "cycle", "track", "seed", "random", "epoch", "yielded",
        "base_weights", "pick_list", "policy", "next_activation", "to_limit", "equal_share",
        "slots", "totals", "restored", "n_activations", "resume",
    )

    def __init__(self, mux, cycle=False, state=None, track=False, key=None):
        self.mux = mux
        self.streamers = mux.streamers
        self.cycle = cycle  # start a new pass when this one ends
        self.track = track or state is not None  # a restored child has a state to load
        self.seed = TreeSeed(mux._seed, key, state.get("seed") if state else None, owner=mux)
        self.epoch = 0  # passes completed
        self.random = PassRandom.take(self.seed.pass_key(mux, 0))
        n = len(mux.streamers)
        self.slots = Slots(self.random, n)
        self.policy = make_policy(mux, self.random, self.slots.busy, self.seed.varies(mux))
        self.next_activation = self.policy.next
        self.to_limit = self.policy.counts.to_limit  # None: a drawn count is the count
        self.equal_share = 1.0 / mux.n_active
        self.totals = [0] * n  # items of finished activations
        self.restored = None
        self.resume = None  # resharded: streamer -> {"n", "state"}, resumed when activated
        self.base_weights = mux.weights  # as set by the recipe, a schedule or set_weights
        if state is not None:  # checked by the recipe (its _ready_state) when it was loaded
            self.epoch = state["epoch"]
            self.random.rekey(self.seed.pass_key(mux, self.epoch))
            self.base_weights = np.array(state["base_weights"], dtype=float)
            self.seed.pin(state.get("keys"))
        self._start_pass()
        if state is not None:
            self._load(state)

    def _start_pass(self):
        self.yielded = False  # has an activation of this pass that ended given an item?
        self.n_activations = [0] * len(self.streamers)  # of each streamer in this pass
        self.slots.clear()
        self.policy.start_pass(self.base_weights)
        self.pick_list = self.policy.base_list  # an active slot is picked by these

    # -- weights -----------------------------------------------------------

    def _reweigh(self):
        """New base weights (set_weights, a schedule): they apply from the next pick on.

        The active slots take their streamers' new weights. Where the policy
        activates streamers again, an active streamer whose weight is now 0
        is closed and replaced at once (an activation of it could never be
        picked).
        """
        policy = self.policy
        policy.reweigh(self.base_weights)
        self.pick_list = policy.base_list
        if self.restored is not None:  # restored, not run since: its state has the new weights
            self.restored = {**self.restored, "base_weights": self.base_weights.tolist(),
                             "draws": {**self.restored["draws"], **policy.draws_state()}}
            return
        if not self.slots.sids:
            return  # no slot is open yet
        self.slots.reweigh(self.pick_list)
        if policy.reactivates:
            self._replace_unweighted_slots()

    def _replace_unweighted_slots(self):
        slots = self.slots
        while True:
            sids, weights = slots.sids, slots.weights
            k = next((k for k, sid in enumerate(sids) if sid >= 0 and not weights[k]), None)
            if k is None:
                return
            self._close_slot(k)
            if not self._activate(k):
                slots.drop(k)

    # -- state -------------------------------------------------------------

    def state_dict(self, n_given=None):
        if self.restored is not None:  # restored, not run since: the state it was given
            return copy.deepcopy(self.restored)
        slots = self.slots.state(self.streamers, self.track)
        state = {
            "type": "StochasticMux",
            "n_streams": len(self.streamers),
            "recipe": self.mux._recipe(),
            "seed": self.seed.saved(),
            "epoch": self.epoch,
            "yielded": self.yielded or any(slot["n"] for slot in slots if slot is not None),
            "base_weights": self.base_weights.tolist(),
            "slots": slots,
            "draws": {PICKS_NAME: self.slots.picks.state()},
            "totals": list(self.totals),
            "n_activations": list(self.n_activations),
        }
        self.policy.save(state)
        if self.resume is not None:
            state["resume"] = {str(sid): entry for sid, entry in self.resume.items()}
        if self.seed.pinned:
            state["keys"] = self.seed.pinned_plain()
        return state

    def _load(self, state):
        self.yielded = state["yielded"]
        self.policy.load(state)
        self.pick_list = self.policy.base_list
        self.totals = list(state["totals"])
        self.n_activations = list(state["n_activations"])
        if "resume" in state:  # resharded: who resumes is in the state
            self.resume = {int(sid): entry for sid, entry in state["resume"].items()}
        self.restored = state if state["slots"] else None  # a pass opens its slots at its start
        self.slots.picks.restore(state["draws"][PICKS_NAME], len(state["slots"]))

    def _open_restored_slots(self):
        saved = self.restored["slots"]
        self.restored = None
        slots = self.slots
        for k, slot in enumerate(saved):
            slots.append()
            if slot is not None:
                self._fill(k, slot["streamer"], slot["limit"], slot["n"], slot["state"],
                           slot["number"])
                slots.n_live += 1
        slots.changed()
        if self.policy.reactivates:
            self._replace_unweighted_slots()  # new weights set before the slots opened

    def counts(self):
        slots = self.slots
        running = ((sid, counter) for sid, counter in zip(slots.sids, slots.counters) if sid >= 0)
        waiting = ((sid, entry["n"]) for sid, entry in (self.resume or {}).items())  # resharded
        if self.restored is not None:  # slots not reopened yet
            waiting = chain(waiting, ((slot["streamer"], slot["n"])
                                      for slot in self.restored["slots"] if slot is not None))
        return tally(self.totals, running, waiting)

    # -- activations ---------------------------------------------------------

    def _child_key(self, sid, number):
        """The key of activation ``number`` of streamer ``sid`` in this pass."""
        variant = self.epoch if self.mux.reseed_each_epoch else 0
        return self.seed.child(variant, sid, number, self.epoch)

    def _fill(self, k, sid, limit, n, state, number):
        """Reopen streamer ``sid`` in slot k where ``state`` says, ``n`` of ``limit`` items given.

        ``number`` is the activation's number in the pass (None if the streamer takes no key).
        """
        counter = counter_at(n)
        streamer = self.streamers[sid]
        key = None
        if streamer._takes_key and number is not None:
            key = self._child_key(sid, number)
        try:
            node, it = open_child(streamer, state, True, counter, key)
        except Exception as exc:
            note_streamer(exc, self.mux, sid)
            raise
        self.slots.put(k, sid, limit, it, node, counter, limit if limit is None else limit - n,
                       number, self.pick_list[sid])

    def _limit(self, k, sid, drawn, total=None):
        """The number of items the activation of ``sid`` in slot k may give, from ``drawn``.

        For a count that depends on the slot's share of the active weight:
        ``total``, or the other slots' weights and its own.
        """
        slots = self.slots
        weights = slots.weights
        weight = self.pick_list[sid]
        if total is None:
            if (weight == weights[k] and weight > 0 and slots.picks.equal
                    and slots.n_live == len(weights) == self.mux.n_active):
                return self.to_limit(drawn, self.equal_share)  # every slot open, equal weights
            total = sum(weights) - weights[k] + weight
        return self.to_limit(drawn, weight / total if total > 0 else 1.0)

    def _activate(self, k, activation=None, total=None):
        """Put a newly activated streamer in slot k; False if there is none to activate.

        ``activation`` is one drawn already, and ``total`` the active weight it counts on.
        """
        if activation is None:
            activation = self.next_activation()
            if activation is None:
                return False
        sid, drawn = activation
        if self.resume and sid in self.resume:  # resharded: it goes on where it was
            entry = self.resume.pop(sid)
            self._fill(k, sid, drawn, entry["n"], entry["state"], 0)
            return True
        limit = drawn if self.to_limit is None else self._limit(k, sid, drawn, total)
        streamer = self.streamers[sid]
        counter = repeat(True, BIG)
        number = None  # the activation's number in the pass, counted for a key only
        # This runs once per activation, so it opens the streamer itself: a
        # plain leaf needs no node nor key, and only a mux or a map inside
        # needs what open_child does.
        try:
            if streamer._takes_key:
                number = self.n_activations[sid]
                self.n_activations[sid] = number + 1
                key = self._child_key(sid, number)
                node, it = open_child(streamer, None, self.track, counter, key)
            elif streamer._plain_leaf or not self.track:
                node, it = None, streamer._open_items()
            else:
                node, it = open_child(streamer, None, True, counter)
        except Exception as exc:
            note_streamer(exc, self.mux, sid)
            raise
        self.slots.put(k, sid, limit, it, node, counter, limit, number, self.pick_list[sid])
        return True

    def _open_slots(self):
        """Open the ``n_active`` slots of a pass.

        The activations are drawn first, so that each count knows the whole
        active weight.
        """
        slots = self.slots
        busy = slots.busy
        activations = []
        for _ in range(self.mux.n_active):
            activation = self.next_activation()
            if activation is None:
                break
            activations.append(activation)
            busy[activation[0]] += 1  # a policy that activates a streamer once: not again
        weights = self.pick_list
        total = sum(weights[sid] for sid, _ in activations)
        for sid, _ in activations:
            busy[sid] -= 1
        for activation in activations:
            k = len(slots.sids)
            slots.append()
            self._activate(k, activation, total)
            slots.n_live += 1
        for _ in range(self.mux.n_active - len(activations)):
            slots.append()  # a hole

    def _close_slot(self, k):
        """Close the activation in slot k; return the number of items it gave."""
        slots = self.slots
        sid = slots.sids[k]
        n = BIG - slots.counters[k].__length_hint__()
        slots.busy[sid] -= 1
        self.totals[sid] += n
        close = getattr(slots.iters[k], "close", None)
        if close is not None:
            try:
                close()  # it may stop before running out: its finally blocks run now
            except Exception as exc:
                note_streamer(exc, self.mux, sid)
                raise
        if n:
            self.yielded = True
        if not n or self.policy.n_last_empty:
            self.policy.ended(sid, n)
        return n

    def _next_picks(self):
        """The slot picks left in the current block, or those of a new block."""
        picks = self.slots.picks
        if not picks.left():
            self._scheduled()  # the weights schedule applies from the new block on
        return picks.picks()

    def run(self):
        mux = self.mux
        slots = self.slots
        readers = slots.readers
        next_item = next
        sids = slots.sids
        try:
            while True:
                if self.restored is not None:
                    self._open_restored_slots()
                else:
                    self._open_slots()
                while slots.n_live:
                    for k in self._next_picks():
                        try:
                            item = next_item(readers[k])
                        except StopIteration:
                            pass
                        except Exception as exc:
                            note_streamer(exc, mux, sids[k])
                            raise
                        else:
                            yield item
                            continue
                        # The activation in slot k ran out or reached its count.
                        if sids[k] < 0:
                            continue  # a hole: draw again
                        self._close_slot(k)
                        if not self._activate(k):
                            slots.drop(k)
                if not self._next_pass():
                    return
        finally:
            try:
                close_all(slots.iters)
            finally:
                self.random.give_back()
