"""ChainMux: one streamer after another."""

import collections.abc
import inspect
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Literal

from .. import _schema as schema
from .._checks import check_choice, short_repr
from .._contract import checked_share
from .._counter import counted_if_needed, given
from .._iterutil import END, add_note, close_quietly, empty_pass
from .._random import RandomStateLike, TreeSeed, key_to_plain, share_seed
from .._schema import state_error
from ..core import Streamer
from ..exceptions import ShoalTypeError, ShoalValueError
from ._base import (
    NEW,
    BaseMux,
    Progress,
    StreamerLike,
    add_count,
    as_streamer,
    as_streamers,
    tally,
)

__all__ = ["ChainMux"]


class _LazyStreamers:
    """Streamers pulled one by one from an iterator and kept for later passes."""

    __slots__ = ("_source", "_items")

    def __init__(self, source):
        self._source = source
        self._items = []

    def get(self, index):
        items = self._items
        while len(items) <= index and self._source is not None:
            item = next(self._source, END)
            if item is END:
                self._source = None
            else:
                items.append(as_streamer(item, f"streamers[{len(items)}]"))
        return items[index] if index < len(items) else None

    def __len__(self):
        return len(self._items)


def _check_callable_source(source):
    """Refuse, at the call, a function of streamers that cannot be called with no argument."""
    try:
        signature = inspect.signature(source)
    except (TypeError, ValueError):  # a builtin or an odd callable: it will tell when called
        return
    try:
        signature.bind()
    except TypeError as exc:
        raise ShoalTypeError(
            f"streamers is a function, {short_repr(source)}, that the chain calls with no "
            f"argument at every pass, but it needs some ({exc}); pass "
            "Streamer(function, *args) to give it its arguments"
        ) from None


def _every_nth(source, index, count):
    """The streamers ``index``, ``index + count``, ... of a pass of ``source``."""
    it = iter(source)
    try:
        yield from islice(it, index, None, count)
    finally:
        close_quietly(it)


#: The schema of a ChainMux's node's state (see ``shoal._schema``).
CHAIN_STATE = {
    "seed": schema.seed,
    "epoch": schema.count,
    "index": schema.count,  # the streamer now running
    "offset": schema.count,  # the items the chain had given when it started
    "yielded": schema.flag,  # has this pass given an item?
    "child": schema.stream_state,  # the running streamer's state
    "totals": schema.at_most_per_streamer,  # items of each streamer done
    "done": schema.streamer_list,  # streamers done before a reshard
    "resume": schema.children,  # streamers to resume where a reshard left them
}


class ChainMux(BaseMux):
    """Run each streamer to exhaustion, one after another.

    Like :func:`itertools.chain`, over streamers. In ``"cycle"`` mode the
    chain starts again from the first streamer when the last one ends, so a
    chain of N streamers of M items each repeats exactly every N*M items:
    the repeatable validation stream. A streamer that yields nothing is
    skipped.

    Parameters
    ----------
    streamers : list of Streamers, iterator of Streamers, or a source of Streamers
        What to chain, as pescador takes it:

        - A list (or other collection) of streamers; anything that is not a
          Streamer is wrapped in one.
        - An iterator, such as a generator object, yielding them. It is read
          lazily, one streamer at a time, and the streamers it gave are
          kept, so that the chain can repeat (as pescador, which reads it
          all at once).
        - A source of streamers: a generator function (called with no
          argument), or a Streamer whose items are streamers, such as
          ``Streamer(files_fn, 10)``. Every pass of the chain starts the
          source afresh and reads it one streamer at a time, so a pass may
          give other streamers than the last (new files, say). To resume
          an iteration, or to split the chain among workers, the source
          must give the same streamers every time it is started.
    mode : {"exhaustive", "cycle"}
        ``"exhaustive"`` stops after the last streamer; ``"cycle"`` repeats
        the chain forever.
    random_state : None, int, SeedSequence, Generator or RandomState
        The seed that unseeded muxes among the streamers draw from (see
        "Seeds flow down a tree of muxes" in the concepts page); a chain
        itself draws no random numbers. Every pass hands each streamer the
        same key, so a chain in ``"cycle"`` mode repeats exactly, seeded
        muxes inside it included. Unseeded (``None``, and no seed above),
        the chain draws a seed from numpy's global state when an iteration
        starts (kept in its state), and the unseeded muxes inside draw
        afresh at every pass.

    Raises
    ------
    ShoalValueError
        For an unknown mode, or ``mode="cycle"`` with no streamers.
    ShoalTypeError
        For ``streamers`` that is none of the above, or a function that
        cannot be called with no argument.
    EmptyStreamError
        In ``"cycle"`` mode, when a whole pass of the chain yields no item.
    SpentSourceError
        When a pass restarts a source that streams once, such as
        ``Streamer(generator_object)``.

    Examples
    --------
    >>> list(ChainMux([Streamer("abc"), Streamer("de")]))
    ['a', 'b', 'c', 'd', 'e']
    >>> "".join(ChainMux(["ab", "c"], mode="cycle")(max_iter=7))
    'abcabca'

    A generator of streamers is read lazily:

    >>> def letters(n_streamers, n_copies):
    ...     for letter in "abcdefgh"[:n_streamers]:
    ...         yield Streamer(letter * n_copies)
    >>> "".join(ChainMux(letters(3, 2)))
    'aabbcc'

    A source of streamers is started afresh at every pass:

    >>> chain = ChainMux(Streamer(letters, 2, 3), mode="cycle")
    >>> "".join(chain(max_iter=9))
    'aaabbbaaa'
    """

    def __init__(self, streamers: Iterable[StreamerLike] | Callable[[], Iterable[StreamerLike]],
                 mode: Literal["exhaustive", "cycle"] = "exhaustive",
                 random_state: RandomStateLike = None) -> None:
        self.mode = check_choice("mode", mode, ("exhaustive", "cycle"))
        # A source of streamers too: this kind's _streamers_of takes it.
        super().__init__(streamers, random_state)  # type: ignore[arg-type]

    def _streamers_of(self, streamers):
        # A list of streamers; a Streamer (or a generator function) that gives
        # them at every pass (`_source`); or an iterator of them, read as the
        # chain goes (`_lazy`).
        self._lazy = self._source = None
        if isinstance(streamers, Streamer):
            self._source = streamers
            return streamers
        if isinstance(streamers, collections.abc.Iterator):
            self._lazy = _LazyStreamers(streamers)
            return self._lazy._items
        if callable(streamers) and not isinstance(streamers, collections.abc.Iterable):
            _check_callable_source(streamers)
            self._source = Streamer(streamers)
            return self._source
        streamers = as_streamers(streamers, allow_empty=True)
        if not streamers and self.mode == "cycle":
            raise ShoalValueError(
                "streamers must not be empty with mode='cycle': the chain would "
                "repeat nothing forever"
            )
        return streamers

    @property
    def n_streams(self) -> int | None:  # type: ignore[override]  # None: not known yet
        """The number of streamers, or None while it is not known (a source, an iterator)."""
        return self._lazy_count()

    def _streamer(self, index):
        """Streamer ``index`` of a list or an iterator of streamers (None after the last)."""
        if self._lazy is not None:
            return self._lazy.get(index)
        streamers = self.streamers
        return streamers[index] if index < len(streamers) else None

    def _make_node(self, cycle=False, state=None, track=False, key=None):
        return _ChainIterator(self, cycle or self.mode == "cycle", state, track, key)

    def _lazy_count(self):
        if self._source is not None:
            return None  # known only by reading a pass
        if self._lazy is not None and self._lazy._source is not None:
            return None  # not all read yet
        return len(self.streamers)

    def shard(self, index: int, count: int) -> "ChainMux":
        """This chain over share ``index`` of ``count`` of its streamers (see :meth:`BaseMux.shard`).

        A chain over a source of streamers gives a chain over the source's
        streamers ``index``, ``index + count``, ... of every pass: the shares
        are disjoint and together the whole chain as long as the source
        gives the same streamers every time it is started. A share may then
        have no streamer (in ``"cycle"`` mode it raises EmptyStreamError).

        Raises
        ------
        ShoalValueError
            For a chain over an iterator of streamers not read to its end:
            its streamers are not known until they are read, and an
            iterator cannot be read by several workers.
        """
        index, count = checked_share(self, index, count)
        if count == 1:
            return self
        if self._source is not None:
            every_nth = Streamer(_every_nth, self._source, index, count)
            return self._derive(every_nth, share_seed(self._seed, index), _source=every_nth)
        return super().shard(index, count)

    def _share_refusal(self, count):
        if self._source is None and self._lazy_count() is None:
            return ("a ChainMux over an iterator of streamers cannot be split among workers: "
                    "its streamers are not known until they are read; pass a list of streamers, "
                    "or a generator function (or a Streamer) that gives them")
        if self._source is not None:
            return None  # each share reads every count-th streamer of each pass
        return super()._share_refusal(count)

    _STATE_SCHEMA = CHAIN_STATE

    def _settings(self):
        return {"mode": self.mode}

    def _recipe(self):
        return {**super()._recipe(), "mode": self.mode}

    def _ready_children(self, state, path, n_given=None):
        # The open streamer's state, and those of streamers to resume (resharded).
        if self._source is not None:
            return state  # its streamers are known only by reading a pass
        ready = {}
        index, child = state["index"], state["child"]
        if child is not None:
            streamer = self._streamer(index)
            if streamer is None:
                raise state_error(f"{path}['index']", "the number of a streamer", index)
            n_child = None
            if n_given is not None:
                if state["offset"] > n_given:
                    raise state_error(f"{path}['offset']", f"at most {n_given}", state["offset"])
                n_child = n_given - state["offset"]
            ready["child"] = self._ready_child(index, child, streamer, f"{path}['child']", n_child)
        if state["resume"]:
            entries = {}
            for j, entry in state["resume"].items():
                streamer = self._streamer(int(j))
                if streamer is None:
                    raise state_error(f"{path}['resume']", "keyed by streamer numbers", j)
                entries[j] = {**entry, "state": self._ready_child(
                    int(j), entry["state"], streamer, f"{path}['resume'][{j!r}]['state']",
                    entry["n"])}
            ready["resume"] = entries
        return {**state, **ready} if ready else state

    def _in_mode(self, mode):
        """This chain, over the same streamers (or source, or iterator), in ``mode``."""
        return self._derive(mode=check_choice("mode", mode, ("exhaustive", "cycle")))

    def __repr__(self):
        if self._source is not None:
            what = f"<streamers of {self._source!r}>"
        elif self._lazy is not None:
            what = f"<streamers of an iterator, {len(self._lazy)} read>"
        else:
            what = f"<{len(self.streamers)} streamers>"
        return f"ChainMux({what}, mode={self.mode!r})"


    def _reshard_refusal(self):
        if self._lazy_count() is None:
            return (
                "its streamers come from a source (or an iterator) and are not known until "
                "they are read; pass a list of streamers"
            )
        if self.mode != "exhaustive":
            return (
                f"in mode={self.mode!r} a ChainMux starts its streamers again after each pass, "
                "and each share is somewhere else in its passes: no one pass can be split"
            )
        return None

    def _progress(self, state, n_given):
        """Each streamer's :class:`Progress` in ``state``.

        ``n_given`` is what the chain had given when ``state`` was saved: its
        running streamer gave that less the state's ``offset``.
        """
        node = _ChainIterator(self, False, state, True)  # opens nothing
        index, totals = state["index"], state["totals"]
        done = set(state["done"])
        resume = state["resume"]
        out = []
        for j, streamer in enumerate(self.streamers):
            total = totals[j] if j < len(totals) else 0
            key = key_to_plain(node.seed.child(0, j, 0)) if streamer._takes_key else None
            if str(j) in resume:
                out.append(Progress(False, resume[str(j)]["n"], resume[str(j)]["state"], key))
            elif j < index or j in done:
                out.append(Progress(True, total, None))
            elif j == index and state["child"] is not None:
                out.append(Progress(False, n_given - state["offset"], state["child"], key))
            else:
                out.append(NEW)
        return out

    def _elastic_state(self, progress):
        """The state of an iteration of this mux that goes on from ``progress``.

        Its reader's count starts at the items given, ``sum(p.n for p in progress)``.
        """
        return {
            "type": "ChainMux",
            "n_streams": len(progress),
            "recipe": self._recipe(),
            "seed": None,
            "epoch": 0,
            "index": 0,
            "offset": sum(p.n for p in progress),
            "yielded": any(p.n for p in progress),
            "child": None,
            "totals": [p.n if p.done else 0 for p in progress],
            "done": [j for j, p in enumerate(progress) if p.done],
            "resume": {str(j): {"n": p.n, "state": p.state}
                       for j, p in enumerate(progress) if not p.done and p.state is not None},
            "keys": {str(j): p.key for j, p in enumerate(progress) if p.key is not None},
        }

class _ChainIterator:
    """The running state of one iteration of a ChainMux.

    When it tracks its state, the chain learns how many items it gave from
    ``out_counter``, the counter of whoever reads it; so it counts nothing
    itself, and a streamer's progress is the chain's count less ``offset``,
    the count when that streamer started.

    A state made by :func:`~shoal.reshard_states` also names streamers that
    are done (``done``) and streamers to resume where their state says
    (``resume``); the chain passes over the first and resumes the second
    when it reaches them.
    """

    __slots__ = (
        "mux", "cycle", "track", "epoch", "index", "offset", "yielded",
        "node", "sub", "child_state", "out_counter", "totals", "seed", "done", "resume",
        "streamer", "source_it", "n_read",
    )

    def __init__(self, mux, cycle, state=None, track=False, key=None):
        self.mux = mux
        # What the streamers inherit (an unseeded root draws one, kept in the state).
        self.seed = TreeSeed(mux._seed, key, state.get("seed") if state else None, owner=mux)
        self.cycle = cycle
        self.track = track or state is not None  # a restored child has a state to load
        self.epoch = 0  # passes completed
        self.index = 0  # the streamer now running
        self.offset = 0  # items the chain had given when that streamer started
        self.yielded = False  # has this pass given an item?
        self.node = self.sub = None  # the running streamer's node and iterator, when tracking
        self.child_state = None  # where the next streamer opened starts
        self.out_counter = None  # counts the chain's items; set by its reader
        self.totals = []  # items given by each streamer, but the running one
        self.done = set()  # streamers done before a reshard
        self.resume = {}  # streamer index -> {"n", "state"}: resumed when reached
        self.streamer = None  # the streamer now running, while one is
        self.source_it = None  # a source of streamers: this pass's iterator over it
        self.n_read = 0  # ...and the streamers read from it
        if state is not None:  # checked by ChainMux._ready_state when it was loaded
            self.epoch = state["epoch"]
            self.index = state["index"]
            self.offset = state["offset"]
            self.yielded = state["yielded"]
            self.child_state = state["child"]
            self.totals = list(state["totals"])
            self.done = set(state["done"])
            self.seed.pin(state.get("keys"))
            self.resume = {int(j): entry for j, entry in state["resume"].items()}

    def _given(self):
        return given(self.out_counter) if self.out_counter is not None else None

    def state_dict(self, n_given=None):
        child = self.child_state  # restored, and not opened since
        if self.sub is not None:
            child = self.streamer._node_state(self.node, self.sub, self._given() - self.offset)
        state = {
            "type": "ChainMux",
            "n_streams": self.mux._lazy_count(),
            "recipe": self.mux._recipe(),
            "seed": self.seed.saved(),
            "epoch": self.epoch,
            "index": self.index,
            "offset": self.offset,
            "yielded": self.yielded,
            "child": child,
            "totals": list(self.totals),
            "done": sorted(j for j in self.done if j >= self.index),
            "resume": {str(j): entry for j, entry in self.resume.items()},
        }
        if self.seed.pinned:
            state["keys"] = self.seed.pinned_plain()
        return state

    def counts(self):
        waiting = [(j, entry["n"]) for j, entry in self.resume.items()]
        if self.sub is not None or (self.child_state is not None and self.out_counter is not None):
            waiting.append((self.index, self._given() - self.offset))  # (or restored, not reopened)
        return tally(self.totals, (), waiting)

    def _open(self, streamer):
        """Open the streamer at ``self.index``, where ``child_state`` says.

        Returns ``(reader, it)``: read the items from ``reader``, close ``it``
        (the reader may be a counting wrapper, which cannot be closed).
        """
        # Every pass hands streamer i the same key, so that a cycling chain over seeded
        # muxes repeats exactly; in an unseeded tree, unseeded muxes draw afresh.
        key = self.seed.child(0, self.index, 0, self.epoch) if streamer._takes_key else None
        if not self.track or self.out_counter is None:
            sub = streamer._open_items() if key is None else streamer._open_node(None, False, key)[1]
            return sub, sub
        entry = self.resume.pop(self.index, None) if self.resume else None
        if entry is not None:  # resharded: it had given entry["n"] items
            self.child_state = entry["state"]
            self.offset = self._given() - entry["n"]
        if self.child_state is not None and self.mux._source is not None:
            # Streamers read from a source are known only now: a restored one's
            # state is checked as it opens (a list's are, at the load).
            self.child_state = self.mux._ready_child(
                self.index, self.child_state, streamer, "the chain's state['child']",
                self._given() - self.offset)
        node, sub = streamer._open_node(self.child_state, True, key)
        self.child_state = None
        self.node = node
        self.sub = sub
        return counted_if_needed(node, sub, self._given() - self.offset), sub

    def _close(self, sub):
        close_quietly(sub)
        if self.sub is not None:
            done = self._given()
            add_count(self.totals, self.index, done - self.offset)
            self.offset = done
            self.node = self.sub = None

    def _from_source(self, index):
        """Streamer ``index`` of this pass of the mux's source (None after the last).

        The source is read forward only: a restored pass reads and drops the
        streamers before ``index``.
        """
        if self.source_it is None:
            try:
                self.source_it = iter(self.mux._source)
            except Exception as exc:
                add_note(exc, f"raised starting the source of streamers of {self.mux!r}")
                raise
            self.n_read = 0
        streamer = None
        while self.n_read <= index:
            try:
                item = next(self.source_it, END)
            except Exception as exc:
                add_note(exc, f"raised by the source of streamers of {self.mux!r}")
                raise
            if item is END:
                return None
            streamer = as_streamer(item, f"streamers[{self.n_read}] (from {self.mux._source!r})")
            self.n_read += 1
        return streamer

    def _end_source_pass(self):
        it, self.source_it = self.source_it, None
        close_quietly(it)

    def run(self):
        mux = self.mux
        get = mux._streamer if mux._source is None else self._from_source
        sub = None
        try:
            while True:
                while (streamer := get(self.index)) is not None:
                    if self.index in self.done:  # done before a reshard
                        self.index += 1
                        continue
                    self.streamer = streamer
                    reader, sub = self._open(streamer)
                    first = next(reader, END)
                    if first is not END:
                        self.yielded = True
                        yield first
                        yield from reader
                    self._close(sub)
                    sub = self.streamer = None
                    self.index += 1
                if mux._source is not None:
                    self._end_source_pass()
                if not self.cycle:
                    return
                if not self.yielded:
                    raise empty_pass(mux)
                self.index = 0
                self.done.clear()
                self.yielded = False
                self.epoch += 1
        except Exception as exc:
            if self.streamer is not None:
                add_note(exc, f"raised in streamers[{self.index}] of {mux!r}: {self.streamer!r}")
            raise
        finally:
            try:
                if sub is not None:
                    close_quietly(sub)
            finally:
                self._end_source_pass()


