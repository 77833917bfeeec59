"""RoundRobinMux: one item from each streamer in turn."""

from .._checks import check_choice
from .._iterutil import close_quietly
from .._random import PassRandom, run_key
from ..exceptions import EmptyStreamError
from ._base import BaseMux, note_streamer

__all__ = ["RoundRobinMux"]

_PERMUTE = 1  # block key of the pass permutations


class RoundRobinMux(BaseMux):
    """Take one item from each streamer in turn, in a fixed order.

    A streamer that runs out drops out of the rotation; the others go on.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
    mode : {"exhaustive", "cycle", "permuted_cycle"}
        ``"exhaustive"`` stops when every streamer has run out. ``"cycle"``
        then restarts them all, in the same order. ``"permuted_cycle"``
        restarts them in a new random order each time (the first pass keeps
        the given order, as in pescador).
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed of the permutations in ``"permuted_cycle"`` mode.

    Raises
    ------
    EmptyStreamError
        In the cycling modes, when a whole pass yields no item.

    Examples
    --------
    >>> "".join(RoundRobinMux(["abc", "de", "f"]))
    'adfbec'
    >>> "".join(RoundRobinMux(["ab", "c"], mode="cycle")(max_iter=7))
    'acbacba'
    >>> mux = RoundRobinMux(["a", "b", "c"], mode="permuted_cycle", random_state=1)
    >>> "".join(mux(max_iter=12))
    'abcacbbacbac'
    """

    def __init__(self, streamers, mode="exhaustive", random_state=None):
        self.mode = check_choice("mode", mode, ("exhaustive", "cycle", "permuted_cycle"))
        super().__init__(streamers, random_state=random_state)

    def _iterator(self, cycle=False):
        return _RoundRobinIterator(self, cycle or self.mode != "exhaustive")

    def _settings(self):
        return {"mode": self.mode}


class _RoundRobinIterator:
    """The running state of one iteration of a RoundRobinMux."""

    __slots__ = ("mux", "cycle", "random", "n_passes", "order", "iters")

    def __init__(self, mux, cycle):
        self.mux = mux
        self.cycle = cycle
        self.random = PassRandom(run_key(mux)) if mux.mode == "permuted_cycle" else None
        self.n_passes = 0  # completed passes
        self.order = None  # streamer indices, in the order of this pass
        self.iters = {}  # streamer index -> its open iterator

    def _pass_order(self):
        n = len(self.mux.streamers)
        if self.random is None or self.n_passes == 0:
            return list(range(n))
        return self.random.block(_PERMUTE, self.n_passes).permutation(n).tolist()

    def run(self):
        mux = self.mux
        streamers = mux.streamers
        cycle = self.cycle
        iters = self.iters
        j = None  # the streamer being read, while one is
        try:
            while True:
                self.order = order = self._pass_order()
                for j in order:
                    iters[j] = streamers[j]._source_iter()
                j = None
                live = [(j, iters[j]) for j in order]
                first_round = True
                while live:
                    dead = None
                    for j, it in live:
                        try:
                            item = next(it)
                        except StopIteration:
                            close_quietly(iters.pop(j))
                            dead = (dead or set())
                            dead.add(j)
                        else:
                            yield item
                    j = None
                    if dead is not None:
                        if first_round and len(dead) == len(live) and cycle:
                            raise EmptyStreamError(
                                f"cannot cycle {mux!r}: a whole pass yielded no item"
                            )
                        live = [pair for pair in live if pair[0] not in dead]
                    first_round = False
                if not cycle:
                    return
                self.n_passes += 1
        except Exception as exc:
            if j is not None:
                note_streamer(exc, mux, j)
            raise
        finally:
            for it in iters.values():
                close_quietly(it)
            iters.clear()
