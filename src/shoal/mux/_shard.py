"""Split the pass of a mux anew: the states of ``count`` shares as states of ``new_count``.

Each share's state says, for each of its streamers, whether it is done, in
progress (with its pass's state) or not started (:class:`Progress`). Put
together, these describe the whole mux's pass; the new shares take the
streamers ``k::new_count`` with their progress, and each goes on from there:
the streamers in progress resume, those not started start, those done are
passed over. That is exact when a streamer's items do not depend on the
share it runs in, and each streamer runs once per pass.
"""

from .._contract import FINISHED, NEW, Progress
from .._iterutil import add_note
from ..exceptions import ShoalValueError
from .chain import ChainMux, _ChainIterator
from .round_robin import RoundRobinMux, _RoundRobinIterator
from .stochastic import StochasticMux

__all__ = ["FINISHED", "reshard_mux", "refusal"]

_ITERATORS = (
    (ChainMux, _ChainIterator),
    (RoundRobinMux, _RoundRobinIterator),
)


def refusal(mux):
    """Why the states of ``mux``'s shares cannot be split anew exactly, or None if they can."""
    kind = type(mux).__name__
    mode = getattr(mux, "mode", None)
    if isinstance(mux, ChainMux) and mux._lazy_count() is None:
        return (
            "its streamers come from a source (or an iterator) and are not known until "
            "they are read; pass a list of streamers"
        )
    if isinstance(mux, (ChainMux, RoundRobinMux)):
        if mode != "exhaustive":
            return (
                f"in mode={mode!r} a {kind} starts its streamers again after each pass, and "
                "each share is somewhere else in its passes: no one pass can be split"
            )
        return None
    if isinstance(mux, StochasticMux):
        return mux._reshard_refusal()
    if kind == "ShuffledMux":
        return (
            "a ShuffledMux restarts each streamer as soon as it ends: it has no pass whose "
            "items could be split"
        )
    return f"there is no exact way known to split the pass of a {kind}"


def _rules(mux):
    """``(progress, elastic_state)``, called as ``progress(share, state, n_given)`` and
    ``elastic_state(share, progress)``."""
    if isinstance(mux, StochasticMux):
        return type(mux)._progress, type(mux)._elastic_state
    for mux_class, iterator_class in _ITERATORS:
        if isinstance(mux, mux_class):
            return iterator_class.progress, iterator_class.elastic_state
    raise AssertionError(f"no iterator class for {type(mux).__name__}")  # refusal() said so


def reshard_mux(mux, nodes, count, new_count):
    """The states of ``new_count`` shares of ``mux`` that go on from those of ``count``.

    ``nodes[i]`` is ``(state, n_given)``: the state of an iteration of
    ``mux.shard(i, count)`` (None if it had not started, :data:`FINISHED` if
    its pass ended) and the items it had given. Returns ``(state, n_given)``
    for ``mux.shard(k, new_count)``, ``k`` in ``range(new_count)``.
    """
    why = refusal(mux)
    if why is not None:
        raise ShoalValueError(f"cannot reshard the states of {mux!r} exactly: {why}")
    progress_of, elastic_state = _rules(mux)
    progress = [NEW] * len(mux.streamers)
    for i, (state, n_given) in enumerate(nodes):
        share = mux.shard(i, count)
        if state is None:
            local = [NEW] * len(share.streamers)
        elif state == FINISHED:
            local = [Progress(True, 0, None)] * len(share.streamers)
        else:
            try:
                local = progress_of(share, state, n_given)
            except ShoalValueError as exc:
                add_note(exc, f"in the state of share {i} of {count} of {mux!r}")
                raise
        progress[i::count] = local
    out = []
    for k in range(new_count):
        local = progress[k::new_count]
        state = elastic_state(mux.shard(k, new_count), local)
        out.append((state, sum(p.n for p in local)))
    return out
