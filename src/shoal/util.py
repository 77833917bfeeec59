"""Utilities: the length of a batch, pescador's random-state and deprecation helpers.

:func:`get_rng`, :func:`rename_kw`, :func:`moved`, :func:`deprecated` and
:class:`Deprecated` are pescador's ``pescador.util`` helpers, kept for code
written for pescador, with the same behaviour and the same warnings.
"""

import collections.abc
import numbers
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
from decorator import decorate

from ._checks import short_repr
from .exceptions import DataError, ShoalTypeError, ShoalValueError

__all__ = ["batch_length", "get_rng", "Deprecated", "rename_kw", "moved", "deprecated"]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def batch_length(batch: Mapping[Any, Any] | tuple[Any, ...] | list[Any]) -> int | None:
    """The number of examples in a batch.

    Parameters
    ----------
    batch : dict, tuple or list of arrays
        Every value must have a length, and all lengths must be equal.

    Returns
    -------
    n : int or None
        The common length; ``None`` for a batch with no fields.

    Raises
    ------
    DataError
        If two fields have different lengths.

    Examples
    --------
    >>> import numpy as np
    >>> batch_length({"x": np.zeros((8, 3)), "y": np.zeros(8)})
    8
    >>> batch_length({}) is None
    True
    """
    fields: Iterable[tuple[Any, Any]]
    if isinstance(batch, collections.abc.Mapping):
        fields = batch.items()
    elif isinstance(batch, (tuple, list)):
        fields = enumerate(batch)
    else:
        raise ShoalTypeError(
            f"batch must be a dict, tuple or list of arrays, got {short_repr(batch)} "
            f"({type(batch).__name__})"
        )
    n = None
    first = None
    for key, value in fields:
        try:
            length = len(value)
        except TypeError:
            raise DataError(
                f"batch field {key!r} has no length: {short_repr(value)}"
            ) from None
        if n is None:
            n, first = length, key
        elif length != n:
            raise DataError(
                f"batch fields have unequal lengths: {first!r} has {n}, {key!r} has {length}"
            )
    return n


def get_rng(
        random_state: int | np.integer | np.random.RandomState | None,
) -> np.random.RandomState | types.ModuleType:
    """A numpy ``RandomState`` for a seed, as pescador's ``get_rng`` gives it.

    shoal's own streams take more kinds of seeds (see ``random_state`` of
    the muxes); this is for code written for pescador.

    Parameters
    ----------
    random_state : None, int or numpy.random.RandomState
        ``None`` gives numpy's global random functions, the module
        ``numpy.random`` itself (``np.random.seed`` seeds them); an int in
        ``[0, 2**32)`` gives a new ``RandomState`` seeded with it; a
        ``RandomState`` is returned as it is.

    Returns
    -------
    numpy.random.RandomState or the module numpy.random

    Raises
    ------
    ShoalTypeError
        If ``random_state`` is none of the above.
    ShoalValueError
        If the int is out of range.

    Examples
    --------
    >>> rng = get_rng(0)
    >>> rng.randint(10, size=3).tolist() == np.random.RandomState(0).randint(10, size=3).tolist()
    True
    >>> get_rng(None) is np.random
    True
    """
    if random_state is None:
        return np.random
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(
            random_state, (bool, np.bool_)):
        if not 0 <= random_state < 2**32:
            raise ShoalValueError(
                f"random_state must be an int in [0, 2**32), got {random_state!r}"
            )
        return np.random.RandomState(int(random_state))
    raise ShoalTypeError(
        "random_state must be None, an int or a numpy RandomState, got "
        f"{short_repr(random_state)} ({type(random_state).__name__})"
    )


class Deprecated:
    """The default value of a renamed keyword argument: see :func:`rename_kw`."""

    def __repr__(self) -> str:
        return "<DEPRECATED parameter>"


def rename_kw(old_name: str, old_value: _T | Deprecated, new_name: str, new_value: _T,
              version_deprecated: str, version_removed: str) -> _T:
    """The value of a renamed keyword argument; warns if the old name was used.

    Give the old keyword a default of ``Deprecated()``, and call this in the
    function with both names and values.

    Parameters
    ----------
    old_name, new_name : str
        The old and the new name of the argument.
    old_value, new_value
        Their values in this call.
    version_deprecated, version_removed
        When the old name was deprecated, and when it goes.

    Returns
    -------
    new_value if ``old_value`` is a :class:`Deprecated`, else ``old_value``

    Warns
    -----
    DeprecationWarning
        If ``old_value`` is not a :class:`Deprecated` (the old name was
        used), pointing at the line that called the function.

    Examples
    --------
    >>> def scale(x, factor=1, multiplier=Deprecated()):
    ...     factor = rename_kw("multiplier", multiplier, "factor", factor, "1.0", "2.0")
    ...     return x * factor
    >>> scale(2, factor=3)
    6
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     scale(2, multiplier=5)
    10
    >>> for line in str(caught[0].message).split("\\n\\t"):
    ...     print(line)
    scale() keyword argument 'multiplier' has been renamed to 'factor' in version 1.0.
    This alias will be removed in version 2.0.
    """
    if isinstance(old_value, Deprecated):
        return new_value
    function = sys._getframe(1).f_code.co_name  # the function that was called
    caller = sys._getframe(2)  # and the line that called it
    warnings.warn_explicit(
        f"{function}() keyword argument '{old_name:s}' has been renamed to '{new_name:s}' in "
        f"version {version_deprecated}.\n\tThis alias will be removed in version "
        f"{version_removed}.",
        category=DeprecationWarning,
        filename=caller.f_code.co_filename,
        lineno=caller.f_lineno,
    )
    return old_value


def _warn_at(function, message):
    """Warn ``message`` (a DeprecationWarning) at the first line of ``function``'s body."""
    code = function.__code__
    warnings.warn_explicit(message, category=DeprecationWarning,
                           filename=code.co_filename, lineno=code.co_firstlineno + 1)


def _warning_on_call(message_of):
    """A decorator: each call of the function warns ``message_of(function)``, then runs it."""
    def mark(function):
        def warn_then_call(func, *args, **kwargs):
            _warn_at(func, message_of(func))
            return func(*args, **kwargs)

        return decorate(function, warn_then_call)

    return mark


def moved(moved_from: str, version: str, version_removed: str) -> Callable[[_F], _F]:
    """Mark a function as moved: each call warns that it lives elsewhere now.

    Parameters
    ----------
    moved_from : str
        The old place and name, such as ``"pkg.old_name"``.
    version, version_removed : str
        When it moved, and when the old name goes.

    Returns
    -------
    callable
        A decorator: the decorated function keeps its signature, and each
        call warns (a DeprecationWarning at the function's first line),
        then runs it.

    Examples
    --------
    >>> def new_name(x):
    ...     return x + 1
    >>> old_name = moved("pkg.old_name", "1.0", "2.0")(new_name)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     old_name(1)
    2
    >>> for line in str(caught[0].message).split("\\n\\t"):
    ...     print(line)
    pkg.old_name
    This function was moved to 'shoal.util.new_name' in version 1.0.
    This alias will be removed in version 2.0.
    """
    return _warning_on_call(lambda func: (
        f"{moved_from:s}\n\tThis function was moved to '{func.__module__:s}.{func.__name__:s}' "
        f"in version {version:s}.\n\tThis alias will be removed in version {version_removed:s}."))


def deprecated(version: str, version_removed: str) -> Callable[[_F], _F]:
    """Mark a function as deprecated: each call warns that it will be removed.

    Parameters
    ----------
    version, version_removed : str
        When it was deprecated, and when it goes.

    Returns
    -------
    callable
        A decorator: the decorated function keeps its signature, and each
        call warns (a DeprecationWarning at the function's first line),
        then runs it.

    Examples
    --------
    >>> @deprecated("1.0", "2.0")
    ... def old(x):
    ...     return x
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     old(3)
    3
    >>> for line in str(caught[0].message).split("\\n\\t"):
    ...     print(line)
    shoal.util.old
    Deprecated as of version 1.0.
    It will be removed in version 2.0.
    """
    return _warning_on_call(lambda func: (
        f"{func.__module__:s}.{func.__name__:s}\n\tDeprecated as of version {version:s}."
        f"\n\tIt will be removed in version {version_removed:s}."))
