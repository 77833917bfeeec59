"""tuples and keras_tuples: dict items turned into tuples of their values."""

import collections.abc
from collections.abc import Generator, Hashable, Iterable
from operator import itemgetter
from typing import Any

from .._checks import is_iterable, short_repr
from ..exceptions import DataError, DataKeyError, ShoalTypeError, ShoalValueError
from ._recipe import MapStreamer, check_iterable, reading

__all__ = ["tuples", "keras_tuples"]


def _check_keys(name, keys):
    for key in keys:
        if not isinstance(key, collections.abc.Hashable):
            raise ShoalTypeError(f"{name} must be hashable keys, got {short_repr(key)}")


def tuples(stream: Iterable[Any], *keys: Hashable) -> Generator[tuple[Any, ...], None, None]:
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
    check_iterable(stream)
    return _tuples(stream, _tuples_settings(keys))


def _tuples_settings(keys):
    """``keys`` checked: one at least, each hashable."""
    if not keys:
        raise ShoalValueError("tuples needs at least one key, got none")
    _check_keys("keys", keys)
    return keys


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
    with reading(stream) as it:
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


def keras_tuples(stream: Iterable[Any], inputs: Any = None,
                 outputs: Any = None) -> Generator[tuple[Any, Any], None, None]:
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
    check_iterable(stream)
    return _keras_tuples(stream, *_keras_settings(inputs, outputs))


def _keras_settings(inputs, outputs):
    """``(input_keys, single_input, output_keys, single_output)``, checked."""
    input_keys, single_input = _key_list("inputs", inputs)
    output_keys, single_output = _key_list("outputs", outputs)
    if not input_keys and not output_keys:
        raise ShoalValueError(
            f"keras_tuples needs at least one key in inputs or outputs, got "
            f"inputs={inputs!r}, outputs={outputs!r}"
        )
    return input_keys, single_input, output_keys, single_output


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
    with reading(stream) as it:
        for item in it:
            try:
                pair = (get_x(item), get_y(item))
            except (KeyError, TypeError, IndexError, OverflowError):
                _take(item, itemgetter(*keys), keys)  # raises the error that explains it
                raise
            yield pair



class TuplesStreamer(MapStreamer, function=tuples):
    """``Streamer(tuples, stream, *keys)``: tuples of a stream's items, resumed through it."""

    name = "tuples"

    _settings = staticmethod(_tuples_settings)

    def _map(self, items):
        return _tuples(items, self._arguments)


class KerasTuplesStreamer(MapStreamer, function=keras_tuples):
    """``Streamer(keras_tuples, stream, ...)``: ``(x, y)`` of a stream's items, resumed through it."""

    name = "keras_tuples"
    _settings = staticmethod(_keras_settings)

    def _map(self, items):
        return _keras_tuples(items, *self._arguments)
