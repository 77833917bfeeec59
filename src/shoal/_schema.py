"""What a saved state may hold: the field checkers each stream kind's schema is made of.

A stream kind declares the schema of its node's state next to its node, as
a dict ``{field: checker}``, and its recipe's ``_ready_state`` checks a
loaded state with :func:`check_fields` before anything opens. A checker is
called as ``checker(value, path, n_streams)`` (``n_streams`` is the number
of the mux's streamers, or None where unknown) and raises
:class:`~shoal.ShoalValueError` naming the path of the bad value:
``state is corrupted at state['state']['epoch']: it must be ...``.
"""

import math

from ._checks import short_repr
from .exceptions import ShoalError, ShoalValueError

__all__ = [
    "STATE_MAX",
    "MAX_LEFT",
    "state_error",
    "is_count",
    "check_plain",
    "check_fields",
    "count",
    "optional_count",
    "flag",
    "streamer_list",
    "count_list",
    "per_streamer",
    "at_most_per_streamer",
    "supply",
    "draws",
    "seed",
    "keys",
    "weights",
    "stream_state",
    "child",
    "children",
    "settings",
    "restored_node",
]

#: No count in a state comes near it (see ``shoal._counter.BIG``).
STATE_MAX = 2**62
#: The most draws left in a block of a supply: blocks are far smaller.
MAX_LEFT = 2**16


def state_error(path, what, value):
    """The error for ``value`` at ``path``, which must be ``what``."""
    return ShoalValueError(
        f"state is corrupted at {path}: it must be {what}, got {short_repr(value)}"
    )


def is_count(value):
    """Is ``value`` a whole number a state may count with?"""
    return (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= STATE_MAX)


def check_plain(state, path="state"):
    """Check that ``state`` holds plain values only: what every saved state shares.

    Dicts with string keys, lists, finite numbers, strings, booleans and
    None (what ``json`` writes back). Raises ShoalValueError naming the path
    of the first other value. What each field must be is checked by the
    stream kind the state belongs to, with the checkers below.
    """
    if isinstance(state, dict):
        for key, item in state.items():
            if not isinstance(key, str):
                raise state_error(path, "a dict with string keys", key)
            check_plain(item, f"{path}[{key!r}]")
    elif isinstance(state, list):
        for i, item in enumerate(state):
            check_plain(item, f"{path}[{i}]")
    elif isinstance(state, float):
        if not math.isfinite(state):
            raise state_error(path, "a finite number", state)
    elif not (state is None or isinstance(state, (bool, int, str))):
        raise state_error(path, "a plain value (dict, list, number, string or None)", state)


def check_fields(state, schema, path, n_streams=None, optional=None):
    """Check ``state``, a dict, field by field: with ``schema`` (required fields) and
    ``optional`` (fields checked where present)."""
    if not isinstance(state, dict):
        raise state_error(path, "a dict", state)
    missing = [field for field in schema if field not in state]
    if missing:
        raise state_error(path, f"a state with {', '.join(map(repr, missing))}", state)
    for field, checker in schema.items():
        checker(state[field], f"{path}[{field!r}]", n_streams)
    for field, checker in (optional or {}).items():
        if field in state:
            checker(state[field], f"{path}[{field!r}]", n_streams)


def count(value, path, n_streams=None):
    """A whole number in ``0..STATE_MAX``."""
    if not is_count(value):
        raise state_error(path, f"a whole number in 0..{STATE_MAX}", value)


def optional_count(value, path, n_streams=None):
    """None or a count."""
    if value is not None:
        count(value, path)


def flag(value, path, n_streams=None):
    """True or False."""
    if not isinstance(value, bool):
        raise state_error(path, "True or False", value)


def count_list(value, path, n_streams=None):
    """A list of counts."""
    if not isinstance(value, list) or not all(map(is_count, value)):
        raise state_error(path, "a list of whole numbers >= 0", value)


def streamer_list(value, path, n_streams=None):
    """A list of streamer numbers (below ``n_streams`` where known)."""
    count_list(value, path)
    if n_streams is not None and any(j >= n_streams for j in value):
        raise state_error(path, f"a list of streamer numbers below {n_streams}", value)


def at_most_per_streamer(value, path, n_streams=None):
    """A list of at most one count per streamer (it grows as a chain reads its streamers)."""
    count_list(value, path)
    if n_streams is not None and len(value) > n_streams:
        raise state_error(path, f"a list of at most {n_streams} counts, one per streamer", value)


def per_streamer(value, path, n_streams=None):
    """A list of one count per streamer."""
    count_list(value, path)
    if n_streams is not None and len(value) != n_streams:
        raise state_error(path, f"a list of {n_streams} counts, one per streamer", value)


def supply(value, path, n_streams=None):
    """The state of a supply of draws: ``[blocks made, draws left in the last]``."""
    if not (isinstance(value, list) and len(value) == 2 and all(map(is_count, value))
            and value[1] <= MAX_LEFT):
        raise state_error(path, "[blocks made, draws left]: two counts", value)


def draws(*names):
    """A checker of a dict of supplies: ``{name: [blocks, left]}`` for each of ``names``."""
    def check(value, path, n_streams=None):
        if not isinstance(value, dict):
            raise state_error(path, "a dict of supplies of draws", value)
        for name in names:
            if name not in value:
                raise state_error(path, f"a dict with {name!r}", value)
            supply(value[name], f"{path}[{name!r}]")
    return check


def seed(value, path, n_streams=None):
    """None, or the entropy of a seed: a list of 64-bit words."""
    if not (value is None or (isinstance(value, list) and value and all(
            isinstance(word, int) and not isinstance(word, bool) and 0 <= word < 2**64
            for word in value))):
        raise state_error(path, "None or a list of ints in 0..2**64-1", value)


def _is_key(plain):
    return isinstance(plain, list) and len(plain) == 3 and isinstance(plain[1], list) and (
        all(map(is_count, plain[1]))) and isinstance(plain[2], bool) and (
        plain[0] is None or (
            isinstance(plain[0], list) and len(plain[0]) == 2 and all(
                isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**64
                for w in plain[0])))


def keys(value, path, n_streams=None):
    """The keys of a mux's activations, by streamer (see ``shoal._random.key_to_plain``)."""
    if not isinstance(value, dict):
        raise state_error(path, "a dict of keys", value)
    for j, plain in value.items():
        _streamer_key(j, path, n_streams)
        if not _is_key(plain):
            raise state_error(f"{path}[{j!r}]",
                              "[None or two ints, a list of counts, True or False]", plain)


def weights(value, path, n_streams=None):
    """A list of finite weights >= 0, one per streamer, one > 0 at least."""
    if not isinstance(value, list) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
            and w >= 0 for w in value):
        raise state_error(path, "a list of finite numbers >= 0", value)
    if n_streams is not None and len(value) != n_streams:
        raise state_error(path, f"a list of {n_streams} weights", value)
    if not any(value):
        raise state_error(path, "a list of weights with one > 0 at least", value)


def stream_state(value, path, n_streams=None):
    """None, or the state of a stream's pass (a dict, which its recipe checks further)."""
    if value is not None and not isinstance(value, dict):
        raise state_error(path, "None or a dict (the state of a stream)", value)


def child(value, path, n_streams=None):
    """A child's progress: ``{"n": items given, "state": its pass's state or None}``."""
    if not isinstance(value, dict) or not is_count(value.get("n")) or "state" not in value:
        raise state_error(path, "a dict with a count 'n' and a 'state'", value)
    stream_state(value["state"], f"{path}['state']")


def _streamer_key(key, path, n_streams):
    if not (isinstance(key, str) and key.isdigit()) or (
            n_streams is not None and int(key) >= n_streams):
        raise state_error(path, "keyed by streamer numbers", key)


def children(value, path, n_streams=None):
    """Children's progress by streamer: ``{"j": {"n": ..., "state": ...}}``."""
    if not isinstance(value, dict):
        raise state_error(path, "a dict of the states of streamers", value)
    for j, entry in value.items():
        _streamer_key(j, path, n_streams)
        child(entry, f"{path}[{j!r}]")


def settings(value, path, n_streams=None):
    """What a state records of the settings its stream was made with: a dict."""
    if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
        raise state_error(path, "a dict of the settings its stream was made with", value)


def restored_node(stream, state, make):
    """``make()``, the node of ``stream`` restored from ``state``; a state it cannot read
    is a ShoalValueError.

    Building a node reads its state and opens nothing (no user code runs), so
    any error there is the state's.
    """
    try:
        return make()
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, ShoalError):
            raise
        what = f"it lacks {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ShoalValueError(
            f"state does not fit {stream!r}: {what}; state={short_repr(state)}"
        ) from exc
