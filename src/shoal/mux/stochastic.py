"""StochasticMux: a random set of active streamers, each for a random number of items."""

import copy
import math
import numbers
from bisect import bisect_right
from itertools import accumulate, compress, islice, repeat

import numpy as np

from .._checks import check_choice, check_int, short_repr
from .._counter import BIG, counter_at, given
from .._iterutil import close_all, empty_pass
from .._random import (
    Draws,
    PassRandom,
    SlotPicks,
    TreeSeed,
    binomial_count,
    key_to_plain,
    poisson_count,
    weighted_order,
    weighted_picks,
)
from ..exceptions import EmptyStreamError, ShoalTypeError, ShoalValueError
from ._base import (
    NEW,
    BaseMux,
    Progress,
    Reweighable,
    check_flag,
    check_state,
    note_streamer,
    open_child,
    weight_spec,
    weighted_share_settings,
    weights_recipe,
)

__all__ = ["StochasticMux"]

MODES = ("with_replacement", "single_active", "exhaustive")
DISTS = ("binomial", "constant", "poisson")

# Block keys of the draws, one supply per purpose.
_PICKS = 1  # which active slot gives the next item
_CHOICES = 2  # which streamer to activate
_UNIFORMS = 3  # uniforms for the exact fallback of single_active
_COUNTS = 4  # how many items an activation may give
_ORDER = 5  # the activation order of exhaustive mode

FIRST_PICK_BLOCK = 64  # picks in the first block; doubling with each block...
PICK_BLOCK = 1024  # ...up to this
# single_active draws a streamer by weight and redraws while it is active;
# after this many redraws it chooses exactly among the inactive ones.
MAX_REDRAWS = 16


#: The largest ``rate``: every count up to it is a float exactly, and numpy's
#: Poisson and binomial draws around it stay far from their int64 limits.
MAX_RATE = 2**53
#: With ``mode="with_replacement"``, at most this many slots beyond one per
#: streamer: each slot holds an open iterator, all opened at the first item.
MAX_EXTRA_SLOTS = 2**16


def _check_rate(rate):
    if rate is None:
        return None
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
        raise ShoalTypeError(
            f"rate must be None or a number >= 1, got {short_repr(rate)} ({type(rate).__name__})"
        )
    if not (math.isfinite(rate) and rate >= 1):
        raise ShoalValueError(
            f"rate must be None or a finite number >= 1 (the mean number of items per "
            f"activation), got {rate!r}"
        )
    if rate > MAX_RATE:
        raise ShoalValueError(
            f"rate must be at most 2**53 (= {MAX_RATE}), got {rate!r}; use rate=None to "
            "run every activation to its end"
        )
    return float(rate) if not isinstance(rate, numbers.Integral) else int(rate)


class StochasticMux(BaseMux):
    """Mix a random set of ``n_active`` streamers, each active for a random number of items.

    1. ``n_active`` streamers are activated, each chosen at random in
       proportion to its weight, and each given a number of items drawn from
       ``dist`` with mean ``rate``.
    2. Each item comes from one of the active streamers, chosen at random
       in proportion to its weight (as in pescador).
    3. When an active streamer has given its number of items, or runs out,
       it is closed and another is activated in its place.

    So each streamer's share of the items is in proportion to its weight, as
    long as it does not run out before its count (with ``rate=None`` every
    activation runs to exhaustion, and longer streamers give more items):
    in ``with_replacement`` mode it is the share of the activations, each
    giving ``rate`` items on average, and with every streamer active it is
    the share of the picks. In ``exhaustive`` mode each streamer gives its
    items once a pass, and the weights decide which come first.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
    n_active : int >= 1
        How many streamers are active at once: at most the number of
        streamers, or (with ``mode="with_replacement"``) that plus 2**16.
    rate : None or float in [1, 2**53]
        The mean number of items per activation. ``None`` runs every
        activation to exhaustion.
    weights : None, array-like of float >= 0, or callable
        How often each streamer is activated, and how often an active one
        gives the next item, relatively; ``None`` means equally often.
        Normalised; the array given is not modified. A callable
        ``weights(n)`` is a schedule: it is called with the number of items
        the iteration has given, at its start and then at least every 1024
        items, and returns the weights to use from there on. New weights
        (a schedule's, or ``StreamIterator.set_weights``) apply to the next
        pick and the next activation; an active streamer whose new weight
        is 0 is closed at once (in ``exhaustive`` mode, it gives its items
        once no active streamer has a positive weight, and the order of the
        activations follows new weights from the next pass).
    mode : {"with_replacement", "single_active", "exhaustive"}
        ``"with_replacement"``: a streamer can be active in several slots at
        once. ``"single_active"``: at most one slot per streamer; one that
        ends can be chosen again. ``"exhaustive"``: each streamer is
        activated at most once, and the mux ends when all have been.
    prune_empty_streams : bool
        Never activate again a streamer whose activation yielded nothing. The
        mux ends when no streamer is left. With ``False``, a mux whose
        streamers all yield nothing raises :class:`~shoal.EmptyStreamError`
        instead of spinning.
    dist : {"binomial", "constant", "poisson"}
        The distribution of the number of items per activation, each with
        mean ``rate``: ``"constant"`` is ``rate`` (randomly rounded when it
        is not whole); ``"poisson"`` is ``1 + Poisson(rate - 1)``;
        ``"binomial"`` is ``1 + Binomial((rate - 1) / (1 - p), 1 - p)``, with
        ``p`` the new slot's share of the active weight, the chance that an
        item comes from it (as in pescador; ``1 + Poisson(rate - 1)`` when
        ``p`` is 1, the only slot with a weight).
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed. Unseeded (``None``, and no seed above), every pass and
        every iteration draws afresh, from a seed drawn from numpy's global
        state and kept in the state; seeded, every pass repeats the same
        sequence unless ``reseed_each_epoch=True``.
    reseed_each_epoch : bool
        Give each pass of a cycling iteration (``cycle()``) its own draws,
        derived from the seed and the pass number, instead of repeating the
        first pass's.

    Examples
    --------
    Three streamers of eight items, one active at a time, three items per
    activation:

    >>> streams = ["x" * 8, "y" * 8, "z" * 8]
    >>> mux = StochasticMux(streams, n_active=1, rate=3, dist="constant",
    ...                     random_state=0)
    >>> "".join(mux(max_iter=12))
    'xxxzzzxxxxxx'

    Two active at a time, each running to exhaustion, each streamer once:

    >>> mux = StochasticMux(["aaaa", "bbbb", "cccc"], n_active=2, rate=None,
    ...                     mode="exhaustive", random_state=0)
    >>> "".join(mux)
    'aabaabbccbcc'

    Both active, and ``a`` nine times as likely as ``b`` to give each item:

    >>> mux = StochasticMux(["a" * 20, "b" * 20], n_active=2, rate=None,
    ...                     weights=[9, 1], mode="exhaustive", random_state=0)
    >>> "".join(mux)
    'aaaaaaaaaaababaaaaaaaabbbbbbbbbbbbbbbbbb'
    """

    def __init__(
        self,
        streamers,
        n_active,
        rate,
        weights=None,
        mode="with_replacement",
        prune_empty_streams=True,
        dist="binomial",
        random_state=None,
        *,
        reseed_each_epoch=False,
    ):
        super().__init__(streamers, random_state=random_state)
        n_streams = len(self.streamers)
        self.n_active = check_int("n_active", n_active, minimum=1)
        self.rate = _check_rate(rate)
        self.weights, self.weight_schedule = weight_spec(weights, n_streams)
        self.mode = check_choice("mode", mode, MODES)
        self.prune_empty_streams = check_flag("prune_empty_streams", prune_empty_streams)
        self.reseed_each_epoch = check_flag("reseed_each_epoch", reseed_each_epoch)
        self.dist = check_choice("dist", dist, DISTS)
        if self.mode != "with_replacement" and self.n_active > n_streams:
            raise ShoalValueError(
                f"n_active must be at most the number of streamers ({n_streams}) with "
                f"mode={self.mode!r}, got {self.n_active}"
            )
        if self.n_active > n_streams + MAX_EXTRA_SLOTS:
            raise ShoalValueError(
                f"n_active must be at most the number of streamers plus 2**16 "
                f"({n_streams + MAX_EXTRA_SLOTS}), got {self.n_active}: every active slot "
                "holds an open iterator, and all are opened before the first item"
            )

    def _make_node(self, cycle=False, state=None, track=False, key=None):
        return _StochasticIterator(self, cycle, state, track, key)

    def _recipe(self):
        return {
            **super()._recipe(),
            "n_active": self.n_active,
            "rate": self.rate,
            "weights": weights_recipe(self),
            "mode": self.mode,
            "dist": self.dist,
            "prune_empty_streams": self.prune_empty_streams,
            "reseed_each_epoch": self.reseed_each_epoch,
        }

    def _ready_children(self, state, path, n_given=None):
        # The states of the open slots, and those of streamers to resume (resharded).
        ready = {}
        slots = state.get("slots")
        if isinstance(slots, list) and slots:
            ready["slots"] = [
                slot if not isinstance(slot, list) or len(slot) < 4 or slot[3] is None
                else [*slot[:3], self._ready_child(slot[0], slot[3]), *slot[4:]]
                for slot in slots
            ]
        resume = state.get("resume")
        if isinstance(resume, dict) and resume:
            ready["resume"] = {
                sid: entry if not isinstance(entry, list) or len(entry) != 2
                else [entry[0], self._ready_child(int(sid), entry[1])]
                for sid, entry in resume.items()
            }
        return {**state, **ready} if ready else state

    def _settings(self):
        return {
            "n_active": self.n_active,
            "rate": self.rate,
            "mode": self.mode,
            "dist": self.dist,
            **({"reseed_each_epoch": True} if self.reseed_each_epoch else {}),
        }

    def _share_settings(self, index, count):
        settings = weighted_share_settings(self, index, count)
        if self.mode != "with_replacement":
            settings["n_active"] = min(self.n_active, len(self.streamers[index::count]))
        return settings

    def _reshard_refusal(self):
        if self.mode != "exhaustive":
            return (
                f"in mode={self.mode!r} a StochasticMux activates streamers again and again: "
                "it has no pass whose items could be split"
            )
        if self.rate is not None:
            return (
                f"with rate={self.rate!r} each activation stops after a random number of "
                "items, so the items of a pass depend on the split; use rate=None to run "
                "every streamer to its end"
            )
        return None

    def _progress(self, state, n_given):
        return _StochasticIterator.progress(self, state, n_given)

    def _elastic_state(self, progress):
        return _StochasticIterator.elastic_state(self, progress)

    def _draw_counts(self, rng, size):
        """``size`` activation counts, each with mean ``rate``."""
        rate = self.rate
        if self.dist == "constant":
            return _randomly_rounded(rng, rate, size).tolist()
        if self.dist == "poisson":
            return (1 + rng.poisson(rate - 1, size)).tolist()
        # binomial: the count depends on the slot's share p of the active
        # weight, known when the activation starts. Each activation gets a
        # pair: its count if p = 1 / n_active (every slot open, equal weights:
        # the common case, drawn here at numpy's speed), and a uniform that
        # _binomial_count turns into the count for any other p.
        if self.n_active == 1:
            counts = 1 + rng.poisson(rate - 1, size)  # p = 1: the limit
        else:
            success = 1 - 1 / self.n_active
            counts = 1 + rng.binomial(_randomly_rounded(rng, (rate - 1) / success, size), success)
        return list(zip(counts.tolist(), rng.random(size).tolist()))

    def _binomial_count(self, drawn, p):
        """The binomial count of an activation whose slot has share ``p``, from a ``drawn`` pair.

        ``1 + Binomial((rate - 1) / (1 - p), 1 - p)``: mean ``rate``; with
        ``p = 1`` (the only slot with weight) its limit ``1 + Poisson(rate - 1)``.
        """
        count, u = drawn
        if abs(p * self.n_active - 1.0) < 1e-9:
            return count  # drawn for p = 1 / n_active
        if p >= 1.0:
            return 1 + poisson_count(u, self.rate - 1)
        return 1 + binomial_count(u, (self.rate - 1) / (1.0 - p), 1.0 - p)


def _randomly_rounded(rng, value, size):
    """``size`` integers floor(value) or ceil(value), with mean ``value``."""
    whole = math.floor(value)
    frac = value - whole
    if frac == 0:
        return np.full(size, whole, dtype=np.int64)
    return whole + (rng.random(size) < frac)


def _make_uniforms(rng, size):
    return rng.random(size).tolist()


_DEAD = iter(())  # the reader of an empty slot: spent, so next() raises at C speed
_SLOTS = ("sids", "limits", "iters", "nodes", "counters", "readers", "activation_numbers",
          "slot_weights")


class _StochasticIterator(Reweighable):
    """The running state of one iteration of a StochasticMux.

    The slots are parallel lists: the streamer in each slot, the count its
    activation may give, its open iterator, its node (when tracking), the
    counter of the items it gave and the reader the mux calls ``next`` on:
    ``compress(islice(source, count), counter)``, where islice stops the
    activation after its count and the counter counts at C speed. A slot
    whose activation cannot be replaced becomes a hole (streamer -1, weight
    0); when half the slots are holes they are removed.

    The sampling policy is apart from this bookkeeping: ``slot_picks``
    picks the slot of each item in proportion to ``slot_weights`` (the
    weight of each slot's streamer), ``next_activation`` chooses the
    streamer to activate, and ``_limit`` the number of items it may give.
    Random draws come in numbered blocks that are fixed functions of the
    seed, so the state holds counters, not generators.

    A state made by :func:`~shoal.reshard_states` gives the pass's plan
    itself (``plan``, in exhaustive mode) and the streamers of the plan to
    resume where their state says (``resume``): such an iteration saves its
    plan and what is left to resume in its own state.
    """

    __slots__ = (
        "mux", "streamers", "cycle", "track", "seed", "random", "epoch", "n_given_pass",
        "base_weights", "base_summary", "weights", "pruned", "weight_list", "pick_list",
        "n_positive", "busy", "last_empty", "n_last_empty",
        "totals", *_SLOTS, "n_live", "slot_picks", "binomial",
        "activations", "choices", "uniforms", "sizes", "next_activation", "plan", "plan_weights",
        "restored", "n_activations", "resume",
    )

    def __init__(self, mux, cycle=False, state=None, track=False, key=None):
        self.mux = mux
        self.streamers = mux.streamers
        self.cycle = cycle  # start a new pass when this one ends
        self.track = track or state is not None  # a restored child has a state to load
        self.seed = TreeSeed(mux._seed, key, state.get("seed") if state else None, owner=mux)
        self.epoch = 0  # passes completed
        self.random = PassRandom.take(self.seed.pass_key(mux, 0))
        self.slot_picks = SlotPicks(self.random, _PICKS, FIRST_PICK_BLOCK, PICK_BLOCK)
        self.binomial = mux.dist == "binomial" and mux.rate is not None
        self.totals = [0] * len(mux.streamers)  # items of finished activations
        for name in _SLOTS:
            setattr(self, name, [])
        self.plan = None  # exhaustive mode: the activations of a pass
        self.plan_weights = None  # the weights it was drawn with
        self.restored = None
        self.resume = None  # resharded: streamer -> [n, state], resumed when activated
        self.base_weights = mux.weights  # as set by the recipe, a schedule or set_weights
        self.base_summary = None  # (base_weights, as a list, number of positive weights)
        if state is not None:
            check_state(state, mux, ("epoch", "base_weights", "pruned", "slots", "picks",
                                     "draws", "totals", "n_activations"))
            self.epoch = state["epoch"]
            self.random.rekey(self.seed.pass_key(mux, self.epoch))
            self.base_weights = np.array(state["base_weights"], dtype=float)
            self.seed.pin(state.get("keys"))
        self._start_pass()
        if state is not None:
            self._load(state)

    def _start_pass(self):
        mux = self.mux
        n = len(mux.streamers)
        random = self.random
        self.n_given_pass = 0
        self.pruned = []  # streamers pruned for yielding nothing
        self._weigh()
        self.busy = [0] * n  # slots each streamer holds
        self.last_empty = [False] * n  # did its last activation yield nothing?
        self.n_last_empty = 0
        self.n_activations = [0] * n  # of each streamer in this pass
        for name in _SLOTS:
            getattr(self, name).clear()
        self.n_live = 0
        self.slot_picks.start()
        # An activation is a pair (streamer, count); count None means no
        # limit; a binomial count is a uniform until the activation starts.
        self.activations = self.choices = self.uniforms = self.sizes = None
        if mux.mode == "exhaustive":
            # The whole pass is drawn at once: a weighted order and its counts.
            # (A pass draws the same as the one before unless its passes
            # differ, reseeded or unseeded, or the weights changed.)
            if (self.plan is None or self.seed.varies(mux)
                    or self.plan_weights is not self.base_weights):
                self._draw_plan(self.base_weights)
            self.activations = iter(self.plan)
            self.next_activation = self._next_in_order
        elif mux.mode == "single_active":
            self.choices = Draws(random, _CHOICES, self._make_choices)
            self.uniforms = Draws(random, _UNIFORMS, _make_uniforms)
            self.sizes = Draws(random, _COUNTS, self._counts)
            self.next_activation = self._next_free
        else:
            self.activations = Draws(random, _CHOICES, self._make_activations)
            self.next_activation = self._next_any

    def _draw_plan(self, weights):
        """exhaustive: draw the activations of a pass, a weighted order and its counts."""
        rng = self.random.block(_ORDER, 0)
        order = weighted_order(rng, weights)
        self.plan = list(zip(order, self._counts(rng, len(order))))
        self.plan_weights = weights

    # -- weights -----------------------------------------------------------

    def _weigh(self):
        """Set the weights in use.

        Activations draw from the base weights with pruned streamers at 0
        (``weights``, ``weight_list``); an active slot is picked in
        proportion to its streamer's base weight (``pick_list``).
        """
        base = self.base_weights
        if self.base_summary is None or self.base_summary[0] is not base:
            self.base_summary = (base, base.tolist(), int(np.count_nonzero(base)))
        self.pick_list = self.base_summary[1]
        if self.pruned:
            self.weights = self.base_weights.copy()
            self.weights[self.pruned] = 0.0
            self.weight_list = self.weights.tolist()
            self.n_positive = int(np.count_nonzero(self.weights))
            return
        # Nothing pruned (the common case, at every pass start): the base as it is.
        self.weights, self.weight_list, self.n_positive = self.base_summary

    def _reweigh_activations(self):
        """The activation weights changed: draws made with the old ones no longer apply.

        (In exhaustive mode the order of a pass is drawn when it starts, so
        it follows new weights from the next pass.)
        """
        self._weigh()
        supply = self.choices or self.activations
        if self.mux.mode != "exhaustive" and supply is not None:
            supply.discard()

    def _reweigh(self):
        """New base weights (set_weights, a schedule): they apply from the next pick on.

        The active slots take their streamers' new weights. Outside
        exhaustive mode, an active streamer whose weight is now 0 is closed
        and replaced at once (an activation of it could never be picked).
        """
        self._reweigh_activations()
        if self.restored is not None:  # restored, not run since: its state has the new weights
            self.restored = {**self.restored, "base_weights": self.base_weights.tolist(),
                             "draws": {name: supply.state() for name, supply in
                                       self._supplies().items()} | {
                                 name: value for name, value in self.restored["draws"].items()
                                 if name in ("plan", "plan_weights")}}
            return
        if not self.sids:
            return  # no slot is open yet
        weights, sids, slot_weights = self.pick_list, self.sids, self.slot_weights
        for k, sid in enumerate(sids):
            if sid >= 0:
                slot_weights[k] = weights[sid]
        self._slots_changed()
        if self.mux.mode != "exhaustive":
            self._replace_unweighted_slots()

    def _replace_unweighted_slots(self):
        while True:
            sids, slot_weights = self.sids, self.slot_weights
            k = next((k for k, sid in enumerate(sids) if sid >= 0 and not slot_weights[k]), None)
            if k is None:
                return
            self._close_slot(k)
            if not self._activate(k):
                self._drop_slot(k)

    def _slots_changed(self):
        """Pick the slots by their weights from now on.

        If no open slot has a positive weight (in exhaustive mode, after new
        weights), the open slots are picked uniformly, so that they still end.
        """
        weights = self.slot_weights
        if not any(weights):
            weights = [0.0 if sid < 0 else 1.0 for sid in self.sids]
            if not any(weights):
                self.slot_picks.stop()  # no open slot: no pick
                return
        self.slot_picks.set_weights(weights)

    # -- state -------------------------------------------------------------

    def _supplies(self):
        if self.mux.mode == "single_active":
            return {"choices": self.choices, "uniforms": self.uniforms, "sizes": self.sizes}
        if self.mux.mode == "with_replacement":
            return {"activations": self.activations}
        return {}

    def state_dict(self, n_given=None):
        if self.restored is not None:  # restored, not run since: the state it was given
            return copy.deepcopy(self.restored)
        slots = []
        for k, sid in enumerate(self.sids):
            if sid < 0:
                slots.append(None)
                continue
            n = given(self.counters[k])
            state = None
            if self.track:
                state = self.streamers[sid]._node_state(self.nodes[k], self.iters[k], n)
            slots.append([sid, self.limits[k], n, state, self.activation_numbers[k]])
        draws = {name: supply.state() for name, supply in self._supplies().items()}
        if self.mux.mode == "exhaustive":
            draws["plan"] = len(self.plan) - self.activations.__length_hint__()
            draws["plan_weights"] = self.plan_weights.tolist()
        state = {
            "type": "StochasticMux",
            "n_streams": len(self.mux.streamers),
            "recipe": self.mux._recipe(),
            "seed": self.seed.saved(),
            "epoch": self.epoch,
            "started": bool(self.sids),
            "given_in_pass": self.n_given_pass,
            "base_weights": self.base_weights.tolist(),
            "pruned": list(self.pruned),
            "last_empty": [j for j, empty in enumerate(self.last_empty) if empty],
            "slots": slots,
            "picks": self.slot_picks.state(),
            "draws": draws,
            "totals": list(self.totals),
            "n_activations": list(self.n_activations),
        }
        if self.resume is not None:
            state["plan"] = [sid for sid, _ in self.plan]
            state["resume"] = {str(sid): entry for sid, entry in self.resume.items()}
        if self.seed.pinned:
            state["keys"] = self.seed.pinned_plain()
        return state

    @classmethod
    def progress(cls, mux, state, n_given=None):
        """Each streamer's :class:`Progress` in ``state`` (exhaustive mode, ``rate=None``)."""
        check_state(state, mux, ("epoch", "slots", "draws", "totals"))
        node = cls(mux, False, state, True)  # opens nothing: it reads the plan left
        try:
            left = [sid for sid, _ in node.activations]
            resume = node.resume or {}
        finally:
            node.random.give_back()
        def key(sid, number):
            if not mux.streamers[sid]._takes_key:
                return None
            return key_to_plain(node._child_key(sid, number))

        out = [Progress(True, total, None) for total in state["totals"]]
        for slot in state["slots"]:
            if slot is not None:
                sid, _, n, child, number = slot
                out[sid] = Progress(False, n, child, key(sid, number))
        for sid in left:
            if sid in resume:
                out[sid] = Progress(False, *resume[sid], key(sid, 0))
            else:
                out[sid] = NEW
        return out

    @classmethod
    def elastic_state(cls, mux, progress):
        """The state of an iteration of ``mux`` that goes on from ``progress``.

        Its plan resumes the streamers in progress first, then activates the
        others in a weighted random order drawn from the seed.
        """
        seed = TreeSeed(mux._seed, owner=mux)
        running = [sid for sid, p in enumerate(progress) if not p.done and p.state is not None]
        weights = np.zeros(len(progress))
        new = [sid for sid, p in enumerate(progress) if p == NEW]
        weights[new] = np.asarray(mux.weights)[new]
        order = weighted_order(PassRandom(seed.pass_key(mux, 0)).block(_ORDER, 1), weights)
        return {
            "type": "StochasticMux",
            "n_streams": len(progress),
            "recipe": mux._recipe(),
            "seed": seed.saved(),
            "epoch": 0,
            "started": False,
            "given_in_pass": sum(p.n for p in progress),
            "base_weights": mux.weights.tolist(),
            "pruned": [],
            "last_empty": [],
            "slots": [],
            "picks": [0, 0],
            "draws": {"plan": 0},
            "totals": [p.n if p.done else 0 for p in progress],
            "n_activations": [0 if p == NEW else 1 for p in progress],
            "plan": running + order,
            "resume": {str(sid): [progress[sid].n, progress[sid].state] for sid in running},
            "keys": {str(j): p.key for j, p in enumerate(progress) if p.key is not None},
        }

    def _load(self, state):
        self.n_given_pass = state["given_in_pass"]
        self.pruned = list(state["pruned"])
        self._weigh()
        for j in state["last_empty"]:
            self.last_empty[j] = True
        self.n_last_empty = len(state["last_empty"])
        self.totals = list(state["totals"])
        self.n_activations = list(state["n_activations"])
        for name, supply in self._supplies().items():
            supply.restore(state["draws"][name])
        if "plan" in state:  # resharded: the plan and who resumes are in the state
            self.plan = [(sid, None) for sid in state["plan"]]
            self.resume = {int(sid): entry for sid, entry in state["resume"].items()}
        elif self.mux.mode == "exhaustive" and "plan_weights" in state["draws"]:
            plan_weights = np.array(state["draws"]["plan_weights"], dtype=float)
            if not np.array_equal(plan_weights, self.plan_weights):
                self._draw_plan(plan_weights)  # the weights changed since the pass started
        if self.mux.mode == "exhaustive":
            self.activations = iter(self.plan[state["draws"]["plan"]:])
        self.restored = state if state["started"] else None
        self.slot_picks.restore(state["picks"], len(state["slots"]))

    def _open_restored_slots(self):
        slots = self.restored["slots"]
        self.restored = None
        for k, slot in enumerate(slots):
            self._append_slot()
            if slot is None:
                self._make_hole(k)
                continue
            sid, limit, n, child, number = slot
            self._fill(k, sid, limit, n, child, number)
            self.n_live += 1
        self._slots_changed()
        if self.mux.mode != "exhaustive":
            self._replace_unweighted_slots()  # new weights set before the slots opened

    def counts(self):
        counts = list(self.totals)
        for k, sid in enumerate(self.sids):
            if sid >= 0:
                counts[sid] += given(self.counters[k])
        if self.restored is not None:  # slots not reopened yet
            for slot in self.restored["slots"]:
                if slot is not None:
                    counts[slot[0]] += slot[2]
        for sid, (n, _) in (self.resume or {}).items():  # resharded, not resumed yet
            counts[sid] += n
        return counts

    # -- activations ---------------------------------------------------------

    def _counts(self, rng, size):
        if self.mux.rate is None:
            return [None] * size
        return self.mux._draw_counts(rng, size)

    def _make_choices(self, rng, size):
        return weighted_picks(rng, self.weights, size)

    def _make_activations(self, rng, size):
        return list(zip(weighted_picks(rng, self.weights, size), self._counts(rng, size)))

    def _next_in_order(self):
        """exhaustive: the next activation of the pass's weighted order."""
        return next(self.activations, None)

    def _next_any(self):
        """with_replacement: any streamer, by weight."""
        return self.activations() if self.n_positive else None

    def _next_free(self):
        """single_active: a streamer not active now, by weight."""
        if not self.n_positive:
            return None
        busy = self.busy
        sid = self.choices.first_free(busy, MAX_REDRAWS)
        if sid is not None:
            return sid, self.sizes()
        # Most of the weight is on active streamers: choose among the others exactly.
        weights = self.weight_list
        free = [j for j, held in enumerate(busy) if not held and weights[j] > 0]
        if not free:
            return None
        cumulative = list(accumulate(weights[j] for j in free))
        index = bisect_right(cumulative, self.uniforms() * cumulative[-1])
        return free[min(index, len(free) - 1)], self.sizes()

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
        self._put(k, sid, limit, it, node, counter, limit if limit is None else limit - n)
        self.activation_numbers[k] = number

    def _limit(self, k, sid, count, total=None):
        """The number of items the activation of ``sid`` in slot k may give.

        A binomial ``count`` is a uniform until here: the count's ``p`` is the
        slot's share of the active weight (``total``, or the other slots'
        weights and its own).
        """
        if not self.binomial:
            return count
        weights = self.slot_weights
        weight = self.pick_list[sid]
        if total is None:
            if (weight == weights[k] and weight > 0 and self.slot_picks.equal
                    and self.n_live == len(weights) == self.mux.n_active):
                return count[0]  # every slot open, equal weights: p = 1 / n_active, drawn
            total = sum(weights) - weights[k] + weight
        return self.mux._binomial_count(count, weight / total if total > 0 else 1.0)

    def _activate(self, k, activation=None, total=None):
        """Put a newly activated streamer in slot k; False if there is none to activate.

        ``activation`` is one drawn already, and ``total`` the active weight it counts on.
        """
        if activation is None:
            activation = self.next_activation()
            if activation is None:
                return False
        sid, count = activation
        if self.resume and sid in self.resume:  # resharded: it goes on where it was
            n, state = self.resume.pop(sid)
            self._fill(k, sid, count, n, state, 0)
            return True
        limit = self._limit(k, sid, count, total)
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
        self._put(k, sid, limit, it, node, counter, limit)
        self.activation_numbers[k] = number
        return True

    def _put(self, k, sid, limit, it, node, counter, left):
        """Slot k now reads ``it`` (of streamer ``sid``), for ``left`` more items."""
        self.busy[sid] += 1
        self.sids[k] = sid
        self.limits[k] = limit
        self.iters[k] = it
        self.nodes[k] = node
        self.counters[k] = counter
        self.readers[k] = compress(it if left is None else islice(it, left), counter)
        weights = self.slot_weights
        weight = self.pick_list[sid]
        if weights[k] != weight:
            weights[k] = weight
            if weight > 0:
                self.slot_picks.set_weights(weights)
            else:
                self._slots_changed()

    def _append_slot(self):
        self.sids.append(-1)
        self.limits.append(None)
        self.iters.append(None)
        self.nodes.append(None)
        self.counters.append(None)
        self.readers.append(_DEAD)
        self.activation_numbers.append(None)
        self.slot_weights.append(0.0)

    def _open_slots(self):
        """Open the ``n_active`` slots of a pass.

        The activations are drawn first, so that each binomial count knows
        the whole active weight.
        """
        activations = []
        for _ in range(self.mux.n_active):
            activation = self.next_activation()
            if activation is None:
                break
            activations.append(activation)
            self.busy[activation[0]] += 1  # single_active: not again
        weights = self.pick_list
        total = sum(weights[sid] for sid, _ in activations)
        for sid, _ in activations:
            self.busy[sid] -= 1
        for activation in activations:
            k = len(self.sids)
            self._append_slot()
            self._activate(k, activation, total)
            self.n_live += 1
        for _ in range(self.mux.n_active - len(activations)):
            self._append_slot()  # a hole

    def _make_hole(self, k):
        self.sids[k] = -1
        self.limits[k] = self.iters[k] = self.nodes[k] = self.counters[k] = None
        self.readers[k] = _DEAD
        self.activation_numbers[k] = None
        if self.slot_weights[k]:
            self.slot_weights[k] = 0.0
            self._slots_changed()

    def _close_slot(self, k):
        """Close the activation in slot k; return the number of items it gave."""
        sid = self.sids[k]
        n = BIG - self.counters[k].__length_hint__()
        self.busy[sid] -= 1
        self.totals[sid] += n
        close = getattr(self.iters[k], "close", None)
        if close is not None:
            try:
                close()  # it may stop before running out: its finally blocks run now
            except Exception as exc:
                note_streamer(exc, self.mux, sid)
                raise
        self.n_given_pass += n
        if not n or self.n_last_empty:
            self._watch_empty(sid, n)
        return n

    def _watch_empty(self, sid, n):
        """Prune a streamer that gave nothing, or raise if none gives anything."""
        mux = self.mux
        if not n:
            if mux.prune_empty_streams:
                if self.weight_list[sid] > 0:
                    self.pruned.append(sid)
                    self._reweigh_activations()
            elif mux.mode != "exhaustive" and not self.last_empty[sid]:
                self.last_empty[sid] = True
                self.n_last_empty += 1
                if self.n_last_empty >= self.n_positive:
                    raise EmptyStreamError(
                        f"{mux!r} has no streamer that yields an item: the last activation "
                        "of each yielded nothing (prune_empty_streams=False)"
                    )
        elif self.last_empty[sid]:
            self.last_empty[sid] = False
            self.n_last_empty -= 1

    def _drop_slot(self, k):
        """Slot k cannot be refilled: make it a hole; compact the slots when half are holes."""
        self._make_hole(k)
        self.n_live -= 1
        if 2 * self.n_live > len(self.sids):
            return
        keep = [k for k, sid in enumerate(self.sids) if sid >= 0]
        for name in _SLOTS:
            slots = getattr(self, name)
            slots[:] = [slots[k] for k in keep]
        self._slots_changed()  # the picks left follow the slots' new places

    def _next_picks(self):
        """The slot picks left in the current block, or those of a new block."""
        picks = self.slot_picks
        if not picks.left():
            self._scheduled()  # the weights schedule applies from the new block on
        return picks.picks()

    def run(self):
        mux = self.mux
        readers = self.readers
        next_item = next
        sids = self.sids
        try:
            while True:
                if self.restored is not None:
                    self._open_restored_slots()
                else:
                    self._open_slots()
                while self.n_live:
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
                            self._drop_slot(k)
                if not self.cycle:
                    return
                if not self.n_given_pass:
                    raise empty_pass(mux)
                self.epoch += 1
                self.random.rekey(self.seed.pass_key(mux, self.epoch))
                self._start_pass()
        finally:
            try:
                close_all(self.iters)
            finally:
                self.random.give_back()
