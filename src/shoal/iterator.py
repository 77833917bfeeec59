"""StreamIterator: an iteration of a stream that can save its state and resume.

It runs the root node of a stream (``Recipe._root_node``) and knows no
stream kind: it sits beneath the recipes, which build it.
"""

from collections.abc import Iterator
from itertools import chain, compress
from typing import Any, Literal

from . import _schema as schema
from ._checks import check_bool, short_repr
from ._contract import FINISHED, Recipe, StateDict, Weights, check_stream
from ._counter import counted_if_needed, counter_at, given, hand_counter
from ._iterutil import END, add_note, close_quietly, empty_pass
from ._random import iteration_seed, root_key
from ._schema import restored_node
from .exceptions import ShoalTypeError, ShoalValueError

__all__ = ["StreamIterator", "STATE_VERSION", "LeafRoot", "LEAF_STATE", "ROOT_STATE", "check_version",
           "loaded_root"]

#: The version of the state format; a state of another version is refused.
#: Version 2: the state of a mux (and of a cache) records the settings it was
#: made with, and unseeded streams draw afresh at every pass. Version 3: one
#: name per idea and one shape for a child's progress and for a supply of
#: draws (see ``shoal._schema`` and each kind's schema).
STATE_VERSION = 3


def check_version(state, name="state"):
    """Refuse what is not a whole iteration's state of this version, naming both versions."""
    if not isinstance(state, dict) or "version" not in state:
        raise ShoalValueError(
            f"{name} must be a dict from StreamIterator.state_dict (version "
            f"{STATE_VERSION}), got {short_repr(state)}"
        )
    if state["version"] != STATE_VERSION:
        raise ShoalValueError(
            f"{name} must be a dict from StreamIterator.state_dict of version {STATE_VERSION}, "
            f"got one of version {short_repr(state['version'])}: this shoal cannot load a "
            f"state saved by a shoal whose states are of another version"
        )


class StreamIterator:
    """An iteration of a stream that reports its state and resumes from it.

    Made by :meth:`Streamer.iterator`. Iterate it like any iterator; at any
    point, :meth:`state_dict` returns a small dict of plain values (it
    survives ``json.dumps`` and ``pickle``) from which :meth:`load_state_dict`
    continues with exactly the items an uninterrupted iteration would give.

    The state holds positions and counters, not items: a leaf source is
    resumed by starting it again and skipping the items it had given, so it
    must yield the same items every time it is started. A source can resume
    faster: see :func:`resume_arg`, and sources whose iterators have their
    own ``state_dict`` and ``load_state_dict``.

    Parameters
    ----------
    stream : Streamer
        A streamer or a mux.
    cycle : bool
        Start a new pass whenever one ends, as :meth:`Streamer.cycle`.

    Examples
    --------
    >>> mux = ShuffledMux(["ab", "cde"], random_state=0)
    >>> it = mux.iterator()
    >>> [next(it) for _ in range(3)]
    ['c', 'a', 'd']
    >>> saved = it.state_dict()
    >>> rest = [next(it) for _ in range(5)]
    >>> resumed = mux.iterator()
    >>> resumed.load_state_dict(saved)
    >>> [next(resumed) for _ in range(5)] == rest
    True
    """

    __slots__ = ("stream", "cycle", "_node", "_gen", "_counter", "_readers", "_items")

    def __init__(self, stream: Recipe, cycle: bool = False) -> None:
        check_stream(stream)
        self.stream = stream
        self.cycle = check_bool("cycle", cycle)
        self._gen = None
        self._readers = None
        self._start(None, 0)

    def _start(self, state, n_given):
        node = self._new_node(state)
        counter = self._counter = counter_at(n_given)
        hand_counter(node, counter)
        self._node = node
        self._gen = self.stream._opened(node.run())
        # The items pass through compress, which counts them at C speed, and
        # then through a chain of readers, which hands a loop over this
        # iteration the reader of a loaded state (see load_state_dict).
        reader = compress(self._gen, counter)
        if self._readers is None or self._readers.ended:
            self._readers = _Readers(reader)
            self._items = chain.from_iterable(iter(self._readers.take, None))
        else:
            self._readers.pending = reader

    def _new_node(self, state):
        """The root node of an iteration that starts where ``state`` says (opens nothing)."""
        return self.stream._root_node(self.cycle, state)

    def __iter__(self) -> Iterator[Any]:
        # The chain itself, not this object: a loop over it runs at C speed,
        # and it goes on with the items of a state loaded during the loop.
        return self._items

    def __next__(self) -> Any:
        return next(self._items)

    @property
    def n_given(self) -> int:
        """The number of items this iteration has given."""
        return given(self._counter)

    def state_dict(self) -> StateDict:
        """The state of this iteration: a small dict of plain values.

        It survives ``json.dumps`` and ``pickle``; its size does not grow
        with the number of items given.
        """
        n = self.n_given
        return {
            "version": STATE_VERSION,
            "stream": type(self.stream).__name__,
            "cycle": self.cycle,
            "n_given": n,
            "state": self._node.state_dict(n),
        }

    def load_state_dict(self, state: StateDict) -> None:
        """Continue from ``state``, a :meth:`state_dict` of an iteration of the same stream.

        What this iteration had open is closed once ``state`` is accepted;
        if it is refused, this iteration goes on as it was. A loop over this
        iteration that loads a state goes on with the items of that state.

        Raises
        ------
        ShoalValueError
            If ``state`` is not a state of an iteration of this stream (of
            another version of the format, or of a stream made otherwise: a
            mux or a cache anywhere in the tree with another seed or other
            settings, the message naming the setting and both values), or
            is corrupted (the message names the field), or cannot be
            loaded into this stream: a ProcessStreamer state saved with
            another number of workers that cannot be split exactly among
            these (the message says why). Raised here, not at the next
            item; this iteration then goes on as it was.
        """
        state = self.stream._translate_state(state)
        root = loaded_root(self.stream, state, self.cycle)
        self.close()
        self._start(root, state["n_given"])

    def counts(self) -> list[int]:
        """How many items each streamer of the mux has given so far, as a list.

        Compare it with the mux's ``weights`` to see the realised mixture.
        """
        counts = getattr(self._node, "counts", None)
        if counts is None:
            raise ShoalTypeError(f"counts() is for muxes; this iterates {self.stream!r}")
        return counts()

    def set_weights(self, weights: Weights | None) -> None:
        """Change the weights of a ShuffledMux or StochasticMux while it runs.

        The new weights apply from the next draw on and are part of the
        state, so a resumed iteration keeps them.
        """
        set_weights = getattr(self._node, "set_weights", None)
        if set_weights is None:
            raise ShoalTypeError(
                f"set_weights() is for ShuffledMux and StochasticMux; this iterates {self.stream!r}"
            )
        set_weights(weights)

    def worker_stats(self) -> Any:
        """Where this iteration over worker processes waits: a :class:`~shoal.WorkerStats`.

        For an iteration of a :class:`~shoal.ProcessStreamer`, or of a map
        over one (``Streamer(buffer_stream, ProcessStreamer(...), 32)``): the
        seconds the consumer waited for items, and for each worker the items
        it produced and the seconds it waited for credit and for room in its
        ring, in the pass open now (or the last one, once it ended). None
        before the first item, when no worker has started.

        Raises
        ------
        ShoalTypeError
            For an iteration of a stream that has no workers of its own.
        """
        node = self._node
        stats = node.worker_stats() if hasattr(node, "worker_stats") else NotImplemented
        if stats is NotImplemented:
            raise ShoalTypeError(
                f"worker_stats() is for a ProcessStreamer, or a map over one; this iterates "
                f"{self.stream!r}"
            )
        return stats

    def close(self) -> None:
        """Stop: close every generator this iteration opened."""
        if self._gen is not None:
            self._gen.close()

    def __enter__(self) -> "StreamIterator":
        return self

    def __exit__(self, *exc_info: object) -> Literal[False]:
        self.close()
        return False

    def __repr__(self) -> str:
        return f"<StreamIterator of {self.stream!r}, {self.n_given} items given>"


def loaded_root(stream, state, cycle=False):
    """The root of ``state`` made ready to load into an iteration of ``stream``; refused if it does not fit.

    ``state`` is a :meth:`StreamIterator.state_dict`. These are the checks
    of :meth:`StreamIterator.load_state_dict`: it must be a state of an
    iteration of ``stream`` (its kind, its ``cycle``, each field as the
    stream reads it), and the stream prepares the state of its open pass
    (see ``Streamer._ready_state``). Opens nothing: a refused state
    leaves everything as it was.

    Raises
    ------
    ShoalValueError
        Naming what does not fit.
    """
    check_version(state)
    kind = type(stream).__name__
    if state.get("stream") != kind:
        raise ShoalValueError(
            f"state is of an iteration of a {state.get('stream')}, not of this {kind}"
        )
    if state.get("cycle") != cycle:
        raise ShoalValueError(
            f"state is of an iteration with cycle={state.get('cycle')}, "
            f"this one has cycle={cycle}"
        )
    for key in ("n_given", "state"):
        if key not in state:
            raise ShoalValueError(f"state is corrupted: it lacks {key!r}")
    schema.check_plain(state)
    schema.count(state["n_given"], "state['n_given']")
    root = stream._ready_root(state["state"], state["n_given"])
    # A trial: it opens nothing, and this iteration goes on if the state is refused.
    restored_node(stream, state, lambda: stream._root_node(cycle, state["state"]))
    return root


class _Readers:
    """The readers of a StreamIterator's chain of items: the one to read next.

    The chain asks for a reader when the one it reads ends: a pass that
    ended, or one closed because a state was loaded, whose reader is then
    :attr:`pending`. With none pending, the chain ends, and this is
    :attr:`ended`: a state loaded then starts a new chain. (It holds no
    reference to its StreamIterator, so that no cycle delays closing a
    dropped iteration's generators.)
    """

    __slots__ = ("pending", "ended")

    def __init__(self, reader):
        self.pending = reader
        self.ended = False

    def take(self):
        reader, self.pending = self.pending, None
        if reader is None:
            self.ended = True
        return reader


#: The schema of a leaf's state (a source with a state of its own saves
#: ``{"source": its state}`` instead).
LEAF_STATE = {"given": schema.count}

#: The schema of the state of a ``LeafRoot``.
ROOT_STATE = {
    "epoch": schema.count,  # passes completed
    "offset": schema.count,  # items given before this pass
    "yielded": schema.flag,  # has this pass given an item?
    "child": schema.stream_state,  # the open pass's state, or None between passes
    "ended": schema.flag,  # its (one) pass ended: it gives nothing more
    "seed": schema.seed,  # the seed of what the passes draw, if they draw from a key
}


class LeafRoot:
    """A StreamIterator's node for a leaf Streamer: its passes, one by one.

    Over a stream that draws from a key (a Streamer of a mux, a map over one,
    a cache), it draws a seed when the iteration starts, keeps it in its
    state, and hands each pass a seed derived from it and the pass number
    (see ``shoal._random.root_key``): an unseeded stream inside then draws
    afresh at every pass, and a state saved before a pass opens (before the
    first item, or between two passes) still says what that pass will draw.
    """

    __slots__ = ("streamer", "cycle", "epoch", "offset", "yielded", "node", "it", "child_state",
                 "out_counter", "ended", "seed", "last_node")

    def __init__(self, streamer, cycle, state):
        self.streamer = streamer
        self.cycle = cycle
        self.epoch = 0  # passes completed
        self.offset = 0  # items given before this pass
        self.yielded = False  # has this pass given an item?
        self.node = self.it = None  # the pass now open
        self.last_node = None  # the last pass opened (for its worker_stats)
        self.child_state = None
        self.out_counter = None
        self.ended = False  # its (one) pass ended: it gives nothing more
        self.seed = None  # the seed of what the passes draw, if they draw from a key
        if streamer._takes_key:
            self.seed = iteration_seed(None, state["seed"] if state else None)
        if state is not None:
            self.epoch = state["epoch"]
            self.offset = state["offset"]
            self.yielded = state["yielded"]
            self.child_state = state["child"]
            self.ended = state["ended"]

    @staticmethod
    def pass_of(root, n_given):
        """``(state, n)`` of the one pass of a root's ``state`` that gave ``n_given`` items.

        For resharding (see ``Recipe._reshard_pass``): the pass open, or
        :data:`~shoal._contract.FINISHED` if it ended, or None before it.
        """
        child = root["child"]
        if child is None:  # between passes: not started, or ended
            child = FINISHED if root["ended"] else None
        return child, n_given - root["offset"]

    @staticmethod
    def root_of(state, n_given):
        """The state of a root whose one pass is at ``state``, ``n_given`` items in."""
        return {"epoch": 0, "offset": 0, "yielded": n_given > 0, "child": state, "ended": False,
                "seed": None}

    def state_dict(self, n_given):
        child = self.child_state  # restored, and not opened since
        if self.it is not None:
            child = self.streamer._node_state(self.node, self.it, n_given - self.offset)
        return {"epoch": self.epoch, "offset": self.offset, "yielded": self.yielded,
                "child": child, "ended": self.ended,
                "seed": None if self.seed is None else list(self.seed.entropy)}

    def worker_stats(self):
        """The WorkerStats of the last pass opened; None before one; NotImplemented without workers."""
        node = self.last_node
        if node is None:
            return None if getattr(self.streamer, "_has_workers", False) else NotImplemented
        return node.worker_stats() if hasattr(node, "worker_stats") else NotImplemented

    def run(self):
        streamer = self.streamer
        if self.ended:
            return
        try:
            while True:
                key = None if self.seed is None else root_key(self.seed, self.epoch)
                self.node, self.it = streamer._open_node(self.child_state, True, key)
                self.last_node = self.node
                # A chain learns its progress from a counter of its own items.
                # (The reader may be a counting wrapper: ``self.it`` is what to close.)
                reader = counted_if_needed(self.node, self.it,
                                           given(self.out_counter) - self.offset)
                self.child_state = None
                first = next(reader, END)
                if first is not END:
                    self.yielded = True
                    yield first
                    yield from reader
                close_quietly(self.it)
                self.node = self.it = None
                if not self.cycle:
                    self.ended = True
                    return
                if not self.yielded:
                    raise empty_pass(streamer)
                self.epoch += 1
                self.offset = given(self.out_counter)
                self.yielded = False
        except Exception as exc:
            if self.it is not None:
                add_note(exc, f"raised while iterating {streamer!r}")
            raise
        finally:
            if self.it is not None:
                close_quietly(self.it)
