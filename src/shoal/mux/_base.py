"""What every mux shares: its streamers, its seed, and how a pass starts."""

import collections.abc

from .._checks import short_repr
from .._iterutil import add_note, limited
from .._random import as_seed_sequence
from ..core import Streamer
from ..exceptions import ShoalTypeError, ShoalValueError

__all__ = ["BaseMux", "as_streamers", "as_streamer", "note_streamer"]


def note_streamer(exc, mux, index):
    """Note on ``exc`` that it came from ``mux.streamers[index]``."""
    add_note(exc, f"raised in streamers[{index}] of {mux!r}: {mux.streamers[index]!r}")


def as_streamers(streamers, name="streamers", allow_empty=False):
    """Return ``streamers`` as a tuple of Streamers, wrapping plain iterables.

    Raises a clear error for a single Streamer, a string, or an element that
    cannot be streamed.
    """
    if isinstance(streamers, Streamer):
        raise ShoalTypeError(
            f"{name} must be a collection of streamers, got a single {type(streamers).__name__}; "
            "wrap it in a list"
        )
    if isinstance(streamers, (str, bytes)) or not isinstance(streamers, collections.abc.Iterable):
        raise ShoalTypeError(
            f"{name} must be a collection of streamers, got {short_repr(streamers)} "
            f"({type(streamers).__name__})"
        )
    out = []
    for index, item in enumerate(streamers):
        out.append(as_streamer(item, f"{name}[{index}]"))
    if not out and not allow_empty:
        raise ShoalValueError(f"{name} must not be empty: there is nothing to mux")
    return tuple(out)


def as_streamer(item, name):
    """Return ``item`` as a Streamer, naming ``name`` if it cannot be one."""
    if isinstance(item, Streamer):
        return item
    try:
        return Streamer(item)
    except ShoalTypeError:
        raise ShoalTypeError(
            f"{name} must be a Streamer, an iterable or a generator function, "
            f"got {short_repr(item)} ({type(item).__name__})"
        ) from None


class BaseMux(Streamer):
    """A Streamer that draws its items from several streamers.

    A mux is a recipe: it holds its streamers and settings and never changes
    while it is iterated. Each iteration builds a fresh iterator object that
    holds the running state.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
        The streams to mux. Anything that is not a Streamer is wrapped in one.
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed. A seeded mux repeats the same order on every pass; with
        ``None`` every pass draws a new seed from numpy's global state.
    """

    def __init__(self, streamers, random_state=None):
        self.streamers = as_streamers(streamers)
        self.random_state = random_state
        self._seed = as_seed_sequence(random_state)

    @property
    def n_streams(self):
        """The number of streamers."""
        return len(self.streamers)

    @property
    def source(self):
        return self.streamers

    def _iterator(self, cycle=False):
        """Build the iterator object of one iteration (subclasses).

        With ``cycle``, the iterator starts a new pass whenever one ends.
        """
        raise NotImplementedError

    def _open(self, max_iter=None, cycle=False):
        gen = self._iterator(cycle).run()
        return gen if max_iter is None else limited(gen, max_iter)

    def _open_cycle(self, max_iter):
        # The iterator starts each new pass itself: no generator layer on top.
        return self._open(max_iter, cycle=True)

    def _source_iter(self):
        return self._open()

    def _settings(self):
        return {}

    def __repr__(self):
        parts = [f"<{len(self.streamers)} streamers>"]
        parts += [f"{key}={value!r}" for key, value in self._settings().items()]
        return f"{type(self).__name__}({', '.join(parts)})"
