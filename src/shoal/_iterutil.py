"""Small helpers shared by the iterators: notes on errors, limits, closing."""

from itertools import islice

from .exceptions import EmptyStreamError

__all__ = ["add_note", "close_quietly", "close_all", "limited", "END", "empty_pass"]

#: Marks the end of an iterator in ``next(it, END)``.
END = object()


def empty_pass(stream):
    """The error of a cycling iteration of ``stream`` whose whole pass gave no item.

    Raised instead of spinning for ever.
    """
    return EmptyStreamError(f"cannot cycle {stream!r}: a whole pass yielded no item")


def add_note(exc, note):
    """Attach ``note`` to ``exc`` (``__notes__`` on Python 3.10)."""
    try:
        exc.add_note(note)
    except AttributeError:  # Python 3.10, or an exception type without notes
        try:
            exc.__notes__ = [*getattr(exc, "__notes__", ()), note]
        except AttributeError:
            pass


def close_quietly(it):
    """Close ``it`` if it can be closed."""
    close = getattr(it, "close", None)
    if close is not None:
        close()


def close_all(iterators):
    """Close every iterator of ``iterators`` that can be closed, even if one raises.

    The first error raised by a ``close()`` is raised once all were closed.
    """
    error = None
    for it in iterators:
        try:
            close_quietly(it)
        except BaseException as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error


def limited(gen, max_iter):
    """Yield at most ``max_iter`` items of ``gen``, then close it.

    Never pulls an item beyond the limit from ``gen``.
    """
    try:
        yield from islice(gen, max_iter)
    finally:
        gen.close()
