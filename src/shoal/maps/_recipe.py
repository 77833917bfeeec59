"""A map as a stream: the recipe of ``Streamer(a map, stream, ...)``, its node and its state.

``Streamer(buffer_stream, mux, 32)`` is pescador's way to make a map
restartable. In shoal it is also resumable, shardable and reshardable,
through its input: ``Streamer`` builds, for a map function, the map's
recipe class (a :class:`MapStreamer`: ``core.MAP_RECIPES`` says which),
which binds and checks the map's arguments once, when it is made. Each map
kind declares its recipe class next to its function (``_batch``,
``_tuples``, ``_cache``); what they share is here.

The state of a pass of a map over a stream is its input's, with the items
it has read of it::

    {"map": "buffer_stream", "n_input": n, "input": <the input's state>}

(a cache adds ``"cache"``: its own, see ``_cache``). ``buffer_stream`` holds
no item between the batches it gives, and ``tuples`` and ``keras_tuples``
hold none at all, so the input's state is all there is to resume. A map
whose stream is an iterator cannot track it: it is a leaf like any other
callable source (its state counts the items it gave).
"""

import collections.abc
import contextlib
import inspect
from collections.abc import Callable
from itertools import compress
from typing import Any

from .. import _schema
from .._checks import is_iterable, short_repr
from .._contract import checked_share
from .._counter import counter_at, given, hand_counter
from .._iterutil import close_quietly
from .._random import below
from ..core import MAP_RECIPES, Streamer
from ..exceptions import ShoalTypeError, ShoalValueError

__all__ = ["MapStreamer", "check_iterable", "reading"]


def check_iterable(stream):
    """Refuse a ``stream`` argument of a map that is not iterable."""
    if not is_iterable(stream):
        raise ShoalTypeError(
            f"stream must be iterable, got {short_repr(stream)} ({type(stream).__name__})"
        )


@contextlib.contextmanager
def reading(stream):
    """An iterator over ``stream``; closed at the end if this opened it.

    A map given an iterator does not close it: it is the caller's.
    """
    it = iter(stream)
    try:
        yield it
    finally:
        if it is not stream:
            close_quietly(it)


def _map_name(value, path, n_streams=None):
    if not isinstance(value, str):
        raise _schema.state_error(path, "the name of a map", value)


#: The state of a pass of a map over a stream (a kind may add fields).
MAP_STATE = {"map": _map_name, "n_input": _schema.count, "input": _schema.stream_state}


class MapStreamer(Streamer):
    """The recipe of ``Streamer(a map, stream, ...)``: a map over a stream.

    Not made directly: ``Streamer(buffer_stream, stream, 32)`` makes the
    recipe class of ``buffer_stream``. It is a :class:`~shoal.Streamer` in
    every way (its ``source``, ``args``, ``kwargs`` and repr are those it
    was made with), and a pass of it reads its stream as a mux reads its
    streamers: tracked, so that it resumes, shards and reshards through its
    stream. A subclass names its map function (``function=``, a class
    keyword: the class is then the one ``Streamer`` makes for it), sets
    :attr:`name`, and gives :meth:`_settings` and :meth:`_map`.
    """

    #: The map's name in its state: ``{"map": name, ...}``.
    name = ""
    #: The schema of the state of a pass over a stream (see ``shoal._schema``).
    _schema = MAP_STATE
    #: The map's arguments but the stream, given by name, checked as its
    #: function checks them: what :meth:`_map` reads (a function of the kind).
    _settings: Callable[..., Any]

    def __init_subclass__(cls, function=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if function is not None:
            MAP_RECIPES[function] = cls

    def __init__(self, source, *args, **kwargs):
        super().__init__(source, *args, **kwargs)  # checks that the arguments fit
        arguments = inspect.signature(source).bind(*args, **kwargs)
        arguments.apply_defaults()
        settings = dict(arguments.arguments)
        stream = settings.pop("stream")
        check_iterable(stream)
        #: The stream argument, as given: what a plain pass reads.
        self._stream = stream
        #: The map's checked arguments but the stream, as :meth:`_map` takes them.
        self._arguments = self._settings(**settings)
        # The stream a tracked pass reads, or None for an iterator (not tracked).
        # A collection (a list, an array) is read through a Streamer of it, so
        # that the map, a cache's seed included, resumes as over any Streamer.
        if isinstance(stream, Streamer):
            self._input = stream
        elif isinstance(stream, collections.abc.Iterator):
            self._input = None
        else:
            self._input = Streamer(stream)
        self._plain_leaf = False

    def _map(self, items):
        """A generator of the map over ``items``, an iterable."""
        raise NotImplementedError

    def __repr__(self):
        # As it was made: Streamer(buffer_stream, ...).
        return Streamer.__name__ + super().__repr__()[len(type(self).__name__):]

    # -- a pass ---------------------------------------------------------------

    def _open_items(self):
        return self._map(self._stream)

    @property
    def _has_workers(self):
        """Does a pass run in worker processes? A map over a stream whose passes do."""
        return self._input is not None and self._input._has_workers

    @property
    def _takes_key(self):
        """Does a pass draw from its parent's key? A map over a stream that does."""
        return self._input is not None and self._input._takes_key

    def _open_node(self, state=None, track=False, key=None):
        """Open a pass at ``state`` over a tracked input: ``(node, iterator)``.

        Inside a mux (``key`` is not None), the map hands its input the key
        of a one-child level, ``(0, 0, 0)`` further down the path (see
        ``shoal._random.below``), so that a map that draws (a cache) and
        its input never share draws.
        """
        stream = self._input
        if stream is None:  # nothing to track: the map is a source like any other
            return super()._open_node(state, track, key)
        if state is not None:
            self._check_name(state)
        counter = counter_at(state["n_input"] if state else 0)
        input_key = None if key is None else below(key, 0, 0, 0)
        input_node, input_it = stream._open_node(state and state["input"], track, input_key)
        try:
            hand_counter(input_node, counter)
            node = self._make_node(stream, input_node, input_it, counter)
            # The map runs over the counted reader.
            items = self._map_node(node, compress(input_it, counter), state, track, key)
            return node, _MapReader(items, input_it)
        except BaseException:
            close_quietly(input_it)  # a resumed input may be open already
            raise

    def _make_node(self, stream, input_node, input_it, counter):
        return _MapNode(self.name, stream, input_node, input_it, counter)

    def _map_node(self, node, reader, state, track, key):
        """The items of a pass of ``node``, whose input gives ``reader``, at ``state``."""
        return self._map(reader)

    def _ready_state(self, state, path="state", n_given=None):
        """``state``, of a pass of this map, checked; its input's made ready by the input.

        See ``Recipe._ready_state``. The map's count of items (``n_given``)
        is not its input's: the input's is ``n_input``. A map over an
        iterator is a leaf.
        """
        stream = self._input
        if state is None or stream is None:
            return super()._ready_state(state, path, n_given)
        _schema.check_fields(state, self._schema, path)
        self._check_name(state)
        self._check_state(state, path)
        return {**state, "input": stream._ready_state(state["input"], f"{path}['input']",
                                                      state["n_input"])}

    def _check_name(self, state):
        """Refuse the state of another map."""
        if state.get("map") != self.name:
            raise ShoalValueError(f"state is of a {state.get('map')!r} map, not of {self.name!r}")

    def _check_state(self, state, path):
        """Check what the schema does not: fields that must agree (a kind adds its own)."""

    # -- shares ---------------------------------------------------------------

    def _share_refusal(self, count):
        # A map over a stream has its stream's shares: over one stream, it is one stream.
        if isinstance(self._stream, Streamer):
            return self._stream._share_refusal(count)
        return super()._share_refusal(count)

    def shard(self, index, count):
        """The same map over share ``index`` of ``count`` of its stream (see ``Streamer.shard``)."""
        index, count = checked_share(self, index, count)
        if count == 1:
            return self
        bound = inspect.signature(self.source).bind(*self.args, **self.kwargs)
        bound.arguments["stream"] = self._stream.shard(index, count)
        self._share_arguments(bound.arguments, index)
        return Streamer(self.source, *bound.args, **bound.kwargs)

    def _share_arguments(self, arguments, index):
        """Change ``arguments``, bound to the map function, for share ``index`` (a seed)."""

    def _reshard_refusal(self):
        """Why not, if its stream says why (a map is resharded through its stream)."""
        if not isinstance(self._stream, Streamer):
            return super()._reshard_refusal()
        return self._stream._reshard_refusal()

    def _reshard_pass(self, passes, count, new_count):
        """The passes of ``new_count`` shares that go on from those of ``count``.

        See ``Recipe._reshard_pass``: ``passes[i]`` is ``(state, n_given)``
        of share ``i``. A map's state is its input's (``buffer_stream``
        holds no item between the batches it gives, ``tuples`` and
        ``keras_tuples`` none at all): the input reshards them, and each new
        share's map starts from its input's state.
        """
        if not isinstance(self._stream, Streamer):
            return super()._reshard_pass(passes, count, new_count)  # one stream
        inputs = []
        for state, _ in passes:
            if not isinstance(state, dict):  # not started, or ended
                inputs.append((state, 0))
                continue
            self._check_name(state)
            inputs.append((state["input"], state["n_input"]))
        return [({"map": self.name, "n_input": n, "input": state}, 0)
                for state, n in self._stream._reshard_pass(inputs, count, new_count)]


class _MapNode:
    """A pass of a map over a tracked input stream."""

    __slots__ = ("name", "stream", "input_node", "it", "counter")

    def __init__(self, name, stream, input_node, it, counter):
        self.name = name
        self.stream = stream
        self.input_node = input_node
        self.it = it
        self.counter = counter

    def worker_stats(self):
        """The WorkerStats of the input's workers (NotImplemented: it has none)."""
        node = self.input_node
        return node.worker_stats() if hasattr(node, "worker_stats") else NotImplemented

    def input_state(self, n):
        """The input's state after ``n`` items (which must be where it is now)."""
        return self.stream._node_state(self.input_node, self.it, n)

    def state_dict(self, n_given=None):
        n = given(self.counter)
        return {"map": self.name, "n_input": n, "input": self.input_state(n)}


class _MapReader:
    """The items of a map over an input opened before them.

    Closing it closes the input at once, even before the first item (a
    resumed input is open, and a generator that never started cannot close
    it). It closes the input itself when the map ends or raises.
    """

    __slots__ = ("_next", "_gen", "_input")

    def __init__(self, gen, input_it):
        self._gen = gen
        self._next = gen.__next__
        self._input = input_it

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._next()
        except BaseException:
            self.close()
            raise

    def close(self):
        try:
            self._gen.close()
        finally:
            close_quietly(self._input)
