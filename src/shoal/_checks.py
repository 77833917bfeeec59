"""Argument checks shared by the public constructors and maps.

Each check raises at the call that received the bad value, with a message
that names the parameter and the value.
"""

import collections.abc
import math
import numbers
import reprlib
import sys

import numpy as np

from .exceptions import ShoalTypeError, ShoalValueError

__all__ = [
    "short_repr",
    "check_choice",
    "check_bool",
    "check_int",
    "is_iterable",
    "check_max_iter",
    "check_weights",
    "check_recipe",
    "state_difference",
    "check_share",
]

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = 6
_repr.maxtuple = 6
_repr.maxdict = 4


def short_repr(value):
    """A repr short enough to put in an error message."""
    return _repr.repr(value)


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``."""
    if not isinstance(value, str):
        raise ShoalTypeError(
            f"{name} must be one of {', '.join(map(repr, choices))}, "
            f"got {short_repr(value)} ({type(value).__name__})"
        )
    if value not in choices:
        raise ShoalValueError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )
    return value


def check_bool(name, value):
    """Return ``value`` as a bool if it is one (numpy's included)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ShoalTypeError(
        f"{name} must be True or False, got {short_repr(value)} ({type(value).__name__})"
    )


def is_iterable(value):
    """Can ``value`` be iterated? (A 0-d numpy array says it can, and cannot.)"""
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return isinstance(value, collections.abc.Iterable)


def check_int(name, value, minimum=None, maximum=sys.maxsize):
    """Return ``value`` as an int, requiring ``minimum <= value <= maximum``.

    numpy integers are accepted; bools and floats are not. The default
    maximum is the largest count Python's iteration tools take.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ShoalTypeError(
            f"{name} must be an integer, got {short_repr(value)} ({type(value).__name__})"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ShoalValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ShoalValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def check_max_iter(value, name="max_iter"):
    """Return ``value`` as ``None`` (no limit) or an int >= 0.

    Whole floats such as ``1e6`` are accepted, and ``inf`` means no limit,
    as does a number beyond ``sys.maxsize`` (no stream gives that many).
    """
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        if not isinstance(value, numbers.Integral):
            if math.isinf(value) and value > 0:
                return None
            if not float(value).is_integer():
                raise ShoalValueError(
                    f"{name} must be None or a whole number >= 0, got {value!r}"
                )
        value = int(value)
        if value < 0:
            raise ShoalValueError(f"{name} must be None or a whole number >= 0, got {value}")
        return value if value <= sys.maxsize else None
    raise ShoalTypeError(
        f"{name} must be None or a whole number >= 0, "
        f"got {short_repr(value)} ({type(value).__name__})"
    )


def check_weights(weights, n_streams, name="weights"):
    """Return normalised weights as a new read-only float array.

    ``None`` means uniform. The caller's array is never modified.
    """
    if weights is None:
        out = np.full(n_streams, 1.0 / n_streams)
    else:
        try:
            raw = np.asarray(weights)
            if raw.dtype.kind in "cUSVMm" or (raw.dtype.kind == "O" and any(
                    not isinstance(w, numbers.Real) for w in raw.ravel())):
                raise TypeError("not numbers")  # numpy would read "1" as 1.0
            out = np.array(raw, dtype=float)  # always a copy
        except (TypeError, ValueError):
            raise ShoalTypeError(
                f"{name} must be a sequence of numbers, got {short_repr(weights)}"
            ) from None
        if out.ndim != 1:
            raise ShoalValueError(
                f"{name} must be one-dimensional, got shape {out.shape}: {short_repr(weights)}"
            )
        if len(out) != n_streams:
            raise ShoalValueError(
                f"{name} must have one entry per streamer ({n_streams}), "
                f"got {len(out)}: {short_repr(out.tolist())}"
            )
        if not np.all(np.isfinite(out)) or np.any(out < 0):
            raise ShoalValueError(
                f"{name} must be finite and >= 0, got {short_repr(out.tolist())}"
            )
        largest = out.max()
        if largest <= 0:
            raise ShoalValueError(
                f"{name} must contain at least one positive value, got {short_repr(out.tolist())}"
            )
        # Scale by the largest first: the sum of huge weights (1e308 + 1e308)
        # would overflow to inf and turn every weight into 0.
        positive = out > 0
        smallest = float(out[positive].min())
        out /= largest
        out /= out.sum()
        if not np.all(out[positive] > 0):
            raise ShoalValueError(
                f"{name} span too wide a range: the share of the smallest positive weight, "
                f"{smallest!r}, next to the largest, {float(largest)!r}, is 0"
            )
    out.flags.writeable = False
    return out


def check_share(index, count):
    """Return ``(index, count)``, a share ``index`` of ``count``: ``0 <= index < count``."""
    count = check_int("count", count, minimum=1)
    index = check_int("index", index, minimum=0)
    if index >= count:
        raise ShoalValueError(f"index must be in 0..count-1 (count={count}), got {index}")
    return index, count


# -- saved states ----------------------------------------------------------------
#
# A state is a tree of plain values whose fields mean the same wherever they
# appear; a field that is present must hold what the iterators put there. A
# field not named here is only checked to be plain (fields may be added).

_MISSING = object()


def check_recipe(saved, made, what):
    """Check that a state saved with the settings ``saved`` fits a stream made with ``made``.

    ``saved`` is what the state records of the recipe that saved it (its
    ``recipe`` field: the seed, ``n_active``, ``rate``, the weights it was
    made with, ``mode``...), ``made`` the same of the stream ``what``
    names. A state loads only into a stream made as the one that saved it:
    the error names the first setting that differs, with both values.
    """
    if not isinstance(saved, dict):
        raise ShoalValueError(
            f"state is corrupted: its 'recipe' must be a dict of the settings of {what}, "
            f"got {short_repr(saved)}"
        )
    for name in (*made, *(name for name in saved if name not in made)):
        was, now = saved.get(name, _MISSING), made.get(name, _MISSING)
        if _same_setting(was, now):
            continue
        message = (
            f"{name}: the state was saved with {_setting_words(name, was)}, this stream has "
            f"{_setting_words(name, now)}; a state loads only into a stream made as the one "
            f"that saved it ({what})"
        )
        if name == "weights":
            message += (
                "; to change the weights of an iteration, give the new ones to its "
                "set_weights (the weights in force are part of its state)"
            )
        raise ShoalValueError(message)


def _same_setting(was, now):
    if was is _MISSING or now is _MISSING:
        return False
    if isinstance(was, list) and isinstance(now, list) and was and all(
            isinstance(w, float) for w in now):
        # Weights, normalised when the recipe was made: equal up to rounding.
        return len(was) == len(now) and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) for w in was) and bool(
            np.allclose(was, now, rtol=1e-9, atol=0.0))
    return (type(was) is type(now) and was == now) or (
        _is_number(was) and _is_number(now) and was == now)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _setting_words(name, value):
    if value is _MISSING:
        return "no such setting"
    if name == "random_state":
        return "None (unseeded)" if value is None else _seed_words(value)
    return short_repr(value)


def _seed_words(plain):
    """A seed as a state records it (see ``shoal._random.seed_to_plain``), in words."""
    if isinstance(plain, dict):
        return (f"SeedSequence({short_repr(plain.get('entropy'))}, "
                f"spawn_key={tuple(plain.get('spawn_key') or ())!r})")
    return short_repr(plain)


def state_difference(got, saved, path="state"):
    """Where ``got`` and ``saved``, two states of one stream, record different progress.

    Returns None if nowhere, else ``"at <path>: <got>, saved: <saved>"``
    for the first field that differs, a node's own fields before its
    children's. Two iterations that gave the same items from the same
    sources are at the same place even where their states are written
    differently, so these are no difference: a count of streamers that one
    of them has not read yet (``n_streams`` None), and the snapshot of its
    input that a cache would replay from (two caches whose snapshots differ
    are compared by their own progress only: the input items read, the
    cached positions and the draws). A list and a tuple of the same values
    are the same (a state read back from JSON has lists).
    """
    if isinstance(got, dict) and isinstance(saved, dict):
        ignored = set()
        if isinstance(got.get("cache"), dict) and isinstance(saved.get("cache"), dict) and (
                got.get("n_input") != saved.get("n_input")):
            ignored = {"n_input", "input"}  # the input at each cache's snapshot
        keys = sorted(set(got) | set(saved), key=lambda key: (
            isinstance(got.get(key), _NESTED) or isinstance(saved.get(key), _NESTED), key))
        for key in keys:
            if key in ignored or (key == "n_streams" and None in (got.get(key), saved.get(key))):
                continue
            where = f"{path}[{key!r}]"
            if key not in got or key not in saved:
                return (f"at {where}: {short_repr(got[key]) if key in got else 'no such field'}, "
                        f"saved: {short_repr(saved[key]) if key in saved else 'no such field'}")
            difference = state_difference(got[key], saved[key], where)
            if difference is not None:
                return difference
        return None
    if isinstance(got, (list, tuple)) and isinstance(saved, (list, tuple)) and (
            len(got) == len(saved)):
        for index, (value, saved_value) in enumerate(zip(got, saved)):
            difference = state_difference(value, saved_value, f"{path}[{index}]")
            if difference is not None:
                return difference
        return None
    if not isinstance(got, _NESTED) and not isinstance(saved, _NESTED) and (
            isinstance(got, bool) is isinstance(saved, bool)) and got == saved:
        return None
    return f"at {path}: {short_repr(got)}, saved: {short_repr(saved)}"


_NESTED = (dict, list, tuple)
