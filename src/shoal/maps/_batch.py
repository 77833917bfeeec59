"""buffer_stream: items collected into batches, stacked key by key or field by field."""

import collections.abc
import numbers
from collections.abc import Generator, Iterable
from itertools import islice
from operator import itemgetter
from typing import Any

import numpy as np

from .. import _arena
from .._checks import check_int, short_repr
from ..exceptions import DataError, DataKeyError, ShoalTypeError
from ._recipe import MapStreamer, check_iterable, reading

__all__ = ["buffer_stream"]


def buffer_stream(stream: Iterable[Any], buffer_size: int, partial: bool = False,
                  axis: int | None = None) -> Generator[Any, None, None]:
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
    check_iterable(stream)
    return _buffer(stream, *_buffer_settings(buffer_size, partial, axis))


def _buffer_settings(buffer_size, partial, axis):
    """``(buffer_size, partial, axis)`` checked, as :func:`_buffer` takes them."""
    buffer_size = check_int("buffer_size", buffer_size, minimum=1)
    if not isinstance(partial, (bool, np.bool_)):
        raise ShoalTypeError(f"partial must be True or False, got {short_repr(partial)}")
    if axis is not None:
        axis = check_int("axis", axis)
    return buffer_size, bool(partial), axis


def _buffer(stream, buffer_size, partial, axis):
    with reading(stream) as it:
        while True:
            writer = _arena.active() if axis is None else None
            if writer is not None:
                batch = _arena.gather(writer, it, buffer_size)  # in a worker, into its ring
            else:
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
    out = _arena.stack(values, axis)  # in a worker, straight into its ring
    if out is not None:
        return out
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




class BufferStreamer(MapStreamer, function=buffer_stream):
    """``Streamer(buffer_stream, stream, ...)``: batches of a stream, resumed through it."""

    name = "buffer_stream"

    _settings = staticmethod(_buffer_settings)

    def _map(self, items):
        return _buffer(items, *self._arguments)
