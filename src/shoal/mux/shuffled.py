"""ShuffledMux: every streamer active at once, items drawn at random by weight."""

from .._checks import check_weights
from .._iterutil import END, close_quietly
from .._random import PassRandom, block_size, run_key, weighted_picks
from ..exceptions import EmptyStreamError
from ._base import BaseMux, note_streamer

__all__ = ["ShuffledMux"]

_PICKS = 1  # block key of the per-item draws
FIRST_BLOCK = 64  # draws in the first block; each next block doubles...
BLOCK_SIZE = 1024  # ...up to this


_NOT_STARTED = iter(())  # the reader of a streamer not started: next() raises StopIteration


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
    'cacaccababbb'
    >>> "".join(mux(max_iter=12))  # same seed, same order
    'cacaccababbb'

    Draw ``a`` twice as often as ``b`` or ``c``:

    >>> mux = ShuffledMux(["a", "b", "c"], weights=[2, 1, 1], random_state=0)
    >>> "".join(mux(max_iter=12))
    'aabaabacaabc'
    """

    def __init__(self, streamers, weights=None, random_state=None):
        super().__init__(streamers, random_state=random_state)
        self.weights = check_weights(weights, len(self.streamers))

    def _iterator(self, cycle=False):
        return _ShuffledIterator(self, cycle)


class _ShuffledIterator:
    """The running state of one iteration of a ShuffledMux."""

    __slots__ = (
        "mux", "random", "cycle", "n_passes", "gave",
        "weights", "iters", "readers", "n_blocks", "picks",
    )

    def __init__(self, mux, cycle):
        n = len(mux.streamers)
        self.mux = mux
        self.random = PassRandom.take(run_key(mux))
        self.cycle = cycle  # start a new pass when every streamer is dropped
        self.n_passes = 0  # passes completed
        self.iters = [None] * n  # each streamer's open iterator
        self.readers = [_NOT_STARTED] * n  # what next() is called on; started on first use
        self._start_pass()

    def _start_pass(self):
        self.gave = False  # has this pass given an item?
        self.weights = self.mux.weights.copy()  # a dropped streamer's weight becomes 0
        self.n_blocks = 0  # blocks of draws made so far
        self.picks = iter(())  # the rest of the current block

    def _new_block(self):
        rng = self.random.block(_PICKS, self.n_blocks)
        size = block_size(self.n_blocks, FIRST_BLOCK, BLOCK_SIZE)
        self.n_blocks += 1
        self.picks = iter(weighted_picks(rng, self.weights, size))
        return self.picks

    def _restart(self, i):
        """Restart streamer ``i``: return its first item, or END if it yields none."""
        close_quietly(self.iters[i])
        it = self.iters[i] = self.mux.streamers[i]._source_iter()
        item = next(it, END)
        if item is END:
            close_quietly(it)
            self.iters[i] = None
            self.readers[i] = _NOT_STARTED
            self.weights[i] = 0.0
        else:
            self.readers[i] = it
            self.gave = True
        return item

    def run(self):
        mux = self.mux
        readers = self.readers
        next_item = next
        i = None  # the streamer being read, while one is
        try:
            while True:
                while self.weights.any():
                    for i in self._new_block():
                        try:
                            item = next_item(readers[i])
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
                # Every streamer was dropped: the pass is over.
                if not self.cycle:
                    return
                if not self.gave:
                    raise EmptyStreamError(f"cannot cycle {mux!r}: a whole pass yielded no item")
                self.n_passes += 1
                self._start_pass()
        except Exception as exc:
            if i is not None:
                note_streamer(exc, mux, i)
            raise
        finally:
            for it in self.iters:
                close_quietly(it)
            self.random.give_back()
