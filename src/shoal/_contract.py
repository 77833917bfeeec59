"""The contract between a recipe and the node that runs it.

Every stream in shoal is a **recipe**: a :class:`~shoal.Streamer` over a
generator function or a collection, a mux, a map, a worker stream. A recipe
holds configuration only and never changes while it is iterated. Opening it
builds a **node**, the running state of one pass. This module is the one
place where what the two promise each other is written down; every stream
kind implements it in its own module, where its recipe, its node, the schema
of its saved state and its resharding rule live together.

Glossary
--------
recipe
    A :class:`Recipe`: configuration only. Pickles as its configuration.
node
    The running state of one pass of a recipe: its open iterators, its
    counts, its random draws. Two iterations never share a node.
leaf
    A recipe over a generator function, a collection or an iterator. It has
    no node: its state is the number of items it gave (or its source's own
    ``state_dict``).
pass
    One run of a stream from its start to its end.
activation
    One opening of a mux's streamer: in a slot of a StochasticMux, in turn
    for a chain or a round robin. A mux counts its activations.
slot
    A place in a StochasticMux's active set; each holds one activation.
key
    What a parent mux hands an activation, for an unseeded stream inside it
    to draw its seed from (see ``shoal._random.TreeSeed``).
share
    What ``shard(index, count)`` gives: one of ``count`` disjoint parts of a
    pass, run by one worker process, DataLoader worker or rank.
supply
    A supply of random draws made in blocks (``shoal._random.Draws``); its
    state is always ``[blocks made, draws left in the last]``.
progress
    How far one streamer is in a pass, when a pass is split anew among
    another number of shares: a :class:`Progress`.

What a recipe offers
--------------------
``_open_node(state=None, track=False, key=None) -> (node, iterator)``
    Open one pass, from ``state`` if given. ``iterator`` gives the items;
    closing it closes everything the pass opened. ``node`` is None for a
    leaf. ``track`` asks the node to keep what ``state_dict`` needs where
    that costs time; ``key`` is the parent's key for this activation.
``_open_items() -> iterator``
    Open one pass that reports no state: the fastest way to read it. A mux
    reads its streamers so when it does not track them.
``_node_state(node, iterator, n_given) -> state``
    The state of a pass opened by ``_open_node``, which gave ``n_given``
    items: plain values (JSON-able), of the same shape for the pass's life.
``_ready_state(state, path="state", n_given=None) -> state``
    Check a saved state of a pass, once, when a state is loaded, and make
    it ready (a worker stream reshards it here). The kind checks its own
    fields with its schema (``shoal._schema``), then hands each child's
    state to the child's recipe. ``path`` says where the state is in the
    saved tree, for the message; ``n_given`` is the count of items its
    parent recorded for it (None where unknown), which a leaf must match.
    Refuses, with a :class:`~shoal.ShoalValueError` naming the path, a
    state that does not fit, anywhere down the tree; opens nothing and runs
    no user code.
``_root_node(cycle, state) -> node``
    The node of a whole iteration (:class:`~shoal.StreamIterator`).
``_takes_key``
    Whether a pass draws from the key its parent hands it.
``shard(index, count)``
    The recipe of one share; :meth:`Recipe._share_refusal` says first why
    there is none, if there is none: a :class:`OneStream` for a stream that
    is one stream (each share would give the same items), which a worker
    stream runs whole in every worker instead.
``_mapped(function, args, kwargs)``
    The recipe of ``Streamer(function, self, *args, **kwargs)`` for a map
    ``function``, where the stream maps itself otherwise than a map over
    it does (a Shares stream maps each share); None: a map over it.
``_translate_state(state)``
    A state saved by an iteration of this stream run elsewhere (by
    workers), as a state of an iteration of it here; anything else as it
    is. Called before the state is checked.
``_progress(state, n_given)`` and ``_elastic_state(progress)``
    Resharding: the progress of each streamer in the state of one share,
    and the state of a share that goes on from given progress.
    ``_reshard_refusal()`` says why a kind cannot be resharded exactly.

What a node offers
------------------
``run()``
    A generator over the pass's items. Closing it closes what the pass
    opened (user generators included) at once.
``state_dict(n_given)``
    The pass's state, as ``_node_state`` returns it.
``counts()``
    A mux's node: the items each streamer gave so far in this iteration.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, TypeAlias

import numpy as np

from ._checks import check_share, short_repr
from .exceptions import ShoalTypeError, ShoalValueError

__all__ = ["Recipe", "Node", "Progress", "NEW", "FINISHED", "NotResharded", "OneStream",
           "check_stream", "checked_share", "StateDict", "Weights"]

#: A saved state: a dict of plain values (see :meth:`~shoal.StreamIterator.state_dict`).
StateDict: TypeAlias = dict[str, Any]

#: The weights of a mux's streamers: numbers, one per streamer.
Weights: TypeAlias = Sequence[float] | np.ndarray


class Node(Protocol):
    """The running state of one pass of a recipe (see the module docstring)."""

    def run(self) -> Any:
        """A generator over the pass's items."""

    def state_dict(self, n_given: int) -> StateDict:
        """The pass's state, which gave ``n_given`` items: plain values."""


class Progress(NamedTuple):
    """How far one streamer is in a pass, when the pass is split anew among shares.

    Not started: :data:`NEW`; in progress: ``Progress(False, n, state, key)``,
    ``n`` items given, ``state`` its pass's state and ``key`` the key it was
    opened with (plain values; None for a streamer that draws nothing),
    which it keeps; done: ``Progress(True, n, None)``.
    """

    done: bool
    n: int
    state: Any
    key: Any = None


#: The progress of a streamer that has not started.
NEW = Progress(False, 0, None)

#: The state of a share whose pass ended (every streamer done), where no state
#: of its own was kept.
FINISHED = "finished"


class NotResharded(ShoalValueError):
    """The states of a stream's shares cannot be split anew exactly (the message says why)."""


class OneStream(str):
    """A share refusal (see :meth:`Recipe._share_refusal`) that says the stream is one stream.

    Its shares would each give the same items: a generator function, a
    collection, an iterator, and a streamer or a map over one. The text is
    the refusal's message.
    """


class Recipe:
    """The base of every recipe: what the code that runs a stream may ask of it.

    The defaults here are those of a stream that cannot be split and keeps
    no node; each stream kind overrides what it does otherwise. See the
    module docstring for the contract.
    """

    __slots__ = ()

    #: Does a pass draw from the key its parent hands it?
    _takes_key = False

    def _open_node(self, state=None, track=False, key=None):
        raise NotImplementedError

    def _open_items(self):
        raise NotImplementedError

    def _node_state(self, node, it, n_given):
        return node.state_dict(n_given)

    def _ready_state(self, state, path="state", n_given=None):
        return state

    def _mapped(self, function, args, kwargs):
        return None

    def _translate_state(self, state):
        return state

    def _share_refusal(self, count):
        """Why this stream has no ``count`` shares, or None if it has (``count > 1``)."""
        return OneStream(
            f"{self!r} is one stream: it cannot be split into {count} shares without "
            "giving each the same items; shard a mux of several streamers (or a map over one)"
        )

    def _reshard_refusal(self):
        """Why the states of this stream's shares cannot be split anew exactly, or None."""
        return f"{self!r} is one stream"

    def _progress(self, state, n_given):
        raise NotImplementedError

    def _elastic_state(self, progress):
        raise NotImplementedError


def check_stream(stream: object, name: str = "stream") -> Recipe:
    """Return ``stream`` if it is a recipe (a Streamer or a mux); else a ShoalTypeError."""
    if not isinstance(stream, Recipe):
        raise ShoalTypeError(
            f"{name} must be a Streamer or a mux, got {short_repr(stream)} "
            f"({type(stream).__name__})"
        )
    return stream


def checked_share(recipe, index, count):
    """``(index, count)`` of a share of ``recipe``, checked; its refusal raised if it has none.

    What every ``shard`` does first; ``count == 1`` is the recipe itself.
    """
    index, count = check_share(index, count)
    if count > 1:
        refusal = recipe._share_refusal(count)
        if refusal is not None:
            raise ShoalValueError(refusal)
    return index, count
