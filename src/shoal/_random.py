"""Seeds and random draws.

A recipe turns its ``random_state`` into a :class:`numpy.random.SeedSequence`
once, when it is built. Each iteration then derives its own generators from
that seed, keyed by what they are for and by a block counter, so that a run is
fully described by "seed + counters" and two iterations never share a
generator. Random numbers are drawn in blocks to keep numpy's per-call cost
off the per-item path.
"""

import math
import numbers
from bisect import bisect_right
from hashlib import blake2b as _blake2b
from itertools import repeat
from struct import pack as _pack
from typing import TypeAlias

import numpy as np

from ._checks import short_repr
from .exceptions import ShoalTypeError, ShoalValueError

__all__ = [
    "RandomStateLike",
    "as_seed_sequence",
    "iteration_seed",
    "seed_of_key",
    "TreeSeed",
    "root_key",
    "below",
    "seed_to_plain",
    "derive_key",
    "pass_key",
    "PassRandom",
    "block_size",
    "weighted_picks",
    "weighted_order",
    "Supply",
    "Draws",
    "share_seed",
    "key_to_plain",
    "key_from_plain",
    "SlotPicks",
    "binomial_count",
    "poisson_count",
]

#: What a ``random_state`` parameter takes (see :func:`as_seed_sequence`).
RandomStateLike: TypeAlias = (
    int | np.integer | np.random.SeedSequence | np.random.Generator | np.random.RandomState | None
)

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
        raise ShoalTypeError(f"{name} must be None, an int, a SeedSequence, a Generator or a "
                             f"RandomState, got {random_state!r}")
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
    ``(base, path, fresh)`` for that activation, with :meth:`child`:
    ``base`` is the Philox key of its seed (as a root would draw with it),
    ``path`` its own path followed by three numbers,
    ``(variant, index, number)``, and ``fresh`` whether the base comes from
    a seed drawn for an unseeded tree (see below):

    - ``variant``: the parent's pass number if its passes are reseeded
      (``reseed_each_epoch``, RoundRobinMux's ``permuted_cycle``), else 0,
      so that a parent whose passes repeat (a seeded mux, a ChainMux in
      cycle mode) repeats its seeded subtree with them;
    - ``index``: the child's index among the parent's streamers;
    - ``number``: how many times the parent activated that child before in
      this pass (0 for the first activation).

    The child's base is the key of its own seed if it has one, else the base
    handed down (the nearest seeded ancestor's, or that of the seed an
    unseeded root drew). Pass ``e`` of the child then draws from
    :func:`derive_key` ``(base, path)`` (with ``(e,)`` added to the path for
    ``e >= 1`` when its passes differ: :meth:`varies`). The key is derived
    once per activation (a few microseconds), and a state needs only the
    parent's counters to rebuild it.

    A root with no seed of its own draws one from numpy's global state when
    the iteration starts, and keeps it in its state; it is *fresh*, and so
    is every node that takes its base from it. The passes of a fresh node
    differ from one another: its own draws as if it had
    ``reseed_each_epoch``, and in pass ``e >= 1`` it hands its children the
    key of that pass as their base. So an unseeded tree draws afresh at
    every pass (as in pescador), and a seeded mux in it, which draws from
    its own base, still repeats; what is drawn is a function of the seed
    in the state and the counters, so it resumes exactly.

    The root of a StreamIterator over a Streamer or a map (which draws
    nothing itself) hands each pass a *seed* instead of a base, with an
    empty path (:func:`root_key`): a node with a seed of its own ignores it
    and draws as a root does; one without takes it as the seed it would
    have drawn, and keeps it in its state.

    Parameters
    ----------
    seed : SeedSequence or None
        The mux's own seed.
    key : None or (ndarray or SeedSequence, tuple of int, bool)
        What the parent handed down; None for a root.
    saved : None or list of int
        The seed a state saved (only a seed drawn here, or handed down as a
        seed, is saved).
    owner : recipe or None
        The recipe whose own seed ``seed`` is: its key is computed once and
        kept on it.
    """

    __slots__ = ("seed", "base", "path", "drawn", "pinned", "fresh", "pass_bases")

    def __init__(self, seed, key=None, saved=None, owner=None):
        above, self.path, fresh = (None, (), False) if key is None else key
        # Keys given to some children by a state (a resharded pass keeps the
        # keys its streamers had in the shares they ran in): index -> key.
        self.pinned = None
        self.pass_bases = None  # (pass, the base its children inherit), for a fresh node
        self.seed = seed
        self.base = above
        self.drawn = False  # is the seed one drawn for this node (so the state must keep it)?
        self.fresh = fresh and seed is None  # is the base that of a drawn seed?
        if seed is not None:
            self.base = _own_key(owner, seed)
        elif above is None or isinstance(above, _SeedSequence):
            if saved is not None or above is None:
                self.seed = iteration_seed(None, saved)
            else:
                self.seed = above  # drawn for it by the root
            self.base = pass_key(self.seed)
            self.drawn = self.fresh = True

    def varies(self, recipe=None):
        """Do the passes of an iteration of ``recipe`` (a mux) differ from one another?"""
        return self.fresh or getattr(recipe, "reseed_each_epoch", False)

    def pass_key(self, recipe=None, epoch=0):
        """The Philox key of pass ``epoch`` of an iteration of ``recipe`` (a mux)."""
        path = self.path
        if epoch and self.varies(recipe):
            if not path:  # a root: pass e is seeded from the seed and e
                seed = self.seed
                return pass_key(_SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, epoch)))
            path = (*path, epoch)
        return derive_key(self.base, path) if path else self.base

    def child(self, variant, index, number, epoch=0):
        """The key of activation ``number`` of child ``index`` in pass ``epoch``, of ``variant``.

        A fresh node hands its children in pass ``epoch >= 1`` the base of
        that pass (its own key for the pass, as if reseeded), so that its
        unseeded children draw afresh at every pass, while seeded ones, which
        draw from their own base, repeat with the variant.
        """
        if self.pinned is not None and index in self.pinned:
            return self.pinned[index]
        base = self.base
        if epoch and self.fresh:
            bases = self.pass_bases
            if bases is None or bases[0] != epoch:
                bases = self.pass_bases = (epoch, self.pass_key(None, epoch))
            base = bases[1]
        return base, (*self.path, variant, index, number), self.fresh

    def pin(self, plain):
        """Pin the keys a state gives (``{index: plain key}``, as :meth:`pinned_plain` saves)."""
        if plain:
            self.pinned = {int(index): key_from_plain(key) for index, key in plain.items()}

    def pinned_plain(self):
        """The pinned keys, as plain values for a state."""
        return {str(index): key_to_plain(key) for index, key in self.pinned.items()}

    def saved(self):
        """What a state keeps of the seed: the seed if it was drawn for this node, else None."""
        return list(self.seed.entropy) if self.drawn else None


def root_key(seed, epoch):
    """The key a root hands pass ``epoch`` of the Streamer or map it iterates.

    ``seed`` is the root's drawn seed (a SeedSequence); pass 0 gets it, pass
    ``e`` a seed derived from it and ``e``. The path is empty: a node with a
    seed of its own draws from that seed as a root does.
    """
    return (_derived_seed(seed, epoch) if epoch else seed), (), True


def below(key, *steps):
    """The key one level below ``key`` (an only child's): ``steps`` added to its path.

    Below a seed handed down by a root (see :func:`root_key`), a seed
    derived from it and ``steps``, with the path still empty: a node with a
    seed of its own still draws as a root does.
    """
    base, path, fresh = key
    if isinstance(base, _SeedSequence):
        return _derived_seed(base, *steps), (), fresh
    return base, (*path, *steps), fresh


def _derived_seed(seed, *steps):
    """A seed of four 32-bit words, derived from ``seed`` and ``steps`` (ints >= 0)."""
    child = _SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, *steps))
    return _SeedSequence(child.generate_state(4, np.uint32).tolist())


def key_to_plain(key):
    """A child's key ``(base, path, fresh)`` as plain values: ``[base, path, fresh]``."""
    base, path, fresh = key
    return [None if base is None else [int(word) for word in base], list(path), bool(fresh)]


def key_from_plain(plain):
    """The key that :func:`key_to_plain` gave as ``plain``."""
    base, path, fresh = plain
    return (None if base is None else np.array(base, dtype=np.uint64)), tuple(path), fresh


def seed_to_plain(seed):
    """A recipe's seed (a SeedSequence or None) as plain values, for a state.

    ``None`` for an unseeded recipe; the int for a plain int seed; else
    ``{"entropy": int or list of ints, "spawn_key": list of ints}`` (a seed
    given as a SeedSequence, drawn from a Generator, or a share's).
    """
    if seed is None:
        return None
    entropy = seed.entropy
    if isinstance(entropy, numbers.Integral):
        entropy = int(entropy)
    else:
        entropy = [int(word) for word in entropy]
    if isinstance(entropy, int) and not seed.spawn_key:
        return entropy
    return {"entropy": entropy, "spawn_key": [int(k) for k in seed.spawn_key]}


def _own_key(owner, seed):
    """The Philox key of ``seed``: ``owner``'s, computed when it was made, if given."""
    if owner is None:
        return pass_key(seed)
    return owner._seed_key


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


_SPARE: list = []  # PassRandom objects no iterator uses now
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
    # Ordered by E / w, compared as log(E) - log(w): a tiny weight cannot overflow.
    keys = np.log(rng.standard_exponential(len(positive))) - np.log(weights[positive])
    return positive[np.argsort(keys, kind="stable")].tolist()


class Supply:
    """A supply of random draws for one purpose, made in numbered blocks.

    Block ``k`` is drawn from block ``(purpose, k)`` of ``random`` (a
    :class:`PassRandom`) and holds ``block_size(k, first, largest)`` draws,
    so that it is a fixed function of the seed. The supply's state is two
    counters, ``[blocks made, draws left in the last]``: the one record of a
    supply of draws in a saved state. A subclass says what a block holds
    and how the draws left in it are read.
    """

    __slots__ = ("random", "purpose", "first", "largest", "n_blocks")

    def __init__(self, random, purpose, first, largest):
        self.random = random
        self.purpose = purpose
        self.first = first
        self.largest = largest
        self.n_blocks = 0

    def left(self):
        """The draws left in the last block made."""
        raise NotImplementedError

    def _resume(self, left):
        """Make the last block again (``n_blocks`` is set) and keep its last ``left`` draws."""
        raise NotImplementedError

    def state(self):
        """``[blocks made, draws left in the last]``."""
        return [self.n_blocks, self.left()]

    def restore(self, state):
        """Continue from :meth:`state`: remake the last block made, keep what was left of it."""
        self.n_blocks, left = state
        self._resume(left)


class Draws(Supply):
    """An endless supply of random values for one purpose, made in blocks.

    Block ``k`` is ``make(rng, size)`` with ``rng`` positioned at block
    ``(purpose, k)`` of ``random`` and ``size = block_size(k, first, largest)``.
    """

    __slots__ = ("make", "block")

    def __init__(self, random, purpose, make, first=16, largest=1024):
        super().__init__(random, purpose, first, largest)
        self.make = make
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

    def left(self):
        return self.block.__length_hint__()

    def _resume(self, left):
        n_blocks = self.n_blocks
        self.block = iter(())
        if n_blocks and left:
            rng = self.random.block(self.purpose, n_blocks - 1)
            values = self.make(rng, block_size(n_blocks - 1, self.first, self.largest))
            self.block = iter(values[len(values) - left:])


def seed_of_key(key):
    """Four 32-bit words (plain ints) drawn from ``key``, a parent's key; fresh ones for None.

    A fresh draw comes from numpy's legacy global state, as
    :func:`iteration_seed` draws.
    """
    if key is None:
        return [int(word) for word in iteration_seed(None).entropy]
    base, path, _ = key
    if isinstance(base, _SeedSequence):
        return [int(word) for word in _derived_seed(base, *path).entropy]
    return [int(word) for word in np.frombuffer(derive_key(base, path).tobytes(), np.uint32)]


def share_seed(seed, index):
    """The seed of share ``index`` of a recipe seeded with ``seed`` (None stays None)."""
    if seed is None:
        return None
    return _SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, index))


def _exhaust(it):
    """Drop what is left in ``it`` (a list iterator), for whoever reads it."""
    it.__setstate__(1 << 62)  # past the end: a list iterator then stops


class SlotPicks(Supply):
    """Which slot gives each next item: slot k with chance ∝ its weight.

    A :class:`Supply` of uniforms, in blocks of sizes doubling from
    ``first`` up to ``largest``.
    A uniform ``u`` picks slot ``bisect_right(cum, u)``, with ``cum`` the
    cumulative slot weights scaled to end at exactly 1.0 (a slot of weight
    0 is never picked, but for a share of rounding at the end, which a
    reader skips as it skips a hole). ``cum`` is updated in place when the
    weights change, so the iterator that :meth:`picks` returned follows new
    weights from its very next pick, at C speed. With equal weights (the common case) the
    picks are ``floor(u * n)``, made a block at a time by numpy.

    A reader loops over :meth:`picks` and calls it again when the loop
    ends; a change that needs new picks (equal weights to unequal ones, or
    another number of equal slots) stops the running loop by exhausting
    what it reads.
    """

    __slots__ = ("block", "source", "iterator", "cum", "equal", "n_slots")

    def __init__(self, random, purpose, first, largest):
        super().__init__(random, purpose, first, largest)
        self.cum = []
        self.start()

    def start(self):
        """Start again from block 0, with no slots."""
        self.n_blocks = 0
        self.block = _NO_DRAWS[:0]  # the current block's uniforms, as drawn
        self.source = iter(())  # what is left of it: uniforms, or equal-weight picks
        self.iterator = self.source  # the picks
        self.cum.clear()
        self.equal = True
        self.n_slots = 0

    def left(self):
        """The uniforms left in the current block."""
        return self.source.__length_hint__()

    def set_weights(self, weights):
        """Pick by ``weights`` from the next pick on: floats >= 0, one per slot, some positive."""
        n = len(weights)
        equal = weights.count(weights[0]) == n
        if not equal:
            cum = self.cum
            if len(cum) != n:
                cum[:] = weights
            scale = 1.0 / sum(weights)
            total = 0.0
            for k, weight in enumerate(weights):  # (faster than accumulate for a few slots)
                total += weight
                cum[k] = total * scale
            # The last entry is exactly 1.0, so every u < 1 picks a slot; it
            # may round off a hole's tiny share at the end, which the reader skips.
            cum[-1] = 1.0
            if not self.equal:
                return  # the running picks read cum in place
        elif self.equal and n == self.n_slots:
            return
        self.equal = equal
        self.n_slots = n
        self._remake(self.left())

    def stop(self):
        """No slot is left: stop the running picks (and drop the block)."""
        _exhaust(self.source)
        self.n_slots = 0

    def _remake(self, left):
        """Turn the last ``left`` uniforms of the block into picks (and stop the old ones)."""
        _exhaust(self.source)
        if not left:
            self.source = self.iterator = iter(())  # picks() draws a block next
            return
        uniforms = self.block[len(self.block) - left:]
        if self.equal:
            # floor(u * n) is uniform on 0..n-1 up to a bias below n / 2**53.
            self.source = self.iterator = iter((uniforms * self.n_slots).astype(np.intp).tolist())
        else:
            self.source = iter(uniforms.tolist())
            self.iterator = map(bisect_right, repeat(self.cum), self.source)

    def picks(self):
        """The picks left in the current block, or those of a new block."""
        if self.source.__length_hint__():
            return self.iterator
        size = block_size(self.n_blocks, self.first, self.largest)
        self.block = self._draw(self.n_blocks, size)
        self.n_blocks += 1
        self._remake(size)
        return self.iterator

    def _draw(self, k, size):
        if self.n_slots == 1:
            return _NO_DRAWS[:size]  # one slot: no draw needed
        return self.random.block(self.purpose, k).random(size)

    def restore(self, state, n_slots):
        """Continue from :meth:`state`, saved with ``n_slots`` slots (call set_weights next)."""
        self.n_slots = n_slots  # as the block was drawn
        super().restore(state)

    def _resume(self, left):
        self.block = _NO_DRAWS[:0]
        if self.n_blocks and left:
            k = self.n_blocks - 1
            self.block = self._draw(k, block_size(k, self.first, self.largest))
        self.equal = True
        self.n_slots = -1  # so that set_weights makes the picks
        self.source = iter(range(left))  # only its length counts until then


_NO_DRAWS = np.zeros(1 << 16)
_NO_DRAWS.flags.writeable = False


# Beyond this mean of the value summed up to (about), the inverse-CDF loops
# below hand over to numpy: their first term, (1 - q) ** n >= exp(-2 n q)
# for q <= 1/2 (or exp(-lam)), could underflow, and numpy is then as fast.
_MAX_MEAN = 300.0


def binomial_count(u, trials, p_success):
    """The value of Binomial(``trials``, ``p_success``) at uniform ``u`` (its inverse CDF).

    ``trials`` is a float, randomly rounded with a part of ``u``; what is
    left of ``u`` then picks the value, found by summing the probabilities
    of the rarer outcome from 0: exact, in Python, for the small means of
    activations; large ones go to numpy, seeded by ``u``.
    """
    n = math.floor(trials)
    frac = trials - n
    if frac > 0.0:
        # Split u into the rounding and a fresh uniform given the rounding.
        if u < frac:
            n += 1
            u /= frac
        else:
            u = (u - frac) / (1.0 - frac)
    q = p_success if p_success <= 0.5 else 1.0 - p_success  # the rarer outcome's chance
    if q <= 0.0 or n == 0:
        return 0 if q == p_success else n
    if n * q > _MAX_MEAN:  # (1 - q) ** n would underflow: numpy
        rare = int(_fallback(u).binomial(n, q))
    else:
        ratio = q / (1.0 - q)
        pmf = cdf = (1.0 - q) ** n
        rare = 0
        while cdf <= u and rare < n:
            rare += 1
            pmf *= ratio * (n - rare + 1) / rare
            cdf += pmf
    return rare if q == p_success else n - rare


def poisson_count(u, lam):
    """The value of Poisson(``lam``) at uniform ``u``: its inverse CDF (numpy for a large one)."""
    if lam > 2 * _MAX_MEAN:
        return int(_fallback(u).poisson(lam))
    pmf = cdf = math.exp(-lam)
    k = 0
    while cdf <= u and pmf > 0.0:
        k += 1
        pmf *= lam / k
        cdf += pmf
    return k


def _fallback(u):
    """A numpy generator for one large draw, seeded by the uniform ``u`` that stands for it."""
    return _Generator(_Philox(key=int(u * 2.0**53)))
