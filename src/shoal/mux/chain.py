"""ChainMux: one streamer after another."""

import collections.abc

from .._checks import check_choice
from .._iterutil import END, close_quietly
from ..exceptions import EmptyStreamError, ShoalValueError
from ._base import BaseMux, as_streamer, as_streamers, note_streamer
from .._random import as_seed_sequence

__all__ = ["ChainMux"]


class _LazyStreamers:
    """Streamers pulled one by one from an iterator and kept for later passes."""

    __slots__ = ("_source", "_items")

    def __init__(self, source):
        self._source = source
        self._items = []

    def get(self, index):
        items = self._items
        while len(items) <= index and self._source is not None:
            item = next(self._source, END)
            if item is END:
                self._source = None
            else:
                items.append(as_streamer(item, f"streamers[{len(items)}]"))
        return items[index] if index < len(items) else None

    def __len__(self):
        return len(self._items)


class ChainMux(BaseMux):
    """Run each streamer to exhaustion, one after another.

    Like :func:`itertools.chain`, over streamers. In ``"cycle"`` mode the
    chain starts again from the first streamer when the last one ends, so a
    chain of N streamers of M items each repeats exactly every N*M items:
    the repeatable validation stream.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
        A list of streamers, or an iterator (such as a generator) yielding
        them. An iterator is read lazily, one streamer at a time, and the
        streamers it gave are kept so that the chain can repeat.
    mode : {"exhaustive", "cycle"}
        ``"exhaustive"`` stops after the last streamer; ``"cycle"`` repeats
        the chain forever.
    random_state : None, int, SeedSequence, Generator or RandomState
        Accepted for compatibility; a chain draws no random numbers.

    Raises
    ------
    ShoalValueError
        For an unknown mode, or ``mode="cycle"`` with no streamers.
    EmptyStreamError
        In ``"cycle"`` mode, when a whole pass of the chain yields no item.

    Examples
    --------
    >>> list(ChainMux([Streamer("abc"), Streamer("de")]))
    ['a', 'b', 'c', 'd', 'e']
    >>> "".join(ChainMux(["ab", "c"], mode="cycle")(max_iter=7))
    'abcabca'

    A generator of streamers is read lazily:

    >>> def letters(n_streamers, n_copies):
    ...     for letter in "abcdefgh"[:n_streamers]:
    ...         yield Streamer(letter * n_copies)
    >>> "".join(ChainMux(letters(3, 2)))
    'aabbcc'
    """

    def __init__(self, streamers, mode="exhaustive", random_state=None):
        self.mode = check_choice("mode", mode, ("exhaustive", "cycle"))
        if isinstance(streamers, collections.abc.Iterator):
            self._lazy = _LazyStreamers(streamers)
            self.streamers = self._lazy._items
        else:
            self._lazy = None
            self.streamers = as_streamers(streamers, allow_empty=True)
            if not self.streamers and mode == "cycle":
                raise ShoalValueError(
                    "streamers must not be empty with mode='cycle': the chain would "
                    "repeat nothing forever"
                )
        self.random_state = random_state
        self._seed = as_seed_sequence(random_state)

    def _streamer(self, index):
        if self._lazy is not None:
            return self._lazy.get(index)
        streamers = self.streamers
        return streamers[index] if index < len(streamers) else None

    def _iterator(self, cycle=False):
        return _ChainIterator(self, cycle or self.mode == "cycle")

    def _settings(self):
        return {"mode": self.mode}


class _ChainIterator:
    """The running state of one iteration of a ChainMux."""

    __slots__ = ("mux", "cycle", "index", "n_passes")

    def __init__(self, mux, cycle):
        self.mux = mux
        self.cycle = cycle
        self.index = 0  # the streamer now running
        self.n_passes = 0  # completed passes (cycle mode)

    def run(self):
        mux = self.mux
        get = mux._streamer
        cycle = self.cycle
        sub = None
        streamer = None  # the streamer being read, while one is
        try:
            while True:
                yielded = False
                while (streamer := get(self.index)) is not None:
                    sub = streamer._source_iter()
                    first = next(sub, END)
                    if first is not END:
                        yielded = True
                        yield first
                        yield from sub
                    close_quietly(sub)
                    sub = streamer = None
                    self.index += 1
                if not cycle:
                    return
                if not yielded:
                    raise EmptyStreamError(
                        f"cannot cycle {mux!r}: a whole pass yielded no item"
                    )
                self.index = 0
                self.n_passes += 1
        except Exception as exc:
            if streamer is not None:
                note_streamer(exc, mux, self.index)
            raise
        finally:
            if sub is not None:
                close_quietly(sub)
