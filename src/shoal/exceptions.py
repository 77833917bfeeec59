"""The errors shoal raises.

Every error shoal raises on purpose derives from :class:`ShoalError`
(``PescadorError`` is the same class, for code written for pescador).
Errors about a bad argument also derive from the matching built-in, so that
``except ValueError`` and ``except TypeError`` work as they would anywhere.
"""

__all__ = [
    "ShoalError",
    "PescadorError",
    "ShoalValueError",
    "ShoalTypeError",
    "DataError",
    "DataKeyError",
    "EmptyStreamError",
    "SpentSourceError",
]


class ShoalError(Exception):
    """Base class of every error shoal raises on purpose."""


#: The name pescador 3.0 gives its base error; the same class as ShoalError.
PescadorError = ShoalError


class ShoalValueError(ShoalError, ValueError):
    """An argument has the right type but a bad value."""


class ShoalTypeError(ShoalError, TypeError):
    """An argument has the wrong type."""


class DataError(ShoalError, ValueError):
    """An item in a stream is not shaped as the map expects."""


class DataKeyError(DataError, KeyError):
    """An item in a stream lacks a key the map needs."""

    def __str__(self):
        # KeyError quotes its message; a sentence reads better unquoted.
        return Exception.__str__(self)


class EmptyStreamError(ShoalError, RuntimeError):
    """A stream that must repeat yielded nothing in a whole pass.

    Cycling such a stream would spin forever without producing an item.
    """


class SpentSourceError(ShoalError, RuntimeError):
    """A one-shot source (an iterator) was restarted after it ran out."""
