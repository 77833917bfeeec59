"""Which streamer a StochasticMux activates next: an activation policy per ``mode``.

A policy decides the activations of a pass: which streamer is activated
next and what count it is drawn (see ``_stochastic_counts``), what happens
when an activation ends (a streamer that gave nothing is dropped, or
watched), the draws it makes them from, and what of it a state keeps. The
node (``_stochastic_node``) keeps the slots and calls ``next()`` when a
slot is free; the three policies have the same few members:

``reactivates``
    Can a streamer be activated again in a pass? Then an activation may be
    cut short: an active streamer whose weight becomes 0 is closed at once,
    and with ``prune_empty_streams=False`` a mux whose streamers' last
    activations all gave nothing raises instead of spinning.
``start_pass(base)``, ``next()``, ``ended(streamer, n)``, ``reweigh(base)``
    A pass starts with base weights ``base``; the next activation,
    ``(streamer, drawn count)`` or None if none is left; an activation
    ended after ``n`` items; new base weights (from the next activation on).
``save(state)``, ``load(state)``
    Its part of the node's state: the streamers dropped (``dropped``), those
    whose last activation gave nothing (``last_empty``), its supplies of
    draws under ``state["draws"]``, and, in exhaustive mode, the pass's plan
    (``plan``: the activations of it made, ``n``, and the ``base_weights``
    it was drawn with, or, for a resharded pass, its ``streamers``).

Random draws come in numbered blocks of the pass's :class:`~shoal._random.PassRandom`,
one purpose each, so a state holds counters, not generators.
"""

from bisect import bisect_right
from itertools import accumulate
from typing import ClassVar

import numpy as np

from .._random import Draws, weighted_order, weighted_picks
from .._schema import check_fields, count, state_error, streamer_list, weights
from ..exceptions import EmptyStreamError
from ._stochastic_counts import count_dist

__all__ = ["ActivationPolicy", "WithReplacement", "SingleActive", "Exhaustive", "POLICIES",
           "make_policy", "fresh_order"]

# Block purposes of a pass's draws (1, the slot picks, is the node's).
_CHOICES = 2  # which streamer to activate
_UNIFORMS = 3  # uniforms for the exact fallback of single_active
_COUNTS = 4  # how many items an activation may give (single_active)
_ORDER = 5  # the activation order of exhaustive mode

# Without pruning, this many activations in a row that give nothing (and at least
# EMPTY_RUN_PER_STREAMER per streamer) end the pass with an EmptyStreamError.
MAX_EMPTY_RUN = 10_000
EMPTY_RUN_PER_STREAMER = 100

# single_active draws a streamer by weight and redraws while it is active;
# after this many redraws it chooses exactly among the inactive ones.
MAX_REDRAWS = 16


def _distinct_streamers(value, path, n_streams=None):
    streamer_list(value, path, n_streams)
    if len(set(value)) != len(value):
        raise state_error(path, "a list of distinct streamer numbers", value)


def _plan(value, path, n_streams=None):
    """An exhaustive pass's plan: ``{"n", "base_weights"}``, or, resharded, ``{"n", "streamers"}``."""
    if not isinstance(value, dict) or ("base_weights" in value) == ("streamers" in value):
        raise state_error(path, "a dict with 'n' and either 'base_weights' or 'streamers'", value)
    if "streamers" in value:
        check_fields(value, {"n": count, "streamers": _distinct_streamers}, path, n_streams)
        size = len(value["streamers"])
    else:
        check_fields(value, {"n": count, "base_weights": weights}, path, n_streams)
        size = sum(weight > 0 for weight in value["base_weights"])
    if value["n"] > size:
        raise state_error(f"{path}['n']", f"at most {size}, the activations of the plan",
                          value["n"])


class ActivationPolicy:
    """What the three policies share: the activation weights, and the empty streamers.

    Streamers are activated in proportion to the base weights (the recipe's,
    a schedule's or ``set_weights``'s), but those dropped for being empty,
    at 0: ``weights`` (an array), ``weight_list`` and ``n_positive``.
    ``base_list`` is the base weights as a list, by which the node picks
    an active slot. ``SUPPLIES`` names its supplies of draws (each an
    attribute), and ``SCHEMA`` the fields of the node's state that are its
    own (see ``shoal._schema``).
    """

    __slots__ = ("mux", "random", "counts", "busy", "varies", "base", "summary", "base_list",
                 "weights", "weight_list", "n_positive", "dropped", "last_empty", "n_last_empty",
                 "empty_run")

    reactivates = True
    SUPPLIES: ClassVar[tuple] = ()
    SCHEMA: ClassVar[dict] = {"dropped": _distinct_streamers, "last_empty": _distinct_streamers}

    def __init__(self, mux, random, counts, busy, varies):
        self.mux = mux
        self.random = random  # the iteration's PassRandom, keyed for each pass
        self.counts = counts  # the count distribution
        self.busy = busy  # the node's: how many slots each streamer holds
        self.varies = varies  # do the iteration's passes differ from one another?
        self.summary = None  # (base, as a list, number of positive weights)
        self.dropped = []  # streamers dropped for being empty
        self.last_empty = []
        self.n_last_empty = 0
        self.empty_run = 0  # activations in a row that gave nothing (without pruning)

    def start_pass(self, base):
        """A pass starts, activating by base weights ``base``: nothing dropped yet."""
        self.base = base
        self.dropped = []
        self._weigh()
        self.last_empty = [False] * len(self.mux.streamers)  # did its last activation give none?
        self.n_last_empty = 0
        self.empty_run = 0
        self._start_draws()

    def _start_draws(self):
        raise NotImplementedError

    def next(self):
        """The next activation, ``(streamer, drawn count)``, or None if none is left."""
        raise NotImplementedError

    def reweigh(self, base):
        """New base weights: the activations follow them from the next one on."""
        self.base = base
        self._reweigh()

    def _reweigh(self):
        self._weigh()
        self._discard()

    def _discard(self):
        """The activation weights changed: draws made with the old ones no longer apply."""

    def _weigh(self):
        base = self.base
        if self.summary is None or self.summary[0] is not base:
            self.summary = (base, base.tolist(), int(np.count_nonzero(base)))
        self.base_list = self.summary[1]
        if self.dropped:
            weights = base.copy()
            weights[self.dropped] = 0.0
            self.weights, self.weight_list = weights, weights.tolist()
            self.n_positive = int(np.count_nonzero(weights))
        else:  # nothing dropped (the common case, at every pass start): the base as it is
            self.weights, self.weight_list, self.n_positive = self.summary

    def ended(self, sid, n):
        """An activation of ``sid`` ended after ``n`` items: drop or watch an empty streamer.

        The node calls it when ``n`` is 0 or a streamer is watched
        (``n_last_empty``). Without pruning, raises EmptyStreamError once no
        streamer with a weight gives anything.
        """
        mux = self.mux
        if not n:
            if mux.prune_empty_streams:
                if self.weight_list[sid] > 0:
                    self.dropped.append(sid)
                    self._reweigh()
            elif self.reactivates:
                if not self.last_empty[sid]:
                    self.last_empty[sid] = True
                    self.n_last_empty += 1
                    if self.n_last_empty >= self.n_positive:
                        raise EmptyStreamError(
                            f"{mux!r} has no streamer that yields an item: the last activation "
                            "of each yielded nothing (prune_empty_streams=False)"
                        )
                self.empty_run += 1
                if self.empty_run >= max(MAX_EMPTY_RUN,
                                         EMPTY_RUN_PER_STREAMER * len(mux.streamers)):
                    # Weights that all but never pick the streamers not yet seen empty
                    # would spin for ever: say so instead (the items are the same).
                    empty = [j for j, flag in enumerate(self.last_empty) if flag]
                    raise EmptyStreamError(
                        f"{mux!r} activated its streamers {self.empty_run} times in a row "
                        f"without an item: streamers {empty} yield nothing, and the others "
                        "are all but never drawn at their weights "
                        f"({self.n_positive - len(empty)} of them). Give them more weight, or "
                        "drop the empty streamers (prune_empty_streams=True)"
                    )
        else:
            self.empty_run = 0
            if self.last_empty[sid]:
                self.last_empty[sid] = False
                self.n_last_empty -= 1

    def draws_state(self):
        """The states of its supplies of draws, by name."""
        return {name: getattr(self, name).state() for name in self.SUPPLIES}

    def save(self, state):
        """Put its part of the node's state in ``state``."""
        state["dropped"] = list(self.dropped)
        state["last_empty"] = [j for j, empty in enumerate(self.last_empty) if empty
                               ] if self.n_last_empty else []
        state["draws"].update(self.draws_state())

    def load(self, state):
        """Go on from ``state`` (a pass was started with its base weights)."""
        self.dropped = list(state["dropped"])
        self._weigh()
        for j in state["last_empty"]:
            self.last_empty[j] = True
        self.n_last_empty = len(state["last_empty"])
        for name in self.SUPPLIES:
            getattr(self, name).restore(state["draws"][name])


class WithReplacement(ActivationPolicy):
    """``with_replacement``: any streamer, by weight, however many slots it holds."""

    __slots__ = ("activations",)

    SUPPLIES = ("activations",)

    def _start_draws(self):
        self.activations = Draws(self.random, _CHOICES, self._make)

    def _make(self, rng, size):
        return list(zip(weighted_picks(rng, self.weights, size), self.counts.draw(rng, size)))

    def next(self):
        return self.activations() if self.n_positive else None

    def _discard(self):
        self.activations.discard()


class SingleActive(ActivationPolicy):
    """``single_active``: a streamer not active now, by weight; one that ended may come again."""

    __slots__ = ("choices", "uniforms", "sizes")

    SUPPLIES = ("choices", "uniforms", "sizes")

    def _start_draws(self):
        random = self.random
        self.choices = Draws(random, _CHOICES, self._make_choices)
        self.uniforms = Draws(random, _UNIFORMS, _make_uniforms)
        self.sizes = Draws(random, _COUNTS, self.counts.draw)

    def _make_choices(self, rng, size):
        return weighted_picks(rng, self.weights, size)

    def next(self):
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

    def _discard(self):
        self.choices.discard()


def _make_uniforms(rng, size):
    return rng.random(size).tolist()


class Exhaustive(ActivationPolicy):
    """``exhaustive``: each streamer once a pass, in a weighted random order drawn at its start.

    The plan of a pass, its activations in order, is drawn when it starts
    (``plan_weights``: the base weights it was drawn with), and the next
    pass draws the same unless its passes differ (reseeded or unseeded:
    ``varies``) or the weights changed. New weights apply from the next pass:
    an active streamer whose weight becomes 0 gives its items once no
    active one has a weight. A resharded pass is given its plan by its
    state (``given``).
    """

    __slots__ = ("plan", "plan_weights", "activations", "given")

    reactivates = False
    SCHEMA: ClassVar[dict] = {**ActivationPolicy.SCHEMA, "plan": _plan}

    def __init__(self, mux, random, counts, busy, varies):
        super().__init__(mux, random, counts, busy, varies)
        self.plan = None
        self.plan_weights = None
        self.given = False

    def _start_draws(self):
        base = self.base
        if self.plan is None or self.varies or self.plan_weights is not base:
            self._draw_plan(base)
        self.activations = iter(self.plan)

    def _draw_plan(self, weights):
        rng = self.random.block(_ORDER, 0)
        order = weighted_order(rng, weights)
        self.plan = list(zip(order, self.counts.draw(rng, len(order))))
        self.plan_weights = weights

    def next(self):
        return next(self.activations, None)

    def left(self):
        """The streamers of the plan not activated yet (it reads them)."""
        return [sid for sid, _ in self.activations]

    def save(self, state):
        super().save(state)
        n = len(self.plan) - self.activations.__length_hint__()
        if self.given:
            state["plan"] = {"n": n, "streamers": [sid for sid, _ in self.plan]}
        else:
            state["plan"] = {"n": n, "base_weights": self.plan_weights.tolist()}

    def load(self, state):
        super().load(state)
        plan = state["plan"]
        if "streamers" in plan:  # resharded: the plan is in the state
            self.plan = [(sid, None) for sid in plan["streamers"]]
            self.given = True
        else:
            weights = np.array(plan["base_weights"], dtype=float)
            if not np.array_equal(weights, self.plan_weights):
                self._draw_plan(weights)  # the weights changed since the pass started
        self.activations = iter(self.plan[plan["n"]:])


def fresh_order(random, weights):
    """The order of the streamers not started, in a resharded pass (see ``_elastic_state``).

    Drawn from block 1 of the order's draws, block 0 being each pass's own.
    """
    return weighted_order(random.block(_ORDER, 1), weights)


#: The policy of each mode.
POLICIES = {"with_replacement": WithReplacement, "single_active": SingleActive,
            "exhaustive": Exhaustive}


def make_policy(mux, random, busy, varies):
    """The activation policy of an iteration of ``mux``, with its count distribution.

    It draws from ``random`` (the iteration's PassRandom), reads ``busy``
    (the node's count of the slots each streamer holds), and redraws an
    exhaustive plan at each pass where ``varies`` (the passes differ).
    """
    counts = count_dist(mux.dist, mux.rate, mux.n_active)
    return POLICIES[mux.mode](mux, random, counts, busy, varies)
