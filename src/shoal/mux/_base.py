"""What every mux shares: its streamers, its seed, and how a pass starts."""

import copy
import inspect
import itertools
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeAlias, TypeVar

import numpy as np

from .. import _schema as schema
from .._checks import check_recipe, check_weights, is_iterable, short_repr
from .._contract import FINISHED, NEW, NotResharded, Progress, Weights, checked_share
from .._counter import counter_at, given, hand_counter
from .._iterutil import add_note, empty_pass, limited
from .._random import RandomStateLike, as_seed_sequence, pass_key, seed_to_plain, share_seed
from .._schema import check_fields, restored_node, state_error
from ..core import Streamer
from ..exceptions import ShoalError, ShoalTypeError, ShoalValueError

__all__ = [
    "BaseMux",
    "StreamerLike",
    "WeightsLike",
    "as_streamers",
    "as_streamer",
    "note_streamer",
    "open_child",
    "open_counted",
    "counted_state",
    "check_state",
    "weights_recipe",
    "restored_node",
    "check_flag",
    "Reweighable",
    "weight_spec",
    "scheduled_weights",
    "weighted_share_settings",
    "tally",
    "add_count",
]

#: One of a mux's streamers: a Streamer, or what a Streamer wraps (an iterable,
#: or a generator function called with no argument).
StreamerLike: TypeAlias = Streamer | Iterable[Any] | Callable[[], Iterable[Any]]

#: What a weighted mux's ``weights`` takes: one number per streamer, or a
#: schedule ``weights(n_given)`` that returns them, or None (equal weights).
WeightsLike: TypeAlias = Weights | Callable[[int], Weights] | None

_Mux = TypeVar("_Mux", bound="BaseMux")


def open_child(streamer, state, track, counter, key=None):
    """Open ``streamer`` for a mux that counts its items with ``counter``: ``(node, iterator)``.

    ``key`` is the activation's key (see ``TreeSeed.child``).
    """
    node, it = streamer._open_node(state, track, key)
    hand_counter(node, counter)
    return node, it




def weight_spec(weights, n_streams):
    """``(weights, schedule)``: normalised starting weights, and the schedule if any.

    ``weights`` may be a callable ``schedule(n_given) -> weights``.
    """
    if callable(weights):
        try:
            inspect.signature(weights).bind(0)
        except TypeError as exc:
            raise ShoalTypeError(
                f"weights is a schedule, called as weights(n_given), but {short_repr(weights)} "
                f"cannot be called so: {exc}"
            ) from None
        except ValueError:  # no signature to read: the call will tell
            pass
        return scheduled_weights(weights, 0, n_streams), weights
    return check_weights(weights, n_streams), None


def scheduled_weights(schedule, n_given, n_streams):
    """The weights a schedule gives after ``n_given`` items, checked and normalised."""
    try:
        weights = schedule(n_given)
    except Exception as exc:
        add_note(exc, f"raised by the weights schedule, called with {n_given}")
        raise
    return check_weights(weights, n_streams, name=f"weights({n_given})")


class Reweighable:
    """What the iterators of ShuffledMux and StochasticMux share: weights that change.

    A subclass has ``mux``, ``base_weights`` and ``counts()``, and applies
    new base weights in ``_reweigh()``; for :meth:`_next_pass`, ``cycle``,
    ``yielded``, ``epoch``, ``seed``, ``random`` and ``_start_pass()``.
    """

    __slots__ = ()

    def _next_pass(self):
        """Start the next pass of a cycling iteration, or say (False) that the iteration ends.

        A pass that gave no item would repeat for ever: it raises instead.
        """
        if not self.cycle:
            return False
        if not self.yielded:
            raise empty_pass(self.mux)
        self.epoch += 1
        self.random.rekey(self.seed.pass_key(self.mux, self.epoch))
        self._start_pass()
        return True

    def set_weights(self, weights):
        """Use ``weights`` from the next draw on (streamers dropped for being empty stay so)."""
        self.base_weights = check_weights(weights, len(self.mux.streamers)).copy()
        self._reweigh()

    def _scheduled(self):
        """Ask the mux's weights schedule, if any, for the weights from here on."""
        schedule = self.mux.weight_schedule
        if schedule is not None:
            weights = scheduled_weights(schedule, sum(self.counts()), len(self.mux.streamers))
            if not np.array_equal(weights, self.base_weights):
                self.base_weights = weights.copy()
                self._reweigh()


def tally(totals, running=(), waiting=()):
    """How many items each streamer gave: a node's ``counts()``.

    ``totals`` counts the items of finished activations; ``running`` gives
    ``(index, counter)`` of the activations open now, and ``waiting``
    ``(index, n)`` of those a state restored and that are not reopened yet.
    The list grows to any index it is given (a chain learns its streamers
    as it reads them).
    """
    counts = list(totals)
    for index, n in itertools.chain(((j, given(c)) for j, c in running), waiting):
        add_count(counts, index, n)
    return counts


def add_count(counts, index, n):
    """Add ``n`` to ``counts[index]``, growing the list as needed."""
    if index >= len(counts):
        counts.extend([0] * (index + 1 - len(counts)))
    counts[index] += n


def check_flag(name, value):
    """Return ``value`` if it is a bool (numpy's included)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ShoalTypeError(f"{name} must be True or False, got {short_repr(value)}")


def open_counted(streamer, track, state=None, key=None):
    """Open a streamer for a mux that counts its items: ``(node, iterator, counter)``.

    ``state`` is what :func:`counted_state` saved, or None for a new pass;
    ``key`` the activation's key (see ``TreeSeed.child``), which a mux or a
    map inside the streamer draws from, tracked or not.
    """
    counter = counter_at(state["n"] if state else 0)
    if track or streamer._takes_key:
        node, it = open_child(streamer, state and state["state"], track, counter, key)
    else:
        node, it = None, streamer._open_items()
    return node, it, counter


def counted_state(streamer, node, it, counter, track):
    """The state of a pass opened by :func:`open_counted`."""
    n = given(counter)
    return {"n": n, "state": streamer._node_state(node, it, n) if track else None}


# What the state of any mux may hold beside its kind's schema: the keys its
# streamers were given in the shares they ran in before a reshard.
_MUX_OPTIONAL = {"keys": schema.keys}


def check_state(state, mux):
    """Check that ``state`` is a state of an iterator of ``mux`` (its envelope).

    It must be of a mux of the same kind, over as many streamers, made with
    the same settings (:func:`check_recipe`).
    """
    kind = type(mux).__name__
    if not isinstance(state, dict) or state.get("type") != kind:
        got = state.get("type") if isinstance(state, dict) else type(state).__name__
        raise ShoalValueError(f"state must be the state of a {kind} iterator, got one of {got!r}")
    if "recipe" not in state:
        raise ShoalValueError(f"state of a {kind} iterator lacks 'recipe'")
    n = state.get("n_streams")
    if n is not None and mux._lazy_count() is not None and n != mux._lazy_count():
        raise ShoalValueError(
            f"state is of a {kind} over {n} streamers, but this one has {mux._lazy_count()}"
        )
    check_recipe(state["recipe"], mux._recipe(), repr(mux))


def weights_recipe(mux):
    """What a state records of the weights ``mux`` was made with (not those in force)."""
    if getattr(mux, "weight_schedule", None) is not None:
        return "schedule"
    return mux.weights.tolist()


def note_streamer(exc, mux, index):
    """Note on ``exc`` that it came from ``mux.streamers[index]``."""
    add_note(exc, f"raised in streamers[{index}] of {mux!r}: {mux.streamers[index]!r}")


def as_streamers(streamers, name="streamers", allow_empty=False):
    """Return ``streamers`` as a tuple of Streamers, wrapping plain iterables.

    Raises a clear error for a single Streamer, a string, or an element that
    cannot be streamed.
    """
    if isinstance(streamers, Streamer):
        raise ShoalTypeError(
            f"{name} must be a collection of streamers, got a single {type(streamers).__name__}; "
            "wrap it in a list"
        )
    if isinstance(streamers, (str, bytes)) or not is_iterable(streamers):
        raise ShoalTypeError(
            f"{name} must be a collection of streamers, got {short_repr(streamers)} "
            f"({type(streamers).__name__})"
        )
    out = []
    for index, item in enumerate(streamers):
        out.append(as_streamer(item, f"{name}[{index}]"))
    if not out and not allow_empty:
        raise ShoalValueError(f"{name} must not be empty: there is nothing to mux")
    return tuple(out)


def as_streamer(item, name):
    """Return ``item`` as a Streamer, naming ``name`` if it cannot be one."""
    if isinstance(item, Streamer):
        return item
    try:
        return Streamer(item)
    except ShoalTypeError:
        raise ShoalTypeError(
            f"{name} must be a Streamer, an iterable or a generator function, "
            f"got {short_repr(item)} ({type(item).__name__})"
        ) from None


class BaseMux(Streamer):
    """A Streamer that draws its items from several streamers.

    A mux is a recipe: it holds its streamers and settings and never changes
    while it is iterated. Each iteration builds a fresh iterator object that
    holds the running state.

    Parameters
    ----------
    streamers : iterable of Streamer or iterables
        The streams to mux. Anything that is not a Streamer is wrapped in one.
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed. A seeded mux repeats the same order on every pass. Inside
        another mux, each activation draws from a key derived from the seed,
        the parent's pass and the activation's number ("Seeds flow down a
        tree of muxes" in the concepts page). With ``None``, a mux takes the
        seed handed down by the muxes above it, or, with none above, draws
        a seed from numpy's global state when an iteration starts (kept in
        its state) and draws afresh at every pass, as in pescador.
    """

    _OWN_KIND = "mux"  # a mux makes its own passes (see Streamer)
    _plain_leaf = False  # a pass of a mux has a node
    _takes_key = True  # ... and draws from the key its parent hands it

    def __init__(self, streamers: Iterable[StreamerLike], random_state: RandomStateLike = None) -> None:
        self.streamers = self._streamers_of(streamers)
        super().__init__(self.streamers)
        self.random_state = random_state
        self._set_seed(as_seed_sequence(random_state))

    def _streamers_of(self, streamers):
        """The mux's ``streamers``, checked: a tuple of Streamers (a kind may take others)."""
        return as_streamers(streamers)

    def _set_seed(self, seed):
        """Set the mux's own seed, and its key, computed once (see ``TreeSeed``)."""
        self._seed = seed
        self._seed_key = None if seed is None else pass_key(seed)

    def _derive(self, streamers=None, seed=None, **settings):
        """A new mux of this kind made as this one, with these streamers, seed and settings.

        Shares and a chain in another mode are made so: this mux is not changed.
        """
        part = copy.copy(self)
        part.__dict__.update(settings)
        if streamers is not None:
            part.streamers = part.source = streamers
        if seed is not None:
            part._set_seed(seed)
            part.random_state = seed
        return part

    @property
    def n_streams(self) -> int:
        """The number of streamers."""
        return len(self.streamers)

    def _lazy_count(self):
        """The number of streamers, or None while it is not known yet."""
        return len(self.streamers)

    def _make_node(self, cycle=False, state=None, track=False, key=None):
        """Build the iterator object of one iteration (subclasses).

        With ``cycle``, the iterator starts a new pass whenever one ends;
        with ``state``, it starts where that state says; with ``track``, it
        keeps what its ``state_dict`` needs even where that costs time;
        ``key`` is what the parent mux handed down (None for a root: see
        ``shoal._random.TreeSeed``).
        """
        raise NotImplementedError

    def _open(self, max_iter=None, cycle=False):
        gen = self._make_node(cycle).run()
        return gen if max_iter is None else limited(gen, max_iter)

    def _open_node(self, state=None, track=False, key=None):
        if state is None:
            node = self._make_node(False, state, track, key)
        else:
            node = restored_node(self, state, lambda: self._make_node(False, state, track, key))
        return node, node.run()

    def _root_node(self, cycle, state):
        return self._make_node(cycle, state, track=True)

    def _ready_root(self, root, n_given, path="state['state']"):
        return self._ready_state(root, path, n_given)

    def _pass_of_root(self, root, n_given):
        return root, n_given

    def _root_of_pass(self, state, n_given):
        return state

    def _reshard_pass(self, passes, count, new_count):
        """The states of ``new_count`` shares of this mux that go on from those of ``count``.

        ``passes[i]`` is ``(state, n_given)``: the state of a pass of
        ``self.shard(i, count)`` (None if it had not started,
        :data:`~shoal._contract.FINISHED` if it ended) and the items it had
        given. Each share's state says, for each of its streamers, whether
        it is done, in progress or not started (its kind's ``_progress``);
        together they describe the whole mux's pass, and the new shares
        take the streamers ``k::new_count`` with their progress (their
        kind's ``_elastic_state``). That is exact when a streamer's items do
        not depend on the share it runs in, and each streamer runs once per
        pass; a kind where that fails says why in ``_reshard_refusal``.
        Returns ``(state, n_given)`` for ``self.shard(k, new_count)``, ``k``
        in ``range(new_count)``.
        """
        why = self._reshard_refusal()
        if why is not None:
            raise NotResharded(f"cannot reshard the states of {self!r} exactly: {why}")
        progress = [NEW] * len(self.streamers)
        for i, (state, n_given) in enumerate(passes):
            share = self.shard(i, count)
            if state is None:
                local = [NEW] * len(share.streamers)
            elif state == FINISHED:
                local = [Progress(True, 0, None)] * len(share.streamers)
            else:
                try:
                    state = share._ready_state(state, f"states[{i}]['state']", n_given)
                    local = share._progress(state, n_given)
                except ShoalValueError as exc:
                    add_note(exc, f"in the state of share {i} of {count} of {self!r}")
                    raise
            progress[i::count] = local
        out = []
        for k in range(new_count):
            local = progress[k::new_count]
            out.append((self.shard(k, new_count)._elastic_state(local), sum(p.n for p in local)))
        return out

    def _reshard_refusal(self):
        return f"there is no exact way known to split the pass of a {type(self).__name__}"

    def _open_cycle(self, max_iter):
        # The iterator starts each new pass itself: no generator layer on top.
        return self._open(max_iter, cycle=True)

    def _open_items(self):
        return self._open()

    def _settings(self):
        return {}

    def _recipe(self):
        """What the state of an iteration records of the settings it was made with.

        A state loads only into a mux made with the same settings (see
        :func:`check_recipe`). Plain values: the seed as
        :func:`~shoal._random.seed_to_plain` gives it, and each kind's own
        settings.
        """
        return {"random_state": seed_to_plain(self._seed)}

    #: The schema of the state of this kind's node: ``{field: checker}`` (see
    #: ``shoal._schema``), beside the envelope every mux's state has.
    _STATE_SCHEMA: ClassVar[dict] = {}

    def _ready_state(self, state, path="state", n_given=None):
        """``state``, the state of a pass of this mux, checked and made ready.

        See ``Recipe._ready_state``: called once, in ``load_state_dict``.
        The state must be of a mux made as this one (:func:`check_state`),
        with the fields of its kind's schema, and the states of its open
        streamers are handed to them, so that a state of a stream made
        otherwise, anywhere in the tree, is refused at the load, not at the
        first item. Opens nothing.
        """
        if state is None:
            return None
        check_state(state, self)
        check_fields(state, self._STATE_SCHEMA, path, self._lazy_count(), _MUX_OPTIONAL)
        return self._ready_children(state, path, n_given)

    def _ready_children(self, state, path, n_given=None):
        """``state``, the states of its open streamers made ready (see :meth:`_ready_state`).

        ``n_given`` is what the mux gave, where its parent knows it.
        """
        children = state.get("children")
        if not children:
            return state
        ready = {j: {**child, "state": self._ready_child(
                     int(j), child["state"], path=f"{path}['children'][{j!r}]['state']",
                     n_given=child["n"])}
                 for j, child in children.items()}
        return {**state, "children": ready}

    def _ready_child(self, index, state, streamer=None, path="state", n_given=None):
        """The state of streamer ``index`` of this mux (``streamer``), made ready by it."""
        if state is None:
            return None
        if streamer is None:
            if index >= len(self.streamers):
                raise state_error(path, f"the state of one of the {len(self.streamers)} "
                                        "streamers", index)
            streamer = self.streamers[index]
        try:
            return streamer._ready_state(state, path, n_given)
        except ShoalError as exc:
            add_note(exc, f"in the state of streamers[{index}] of {self!r}")
            raise

    def shard(self: _Mux, index: int, count: int) -> _Mux:
        """This mux over share ``index`` of ``count``: its streamers ``index::count``.

        The shares of one ``count`` are disjoint and together they are the
        whole mux: run them in ``count`` workers, processes or hosts, and
        every streamer runs in exactly one of them. Each share keeps every
        setting of this mux (its weights are those of its streamers,
        normalised; ``n_active`` is capped at its number of streamers) and
        is seeded from this mux's seed and ``index``, so it is the same on
        every call. ``shard(0, 1)`` is this mux itself.

        Parameters
        ----------
        index : int
            Which share, ``0 <= index < count``.
        count : int >= 1
            How many shares.

        Returns
        -------
        BaseMux
            A mux of the same kind over ``streamers[index::count]``.

        Raises
        ------
        ShoalValueError
            If ``index`` is not in ``0..count-1``; if the mux has fewer
            streamers than ``count`` (a share would have none: rather than
            give an empty share or repeat the mux, it refuses); or if the
            share's streamers all have weight 0.
        ShoalTypeError
            If ``index`` or ``count`` is not an integer.

        Notes
        -----
        A consumer that takes items from the shares in turn (DataLoader
        workers, ProcessStreamer workers) gives each share the same part of
        the stream: a weighted mux then keeps its mixture only if the
        weights of each share sum to the same.

        Examples
        --------
        >>> mux = ChainMux(["ab", "cd", "ef", "gh", "ij"])
        >>> ["".join(mux.shard(i, 2)) for i in range(2)]
        ['abefij', 'cdgh']
        >>> mux.shard(0, 1) is mux
        True
        """
        index, count = checked_share(self, index, count)
        if count == 1:
            return self
        return self._derive(self.streamers[index::count], share_seed(self._seed, index),
                            **self._share_settings(index, count))

    def _share_settings(self, index, count):
        """The settings of share ``index`` of ``count`` that differ from this mux's."""
        return {}

    def _share_refusal(self, count):
        """Why this mux has no ``count`` shares, or None: every share needs a streamer."""
        n_streams = self._lazy_count()
        if n_streams is not None and n_streams < count:
            return (f"count must be at most the number of streamers of {self!r} ({n_streams}), "
                    f"got {count}: every share needs at least one streamer")
        return None

    def __repr__(self):
        parts = [f"<{len(self.streamers)} streamers>"]
        parts += [f"{key}={value!r}" for key, value in self._settings().items()]
        return f"{type(self).__name__}({', '.join(parts)})"


def weighted_share_settings(mux, index, count):
    """The weights of share ``index`` of ``count`` of a weighted ``mux``: those of its streamers."""
    settings = _normalised(mux, index, count)
    if mux.weight_schedule is not None:
        settings["weight_schedule"] = _ShareSchedule(mux.weight_schedule, len(mux.streamers),
                                                     index, count)
    return settings


def _normalised(mux, index, count):
    share = mux.weights[index::count]
    if not share.any():
        raise ShoalValueError(
            f"share {index} of {count} of {mux!r} has only streamers of weight 0 "
            f"(weights[{index}::{count}]): it would give nothing"
        )
    weights = share / share.sum()
    weights.flags.writeable = False
    return {"weights": weights}


class _ShareSchedule:
    """The weights schedule of a share: the full schedule's weights of its streamers."""

    __slots__ = ("schedule", "n_streams", "index", "count")

    def __init__(self, schedule, n_streams, index, count):
        self.schedule = schedule
        self.n_streams = n_streams
        self.index = index
        self.count = count

    def __call__(self, n_given):
        weights = check_weights(self.schedule(n_given), self.n_streams, name=f"weights({n_given})")
        return weights[self.index::self.count]
