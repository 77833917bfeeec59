"""Streamer: a restartable stream over a generator function or an iterable."""

import array
import collections.abc
import contextlib
import copy
import inspect
import itertools
import sys
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable
from itertools import compress, islice, repeat
from typing import Any, Literal, ParamSpec, TypeVar, cast

from decorator import decorate

from ._checks import check_bool, check_max_iter, is_iterable, short_repr
from ._contract import NotResharded, Recipe, checked_share
from ._iterutil import END, add_note, close_quietly, empty_pass, limited
from ._schema import check_fields, state_error
from .exceptions import ShoalTypeError, ShoalValueError, SpentSourceError
from .iterator import LEAF_STATE, ROOT_STATE, LeafRoot, StreamIterator

__all__ = ["Streamer", "streamable", "resume_arg"]

_P = ParamSpec("_P")
_F = TypeVar("_F", bound=Callable[..., Any])

#: The attribute :func:`resume_arg` sets on a generator function.
RESUME_ARG = "__shoal_resume_arg__"
#: The attribute :func:`streamable` sets on a generator function: the decorated function.
STREAMABLE = "__shoal_streamable__"


def _module_holds(function):
    """Is ``function`` what its module holds under its qualified name?"""
    module = sys.modules.get(getattr(function, "__module__", None))
    found = module
    for part in getattr(function, "__qualname__", "").split("."):
        found = getattr(found, part, None)
    return found is function


class _Decorated:
    """Pickles as the @streamable function that wraps a Streamer's source."""

    __slots__ = ("decorated",)

    def __init__(self, decorated):
        self.decorated = decorated

    def __reduce__(self):
        return _Decorated, (self.decorated,)


#: The recipe class of each map function, ``{buffer_stream: its class, ...}``:
#: ``Streamer(buffer_stream, stream, 32)`` makes one (see ``_Made``).
#: ``shoal.maps``, a layer above, fills it in as it defines its recipes.
MAP_RECIPES: dict = {}

# How a Streamer gets a fresh iterator from its source.
_CALL = "call"  # call source(*args, **kwargs): a generator function or any callable
_ITERATE = "iterate"  # iter(source): a re-iterable collection
_ONE_SHOT = "one-shot"  # the source is itself an iterator: it streams once
_COPY = "copy"  # an iterator with a copy of its start: each pass iterates a copy of that
_DELEGATE = "delegate"  # the source is another Streamer
_LEAF_KINDS = (_CALL, _ITERATE, _ONE_SHOT, _COPY)

# The states of a generator that has given an item and not ended: an open pass.
_STARTED = (inspect.GEN_SUSPENDED, inspect.GEN_RUNNING)


class _Indexable:
    """An empty sequence without ``__iter__``: Python iterates it by index.

    ``iter()`` and ``reversed()`` of it are Python's plain sequence iterators,
    which numpy arrays, among others, use too.
    """

    def __len__(self):
        return 0

    def __getitem__(self, index):
        raise IndexError(index)


def _iterator_types(collections_, make=iter):
    return {type(make(collection)) for collection in collections_}


# Iterators whose copy (``copy.copy``) is a position in their own collection, or
# in a snapshot of it: a copy reads on independently of the iterator, whatever
# either gives. (A copy of an iterator over another iterator, such as ``map``,
# ``zip`` or ``itertools.islice``, shares that one: reading it would move both.)
_RESTARTABLE = frozenset(
    _iterator_types([[], (), range(0), range(2**64), "", "\u00e9", b"", bytearray(), {},
                     {}.values(), {}.items(), set(), frozenset(), array.array("b"), deque(),
                     _Indexable()])
    | _iterator_types([[], range(0), {}, {}.values(), {}.items(), deque(), _Indexable()],
                      reversed)
    # itertools' own copies (deprecated from Python 3.12 on, and gone in 3.14)
    | ({itertools.count, itertools.repeat, itertools.product, itertools.permutations,
        itertools.combinations, itertools.combinations_with_replacement}
       if sys.version_info < (3, 12) else set())
)


def _restart_copy(iterator):
    """A copy of ``iterator`` at its position now, independent of it; None if it has none.

    An iterator of the types above has one, and so has one whose class
    defines ``__copy__`` (its own promise of an independent copy); a
    generator, a file or an iterator over another iterator has none.
    """
    kind = type(iterator)
    if kind not in _RESTARTABLE and getattr(kind, "__copy__", None) is None:
        return None
    try:
        start = copy.copy(iterator)
    except Exception:
        return None
    return None if start is iterator else start


class _Made(type):
    """The metaclass of the recipes: ``Streamer(...)`` picks the class of what it makes.

    ``Streamer(buffer_stream, stream, 32)`` is a recipe of the class that
    :data:`MAP_RECIPES` gives for ``buffer_stream`` (a Streamer subclass),
    or, where the stream maps itself (``Recipe._mapped``: a Shares stream
    maps each share), what the stream makes of the map; any other source
    makes a Streamer. ``inspect.signature`` of a recipe class reads its
    ``__init__``.
    """

    def __call__(cls, *args, **kwargs):
        if cls is Streamer and (args or "source" in kwargs):
            source = args[0] if args else kwargs["source"]
            try:
                made = MAP_RECIPES.get(source, cls)
            except TypeError:  # an unhashable source (a list): no map
                made = cls
            if made is not cls:
                stream = args[1] if len(args) > 1 else kwargs.get("stream")
                if isinstance(stream, Recipe):
                    rest = {key: value for key, value in kwargs.items()
                            if key not in ("source", "stream")}
                    mapped = stream._mapped(source, args[2:], rest)
                    if mapped is not None:
                        return mapped
                cls = made
        return type.__call__(cls, *args, **kwargs)

    @property
    def __signature__(cls):
        signature = inspect.signature(cls.__init__)
        return signature.replace(parameters=list(signature.parameters.values())[1:])


class Streamer(Recipe, metaclass=_Made):
    """A recipe for a stream that can be iterated again and again.

    Every iteration calls the source afresh (or iterates it afresh), so a
    finite generator function can be streamed for any number of passes.
    Neither the source nor its arguments are ever copied.

    Parameters
    ----------
    source : callable, iterable, iterator or Streamer
        - A generator function, or any callable that returns an iterable:
          called with ``*args`` and ``**kwargs`` at the start of every
          iteration.
        - A re-iterable collection (list, tuple, range, array, ...):
          iterated from the start at every iteration.
        - An iterator whose copy (``copy.copy``) reads on independently
          of it: an iterator over a list, tuple, range, string, bytes,
          dict, set, deque or array, an object of a class that defines
          ``__copy__``, and ``itertools.count``, ``repeat``, ``product``,
          ``permutations`` and ``combinations`` before Python 3.12. It is
          copied now, where it stands, and every pass reads a copy of that
          copy, so that every pass gives the same items, and a saved state
          resumes exactly; the iterator itself is never read. (pescador
          copies it at every pass too.)
        - Any other iterator, such as a generator object, a file, or an
          iterator over another iterator (``map``, ``zip``, ``enumerate``,
          ``filter``, ``itertools.chain``, ...), whose copy would move with
          it: a one-shot source. It streams once (a pass stopped early
          leaves the rest for the next one); restarting it after it ran
          out raises :class:`~shoal.SpentSourceError`. (pescador
          deep-copies such an iterator at every pass, which fails for a
          generator; shoal copies nothing deeply.)
        - Another ``Streamer`` (a mux included): streamed as it is.
    *args, **kwargs
        Arguments for ``source`` when it is callable.

    Raises
    ------
    ShoalTypeError
        If ``source`` is none of the above, arguments are given for a
        source that is not callable, or the source cannot be called with
        the arguments given (checked now, not at the first item; a map such
        as :func:`buffer_stream` also checks its own arguments now).

    See Also
    --------
    streamable : make a generator function return Streamers.

    Examples
    --------
    >>> def count_up(n):
    ...     for i in range(n):
    ...         yield i
    >>> stream = Streamer(count_up, 5)
    >>> list(stream)
    [0, 1, 2, 3, 4]
    >>> list(stream)  # every iteration starts afresh
    [0, 1, 2, 3, 4]
    >>> list(stream.iterate(max_iter=3))
    [0, 1, 2]
    >>> list(stream.cycle(max_iter=7))
    [0, 1, 2, 3, 4, 0, 1]
    >>> list(stream(max_iter=7, cycle=True))
    [0, 1, 2, 3, 4, 0, 1]
    """

    #: How a recipe of this class makes its passes, for a subclass that makes
    #: them itself (a mux, a worker stream); None: as its source's type says.
    _OWN_KIND: str | None = None

    def __init__(self, source: Callable[..., Iterable[Any]] | Iterable[Any], *args: Any,
                 **kwargs: Any) -> None:
        if self._OWN_KIND is not None:
            kind = self._OWN_KIND
        elif isinstance(source, Streamer):
            kind = _DELEGATE
        elif callable(source):
            kind = _CALL
        elif isinstance(source, collections.abc.Iterator):
            kind = _ONE_SHOT
        elif is_iterable(source):
            kind = _ITERATE
        else:
            raise ShoalTypeError(
                "source must be a generator function or other callable returning an "
                "iterable, an iterable, an iterator or a Streamer, "
                f"got {short_repr(source)} ({type(source).__name__})"
            )
        if kind != _CALL and (args or kwargs):
            raise ShoalTypeError(
                f"arguments were given for source {short_repr(source)}, which is not "
                f"callable: args={short_repr(args)}, kwargs={short_repr(kwargs)}"
            )
        self.source: Any = source  # a callable, an iterable, an iterator or a Streamer
        self.args = args
        self.kwargs = kwargs
        if kind == _ONE_SHOT:
            # An iterator that can be copied restarts from a copy of where it is now.
            self._start_copy = _restart_copy(source)
            if self._start_copy is not None:
                kind = _COPY
        self._kind = kind
        if kind == _CALL:
            self._check_call()
        # Does a pass need no node to report its state (see _open_node)?
        self._plain_leaf = kind in _LEAF_KINDS
        # Only a one-shot source can run out for good: it says so once it has.
        self._one_shot = _OneShot() if kind == _ONE_SHOT else None

    def _check_call(self):
        """Refuse now arguments the source cannot be called with (not at the first item)."""
        source = self.source
        try:
            signature = inspect.signature(source)
        except (TypeError, ValueError):  # a builtin or an odd callable: it will tell when called
            return
        try:
            signature.bind(*self.args, **self.kwargs)
        except TypeError as exc:
            raise ShoalTypeError(
                f"arguments=({short_repr(self.args)}, {short_repr(self.kwargs)}) do not fit "
                f"source {short_repr(source)}: {exc}"
            ) from None

    @property
    def streamer(self) -> Any:
        """The source, under the attribute name pescador uses."""
        return self.source

    @property
    def active(self) -> int:
        """The number of passes of this stream open now, as pescador counts them.

        A ``with`` block counts from its start to its end; a pass of
        :meth:`iterate`, :meth:`cycle`, a call or ``iter()``, and a
        :meth:`iterator`, count from their first item until they end or are
        closed. A pass that a mux or another streamer opens on this one is
        theirs: it counts in their ``active``, not here (pescador counts it
        on a copy).

        Examples
        --------
        >>> stream = Streamer(range(3))
        >>> stream.active
        0
        >>> with stream:
        ...     with stream:
        ...         print(stream.active)
        2
        >>> items = iter(stream)
        >>> next(items), stream.active
        (0, 1)
        >>> items.close()
        >>> stream.active
        0
        """
        opened = _OPENED.get(self)
        if opened is None:
            return 0
        return len(opened.entered) + sum(
            inspect.getgeneratorstate(gen) in _STARTED for gen in list(opened.passes))

    def _opened(self, gen):
        """Return ``gen``, a pass opened for this stream's caller, counted in :attr:`active`."""
        _opened_passes(self).passes.add(gen)
        return gen

    def __getstate__(self):
        # A recipe pickles as its configuration (what a worker process needs).
        state = dict(self.__dict__)
        decorated = getattr(state.get("source"), STREAMABLE, None)
        if decorated is not None and _module_holds(decorated):
            # The module holds the @streamable function under the function's
            # name: pickle that, and take the function back out of it.
            state["source"] = _Decorated(decorated)
        return state

    def __setstate__(self, state):
        if isinstance(state.get("source"), _Decorated):
            state["source"] = state["source"].decorated.__wrapped__
        self.__dict__.update(state)

    # -- iteration ---------------------------------------------------------

    def _open(self, max_iter=None):
        """Start one pass: return a generator over the source's items."""
        kind = self._kind
        if kind == _DELEGATE:
            return self.source._open(max_iter)
        if kind == _ONE_SHOT:
            return self._open_one_shot(max_iter)
        return self._run(self._open_items(), max_iter)

    def _open_items(self):
        """Start one pass: return an iterator over the source's items.

        Muxes read their streamers through this, without the generator layer
        of :meth:`_open`: they add the error notes and close what they open.
        """
        kind = self._kind
        if kind == _CALL:
            result = self.source(*self.args, **self.kwargs)
            try:
                return iter(result)
            except TypeError:
                raise ShoalTypeError(
                    f"source of {self!r} returned {short_repr(result)} "
                    f"({type(result).__name__}), which is not iterable"
                ) from None
        if kind == _ITERATE:
            return iter(self.source)
        if kind == _COPY:
            return copy.copy(self._start_copy)
        return self._open()

    def _open_node(self, state=None, track=False, key=None):
        """Open one pass for a reader that tracks state: return ``(node, iterator)``.

        ``node`` holds what the pass needs to report and restore its state;
        ``iterator`` gives the items. With ``state``, the pass starts where
        that state says. (``track`` matters to muxes only.) ``key`` is what a
        parent mux hands down for this activation (see ``shoal._random.TreeSeed``);
        a mux, or a map over one, draws from it, and a leaf ignores it.
        """
        kind = self._kind
        if kind == _DELEGATE:
            return self.source._open_node(state, track, key)
        if kind == _ONE_SHOT:
            if state is not None and state.get("given"):
                raise self._not_rewindable()
            return None, self._open()
        # A leaf has no node: its state is what _node_state says of its iterator.
        return None, (self._open_items() if state is None else self._resumed_iter(state))

    def _ready_state(self, state, path="state", n_given=None):
        """``state``, the state of a pass opened by :meth:`_open_node`, checked and made ready.

        See ``Recipe._ready_state``. A leaf's state is the count of items it
        gave (which must be its parent's count for it), or its source's own
        state; a Streamer over a stream and a map hand the state of their
        input to it. Opens nothing.
        """
        if state is None:
            return None
        kind = self._kind
        if kind == _DELEGATE:
            return self.source._ready_state(state, path, n_given)
        if isinstance(state, dict) and "source" in state:
            return state  # the source's iterator checks its own state
        check_fields(state, LEAF_STATE, path)
        if n_given is not None and state["given"] != n_given:
            raise state_error(f"{path}['given']", f"{n_given}, the count of its parent",
                              state["given"])
        if kind == _ONE_SHOT and state["given"]:
            raise self._not_rewindable()
        return state

    def _not_rewindable(self):
        """The error for a state past the start of a one-shot source."""
        return ShoalValueError(
            f"cannot restore {self!r}: it wraps an iterator, which cannot be rewound; pass a "
            "generator function (with its arguments) or a collection to make it resumable"
        )

    @property
    def _has_workers(self):
        """Does a pass run in worker processes of its own (see ``StreamIterator.worker_stats``)?"""
        if self._kind == _DELEGATE:
            return self.source._has_workers
        return False

    @property
    def _takes_key(self):
        """Does a pass draw from the key a parent mux hands it (see :meth:`_child`)?

        A mux does, and so does a Streamer of one, a map over one, and a cache.
        """
        if self._kind == _DELEGATE:
            return self.source._takes_key
        return False

    def _node_state(self, node, it, n_given):
        """The state of a pass opened by :meth:`_child`, which gave ``n_given`` items."""
        if node is not None:
            return node.state_dict(n_given)
        own = getattr(it, "state_dict", None)
        if own is not None and hasattr(it, "load_state_dict"):
            return {"source": own()}
        return {"given": n_given}

    def _root_node(self, cycle, state):
        """The node of a whole iteration: its passes, one by one (see ``LeafRoot``)."""
        return LeafRoot(self, cycle, state)

    def _ready_root(self, root, n_given, path="state['state']"):
        """``root``, a saved ``LeafRoot`` state, with its open pass's state made ready."""
        if root is None:
            return None  # a fresh start
        check_fields(root, ROOT_STATE, path)
        if root["child"] is None:
            return root  # between passes: nothing open to make ready
        if root["offset"] > n_given:
            raise state_error(f"{path}['offset']", f"at most {n_given}", root["offset"])
        return {**root, "child": self._ready_state(root["child"], f"{path}['child']",
                                                   n_given - root["offset"])}

    def _pass_of_root(self, root, n_given):
        return LeafRoot.pass_of(root, n_given)

    def _root_of_pass(self, state, n_given):
        return LeafRoot.root_of(state, n_given)

    def _reshard_pass(self, passes, count, new_count):
        """The passes of ``new_count`` shares that go on from those of ``count`` (see
        ``shoal.reshard_states``): ``passes[i]`` is ``(state, n_given)`` of share ``i``."""
        if self._kind == _DELEGATE:
            return self.source._reshard_pass(passes, count, new_count)
        raise NotResharded(f"cannot reshard the states of {self!r}: it is one stream")

    def _resumed_iter(self, state):
        """An iterator over the source, positioned as ``state`` says."""
        if "source" in state:  # the source's iterator keeps its own state
            it = self._open_items()
            it.load_state_dict(state["source"])
            return it
        given = state["given"]
        start = getattr(self.source, RESUME_ARG, None) if self._kind == _CALL else None
        if start is not None and given:
            # Bind the arguments as given, then set the start (it may be among them).
            bound = inspect.signature(self.source).bind_partial(*self.args, **self.kwargs)
            bound.arguments[start] = given
            return iter(self.source(*bound.args, **bound.kwargs))
        return skip_items(self, self._open_items(), given)

    def _open_one_shot(self, max_iter):
        if self._one_shot.spent:
            raise SpentSourceError(
                f"{self!r} wraps an iterator, which streams once, and it has run out "
                "(an iterator restarts only if a copy of it reads on by itself, as an "
                "iterator over a list does; a generator, a map or a zip does not); pass a "
                "generator function (with its arguments) or a collection to stream it again"
            )
        return self._run_one_shot(max_iter)

    def _run(self, it, max_iter):
        # The iterator was opened here, so it is closed here, whatever ends the pass.
        try:
            if max_iter is None:
                yield from it
            elif max_iter:
                yield from islice(it, max_iter)
        except Exception as exc:
            add_note(exc, f"raised while iterating {self!r}")
            raise
        finally:
            close_quietly(it)

    def _run_one_shot(self, max_iter):
        # Not ours to close: a later pass continues where this one stopped.
        # (So no ``yield from``, which would close it when this pass is closed.)
        it = self.source
        n = 0
        try:
            if max_iter == 0:
                return
            for item in it:
                yield item
                n += 1
                if n == max_iter:
                    return
        except Exception as exc:
            add_note(exc, f"raised while iterating {self!r}")
            raise
        self._one_shot.spent = True

    def iterate(self, max_iter: int | float | None = None) -> Generator[Any, None, None]:
        """Stream one pass over the source.

        Parameters
        ----------
        max_iter : None or int >= 0
            The most items to yield; ``None`` (or ``inf``, or a number beyond
            ``sys.maxsize``) streams the whole pass.

        Returns
        -------
        generator
            A fresh generator. Closing it (or dropping it) closes the
            generator it opened on the source.
        """
        return self._opened(self._open(check_max_iter(max_iter)))

    def cycle(self, max_iter: int | float | None = None) -> Generator[Any, None, None]:
        """Stream pass after pass, restarting the source whenever it ends.

        Parameters
        ----------
        max_iter : None or int >= 0
            The most items to yield in all; ``None`` streams forever.

        Returns
        -------
        generator

        Raises
        ------
        EmptyStreamError
            When a pass yields no item, instead of spinning forever.
        """
        return self._opened(self._open_cycle(check_max_iter(max_iter)))

    def _open_cycle(self, max_iter):
        gen = self._cycle()
        return gen if max_iter is None else limited(gen, max_iter)

    def _cycle(self):
        while True:
            gen = self._open()
            try:
                first = next(gen, END)
                if first is END:
                    raise empty_pass(self)
                yield first
                yield from gen
            finally:
                gen.close()  # at once, and so that an error of its close() is raised here

    def shard(self, index: int, count: int) -> "Streamer":
        """This stream's share ``index`` of ``count``, for one of ``count`` workers or hosts.

        A mux gives the mux over its streamers ``index::count`` (see
        :meth:`BaseMux.shard`). A map over a stream, such as
        ``Streamer(buffer_stream, mux, 32)``, gives the same map over the
        stream's share: ``Streamer(buffer_stream, mux.shard(index, count),
        32)`` (a ``cache``'s seed is derived from its seed and ``index``). A
        streamer over another streamer gives a streamer over its share.
        ``shard(0, 1)`` is the stream itself.

        Parameters
        ----------
        index : int
            Which share, ``0 <= index < count``.
        count : int >= 1
            How many shares.

        Raises
        ------
        ShoalValueError
            For a bad ``index`` or ``count``, or when ``count > 1`` and the
            stream is one stream (a generator function, a collection, an
            iterator): each share would give the same items.
        ShoalTypeError
            If ``index`` or ``count`` is not an integer.

        Examples
        --------
        >>> from shoal import ChainMux, buffer_stream
        >>> batches = Streamer(buffer_stream, ChainMux(["ab", "cd", "ef", "gh"]), 2)
        >>> [[b.tolist() for b in batches.shard(i, 2)] for i in range(2)]
        [[['a', 'b'], ['e', 'f']], [['c', 'd'], ['g', 'h']]]
        """
        index, count = checked_share(self, index, count)
        if count == 1:
            return self
        return Streamer(self.source.shard(index, count))  # only a streamer over a stream has one

    def _share_refusal(self, count):
        """Why this stream has no ``count`` shares, or None (see ``shoal._contract.Recipe``).

        A streamer over a stream answers as that stream does; any other
        streamer is one stream (a ``_contract.OneStream``). A mux and a map
        over a stream answer for themselves.
        """
        if getattr(self, "_kind", None) == _DELEGATE:
            return self.source._share_refusal(count)
        return super()._share_refusal(count)

    def iterator(self, cycle: bool = False) -> StreamIterator:
        """Iterate in a way that can save its state and resume from it.

        Parameters
        ----------
        cycle : bool
            Start a new pass whenever one ends, as :meth:`cycle` does.

        Returns
        -------
        StreamIterator
            An iterator with ``state_dict()`` and ``load_state_dict(state)``.
        """
        return StreamIterator(self, cycle)

    def __call__(self, max_iter: int | float | None = None,
                 cycle: bool = False) -> Generator[Any, None, None]:
        """Stream one pass, or cycle if ``cycle`` is true.

        Same as ``cycle(max_iter)`` or ``iterate(max_iter)``.
        """
        if check_bool("cycle", cycle):
            return self.cycle(max_iter)
        return self.iterate(max_iter)

    def __iter__(self) -> Generator[Any, None, None]:
        return self._opened(self._open())

    def __enter__(self) -> Generator[Any, None, None]:
        """Open a pass for a ``with`` block; it is closed when the block ends.

        Examples
        --------
        >>> with Streamer(range(3)) as items:
        ...     print(next(items))
        0
        """
        gen = self._open()
        _opened_passes(self).entered.append(gen)
        return gen

    def __exit__(self, *exc_info: object) -> Literal[False]:
        opened = _OPENED.get(self)
        entered = opened.entered if opened is not None else None
        if not entered:  # as pescador: an error of its own, not a bare one
            raise ShoalValueError(f"{self!r} was exited more times than it was entered")
        entered.pop().close()
        return False

    def __repr__(self):
        source = self.source
        if self._kind == _CALL:
            name = getattr(source, "__name__", None) or short_repr(source)
        else:
            name = short_repr(source)
        parts = [name, *map(short_repr, self.args)]
        parts += [f"{key}={short_repr(value)}" for key, value in self.kwargs.items()]
        return f"{type(self).__name__}({', '.join(parts)})"


class _OneShot:
    """Whether a one-shot source (an iterator) has run out: it streams once."""

    __slots__ = ("spent",)

    def __init__(self):
        self.spent = False


class _Opened:
    """The passes of a recipe open for its callers: ``with`` blocks, and the others."""

    __slots__ = ("entered", "passes", "__weakref__")

    def __init__(self):
        self.entered = []  # the passes of the `with` blocks open, innermost last
        self.passes = weakref.WeakSet()  # the passes of iterate(), cycle(), iter(), ...


# The passes open for each recipe's callers (pescador's `active`): kept here, not on
# the recipe, which never changes while it is iterated.
_OPENED: "weakref.WeakKeyDictionary[Streamer, _Opened]" = weakref.WeakKeyDictionary()


def _opened_passes(recipe):
    opened = _OPENED.get(recipe)
    if opened is None:
        opened = _OPENED[recipe] = _Opened()
    return opened


def _make_streamer(function, *args, **kwargs):
    return Streamer(function, *args, **kwargs)


def streamable(function: Callable[_P, Iterable[Any]]) -> Callable[_P, Streamer]:
    """Make a generator function return a :class:`Streamer` when called.

    The decorated function keeps its name, signature and docstring.

    Examples
    --------
    >>> @streamable
    ... def count_up(n):
    ...     "Count from 0 to n - 1."
    ...     yield from range(n)
    >>> stream = count_up(3)
    >>> stream
    Streamer(count_up, 3)
    >>> list(stream), list(stream)
    ([0, 1, 2], [0, 1, 2])
    """
    if not callable(function):
        raise ShoalTypeError(
            f"streamable decorates a generator function, got {short_repr(function)} "
            f"({type(function).__name__})"
        )
    try:
        decorated = decorate(function, _make_streamer, kwsyntax=True)
    except (AttributeError, TypeError, ValueError):  # a callable that is not a function
        raise ShoalTypeError(
            f"streamable decorates a generator function, got {short_repr(function)} "
            f"({type(function).__name__})"
        ) from None
    with contextlib.suppress(AttributeError, TypeError):
        setattr(function, STREAMABLE, decorated)
    # decorate() keeps the function's signature; the wrapper returns a Streamer.
    return cast("Callable[_P, Streamer]", decorated)


def skip_items(streamer, it, given):
    """Skip the first ``given`` items of ``it``, a new pass of ``streamer``; return ``it``.

    Restart and skip: right for any source that yields the same items every
    time it is started. A source that yields fewer is an error.
    """
    if given:
        counter = repeat(True, given)
        deque(compress(islice(it, given), counter), maxlen=0)
        if counter.__length_hint__():
            raise ShoalValueError(
                f"cannot restore {streamer!r} after {given} items: it now yields only "
                f"{given - counter.__length_hint__()}; a source resumed by skipping "
                "must yield the same items every time it is started"
            )
    return it


def resume_arg(name: str) -> Callable[[_F], _F]:
    """Declare the keyword argument that starts a generator function at an item.

    A stream resumes a plain generator function by starting it again and
    skipping the items it had given, which takes as long as producing them.
    A generator function decorated with ``@resume_arg("start")`` is instead
    called with ``start=n`` to resume after ``n`` items, and must then yield
    its items from the ``n``-th on.

    Put it under :func:`streamable` when using both.

    Parameters
    ----------
    name : str
        The name of the keyword argument.

    Examples
    --------
    >>> @streamable
    ... @resume_arg("start")
    ... def rows(n, start=0):
    ...     yield from range(start, n)
    >>> it = rows(5).iterator()
    >>> next(it), next(it)
    (0, 1)
    >>> resumed = rows(5).iterator()
    >>> resumed.load_state_dict(it.state_dict())
    >>> list(resumed)
    [2, 3, 4]
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ShoalTypeError(f"resume_arg takes the name of a keyword argument, got {short_repr(name)}")

    def mark(function):
        if not callable(function):
            raise ShoalTypeError(
                f"resume_arg decorates a generator function, got {short_repr(function)}"
            )
        setattr(function, RESUME_ARG, name)
        return function

    return mark
