"""StreamIterator: an iteration of a stream that can save its state and resume."""

import copy
from itertools import chain, compress

from ._checks import check_bool, check_int, check_state_tree, short_repr
from ._counter import counted_if_needed, counter_at, given, hand_counter
from ._iterutil import END, add_note, close_quietly
from ._random import iteration_seed, root_key
from .core import Streamer
from .exceptions import EmptyStreamError, ShoalTypeError, ShoalValueError
from .maps._recipe import MapStreamer
from .mux._base import BaseMux, restored_node
from .mux._shard import FINISHED, reshard_mux

__all__ = ["StreamIterator", "STATE_VERSION", "reshard_states"]

#: The version of the state format; a state of another version is refused.
#: Version 2: the state of a mux (and of a cache) records the settings it was
#: made with, and unseeded streams draw afresh at every pass.
STATE_VERSION = 2


def _check_version(state, name="state"):
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

    def __init__(self, stream, cycle=False):
        if not isinstance(stream, Streamer):
            raise ShoalTypeError(
                f"stream must be a Streamer or a mux, got {short_repr(stream)} "
                f"({type(stream).__name__})"
            )
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
        return _new_node(self.stream, self.cycle, state)

    def __iter__(self):
        # The chain itself, not this object: a loop over it runs at C speed,
        # and it goes on with the items of a state loaded during the loop.
        return self._items

    def __next__(self):
        return next(self._items)

    @property
    def n_given(self):
        """The number of items this iteration has given."""
        return given(self._counter)

    def state_dict(self):
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

    def load_state_dict(self, state):
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
        root = loaded_root(self.stream, state, self.cycle)
        self.close()
        self._start(root, state["n_given"])

    def counts(self):
        """How many items each streamer of the mux has given so far, as a list.

        Compare it with the mux's ``weights`` to see the realised mixture.
        """
        counts = getattr(self._node, "counts", None)
        if counts is None:
            raise ShoalTypeError(f"counts() is for muxes; this iterates {self.stream!r}")
        return counts()

    def set_weights(self, weights):
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

    def close(self):
        """Stop: close every generator this iteration opened."""
        if self._gen is not None:
            self._gen.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def __repr__(self):
        return f"<StreamIterator of {self.stream!r}, {self.n_given} items given>"


# Streamer.iterator() builds a StreamIterator without importing this module.
Streamer._stream_iterator = StreamIterator


def _new_node(stream, cycle, state):
    """The root node of an iteration of ``stream`` that starts where ``state`` says (opens nothing)."""
    if isinstance(stream, BaseMux):
        return stream._make_node(cycle, state, track=True)
    return _LeafRoot(stream, cycle, state)


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
    _check_version(state)
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
    check_state_tree(state)
    # A trial: it opens nothing, and this iteration goes on if the state is refused.
    restored_node(stream, state, lambda: _new_node(stream, cycle, state["state"]))
    return _ready_root(stream, state["state"])


def _ready_root(stream, root):
    """``root`` with the state of its open pass made ready; nothing is changed in place.

    A stream checks, and prepares, the state of its pass here, when the
    state is loaded, not at the first item (see ``Streamer._ready_state``):
    a ProcessStreamer refuses here a state it cannot split exactly among
    another number of workers, and reshards once one it can; a mux
    refuses a state of a mux made otherwise, anywhere in its tree.
    """
    if isinstance(stream, BaseMux):
        return stream._ready_state(root)
    if not isinstance(root, dict) or root.get("child") is None:
        return root  # nothing open to make ready (or a fresh start, as the trial read it)
    return {**root, "child": stream._ready_state(root["child"])}


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


class _LeafRoot:
    """A StreamIterator's node for a leaf Streamer: its passes, one by one.

    Over a stream that draws from a key (a Streamer of a mux, a map over one,
    a cache), it draws a seed when the iteration starts, keeps it in its
    state, and hands each pass a seed derived from it and the pass number
    (see ``shoal._random.root_key``): an unseeded stream inside then draws
    afresh at every pass, and a state saved before a pass opens (before the
    first item, or between two passes) still says what that pass will draw.
    """

    __slots__ = ("streamer", "cycle", "epoch", "offset", "yielded", "node", "it", "child_state",
                 "out_counter", "ended", "seed")

    def __init__(self, streamer, cycle, state):
        self.streamer = streamer
        self.cycle = cycle
        self.epoch = 0  # passes completed
        self.offset = 0  # items given before this pass
        self.yielded = False  # has this pass given an item?
        self.node = self.it = None  # the pass now open
        self.child_state = None
        self.out_counter = None
        self.ended = False  # its (one) pass ended: it gives nothing more
        self.seed = None  # the seed of what the passes draw, if they draw from a key
        if streamer._takes_key:
            self.seed = iteration_seed(None, state.get("seed") if state else None)
        if state is not None:
            self.epoch = state["epoch"]
            self.offset = state["offset"]
            self.yielded = state["yielded"]
            self.child_state = state["child"]
            # A state saved before "ended" was kept: no pass open, and one gave
            # items, is the end of a pass. (A cycling iteration is saved at an
            # item: a pass is always open.)
            self.ended = state.get(
                "ended", not cycle and self.child_state is None and self.yielded)

    def state_dict(self, n_given):
        child = self.child_state  # restored, and not opened since
        if self.it is not None:
            child = self.streamer._node_state(self.node, self.it, n_given - self.offset)
        return {"epoch": self.epoch, "offset": self.offset, "yielded": self.yielded,
                "child": child, "ended": self.ended,
                "seed": None if self.seed is None else list(self.seed.entropy)}

    def run(self):
        streamer = self.streamer
        if self.ended:
            return
        try:
            while True:
                key = None if self.seed is None else root_key(self.seed, self.epoch)
                self.node, self.it = streamer._open_node(self.child_state, True, key)
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
                    raise EmptyStreamError(
                        f"cannot cycle {streamer!r}: a whole pass yielded no item"
                    )
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


def reshard_states(stream, states, new_count):
    """Split the pass that ``count`` shares of ``stream`` were making among ``new_count``.

    The contract: ``states[i]`` is the :meth:`StreamIterator.state_dict` of
    an iteration of ``stream.shard(i, count)`` (``count = len(states)``),
    saved when its consumer had taken the items it counts. The result is a
    list of ``new_count`` states; ``load_state_dict(result[k])`` on an
    iteration of ``stream.shard(k, new_count)`` goes on so that the items
    given before, by all old shares, and after, by all new shares, are
    together exactly one pass of ``stream``: nothing repeated, nothing lost.
    The order of the items after may differ from the order without a
    change. With ``new_count == count`` the states are returned as they are
    (a copy), for any stream.

    It is exact for streams whose shares split a pass by streamers, each
    streamer's items the same in whichever share it runs: ``ChainMux`` and
    ``RoundRobinMux`` in ``"exhaustive"`` mode, ``StochasticMux`` with
    ``mode="exhaustive"`` and ``rate=None``, and the maps ``buffer_stream``,
    ``tuples`` and ``keras_tuples`` over one of these (for
    ``buffer_stream``, each share still drops its own last, partial batch
    unless ``partial=True``). Their streamers may be anything resumable.
    A resharded state can be saved again and resharded again.

    A state of a resharded iteration counts in ``n_given`` the items its
    share's streamers had given (a map's items: from 0).

    Parameters
    ----------
    stream : Streamer
        The stream whose shares the states are of: a mux, or a map over one.
    states : list of dict
        One state per old share, in share order.
    new_count : int >= 1
        The number of new shares.

    Returns
    -------
    list of dict
        One state per new share, plain and JSON-able.

    Raises
    ------
    ShoalValueError
        If exactness cannot hold, saying why: an iteration with
        ``cycle=True``; a ChainMux or RoundRobinMux in a cycling mode; a
        ShuffledMux; a StochasticMux in another mode or with a ``rate``; a
        ``cache`` (it gives its items again); a single stream; or if a
        state is not of a share of ``stream``, or ``stream`` cannot be split
        into ``count`` or ``new_count`` shares.
    ShoalTypeError
        If ``stream`` is not a Streamer, ``states`` is not a list of dicts,
        or ``new_count`` is not an integer.

    Examples
    --------
    Three workers each took a few items of a chain of six files; go on with
    two:

    >>> files = ChainMux([Streamer(range(k * 10, k * 10 + 4)) for k in range(6)])
    >>> iterations = [files.shard(i, 3).iterator() for i in range(3)]
    >>> before = [next(it) for it in iterations for _ in range(5)]
    >>> states = reshard_states(files, [it.state_dict() for it in iterations], 2)
    >>> after = []
    >>> for k, state in enumerate(states):
    ...     resumed = files.shard(k, 2).iterator()
    ...     resumed.load_state_dict(state)
    ...     after.extend(resumed)
    >>> sorted(before + after) == sorted(files)
    True
    """
    if not isinstance(stream, Streamer):
        raise ShoalTypeError(
            f"stream must be a Streamer or a mux, got {short_repr(stream)} "
            f"({type(stream).__name__})"
        )
    new_count = check_int("new_count", new_count, minimum=1)
    if not isinstance(states, (list, tuple)) or not states:
        raise ShoalTypeError(
            "states must be a non-empty list of the state dicts of the shares, got "
            f"{short_repr(states)}"
        )
    count = len(states)
    kind = type(stream).__name__
    for i, state in enumerate(states):
        _check_version(state, f"states[{i}]")
        if state.get("stream") != kind:
            raise ShoalValueError(
                f"states[{i}] is of an iteration of a {state.get('stream')}, not of a share "
                f"of this {kind}"
            )
    if new_count == count:
        return copy.deepcopy(list(states))
    for i, state in enumerate(states):
        if state.get("cycle"):
            raise ShoalValueError(
                f"states[{i}] is of an iteration with cycle=True: each share is somewhere "
                "else in its passes, and no one pass can be split; reshard iterations with "
                "cycle=False"
            )
    for n in (count, new_count):
        try:
            stream.shard(0, n)
        except ShoalValueError as exc:
            add_note(exc, f"while resharding the states of {count} shares into {new_count}")
            raise
    if isinstance(stream, BaseMux):
        nodes = [(state["state"], state["n_given"]) for state in states]
        return [_stream_state(kind, node, n) for node, n in
                _reshard_pass(stream, nodes, count, new_count)]
    nodes = []
    for state in states:
        root = state["state"]
        child = root["child"]
        if child is None:  # between passes: not started, or ended
            child = FINISHED if root.get("ended", root["yielded"]) else None
        nodes.append((child, state["n_given"] - root["offset"]))
    return [
        _stream_state(kind, {"epoch": 0, "offset": 0, "yielded": n > 0, "child": node,
                             "ended": False}, n)
        for node, n in _reshard_pass(stream, nodes, count, new_count)
    ]


def _stream_state(kind, node, n_given):
    return {"version": STATE_VERSION, "stream": kind, "cycle": False, "n_given": n_given,
            "state": node}


def _reshard_pass(stream, nodes, count, new_count):
    """:func:`reshard_mux` for a pass of ``stream``: a mux, a streamer over one, or a map."""
    if isinstance(stream, BaseMux):
        return reshard_mux(stream, nodes, count, new_count)
    if isinstance(stream.source, Streamer):  # a streamer over a streamer
        return _reshard_pass(stream.source, nodes, count, new_count)
    if isinstance(stream, MapStreamer):  # through its input
        return stream._reshard_pass(nodes, count, new_count, _reshard_pass)
    raise ShoalValueError(f"cannot reshard the states of {stream!r}: it is one stream")
