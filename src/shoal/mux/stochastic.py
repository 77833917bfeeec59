"""StochasticMux: a random set of active streamers, each for a random number of items."""

import math
import numbers

import numpy as np

from .._checks import check_choice, check_int, short_repr
from .._checks import check_weights
from .._iterutil import add_note
from .._random import Draws, block_rng, run_seed, weighted_order, weighted_picks
from ..exceptions import EmptyStreamError, ShoalTypeError, ShoalValueError
from ._base import BaseMux

__all__ = ["StochasticMux"]

MODES = ("with_replacement", "single_active", "exhaustive")
DISTS = ("binomial", "constant", "poisson")

# Block keys of the draws, one supply per purpose.
_PICKS = 1  # which active slot gives the next item
_CHOICES = 2  # which streamer to activate
_UNIFORMS = 3  # uniforms for the exact fallback of single_active
_COUNTS = 4  # how many items an activation may give
_ORDER = 5  # the activation order of exhaustive mode

PICK_BLOCK = 1024
ACTIVATION_BLOCK = 64
# single_active draws a streamer by weight and redraws while it is active;
# after this many redraws it chooses exactly among the inactive ones.
MAX_REDRAWS = 16
UNLIMITED = 2**62  # the count of an activation when rate is None


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
    return float(rate) if not isinstance(rate, numbers.Integral) else int(rate)


def _check_flag(name, value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ShoalTypeError(f"{name} must be True or False, got {short_repr(value)}")


class StochasticMux(BaseMux):
    """Mix a random set of ``n_active`` streamers, each active for a random number of items.

    1. ``n_active`` streamers are activated, each chosen at random in
       proportion to its weight, and each given a number of items drawn from
       ``dist`` with mean ``rate``.
    2. Each item comes from one of the active streamers, chosen uniformly.
    3. When an active streamer has given its number of items, or runs out,
       it is closed and another is activated in its place.

    So each streamer's share of the items is in proportion to its weight, as
    long as it does not run out before its count (with ``rate=None`` every
    activation runs to exhaustion, and longer streamers give more items).
    In ``single_active`` mode a streamer holds at most one slot, which caps
    the share of a very heavy streamer near ``1 / n_active``.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
    n_active : int >= 1
        How many streamers are active at once.
    rate : None or float >= 1
        The mean number of items per activation. ``None`` runs every
        activation to exhaustion.
    weights : None or array-like of float >= 0
        How often each streamer is activated, relatively; ``None`` means
        equally often. Normalised; the array given is not modified.
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
        ``p = 1 / n_active`` the chance that an item comes from a given slot.
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed. A seeded mux repeats the same sequence on every pass.

    Examples
    --------
    Three streamers of eight items, one active at a time, three items per
    activation:

    >>> streams = ["x" * 8, "y" * 8, "z" * 8]
    >>> mux = StochasticMux(streams, n_active=1, rate=3, dist="constant",
    ...                     random_state=0)
    >>> "".join(mux(max_iter=12))
    'xxxxxxzzzxxx'

    Two active at a time, each running to exhaustion, each streamer once:

    >>> mux = StochasticMux(["aaaa", "bbbb", "cccc"], n_active=2, rate=None,
    ...                     mode="exhaustive", random_state=0)
    >>> "".join(mux)
    'accaacacbbbb'
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
    ):
        super().__init__(streamers, random_state=random_state)
        n_streams = len(self.streamers)
        self.n_active = check_int("n_active", n_active, minimum=1)
        self.rate = _check_rate(rate)
        self.weights = check_weights(weights, n_streams)
        self.mode = check_choice("mode", mode, MODES)
        self.prune_empty_streams = _check_flag("prune_empty_streams", prune_empty_streams)
        self.dist = check_choice("dist", dist, DISTS)
        if self.mode != "with_replacement" and self.n_active > n_streams:
            raise ShoalValueError(
                f"n_active must be at most the number of streamers ({n_streams}) with "
                f"mode={self.mode!r}, got {self.n_active}"
            )

    def _iterator(self):
        return _StochasticIterator(self)

    def _settings(self):
        return {
            "n_active": self.n_active,
            "rate": self.rate,
            "mode": self.mode,
            "dist": self.dist,
        }

    def _draw_counts(self, rng, size):
        """``size`` activation counts, each with mean ``rate``."""
        rate = self.rate
        if rate is None:
            return [UNLIMITED] * size
        if self.dist == "constant":
            return _randomly_rounded(rng, rate, size).tolist()
        if self.dist == "poisson" or self.n_active == 1:
            # With one slot the binomial's p is 1: its limit is the Poisson.
            return (1 + rng.poisson(rate - 1, size)).tolist()
        success = 1 - 1 / self.n_active
        trials = _randomly_rounded(rng, (rate - 1) / success, size)
        return (1 + rng.binomial(trials, success)).tolist()


def _randomly_rounded(rng, value, size):
    """``size`` integers floor(value) or ceil(value), with mean ``value``."""
    whole = math.floor(value)
    frac = value - whole
    if frac == 0:
        return np.full(size, whole, dtype=np.int64)
    return whole + (rng.random(size) < frac)


class _StochasticIterator:
    """The running state of one iteration of a StochasticMux.

    The active slots are parallel lists: the streamer in each slot, its open
    generator and that generator's ``__next__``, the items it may still give,
    and the count it was given when activated.
    """

    __slots__ = (
        "mux", "seed", "weights", "n_positive", "busy", "last_empty", "n_last_empty",
        "sids", "gens", "nexts", "remaining", "counts",
        "n_pick_blocks", "picks", "choices", "uniforms", "draw_count", "order",
    )

    def __init__(self, mux):
        n = len(mux.streamers)
        seed = self.seed = run_seed(mux._seed)
        self.mux = mux
        self.weights = mux.weights.copy()  # a pruned streamer's weight becomes 0
        self.n_positive = int(np.count_nonzero(self.weights))
        self.busy = [0] * n  # slots each streamer holds
        self.last_empty = [False] * n  # did its last activation yield nothing?
        self.n_last_empty = 0
        self.sids, self.gens, self.nexts, self.remaining, self.counts = [], [], [], [], []
        self.n_pick_blocks = 0
        self.picks = iter(())
        self.choices = Draws(seed, (_CHOICES,), self._make_choices, ACTIVATION_BLOCK)
        self.uniforms = Draws(seed, (_UNIFORMS,), _make_uniforms, ACTIVATION_BLOCK)
        self.draw_count = Draws(seed, (_COUNTS,), mux._draw_counts, ACTIVATION_BLOCK)
        self.order = None
        if mux.mode == "exhaustive":
            self.order = iter(weighted_order(block_rng(seed, _ORDER), self.weights))

    def _make_choices(self, rng, size):
        return weighted_picks(rng, self.weights, size)

    def _choose(self):
        """The next streamer to activate, or None if none can be."""
        if self.order is not None:
            return next(self.order, None)
        if not self.n_positive:
            return None
        if self.mux.mode == "with_replacement":
            return self.choices()
        busy = self.busy
        for _ in range(MAX_REDRAWS):
            sid = self.choices()
            if not busy[sid]:
                return sid
        weights = self.weights
        free = [j for j in range(len(busy)) if not busy[j] and weights[j] > 0]
        if not free:
            return None
        cdf = np.cumsum(weights[free])
        index = int(np.searchsorted(cdf, self.uniforms() * cdf[-1], side="right"))
        return free[min(index, len(free) - 1)]

    def _activate(self, k):
        """Put a newly activated streamer in slot k; False if there is none to activate."""
        sid = self._choose()
        if sid is None:
            return False
        count = self.draw_count()
        try:
            gen = self.mux.streamers[sid]._open()
        except Exception as exc:
            add_note(exc, f"raised in streamers[{sid}] of {self.mux!r}")
            raise
        self.busy[sid] += 1
        self.sids[k] = sid
        self.gens[k] = gen
        self.nexts[k] = gen.__next__
        self.remaining[k] = count
        self.counts[k] = count
        return True

    def _add_slot(self):
        for slots in (self.sids, self.gens, self.nexts, self.remaining, self.counts):
            slots.append(None)
        if not self._activate(len(self.sids) - 1):
            self._drop_slot(len(self.sids) - 1)

    def _drop_slot(self, k):
        for slots in (self.sids, self.gens, self.nexts, self.remaining, self.counts):
            del slots[k]

    def _end(self, k):
        """End the activation in slot k and refill the slot.

        Returns True if the slot could not be refilled and was dropped.
        """
        mux = self.mux
        sid = self.sids[k]
        gen = self.gens[k]
        self.gens[k] = None
        produced = self.remaining[k] < self.counts[k]
        self.busy[sid] -= 1
        try:
            gen.close()  # it may stop before running out: its finally blocks run now
        except Exception as exc:
            add_note(exc, f"raised in streamers[{sid}] of {mux!r}")
            raise
        if not produced:
            if mux.prune_empty_streams:
                if self.weights[sid] > 0:
                    self.weights[sid] = 0.0
                    self.n_positive -= 1
                    self.choices.discard()
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
        if self._activate(k):
            return False
        self._drop_slot(k)
        return True

    def _new_pick_block(self):
        rng = block_rng(self.seed, _PICKS, self.n_pick_blocks)
        self.n_pick_blocks += 1
        self.picks = iter(rng.integers(0, len(self.sids), size=PICK_BLOCK).tolist())
        return self.picks

    def run(self):
        mux = self.mux
        nexts = self.nexts
        remaining = self.remaining
        try:
            for _ in range(mux.n_active):
                self._add_slot()
            while nexts:
                for k in self._new_pick_block():
                    try:
                        item = nexts[k]()
                    except StopIteration:
                        pass
                    except Exception as exc:
                        add_note(exc, f"raised in streamers[{self.sids[k]}] of {mux!r}")
                        raise
                    else:
                        left = remaining[k] - 1
                        remaining[k] = left
                        yield item
                        if left:
                            continue
                    # The activation in slot k ran out or reached its count.
                    if self._end(k):
                        break  # one slot fewer: draw a new block
        finally:
            for gen in self.gens:
                if gen is not None:
                    gen.close()


def _make_uniforms(rng, size):
    return rng.random(size).tolist()
