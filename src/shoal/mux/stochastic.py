"""StochasticMux: a random set of active streamers, each for a random number of items.

The recipe is here, with its settings, the schema of its state and its
resharding rule; its node, the slots and their fast loop, is in
``_stochastic_node``, which asks an activation policy (``_stochastic_policy``,
one per ``mode``) which streamer to activate and a count distribution
(``_stochastic_counts``, one per ``dist``) for how many items.
"""

import math
import numbers
from collections.abc import Iterable
from typing import Literal

import numpy as np

from .._checks import check_choice, check_int, short_repr
from .._random import PassRandom, RandomStateLike, TreeSeed, key_to_plain
from ..exceptions import ShoalTypeError, ShoalValueError
from ._base import (
    NEW,
    BaseMux,
    Progress,
    StreamerLike,
    WeightsLike,
    check_flag,
    check_state,
    weight_spec,
    weighted_share_settings,
    weights_recipe,
)
from ._stochastic_counts import DISTS as COUNT_DISTS
from ._stochastic_node import StochasticNode, check_node_state
from ._stochastic_policy import POLICIES, fresh_order
from ._stochastic_slots import PICKS_NAME

__all__ = ["StochasticMux"]

MODES = tuple(POLICIES)
DISTS = tuple(COUNT_DISTS)

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
        streamers: Iterable[StreamerLike],
        n_active: int,
        rate: float | None,
        weights: WeightsLike = None,
        mode: Literal["with_replacement", "single_active", "exhaustive"] = "with_replacement",
        prune_empty_streams: bool = True,
        dist: Literal["binomial", "constant", "poisson"] = "binomial",
        random_state: RandomStateLike = None,
        *,
        reseed_each_epoch: bool = False,
    ) -> None:
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
        return StochasticNode(self, cycle, state, track, key)

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

    def _ready_state(self, state, path="state", n_given=None):
        """``state``, the state of a pass of this mux, checked and made ready (see ``_contract``).

        Its fields are checked with its node's schema (``check_node_state``:
        its activation policy's fields are part of it), then the states of
        its open slots and of the streamers it resumes are handed to their
        streamers, with the counts it recorded for them.
        """
        if state is None:
            return None
        check_state(state, self)
        check_node_state(self, state, path)
        return self._ready_children(state, path, n_given)

    def _ready_children(self, state, path, n_given=None):
        # The states of the open slots, and those of streamers to resume (resharded).
        ready = {}
        if any(slot is not None and slot["state"] is not None for slot in state["slots"]):
            ready["slots"] = [
                slot if slot is None or slot["state"] is None
                else {**slot, "state": self._ready_child(
                    slot["streamer"], slot["state"], path=f"{path}['slots'][{k}]['state']",
                    n_given=slot["n"])}
                for k, slot in enumerate(state["slots"])
            ]
        if state.get("resume"):
            ready["resume"] = {
                j: {**entry, "state": self._ready_child(
                    int(j), entry["state"], path=f"{path}['resume'][{j!r}]['state']",
                    n_given=entry["n"])}
                for j, entry in state["resume"].items()
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

    # -- resharding (see shoal.reshard) -------------------------------------------

    def _reshard_refusal(self):
        """Why the states of this mux's shares cannot be split anew exactly, or None."""
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

    def _progress(self, state, n_given=None):
        """Each streamer's :class:`Progress` in ``state`` (exhaustive mode, ``rate=None``).

        ``state`` was made ready by :meth:`_ready_state`.
        """
        node = StochasticNode(self, False, state, True)  # opens nothing: it reads the plan left
        try:
            left = node.policy.left()
            resume = node.resume or {}
        finally:
            node.random.give_back()

        def key(sid, number):
            if not self.streamers[sid]._takes_key:
                return None
            return key_to_plain(node._child_key(sid, number))

        out = [Progress(True, total, None) for total in state["totals"]]
        for slot in state["slots"]:
            if slot is not None:
                sid = slot["streamer"]
                out[sid] = Progress(False, slot["n"], slot["state"], key(sid, slot["number"]))
        for sid in left:
            if sid in resume:
                out[sid] = Progress(False, resume[sid]["n"], resume[sid]["state"], key(sid, 0))
            else:
                out[sid] = NEW
        return out

    def _elastic_state(self, progress):
        """The state of an iteration of this mux that goes on from ``progress``.

        Its plan resumes the streamers in progress first, then activates the
        others in a weighted random order drawn from the seed.
        """
        seed = TreeSeed(self._seed, owner=self)
        running = [sid for sid, p in enumerate(progress) if not p.done and p.state is not None]
        weights = np.zeros(len(progress))
        new = [sid for sid, p in enumerate(progress) if p == NEW]
        weights[new] = np.asarray(self.weights)[new]
        order = fresh_order(PassRandom(seed.pass_key(self, 0)), weights)
        return {
            "type": "StochasticMux",
            "n_streams": len(progress),
            "recipe": self._recipe(),
            "seed": seed.saved(),
            "epoch": 0,
            "yielded": any(p.n for p in progress),
            "base_weights": self.weights.tolist(),
            "dropped": [],
            "last_empty": [],
            "slots": [],
            "draws": {PICKS_NAME: [0, 0]},
            "totals": [p.n if p.done else 0 for p in progress],
            "n_activations": [0 if p == NEW else 1 for p in progress],
            "plan": {"n": 0, "streamers": running + order},
            "resume": {str(sid): {"n": progress[sid].n, "state": progress[sid].state}
                       for sid in running},
            "keys": {str(j): p.key for j, p in enumerate(progress) if p.key is not None},
        }
