"""Split the pass that the shares of a stream were making among another number of shares."""

import copy
from collections.abc import Sequence

from ._checks import check_int, short_repr
from ._contract import StateDict, check_stream
from ._iterutil import add_note
from .core import Streamer
from .exceptions import ShoalTypeError, ShoalValueError
from .iterator import STATE_VERSION, check_version

__all__ = ["reshard_states"]


def reshard_states(stream: Streamer, states: Sequence[StateDict], new_count: int) -> list[StateDict]:
    """Split the pass that ``count`` shares of ``stream`` were making among ``new_count``.

    The contract: ``states[i]`` is the :meth:`StreamIterator.state_dict` of
    an iteration of ``stream.shard(i, count)`` (``count = len(states)``),
    saved when its consumer had taken the items it counts. The result is a
    list of ``new_count`` states; ``load_state_dict(result[k])`` on an
    iteration of ``stream.shard(k, new_count)`` goes on so that the items
    given before, by all old shares, and after, by all new shares, are
    together exactly one pass of ``stream``: nothing repeated, nothing lost.
    The order of the items after may differ from the order without a
    change. With ``new_count == count`` the states are returned as they are
    (a copy), for any stream.

    It is exact for streams whose shares split a pass by streamers, each
    streamer's items the same in whichever share it runs: ``ChainMux`` and
    ``RoundRobinMux`` in ``"exhaustive"`` mode, ``StochasticMux`` with
    ``mode="exhaustive"`` and ``rate=None``, and the maps ``buffer_stream``,
    ``tuples`` and ``keras_tuples`` over one of these (for
    ``buffer_stream``, each share still drops its own last, partial batch
    unless ``partial=True``). Their streamers may be anything resumable.
    A resharded state can be saved again and resharded again.

    A state of a resharded iteration counts in ``n_given`` the items its
    share's streamers had given (a map's items: from 0).

    Parameters
    ----------
    stream : Streamer
        The stream whose shares the states are of: a mux, or a map over one.
    states : list of dict
        One state per old share, in share order.
    new_count : int >= 1
        The number of new shares.

    Returns
    -------
    list of dict
        One state per new share, plain and JSON-able.

    Raises
    ------
    ShoalValueError
        If exactness cannot hold, saying why: an iteration with
        ``cycle=True``; a ChainMux or RoundRobinMux in a cycling mode; a
        ShuffledMux; a StochasticMux in another mode or with a ``rate``; a
        ``cache`` (it gives its items again); a single stream; or if a
        state is not of a share of ``stream``, or ``stream`` cannot be split
        into ``count`` or ``new_count`` shares.
    ShoalTypeError
        If ``stream`` is not a Streamer, ``states`` is not a list of dicts,
        or ``new_count`` is not an integer.

    Examples
    --------
    Three workers each took a few items of a chain of six files; go on with
    two:

    >>> files = ChainMux([Streamer(range(k * 10, k * 10 + 4)) for k in range(6)])
    >>> iterations = [files.shard(i, 3).iterator() for i in range(3)]
    >>> before = [next(it) for it in iterations for _ in range(5)]
    >>> states = reshard_states(files, [it.state_dict() for it in iterations], 2)
    >>> after = []
    >>> for k, state in enumerate(states):
    ...     resumed = files.shard(k, 2).iterator()
    ...     resumed.load_state_dict(state)
    ...     after.extend(resumed)
    >>> sorted(before + after) == sorted(files)
    True
    """
    check_stream(stream)
    new_count = check_int("new_count", new_count, minimum=1)
    if not isinstance(states, (list, tuple)) or not states:
        raise ShoalTypeError(
            "states must be a non-empty list of the state dicts of the shares, got "
            f"{short_repr(states)}"
        )
    count = len(states)
    kind = type(stream).__name__
    for i, state in enumerate(states):
        check_version(state, f"states[{i}]")
        if state.get("stream") != kind:
            raise ShoalValueError(
                f"states[{i}] is of an iteration of a {state.get('stream')}, not of a share "
                f"of this {kind}"
            )
    if new_count == count:
        return copy.deepcopy(list(states))
    for i, state in enumerate(states):
        if state.get("cycle"):
            raise ShoalValueError(
                f"states[{i}] is of an iteration with cycle=True: each share is somewhere "
                "else in its passes, and no one pass can be split; reshard iterations with "
                "cycle=False"
            )
    for n in (count, new_count):
        try:
            stream.shard(0, n)
        except ShoalValueError as exc:
            add_note(exc, f"while resharding the states of {count} shares into {new_count}")
            raise
    passes = [stream._pass_of_root(state["state"], state["n_given"]) for state in states]
    return [_stream_state(kind, stream._root_of_pass(node, n), n)
            for node, n in stream._reshard_pass(passes, count, new_count)]


def _stream_state(kind, node, n_given):
    return {"version": STATE_VERSION, "stream": kind, "cycle": False, "n_given": n_given,
            "state": node}
