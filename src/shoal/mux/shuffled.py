"""ShuffledMux: every streamer active at once, items drawn at random by weight."""

from .._checks import check_weights
from .._iterutil import END, add_note
from .._random import block_rng, run_seed, weighted_picks
from ._base import BaseMux

__all__ = ["ShuffledMux"]

_PICKS = 1  # block key of the per-item draws
BLOCK_SIZE = 1024  # draws per block


def _not_started():
    raise StopIteration


class ShuffledMux(BaseMux):
    """Draw each item from a streamer chosen at random, in proportion to its weight.

    Every streamer is active all the time; one that runs out is restarted at
    once. A streamer that yields nothing when (re)started is dropped, and the
    mux ends when every streamer has been dropped.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
    weights : None or array-like of float >= 0
        ``weights[i]`` is the share of items drawn from ``streamers[i]``;
        ``None`` means equal shares. Normalised to sum to 1; the array given
        is not modified.
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed. A seeded mux repeats the same sequence on every pass.

    Examples
    --------
    >>> mux = ShuffledMux(["a", "b", "c"], random_state=0)
    >>> "".join(mux(max_iter=12))
    'bccbabbbcacc'
    >>> "".join(mux(max_iter=12))  # same seed, same order
    'bccbabbbcacc'

    Draw ``a`` twice as often as ``b`` or ``c``:

    >>> mux = ShuffledMux(["a", "b", "c"], weights=[2, 1, 1], random_state=0)
    >>> "".join(mux(max_iter=12))
    'cabbacabaaab'
    """

    def __init__(self, streamers, weights=None, random_state=None):
        super().__init__(streamers, random_state=random_state)
        self.weights = check_weights(weights, len(self.streamers))

    def _iterator(self):
        return _ShuffledIterator(self)


class _ShuffledIterator:
    """The running state of one iteration of a ShuffledMux."""

    __slots__ = ("mux", "seed", "weights", "gens", "nexts", "n_blocks", "picks")

    def __init__(self, mux):
        n = len(mux.streamers)
        self.mux = mux
        self.seed = run_seed(mux._seed)
        self.weights = mux.weights.copy()  # a dropped streamer's weight becomes 0
        self.gens = [None] * n  # each streamer's open generator
        self.nexts = [_not_started] * n  # their __next__, started on first use
        self.n_blocks = 0  # blocks of draws made so far
        self.picks = iter(())  # the rest of the current block

    def _new_block(self):
        rng = block_rng(self.seed, _PICKS, self.n_blocks)
        self.n_blocks += 1
        self.picks = iter(weighted_picks(rng, self.weights, BLOCK_SIZE))
        return self.picks

    def _restart(self, i):
        """Restart streamer ``i``: return its first item, or END if it yields none."""
        gen = self.gens[i] = self.mux.streamers[i]._open()
        item = next(gen, END)
        if item is END:
            gen.close()
            self.gens[i] = None
            self.nexts[i] = _not_started
            self.weights[i] = 0.0
        else:
            self.nexts[i] = gen.__next__
        return item

    def run(self):
        mux = self.mux
        nexts = self.nexts
        i = None
        try:
            while self.weights.any():
                for i in self._new_block():
                    try:
                        item = nexts[i]()
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
        except Exception as exc:
            if i is not None:
                add_note(exc, f"raised in streamers[{i}] of {mux!r}")
            raise
        finally:
            for gen in self.gens:
                if gen is not None:
                    gen.close()
