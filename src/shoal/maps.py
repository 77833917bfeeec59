"""Maps: functions that transform a stream of items into another stream.

Each map checks its arguments when it is called and returns a generator.
The generator closes what it opened when it is closed, or when it ends.
"""

import collections.abc
import contextlib
import inspect
import numbers
from itertools import compress, islice
from operator import itemgetter

import numpy as np

from ._checks import check_int, check_recipe, is_iterable, short_repr
from ._counter import counter_at, given, hand_counter
from ._iterutil import END, close_quietly
from ._random import (
    Draws,
    PassRandom,
    TreeSeed,
    as_seed_sequence,
    below,
    seed_to_plain,
    share_seed,
)
from .core import Streamer
from .exceptions import DataError, DataKeyError, ShoalTypeError, ShoalValueError
from .util import get_rng  # noqa: F401 - pescador's maps module holds it too

__all__ = ["buffer_stream", "tuples", "keras_tuples", "cache"]

def _check_stream(stream):
    if not is_iterable(stream):
        raise ShoalTypeError(
            f"stream must be iterable, got {short_repr(stream)} ({type(stream).__name__})"
        )


@contextlib.contextmanager
def _reading(stream):
    """An iterator over ``stream``; closed at the end if this opened it.

    A map given an iterator does not close it: it is the caller's.
    """
    it = iter(stream)
    try:
        yield it
    finally:
        if it is not stream:
            close_quietly(it)


def buffer_stream(stream, buffer_size, partial=False, axis=None):
    """Collect items into batches of ``buffer_size``.

    Items may be dicts of arrays (stacked key by key), tuples or lists of
    arrays (stacked position by position), or arrays and numbers. Other
    values, such as a dict of metadata, ``None`` or a string, are batched
    as pescador batches them: numpy's array of them, which for dicts and
    ``None`` is an object array of shape ``(n,)`` (numbers mixed with
    strings are kept as they are, in an object array, where numpy would
    turn them into strings).

    Parameters
    ----------
    stream : iterable
        The items to batch: a Streamer, a mux, or any iterable.
    buffer_size : int >= 1
        The number of items per batch.
    partial : bool
        Yield a last, smaller batch if the stream ends mid-batch.
    axis : None or int
        ``None`` stacks the items along a new first axis. An int
        concatenates them along that existing axis, for items that are
        already batches.

    Yields
    ------
    batch : dict, tuple, list or ndarray
        Shaped like the items, with arrays of ``buffer_size`` items.

    Raises
    ------
    DataError
        If the items of a batch do not match: different keys, lengths or
        shapes (arrays of different shapes, or arrays mixed with other
        objects). The message names the key.

    Examples
    --------
    >>> import numpy as np
    >>> def numbers(n):
    ...     for i in range(n):
    ...         yield {"x": np.array([i, i]), "y": i % 2}
    >>> batches = buffer_stream(Streamer(numbers, 5), 2, partial=True)
    >>> for batch in batches:
    ...     print(batch["x"].tolist(), batch["y"].tolist())
    [[0, 0], [1, 1]] [0, 1]
    [[2, 2], [3, 3]] [0, 1]
    [[4, 4]] [0]

    Metadata rides along as an object array:

    >>> def clips():
    ...     for i in range(2):
    ...         yield {"x": np.zeros(3), "meta": {"file": f"{i}.wav"}}
    >>> batch = next(buffer_stream(clips(), 2))
    >>> batch["meta"]
    array([{'file': '0.wav'}, {'file': '1.wav'}], dtype=object)

    Items that are already batches are joined along their own first axis:

    >>> def small_batches():
    ...     for i in range(4):
    ...         yield {"x": np.full(2, i)}
    >>> next(buffer_stream(small_batches(), 2, axis=0))["x"].tolist()
    [0, 0, 1, 1]
    """
    _check_stream(stream)
    buffer_size = check_int("buffer_size", buffer_size, minimum=1)
    if not isinstance(partial, (bool, np.bool_)):
        raise ShoalTypeError(f"partial must be True or False, got {short_repr(partial)}")
    if axis is not None:
        axis = check_int("axis", axis)
    return _buffer(stream, buffer_size, bool(partial), axis)


def _buffer(stream, buffer_size, partial, axis):
    with _reading(stream) as it:
        while True:
            batch = list(islice(it, buffer_size))
            if len(batch) == buffer_size:
                yield _stack(batch, axis)
            else:
                if batch and partial:
                    yield _stack(batch, axis)
                return


def _stack(items, axis):
    first = items[0]
    if type(first) is dict or isinstance(first, collections.abc.Mapping):
        return _stack_dicts(items, first, axis)
    if isinstance(first, (tuple, list)):
        return _stack_sequences(items, first, axis)
    return _join(items, axis, None)


def _stack_dicts(items, first, axis):
    out = {}
    str_keys = True  # a sequence or an array answers item[0] as a dict would
    for key in first:
        if type(key) is not str:
            str_keys = False
        try:
            values = list(map(itemgetter(key), items))
        except Exception as exc:
            _check_mappings(items)
            at = None
            if isinstance(exc, KeyError):
                at = next((i for i, item in enumerate(items) if key not in item), None)
            if at is None:  # a mapping's own error: raised as it is
                raise
            raise DataKeyError(
                f"item {at} of a batch has no key {key!r} (its keys: "
                f"{short_repr(list(items[at]))}); the first item has {short_repr(list(first))}"
            ) from None
        try:
            out[key] = _join(values, axis, key)
        except DataError:
            if not str_keys:  # a sequence's values, say: that is the story
                _check_mappings(items)
            raise
    n_keys = len(first)
    try:
        n_all = sum(map(len, items))
    except TypeError:  # an item without a length: not a mapping
        _check_mappings(items)
        raise  # a mapping's own error
    if n_all != n_keys * len(items) or not n_keys or not str_keys:
        # Not every item has exactly the first's keys, or there are no keys to
        # look up, or keys that index a sequence: see that every item is a
        # mapping (a list, say, would pass for one).
        _check_mappings(items)
        if n_all != n_keys * len(items):
            at, extra = next(
                (i, set(item) - set(first)) for i, item in enumerate(items) if len(item) != n_keys
            )
            raise DataKeyError(
                f"item {at} of a batch has keys the first item lacks: "
                f"{short_repr(sorted(map(str, extra)))}"
            )
    return out


def _check_mappings(items):
    """Raise the DataError that names the first item of ``items`` that is not a mapping, if any.

    (Called while handling the error it explains, which it does not chain.)
    """
    if not all(isinstance(item, collections.abc.Mapping) for item in items):
        error = DataError(_mixed_kinds(items, collections.abc.Mapping, "dict"))
        error.__suppress_context__ = True
        raise error


def _stack_sequences(items, first, axis):
    size = len(first)
    for at, item in enumerate(items):
        if not isinstance(item, (tuple, list)):
            raise DataError(_mixed_kinds(items, (tuple, list), "tuple"))
        if len(item) != size:
            raise DataError(
                f"item {at} of a batch has {len(item)} fields, the first item has {size}"
            )
    fields = [_join(list(values), axis, index) for index, values in enumerate(zip(*items))]
    return tuple(fields) if isinstance(first, tuple) else fields


def _mixed_kinds(items, kinds, name):
    at = next(i for i, item in enumerate(items) if not isinstance(item, kinds))
    return (
        f"item {at} of a batch is {short_repr(items[at])} ({type(items[at]).__name__}), "
        f"but the first item is a {name}"
    )


def _join(values, axis, key):
    try:
        if axis is None:
            out = np.array(values)
        else:
            out = np.concatenate(values, axis=axis)
    except (ValueError, TypeError) as exc:
        raise DataError(_unbatchable(values, key, exc)) from exc
    if axis is None:
        if out.dtype == object:
            # Python objects (dicts, None, ...) batch as an array of shape (n,) of
            # them, as in pescador; arrays or sequences of other shapes do not.
            if len({_shape(value) for value in values}) > 1:
                raise DataError(_unbatchable(values, key, None))
        elif out.dtype.kind in "US" and not all(isinstance(v, (str, bytes)) for v in values):
            # numpy would turn numbers among strings into strings: keep each as it is.
            if any(isinstance(v, (numbers.Number, np.bool_)) for v in values):
                out = _objects(values)
    return out


def _shape(value):
    """The shape numpy sees in ``value``, or None for a ragged nesting."""
    try:
        return np.shape(value)
    except ValueError:
        return None


def _objects(values):
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def _unbatchable(values, key, exc):
    """The message of a batch whose ``values`` (under ``key``) numpy cannot batch.

    It names the first item that differs from the first item, in shape or
    else in type, or else the first item.
    """
    where, has = ("", "is") if key is None else (f" under key {key!r}", "has")
    shapes = [_shape(value) for value in values]
    if len(set(shapes)) > 1:  # a dict or None has the shape ()
        shown = sorted(("ragged" if shape is None else shape for shape in set(shapes)), key=str)
        at = next(i for i, shape in enumerate(shapes) if shape != shapes[0])
        return (f"cannot batch the values{where}: their shapes differ ({short_repr(shown)}); "
                f"item {at} {has} {short_repr(values[at])} ({_shape_text(shapes[at])}), "
                f"item 0 has {_shape_text(shapes[0])}")
    kinds = [type(value) for value in values]
    at = next((i for i, kind in enumerate(kinds) if kind is not kinds[0]), 0)
    if at:
        return (f"cannot batch the values{where}: {exc}; item {at} {has} "
                f"{short_repr(values[at])} ({kinds[at].__name__}), item 0 {has} "
                f"{short_repr(values[0])} ({kinds[0].__name__})")
    return (f"cannot batch the values{where}: {exc}; item 0 {has} {short_repr(values[0])} "
            f"({kinds[0].__name__})")


def _shape_text(shape):
    return "ragged" if shape is None else f"shape {shape}"


def _check_keys(name, keys):
    for key in keys:
        if not isinstance(key, collections.abc.Hashable):
            raise ShoalTypeError(f"{name} must be hashable keys, got {short_repr(key)}")


def tuples(stream, *keys):
    """Turn each dict item into a tuple of its values at ``keys``.

    Parameters
    ----------
    stream : iterable
        Dict items.
    *keys
        The keys to take, in order. At least one.

    Yields
    ------
    tuple

    Raises
    ------
    DataKeyError
        If an item lacks a key (also a KeyError).
    DataError
        If an item is not a dict.

    Examples
    --------
    >>> items = [{"x": 1, "y": 2}, {"x": 3, "y": 4}]
    >>> list(tuples(items, "y", "x"))
    [(2, 1), (4, 3)]
    """
    _check_stream(stream)
    if not keys:
        raise ShoalValueError("tuples needs at least one key, got none")
    _check_keys("keys", keys)
    return _tuples(stream, keys)


def _take(item, getter, keys):
    try:
        return getter(item)
    except KeyError:
        if not isinstance(item, collections.abc.Mapping):
            raise DataError(f"items must be dicts, got {short_repr(item)}") from None
        missing = [key for key in keys if key not in item]
        raise DataKeyError(
            f"item has no key {short_repr(missing[0])} (its keys: {short_repr(list(item))})"
        ) from None
    except (TypeError, IndexError, OverflowError):
        raise DataError(
            f"items must be dicts, got {short_repr(item)} ({type(item).__name__})"
        ) from None


def _tuples(stream, keys):
    getter = itemgetter(*keys)
    single = len(keys) == 1
    with _reading(stream) as it:
        for item in it:
            try:
                values = getter(item)
            except (KeyError, TypeError, IndexError, OverflowError):
                values = _take(item, getter, keys)  # raises the error that explains it
            yield (values,) if single else values


def _key_list(name, keys):
    """Return (list of keys, whether a single key was given) for keras_tuples."""
    if keys is None:
        return [], False
    if isinstance(keys, str):
        return [keys], True
    if is_iterable(keys):
        keys = list(keys)
        _check_keys(name, keys)
        return keys, False
    raise ShoalTypeError(
        f"{name} must be None, a key or a list of keys, got {short_repr(keys)} "
        f"({type(keys).__name__})"
    )


def keras_tuples(stream, inputs=None, outputs=None):
    """Turn dict items into ``(x, y)`` tuples, as Keras expects.

    Parameters
    ----------
    stream : iterable
        Dict items.
    inputs, outputs : None, str or list of str
        The keys of ``x`` and ``y``. A single key gives that value; a list
        gives a list of values; ``None`` gives ``None``. At least one of the
        two must be given.

    Yields
    ------
    (x, y) : tuple

    Examples
    --------
    >>> items = [{"a": 1, "b": 2, "label": 0}]
    >>> list(keras_tuples(items, inputs="a", outputs="label"))
    [(1, 0)]
    >>> list(keras_tuples(items, inputs=["a", "b"], outputs="label"))
    [([1, 2], 0)]
    """
    _check_stream(stream)
    input_keys, single_input = _key_list("inputs", inputs)
    output_keys, single_output = _key_list("outputs", outputs)
    if not input_keys and not output_keys:
        raise ShoalValueError(
            f"keras_tuples needs at least one key in inputs or outputs, got "
            f"inputs={inputs!r}, outputs={outputs!r}"
        )
    return _keras_tuples(stream, input_keys, single_input, output_keys, single_output)


def _getter(keys, single):
    """A function of an item: its value at the single key, a list of values, or None."""
    if not keys:
        return lambda item: None
    if single:
        return itemgetter(keys[0])
    if len(keys) == 1:
        key = keys[0]
        return lambda item: [item[key]]
    getter = itemgetter(*keys)
    return lambda item: list(getter(item))


def _keras_tuples(stream, input_keys, single_input, output_keys, single_output):
    get_x = _getter(input_keys, single_input)
    get_y = _getter(output_keys, single_output)
    keys = (*input_keys, *output_keys)
    with _reading(stream) as it:
        for item in it:
            try:
                pair = (get_x(item), get_y(item))
            except (KeyError, TypeError, IndexError, OverflowError):
                _take(item, itemgetter(*keys), keys)  # raises the error that explains it
                raise
            yield pair


def cache(stream, n_cache, prob=0.5, random_state=None):
    """Reuse items at random from a cache, to stretch a slow stream.

    The first ``n_cache`` items pass through in order and fill the cache.
    Then, at each step, a cached item is chosen at random; with probability
    ``prob`` it is first replaced by a new item from ``stream``. The chosen
    item is yielded. The stream ends when ``stream`` does.

    Parameters
    ----------
    stream : iterable
        The items to cache: a Streamer, a mux, or any iterable.
    n_cache : int >= 1
        The size of the cache.
    prob : float in (0, 1]
        The chance to take a new item at each step; ``1`` caches nothing.
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed. Unseeded (``None``, and no seed above), every pass draws
        afresh, from a seed drawn from numpy's global state (kept in the
        state of a resumable iteration); seeded, every pass repeats.

    Yields
    ------
    item
        Items of ``stream``, some of them more than once.

    Examples
    --------
    >>> list(cache(range(6), n_cache=2, prob=0.5, random_state=0))
    [0, 1, 1, 2, 1, 2, 1, 1, 3, 3, 3, 3, 1, 1, 4, 3, 5]
    """
    _check_stream(stream)
    n_cache = check_int("n_cache", n_cache, minimum=1)
    if isinstance(prob, (bool, np.bool_)) or not isinstance(prob, numbers.Real):
        raise ShoalTypeError(f"prob must be a number in (0, 1], got {short_repr(prob)}")
    if not 0 < prob <= 1:
        raise ShoalValueError(f"prob must be in (0, 1], got {prob!r}")
    seed = as_seed_sequence(random_state)
    return _cache(stream, n_cache, float(prob), seed)


def _cache(stream, n_cache, prob, seed):
    with _reading(stream) as it:
        yield from _CacheRun(n_cache, prob, seed).run(it)


class _CacheRun:
    """The running state of :func:`cache`: the cached items and the draws.

    When it tracks its state, it also knows the input position of every
    cached item, and keeps a few snapshots of its input's state (one every
    ``n_cache`` input items, back to the oldest cached item), so that a
    restored cache replays its input from a snapshot, not from the start.
    """

    def __init__(self, n_cache, prob, seed, saved=None, node=None, counter=None, key=None):
        self.n_cache = n_cache
        self.prob = prob
        self.recipe = _cache_recipe(n_cache, prob, seed)
        self.seed = TreeSeed(seed, key, saved)
        self.stored = []
        random = PassRandom(self.seed.pass_key())
        self.slot = Draws(random, 1, lambda rng, size: rng.integers(0, n_cache, size).tolist())
        self.take_new = Draws(random, 2, lambda rng, size: (rng.random(size) <= prob).tolist())
        # When tracking: the input's node and item counter, the input position
        # of each cached item, and snapshots (position, input state).
        self.node = node
        self.counter = counter
        self.positions = []
        self.snapshots = [(0, None)]
        self.ended = False  # has its input run out (so the cache has ended)?

    def run(self, it):
        if self.ended:  # restored after its input ran out
            return
        stored = self.stored
        tracking = self.counter is not None
        n_cache = self.n_cache
        while len(stored) < n_cache:
            item = next(it, END)
            if item is END:
                self.ended = True
                return
            stored.append(item)
            if tracking:
                self._inserted(len(stored) - 1)
            yield item
        slot, take_new, always_new = self.slot, self.take_new, self.prob == 1.0
        while True:
            index = slot()
            if always_new or take_new():
                item = next(it, END)
                if item is END:
                    self.ended = True
                    return
                stored[index] = item
                if tracking:
                    self._inserted(index)
            yield stored[index]

    def _inserted(self, index):
        """The item at the input position just read went into ``stored[index]``."""
        n = given(self.counter)
        if index < len(self.positions):
            self.positions[index] = n - 1
        else:
            self.positions.append(n - 1)
        if n % self.n_cache == 0:
            self.snapshots.append((n, self.node.input_state(n)))
            oldest = min(self.positions)
            while len(self.snapshots) > 1 and self.snapshots[1][0] <= oldest:
                del self.snapshots[0]

    def state_dict(self):
        base, base_state = self.snapshots[0]
        return {
            "recipe": dict(self.recipe),
            "seed": self.seed.saved(),
            "n_input": given(self.counter),
            "base": base,
            "base_state": base_state,
            "positions": list(self.positions),
            "draws": {"slot": self.slot.state(), "take_new": self.take_new.state()},
            "ended": self.ended,
        }

    def check(self, state):
        """Refuse the state of a cache made otherwise (see ``check_recipe``)."""
        _check_cache_recipe(state, self.recipe)

    def replay(self, it, state, base_state):
        """Refill the cache by reading ``it`` from the snapshot up to the saved position.

        ``it`` starts at the snapshot, whose input state is ``base_state``.
        """
        self.slot.restore(state["draws"]["slot"])
        self.take_new.restore(state["draws"]["take_new"])
        self.ended = state.get("ended", False)
        wanted = {}
        for index, position in enumerate(state["positions"]):
            wanted[position] = index
        self.stored.extend([None] * len(state["positions"]))
        self.positions = list(state["positions"])
        self.snapshots = [(state["base"], base_state)]
        for position in range(state["base"], state["n_input"]):
            item = next(it, END)
            if item is END:
                raise ShoalValueError(
                    f"cannot restore the cache: its input ended at item {position}, before "
                    f"item {state['n_input']}; its source must give the same items every time"
                )
            index = wanted.get(position)
            if index is not None:
                self.stored[index] = item
            if (position + 1) % self.n_cache == 0 and position + 1 > state["base"]:
                self.snapshots.append((position + 1, self.node.input_state(position + 1)))
        oldest = min(self.positions) if self.positions else 0
        while len(self.snapshots) > 1 and self.snapshots[1][0] <= oldest:
            del self.snapshots[0]


def _cache_recipe(n_cache, prob, seed):
    """What the state of a cache records of the settings it was made with."""
    return {"random_state": seed_to_plain(seed), "n_cache": n_cache, "prob": prob}


def _check_cache_recipe(state, recipe):
    """Refuse ``state``, a cache's, if it was saved by a cache made otherwise than ``recipe``."""
    if "recipe" not in state:
        raise ShoalValueError("state of a cache lacks 'recipe'")
    check_recipe(state["recipe"], recipe,
                 what=f"cache(n_cache={recipe['n_cache']}, prob={recipe['prob']}, ...)")


# -- maps as resumable streams ------------------------------------------------
#
# Streamer(buffer_stream, mux, 32), pescador's way to make a map restartable,
# is also resumable: its state is its input's state (and the cache's own).


class _MapNode:
    """A map over a tracked input stream, inside a resumable iteration."""

    __slots__ = ("name", "stream", "input_node", "counter", "cache_run", "it")

    def input_state(self, n):
        return self.stream._node_state(self.input_node, self.it, n)

    def state_dict(self, n_given=None):
        n = given(self.counter)
        state = {"map": self.name, "n_input": n, "input": self.input_state(n)}
        if self.cache_run is not None:
            state["cache"] = self.cache_run.state_dict()
            state["n_input"] = state["cache"]["base"]
            state["input"] = state["cache"].pop("base_state")
        return state


def _map_arguments(streamer):
    """``(arguments but the stream, stream)`` of ``Streamer(a map, stream, ...)``.

    Worked out once and kept on the recipe (its arguments never change):
    binding them costs more than opening the map, which a mux does at each
    activation. A collection given as the stream (a list, an array) is read
    through a Streamer of it, so that the map, a cache's seed included, is
    tracked and resumed like a map over any Streamer.
    """
    found = streamer.__dict__.get("_map_arguments")
    if found is None:
        bound = inspect.signature(streamer.source).bind(*streamer.args, **streamer.kwargs)
        arguments = dict(bound.arguments)
        stream = arguments.pop("stream")
        if not isinstance(stream, (Streamer, collections.abc.Iterator)):
            stream = Streamer(stream)  # a collection: iterated afresh at every pass
        found = streamer.__dict__["_map_arguments"] = (arguments, stream)
    return found


def _map_takes_key(streamer):
    """Does ``Streamer(a map, stream, ...)`` draw from a key: a cache, or a map over a mux?"""
    _, stream = _map_arguments(streamer)
    return isinstance(stream, Streamer) and (
        streamer.source.__name__ == "cache" or stream._takes_key)


def _map_child(streamer, state, track, key=None):
    """Open ``Streamer(a map, stream, ...)`` at ``state``: ``(node, iterator)``.

    Used when the map's input is itself a Streamer, so that the input's state
    can be tracked; otherwise the Streamer treats the map as any source.
    Inside a mux (``key`` is not None), the map draws from ``key`` (a cache)
    and hands its input the key of a one-child level, ``(0, 0, 0)`` further
    down the path (see ``shoal._random.below``), so that the two never share draws.
    """
    function = streamer.source
    arguments, stream = _map_arguments(streamer)
    if not isinstance(stream, Streamer):
        return None  # nothing to track: the map is a source like any other
    name = function.__name__
    node = _MapNode()
    node.name = name
    node.cache_run = None
    if state is not None and state.get("map") != name:
        raise ShoalValueError(f"state is of a {state.get('map')!r} map, not of {name!r}")
    n_input = state["n_input"] if state else 0
    counter = node.counter = counter_at(n_input)
    input_key = None if key is None else below(key, 0, 0, 0)
    input_node, input_it = stream._open_node(state and state["input"], track, input_key)
    try:
        hand_counter(input_node, counter)
        node.stream = stream
        node.input_node = input_node
        node.it = input_it
        reader = compress(input_it, counter)
        # The map function checks its arguments, then runs over the counted reader.
        if name == "cache":
            cache(reader, **arguments)  # checks only
            seed = as_seed_sequence(arguments.get("random_state"))
            run = _CacheRun(
                arguments["n_cache"], float(arguments.get("prob", 0.5)), seed,
                state and state["cache"]["seed"], node, counter if track else None, key,
            )
            node.cache_run = run
            if state is not None:
                run.check(state["cache"])
                run.replay(reader, state["cache"], state["input"])
            return node, _MapReader(run.run(reader), input_it)
        if name == "tuples":
            return node, _MapReader(function(reader, *arguments["keys"]), input_it)
        return node, _MapReader(function(reader, **arguments), input_it)
    except BaseException:
        close_quietly(input_it)  # a resumed input may be open already
        raise


def _map_loaded_state(streamer, state):
    """The state of ``Streamer(a map, stream, ...)``, its input's state made ready to load.

    See ``Streamer._ready_state``: the input (a ProcessStreamer, say) checks
    and prepares its own state. A state that is not a map's is left to
    :func:`_map_child` to refuse.
    """
    arguments, stream = _map_arguments(streamer)
    if not isinstance(stream, Streamer) or not isinstance(state, dict) or "input" not in state:
        return state
    if streamer.source.__name__ == "cache" and isinstance(state.get("cache"), dict):
        seed = as_seed_sequence(arguments.get("random_state"))
        _check_cache_recipe(state["cache"], _cache_recipe(
            arguments["n_cache"], float(arguments.get("prob", 0.5)), seed))
    return {**state, "input": stream._ready_state(state["input"])}


def _map_shard(streamer, index, count):
    """``Streamer(a map, stream, ...)`` over share ``index`` of ``count`` of its stream.

    None if the map's input is not a Streamer (it cannot be split).
    """
    function = streamer.source
    bound = inspect.signature(function).bind(*streamer.args, **streamer.kwargs)
    stream = bound.arguments["stream"]
    if not isinstance(stream, Streamer):
        return None
    bound.arguments["stream"] = stream.shard(index, count)
    if function.__name__ == "cache" and bound.arguments.get("random_state") is not None:
        seed = as_seed_sequence(bound.arguments["random_state"])
        bound.arguments["random_state"] = share_seed(seed, index)
    return Streamer(function, *bound.args, **bound.kwargs)


def _map_reshard(streamer, nodes, count, new_count):
    """Reshard the states of shares of ``Streamer(a map, stream, ...)`` through its input.

    A map's state is its input's: ``buffer_stream`` holds no item between
    the batches it gives, and ``tuples`` and ``keras_tuples`` hold none at
    all. A cache holds items it gives again: it cannot be split exactly.
    """
    name = streamer.source.__name__
    if name == "cache":
        raise ShoalValueError(
            f"cannot reshard the states of {streamer!r} exactly: a cache gives the items it "
            "holds again and again, so its items are not a split of its input's"
        )
    bound = inspect.signature(streamer.source).bind(*streamer.args, **streamer.kwargs)
    stream = bound.arguments["stream"]
    inputs = []
    for state, _ in nodes:
        if not isinstance(state, dict):  # not started, or ended
            inputs.append((state, 0))
            continue
        if state.get("map") != name:
            raise ShoalValueError(f"state is of a {state.get('map')!r} map, not of {name!r}")
        inputs.append((state["input"], state["n_input"]))
    return [({"map": name, "n_input": n, "input": state}, 0)
            for state, n in stream._reshard_pass(inputs, count, new_count)]


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


# The protocol by which a Streamer over a map resumes, shards and reshards
# through the map's input, carried by attributes of the map functions (the
# redesign replaces it with map recipe classes).
for _function in (buffer_stream, tuples, keras_tuples, cache):
    _function._shoal_map_child = _map_child  # type: ignore[union-attr]
    _function._shoal_map_takes_key = _map_takes_key  # type: ignore[union-attr]
    _function._shoal_map_shard = _map_shard  # type: ignore[union-attr]
    _function._shoal_map_loaded_state = _map_loaded_state  # type: ignore[union-attr]
    _function._shoal_map_reshard = _map_reshard  # type: ignore[union-attr]
del _function
