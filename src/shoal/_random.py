"""Seeds and random draws.

A recipe turns its ``random_state`` into a :class:`numpy.random.SeedSequence`
once, when it is built. Each iteration then derives its own generators from
that seed, keyed by what they are for and by a block counter, so that a run is
fully described by "seed + counters" and two iterations never share a
generator. Random numbers are drawn in blocks to keep numpy's per-call cost
off the per-item path.
"""

import numbers
from hashlib import blake2b as _blake2b
from struct import pack as _pack

import numpy as np

from ._checks import short_repr
from .exceptions import ShoalTypeError, ShoalValueError

__all__ = [
    "as_seed_sequence",
    "iteration_seed",
    "TreeSeed",
    "derive_key",
    "pass_key",
    "PassRandom",
    "block_size",
    "weighted_picks",
    "weighted_order",
    "Draws",
    "share_seed",
    "key_to_plain",
    "key_from_plain",
]

_Philox = np.random.Philox
_Generator = np.random.Generator
_SeedSequence = np.random.SeedSequence


def as_seed_sequence(random_state, name="random_state"):
    """Turn a user's ``random_state`` into a SeedSequence, or ``None``.

    Parameters
    ----------
    random_state : None, int, numpy integer, SeedSequence, Generator or RandomState
        ``None`` draws a fresh seed for every iteration from numpy's global
        random state (so ``np.random.seed`` makes it repeatable, as in
        pescador). An int or a SeedSequence fixes the seed. A Generator or a
        RandomState is asked once, now, for a seed: the recipe then repeats
        the same order on every pass and never touches that generator again.
    """
    if random_state is None:
        return None
    if isinstance(random_state, _SeedSequence):
        return random_state
    if isinstance(random_state, (bool, np.bool_)):
        raise ShoalTypeError(f"{name} must be None, an int, a SeedSequence, a Generator or a RandomState, got {random_state!r}")
    if isinstance(random_state, numbers.Integral):
        if random_state < 0:
            raise ShoalValueError(f"{name} must be >= 0 when it is an int, got {int(random_state)}")
        return _SeedSequence(int(random_state))
    if isinstance(random_state, _Generator):
        return _SeedSequence(random_state.integers(0, 2**32, size=4, dtype=np.uint32).tolist())
    if isinstance(random_state, np.random.RandomState):
        return _SeedSequence(random_state.randint(0, 2**32, size=4, dtype=np.uint32).tolist())
    raise ShoalTypeError(
        f"{name} must be None, an int, a SeedSequence, a Generator or a RandomState, "
        f"got {short_repr(random_state)} ({type(random_state).__name__})"
    )


def iteration_seed(seed, saved=None):
    """The seed of one iteration.

    A recipe's own seed if it has one; for an unseeded recipe the seed an
    iteration saved in its state (``saved``, a list of ints), or else a fresh
    one drawn from numpy's legacy global state, so that ``np.random.seed()``
    makes unseeded recipes repeatable, as it does in pescador.
    """
    if seed is not None:
        return seed
    if saved is not None:
        return _SeedSequence(saved)
    return _SeedSequence(np.random.randint(0, 2**32, size=4, dtype=np.uint32).tolist())


class TreeSeed:
    """The seed of one iteration of a mux, and where the iteration sits in a tree of muxes.

    Seeds flow down a tree of muxes. A mux iterated on its own is a *root*:
    its path is ``()``. A mux (or a map) that opens a child hands it a *key*
    ``(base, path)`` for that activation, with :meth:`child`: ``base`` is
    the Philox key of its seed (as a root would draw with it), and ``path``
    its own path followed by three numbers, ``(variant, index, number)``:

    - ``variant``: the parent's pass number if its passes differ from one
      another (``reseed_each_epoch``, RoundRobinMux's ``permuted_cycle``),
      else 0, so that a parent whose passes repeat (a seeded mux, a
      ChainMux in cycle mode) repeats its whole subtree with them;
    - ``index``: the child's index among the parent's streamers;
    - ``number``: how many times the parent activated that child before in
      this pass (0 for the first activation).

    The child's base is the key of its own seed if it has one, else the base
    handed down (the nearest seeded ancestor's, or that of the seed an
    unseeded random mux drew at the root); with neither, a random mux draws
    a fresh seed from numpy's global state, as a root does. Pass ``e`` of
    the child then draws from :func:`derive_key` ``(base, path)`` (with
    ``(e,)`` added to the path for ``e >= 1`` under ``reseed_each_epoch``).
    A root's path is empty: it draws from its seed's key, as it always did.
    The key is derived once per activation (a few microseconds), and a state
    needs only the parent's counters to rebuild it.

    Parameters
    ----------
    seed : SeedSequence or None
        The mux's own seed.
    key : None or (ndarray or None, tuple of int)
        What the parent handed down; None for a root.
    saved : None or list of int
        The seed a state saved (only a seed drawn here is saved).
    draw : bool
        Draw a fresh seed if there is none to use (a mux that draws random
        numbers); else the base may stay None.
    owner : recipe or None
        The recipe whose own seed ``seed`` is: its key is computed once and
        kept on it.
    """

    __slots__ = ("seed", "base", "path", "drawn", "pinned")

    def __init__(self, seed, key=None, saved=None, draw=True, owner=None):
        above, self.path = (None, ()) if key is None else key
        # Keys given to some children by a state (a resharded pass keeps the
        # keys its streamers had in the shares they ran in): index -> key.
        self.pinned = None
        self.seed = seed
        self.base = above
        self.drawn = False  # was the seed drawn here (so the state must keep it)?
        if seed is not None:
            self.base = _own_key(owner, seed)
        elif above is None and (draw or saved is not None):
            self.seed = iteration_seed(None, saved)
            self.base = pass_key(self.seed)
            self.drawn = True

    def pass_key(self, recipe=None, epoch=0):
        """The Philox key of pass ``epoch`` of an iteration of ``recipe`` (a mux)."""
        path = self.path
        if epoch and getattr(recipe, "reseed_each_epoch", False):
            if not path:  # a root: pass e is seeded from the seed and e
                seed = self.seed
                return pass_key(_SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, epoch)))
            path = (*path, epoch)
        return derive_key(self.base, path) if path else self.base

    def child(self, variant, index, number):
        """The key of activation ``number`` of child ``index`` in a pass of variant ``variant``."""
        if self.pinned is not None and index in self.pinned:
            return self.pinned[index]
        return self.base, (*self.path, variant, index, number)

    def pin(self, plain):
        """Pin the keys a state gives (``{index: plain key}``, as :meth:`pinned_plain` saves)."""
        if plain:
            self.pinned = {int(index): key_from_plain(key) for index, key in plain.items()}

    def pinned_plain(self):
        """The pinned keys, as plain values for a state."""
        return {str(index): key_to_plain(key) for index, key in self.pinned.items()}

    def saved(self):
        """What a state keeps of the seed: the seed if it was drawn here, else None."""
        return list(self.seed.entropy) if self.drawn else None


def key_to_plain(key):
    """A child's key ``(base, path)`` as plain values: ``[base, path]``, base two ints or None."""
    base, path = key
    return [None if base is None else [int(word) for word in base], list(path)]


def key_from_plain(plain):
    """The key that :func:`key_to_plain` gave as ``plain``."""
    base, path = plain
    return (None if base is None else np.array(base, dtype=np.uint64)), tuple(path)


def _own_key(owner, seed):
    """The Philox key of ``seed``, kept on ``owner`` (whose own seed it is) if given."""
    if owner is None:
        return pass_key(seed)
    key = owner.__dict__.get("_pass_key")
    if key is None:
        key = owner.__dict__["_pass_key"] = pass_key(seed)
    return key


def derive_key(base, path):
    """The Philox key at ``path`` (a tuple of ints >= 0) below the key ``base``.

    BLAKE2b-128 of ``base`` and the path, as little-endian 64-bit words: a
    different path, of any length, gives an independent key.
    """
    data = base.tobytes() + _pack(f"<{len(path)}Q", *path)
    return np.frombuffer(_blake2b(data, digest_size=16).digest(), dtype=np.uint64)


class PassRandom:
    """The random numbers of one iteration, in independent numbered blocks.

    Block ``(purpose, k)`` is drawn from the iteration's Philox generator
    with its counter set to ``purpose * 2**192 + k * 2**128``. Philox is
    counter-based: distinct counters give independent streams, so a block
    is a fixed function of the seed, whatever was drawn before. A run is
    then described by the seed and counters, and starting a block costs a
    counter jump (a few microseconds), not a new generator. (Jumping PCG64
    by multiples of 2**64 instead gives correlated streams.)
    """

    __slots__ = ("_bitgen", "_start", "_key", "_counter", "_generator")

    def __init__(self, key):
        self._bitgen = _Philox(key=key)
        self._start = self._bitgen.state  # counter 0, empty buffer
        self._key = self._start["state"]["key"]
        self._counter = self._start["state"]["counter"]
        self._generator = _Generator(self._bitgen)

    @classmethod
    def take(cls, key):
        """A PassRandom for ``key``: a spare one re-keyed, or a new one.

        Building the generator costs more than a short pass of a small mux;
        an iterator gives its PassRandom back with :meth:`give_back`.
        """
        try:
            random = _SPARE.pop()
        except IndexError:
            return cls(key)
        random._key[:] = key
        return random

    def rekey(self, key):
        """Use ``key`` from now on (a new pass with its own seed)."""
        self._key[:] = key

    def give_back(self):
        """Return this PassRandom for reuse; it must not be used afterwards."""
        if len(_SPARE) < _MAX_SPARE:
            _SPARE.append(self)

    def block(self, purpose, k):
        """The generator, positioned at the start of block ``k`` of ``purpose``."""
        # Philox4x64's counter is four 64-bit words, the first one lowest.
        self._counter[2] = k
        self._counter[3] = purpose
        self._bitgen.state = self._start
        return self._generator


_SPARE = []  # PassRandom objects no iterator uses now
_MAX_SPARE = 64


def pass_key(seed):
    """The Philox key of a pass seeded with ``seed`` (a SeedSequence)."""
    return seed.generate_state(2, np.uint64)


def block_size(k, first, largest):
    """The size of block ``k`` of a supply: doubling from ``first`` up to ``largest``.

    Small first blocks keep short iterations cheap; large later ones keep
    numpy's per-call cost off long ones.
    """
    return first << k if k < 30 and (first << k) < largest else largest


def weighted_picks(rng, weights, size):
    """``size`` indices drawn with replacement, index i with chance ∝ ``weights[i]``.

    ``weights`` are >= 0 with a positive sum. Returns a list of ints.
    """
    positive = np.flatnonzero(weights)
    first = weights[positive[0]]
    if np.all(weights[positive] == first):
        # Equal weights (the common case): a plain integer draw is faster.
        return positive[rng.integers(0, len(positive), size=size)].tolist()
    cdf = np.cumsum(weights)
    picks = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    # Rounding can land a draw on the total; it belongs to the last positive weight.
    np.minimum(picks, positive[-1], out=picks)
    return picks.tolist()


def weighted_order(rng, weights):
    """The indices of positive ``weights`` in a weighted random order.

    The same distribution as drawing one index at a time, each with chance
    ∝ its weight among those not yet drawn (Efraimidis and Spirakis).
    """
    positive = np.flatnonzero(weights)
    keys = rng.standard_exponential(len(positive)) / weights[positive]
    return positive[np.argsort(keys, kind="stable")].tolist()


class Draws:
    """An endless supply of random values for one purpose, made in blocks.

    Block ``k`` is ``make(rng, size)`` with ``rng`` positioned at block
    ``(purpose, k)`` of ``random`` and ``size = block_size(k, first, largest)``.
    The supply is described by two counters: the blocks made, and the values
    taken from the current one.
    """

    __slots__ = ("random", "purpose", "make", "first", "largest", "n_blocks", "block")

    def __init__(self, random, purpose, make, first=16, largest=1024):
        self.random = random
        self.purpose = purpose
        self.make = make
        self.first = first
        self.largest = largest
        self.n_blocks = 0
        self.block = iter(())

    def __call__(self):
        for value in self.block:
            return value
        self._refill()
        return next(self.block)

    def first_free(self, busy, limit):
        """The next value ``v`` with ``busy[v]`` false, among the next ``limit``; or None."""
        seen = 0
        while True:
            for value in self.block:
                if not busy[value]:
                    return value
                seen += 1
                if seen == limit:
                    return None
            self._refill()

    def _refill(self):
        rng = self.random.block(self.purpose, self.n_blocks)
        size = block_size(self.n_blocks, self.first, self.largest)
        self.n_blocks += 1
        self.block = iter(self.make(rng, size))

    def discard(self):
        """Drop the rest of the current block (what it was drawn from changed)."""
        self.block = iter(())

    def state(self):
        """``[blocks made, values left in the current block]``."""
        return [self.n_blocks, self.block.__length_hint__()]

    def restore(self, state):
        """Continue from :meth:`state`: remake the current block, keep what was left."""
        n_blocks, left = state
        self.n_blocks = n_blocks
        self.block = iter(())
        if n_blocks and left:
            rng = self.random.block(self.purpose, n_blocks - 1)
            values = self.make(rng, block_size(n_blocks - 1, self.first, self.largest))
            self.block = iter(values[len(values) - left:])


def share_seed(seed, index):
    """The seed of share ``index`` of a recipe seeded with ``seed`` (None stays None)."""
    if seed is None:
        return None
    return _SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, index))
