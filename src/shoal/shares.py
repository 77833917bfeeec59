"""Shares: a stream split once and for all into canonical shares, taken in turn.

``Shares(stream, n)`` is the recipe of a stream whose items do not depend
on where it runs. Its shares are ``stream.shard(i, n)``, fixed when it is
made; its items are theirs, one from each share in turn, in share order,
and a share that ends leaves the turn. In one process that is the whole
definition; a ProcessStreamer gives its workers some shares each (worker
``w`` of ``W`` hosts the shares ``w::W``) and follows the turn of the
shares, not of the workers, and a DataLoader's workers and ranks host them
alike (``shoal.torch``): the items are the same on every topology.

Everything about the kind is here: the recipe, its node, the schema of its
state, and how states of its pass are split among hosts and put together
again (:func:`merge_states`, :func:`split_state`), which is what lets a
state saved on one topology resume on another.

The state of a pass
-------------------
A pass hosts some shares (all of them in one process, a worker's part in
a worker) and its state holds each hosted share's own iteration state::

    {"type": "Shares", "n_shares": 8, "hosted": [1, 5],
     "states": [<state of share 1's iteration>, None],  # None: ended, or not started
     "ended": [5],  # the hosted shares that ended, in the order they did
     "seed": [w0, w1, w2, w3]}  # the pass's seed, the same in every host's part

The seed of the pass is drawn when it opens, from the key its root hands it
(so a state saved before the first item says it too); a share that draws
from a key (an unseeded mux) starts its iteration with a seed derived from
it and its index, whichever host opens it.

The turn is not saved: it follows from the counts. The next item comes from
the share that has given the fewest items, the first in share order among
equals; so the states of the shares, wherever they ran, say where the pass
is.
"""

from itertools import compress

from . import _schema as schema
from ._checks import check_int
from ._contract import check_stream
from ._counter import counter_at, given
from ._iterutil import END, add_note, close_all, close_quietly, limited
from ._random import below, iteration_seed, root_key, seed_of_key
from ._resume import resumed_share
from .core import Streamer
from .exceptions import ShoalError, ShoalTypeError, ShoalValueError
from .iterator import STATE_VERSION, LeafRoot, check_version
from .maps import buffer_stream
from .maps._batch import _stack
from .mux._base import open_child

__all__ = ["Shares", "ShareEnd", "merge_states", "split_state", "turn_of", "join_parts",
           "whole_of_hosts", "root_of_part", "pass_state", "check_seed", "check_turn", "hosts_at",
           "part_state", "pass_of_iteration"]


class ShareEnd:
    """What a worker's part of a Shares pass gives where one of its shares ends.

    The consumer that follows the turn of the shares takes it out of the
    turn there; it never reaches the user.
    """

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index

    def __reduce__(self):
        return ShareEnd, (self.index,)

    def __repr__(self):
        return f"ShareEnd({self.index})"


class Shares(Streamer):
    """A stream split into ``n_shares`` canonical shares, taken in turn: the same items anywhere.

    Share ``i`` is ``stream.shard(i, n_shares)`` (for a mux: the mux over
    its streamers ``i::n_shares``, seeded from its seed and ``i``). The
    items are those of the shares, one from each in turn, in share order;
    a share that ends leaves the turn, and the pass ends when every share
    has. That sequence is defined here, in one process, and it is the
    same wherever the stream runs: a :class:`~shoal.ProcessStreamer` with
    any number of workers up to ``n_shares``, and PyTorch's DataLoader
    with any number of workers and ranks whose product divides
    ``n_shares`` (:class:`shoal.torch.StreamDataset`). A state saved on
    one of these loads on any other.

    Maps over a Shares stream map its shares: ``Streamer(tuples, shares,
    "x", "y")`` is a Shares stream of the shares' tuples, and
    ``Streamer(buffer_stream, shares, 64)`` with 8 shares gives batches of
    64 items made of 8 consecutive items of each share, share after
    share: each share makes its part of every batch where it runs (in a
    worker), and the parts are joined where the shares meet. Once a share
    has ended, the batches hold the parts of the shares still going, and
    are smaller.

    Parameters
    ----------
    stream : Streamer
        What to split: a mux with at least ``n_shares`` streamers, or a map
        over one. An unseeded mux gives each share a seed of its own at
        every iteration (saved in the state, so a resumed run goes on with
        it); seed it (``random_state``) for the same items on every run.
    n_shares : int >= 1
        The number of canonical shares: the most workers (times ranks)
        that can run the stream.

    Raises
    ------
    ShoalValueError
        If ``stream`` cannot be split into ``n_shares`` shares (a mux with
        fewer streamers, a single generator, whose shares would each give
        the same items), or ``n_shares`` is not a positive integer.
    ShoalTypeError
        If ``stream`` is not a Streamer, or is a Shares stream already.

    Examples
    --------
    >>> files = ChainMux([Streamer([f"{name}{k}" for k in range(3)]) for name in "abcd"])
    >>> shares = Shares(files, 2)  # shares: files a and c, files b and d
    >>> list(shares)
    ['a0', 'b0', 'a1', 'b1', 'a2', 'b2', 'c0', 'd0', 'c1', 'd1', 'c2', 'd2']
    >>> list(ProcessStreamer(shares, n_workers=2, start_method="fork")) == list(shares)
    True
    """

    _OWN_KIND = "shares"
    #: A pass draws its seed from the key its root hands it (see the module docstring).
    _takes_key = True

    def __init__(self, stream: Streamer, n_shares: int) -> None:
        check_stream(stream)
        if isinstance(stream, Shares):
            raise ShoalTypeError(f"stream is a Shares stream already: {stream!r}")
        n_shares = check_int("n_shares", n_shares, minimum=1)
        super().__init__(stream)
        self.stream = stream
        self.n_shares = n_shares
        if n_shares > 1:
            refusal = stream._share_refusal(n_shares)
            if refusal is not None:
                raise ShoalValueError(f"cannot split {stream!r} into n_shares={n_shares}: {refusal}")
        self._parts = tuple(stream.shard(i, n_shares) for i in range(n_shares))
        self._hosted = tuple(range(n_shares))  # the shares a pass of this recipe runs
        self._join_axis = None  # batches: the axis the shares' parts are joined along
        self._marks = False  # give a ShareEnd where a share ends (a worker's part)
        self._strict = False  # refuse shares that end apart (a DataLoader worker's part)
        self._last_word = False  # batches: say where its parts end (None), for JoinedBatches
        self._pass_seed = None  # the seed of its passes, where a host's consumer chose it

    # -- what others make of it

    def _derive(self, **settings):
        part = object.__new__(type(self))
        part.__dict__.update(self.__dict__)
        part.__dict__.update(settings)
        return part

    def hosting(self, hosted, marks=False, strict=False, seed=None, last_word=False):
        """The part of this stream that a host of ``hosted`` (share indices) runs.

        Its passes give the items of those shares in turn; with ``marks``, a
        :class:`ShareEnd` where one ends (a ProcessStreamer worker's part,
        whose consumer follows the turn); with ``strict``, an error where one
        ends while another of them goes on (a DataLoader worker's or a rank's
        part: the DataLoader takes from its workers in turn, and the ranks
        take their places in the turn, and could then no longer follow the
        turn of the shares). ``seed``: the pass's seed (see the module
        docstring), which every host of one pass shares. ``last_word``: a
        batched stream's part gives None once its parts end (a DataLoader
        worker's, for :class:`~shoal.torch.JoinedBatches`).
        """
        return self._derive(_hosted=tuple(hosted), _marks=marks, _strict=strict,
                            _last_word=last_word, _pass_seed=seed)

    def hosts(self, n_hosts):
        """The shares each of ``n_hosts`` hosts runs: host ``h`` runs the shares ``h::n_hosts``."""
        return [tuple(range(h, self.n_shares, n_hosts)) for h in range(n_hosts)]

    def _mapped(self, function, args, kwargs):
        """``Streamer(function, self, *args, **kwargs)``: a map over each share (see the class)."""
        if self._join_axis is not None and function is buffer_stream:
            raise ShoalValueError(
                f"cannot batch the batches of {self!r} again: batch its stream instead"
            )
        inner = Streamer(function, self.stream, *args, **kwargs)
        axis = self._join_axis
        if function is buffer_stream:
            size, axis = inner._arguments[0], inner._arguments[2]
            if size % self.n_shares:
                raise ShoalValueError(
                    f"buffer_size must be a multiple of n_shares={self.n_shares} for a batch "
                    f"of {self!r} to hold as many items of each share, got {size}"
                )
            inner = Streamer(buffer_stream, self.stream, size // self.n_shares,
                             *inner._arguments[1:])
            axis = 0 if axis is None else axis
        mapped = Shares(inner, self.n_shares)
        mapped._join_axis = axis
        return mapped

    def _share_refusal(self, count):
        # Not a OneStream: copies of it in every worker would repeat its items.
        return (f"{self!r} is split into its shares already: give it to ProcessStreamer or "
                "StreamDataset as it is (not wrapped in a Streamer), and they run its shares "
                "where they run")

    # -- a pass

    def _open(self, max_iter=None):
        gen = SharesNode(self, None, False, None).run()
        return gen if max_iter is None else limited(gen, max_iter)

    def _open_items(self):
        return self._open()

    def _open_node(self, state=None, track=False, key=None):
        node = SharesNode(self, state, True, key)
        return node, node.run()

    def _ready_state(self, state, path="state", n_given=None):
        """Check the state of a pass (see the module docstring), each share's state by its share."""
        if state is None:
            return None
        check_pass_state(self, state, path)
        ready = []
        for at, (index, progress) in enumerate(zip(state["hosted"], state["states"])):
            if progress is not None:
                where = f"{path}['states'][{at}]"
                schema.child(progress, where)
                try:
                    progress = {**progress, "state": self._parts[index]._ready_state(
                        progress["state"], f"{where}['state']", progress["n"])}
                except ShoalError as exc:
                    add_note(exc, f"in the state of share {index} of {self!r}")
                    raise
            ready.append(progress)
        return {**state, "states": ready}

    def _translate_state(self, state):
        """A state of an iteration of this stream run by workers, as one of an iteration of it here.

        A ProcessStreamer over this stream saves, for each worker, where its
        part was (see :func:`whole_of_hosts`); each part is brought to its
        consumer's position here, and the parts put together. Anything else
        is returned as it is.
        """
        if not isinstance(state, dict) or state.get("stream") != "ProcessStreamer":
            return state
        check_version(state)
        root = state.get("state")
        if isinstance(root, dict) and isinstance(root.get("child"), dict):
            entries, seed = root["child"].get("shares"), root["child"].get("seed")
            try:
                check_seed(seed, "state['state']['child']['seed']")
                if root["child"].get("turn") is not None:
                    check_turn(root["child"]["turn"], self.n_shares, "state['state']['child']['turn']")
                whole = whole_of_hosts(self, entries, seed, "state['state']['child']['shares']")
            except ShoalError as exc:
                add_note(exc, f"while loading a state saved by workers into {self!r}")
                raise
            root = {**root, "child": whole}
        return {**state, "stream": "Shares", "state": root}

    def __repr__(self):
        hosted = "" if len(self._hosted) == self.n_shares else f", hosted={list(self._hosted)}"
        return f"Shares({self.stream!r}, n_shares={self.n_shares}{hosted})"


class SharesNode:
    """The running state of one pass of a Shares recipe: its hosted shares' passes.

    Each share's pass is opened as a mux opens a streamer (``open_child``),
    with a key derived from the pass's seed and the share's index, and
    counted; its progress is ``{"n": items given, "state": its pass's state}``.
    """

    __slots__ = ("recipe", "track", "opened", "readers", "states", "running", "position",
                 "ended", "stopped", "seed")

    def __init__(self, recipe, state, track, key):
        self.recipe = recipe
        self.track = track
        hosted = recipe._hosted
        self.opened = {}  # share index -> (node, iterator, counter) of its open pass
        self.readers = {}  # share index -> the counted reader of its items
        self.states = dict.fromkeys(hosted)  # share index -> its progress to start from
        self.ended = []
        if state is not None:
            self.states.update(zip(state["hosted"], state["states"]))
            self.ended = list(state["ended"])
        if state is not None and state["seed"] is not None:
            self.seed = state["seed"]
        elif recipe._pass_seed is not None:
            self.seed = recipe._pass_seed
        else:
            self.seed = seed_of_key(key)
        self.running, self.position = turn_of(self.states, self.ended)
        self.stopped = False  # strict: one of its shares ended in this pass

    def _open(self):
        parts = self.recipe._parts
        pass_key = root_key(iteration_seed(None, self.seed), 0)
        for index in self.running:
            progress = self.states[index]
            n, state = (progress["n"], progress["state"]) if progress is not None else (0, None)
            counter = counter_at(n)
            node, it = open_child(parts[index], state, self.track, counter, below(pass_key, index))
            self.opened[index] = (node, it, counter)
            self.readers[index] = compress(it, counter)

    def run(self):
        try:
            self._open()
            if self.recipe._join_axis is None or self.recipe._marks:  # a worker's part: parts
                yield from self._items()
            else:
                yield from self._batches()
        finally:
            close_all([it for _, it, _ in self.opened.values()])

    def _items(self):
        running, marks = self.running, self.recipe._marks
        readers = [self.readers[index] for index in running]  # in the order of ``running``
        position = self.position
        while readers:
            n = len(readers)
            while position < n:
                try:
                    item = next(readers[position], END)
                except Exception as exc:
                    self._note(exc, running[position])
                    raise
                if item is END:
                    index = running[position]
                    self._end(index)
                    del running[position], readers[position]
                    n -= 1
                    if marks:
                        yield ShareEnd(index)
                    continue
                if self.stopped:
                    self._apart(running[position])
                position += 1
                yield item
            position = 0

    def _batches(self):
        running, readers, axis = self.running, self.readers, self.recipe._join_axis
        while running:
            parts = []
            for index in list(running):
                try:
                    part = next(readers[index], END)
                except Exception as exc:
                    self._note(exc, index)
                    raise
                if part is END:
                    self._end(index)
                    running.remove(index)
                else:
                    if self.stopped:
                        self._apart(index)
                    parts.append(part)
            if parts:
                yield join_parts(parts, axis)
        if self.recipe._last_word:
            # A DataLoader worker's last word: its part of the batches ends here
            # (see shoal.torch.joined, which joins the workers' parts round by round).
            yield None

    def _note(self, exc, index):
        add_note(exc, f"raised in share {index} of {self.recipe!r}")

    def _end(self, index):
        """Share ``index`` ended: close its pass."""
        _, it, _ = self.opened.pop(index)
        del self.readers[index]
        # A DataLoader worker's shares end one after the other in its turn, with no
        # item between: else the DataLoader, which takes from its workers in turn,
        # would no longer follow the turn of the shares.
        self.stopped = self.recipe._strict
        self.states[index] = None
        self.ended.append(index)
        close_quietly(it)

    def _apart(self, index):
        recipe = self.recipe
        raise ShoalValueError(
            f"the shares {list(recipe._hosted)} of {recipe.stream!r} that this DataLoader "
            f"worker (or rank) runs did not end together (share {index} went on after another "
            "ended): a DataLoader takes its workers' items in turn, and each rank takes its "
            "places in the turn, which they cannot follow once one of a host's shares has "
            "ended, so the items would come in another order than in one process. Make the "
            "shares endless (a cycling or sampling mux) or of equal lengths, or run them in a "
            "ProcessStreamer, or with one share per DataLoader worker on one rank"
        )

    def state_dict(self, n_given=None):
        states = dict(self.states)
        parts = self.recipe._parts
        for index, (node, it, counter) in self.opened.items():
            n = given(counter)
            states[index] = {"n": n, "state": parts[index]._node_state(node, it, n)}
        hosted = list(self.recipe._hosted)
        return pass_state(self.recipe, hosted, [states[i] for i in hosted], self.ended, self.seed)


def hosts_at(recipe, whole, n_hosts, why=""):
    """The shares each of ``n_hosts`` hosts taken in turn runs, from ``whole`` (None: the start).

    ``whole`` is the state of a whole pass (see :func:`merge_states`). Host
    ``h`` runs the shares at places ``h, h + n_hosts, ...`` of the turn from
    the next item on, so that taking one item from each host in turn, each
    host taking from its shares in turn, follows the turn of the shares (a
    DataLoader takes from its workers so, always starting with worker 0).
    That holds only if every host has as many running shares: refused
    otherwise, saying ``why`` the hosts are so many. The ended shares go to
    host 0 (their states are kept there; they give nothing).
    """
    if whole is None:
        running, position, ended = list(range(recipe.n_shares)), 0, []
    else:
        running, position = turn_of(dict(zip(whole["hosted"], whole["states"])), whole["ended"])
        ended = whole["ended"]
    if len(running) % n_hosts:
        raise ShoalValueError(
            f"cannot run {recipe!r} on {n_hosts} hosts taken in turn{why}: "
            f"{len(running)} of its shares are running, not a multiple of {n_hosts}, so the "
            "hosts could not follow the turn of the shares; use a number of hosts that "
            "divides it, or a ProcessStreamer, which follows the turn with any number of workers"
        )
    order = running[position:] + running[:position]
    hosts = [sorted(order[h::n_hosts]) for h in range(n_hosts)]
    hosts[0] = sorted(hosts[0] + list(ended))
    return hosts


def part_state(recipe, whole, hosted):
    """The iteration state of the part of ``recipe`` hosting ``hosted``, from ``whole``."""
    part = recipe.hosting(hosted)
    return root_of_part(part, split_state(recipe, whole, [hosted])[0])


def pass_of_iteration(part, state):
    """The state of the pass of ``part`` (a Shares recipe) in an iteration's ``state`` (None: none)."""
    return _pass_of_part(part, None if state is None else state["state"])


def turn_of(states, ended):
    """``(running, position)``: the shares still in the turn, and whose turn is next.

    ``states`` maps each hosted share to its iteration's state (None: not
    started, or ended); the next is the share with the fewest items given,
    the first in share order among equals.
    """
    running = sorted(index for index in states if index not in ended)
    if not running:
        return running, 0
    counts = [states[i]["n"] if states[i] is not None else 0 for i in running]
    return running, min(range(len(running)), key=lambda k: (counts[k], running[k]))


def pass_state(recipe, hosted, states, ended, seed):
    """The state of a pass of ``recipe`` hosting ``hosted`` (see the module docstring)."""
    return {"type": "Shares", "n_shares": recipe.n_shares, "hosted": list(hosted),
            "states": list(states), "ended": list(ended), "seed": seed}


def check_pass_state(recipe, state, path):
    """Refuse ``state`` unless it is the state of a pass of ``recipe`` (its fields, not its shares')."""
    if not isinstance(state, dict) or state.get("type") != "Shares":
        raise schema.state_error(path, "the state of a pass of a Shares stream", state)
    schema.check_fields(state, _SCHEMA, path)
    if state["n_shares"] != recipe.n_shares:
        raise ShoalValueError(
            f"state is of a Shares stream of n_shares={state['n_shares']}, not of this one's "
            f"{recipe.n_shares}: the shares differ ({recipe!r})"
        )
    if state["hosted"] != list(recipe._hosted):
        raise schema.state_error(f"{path}['hosted']", f"the shares it hosts, {list(recipe._hosted)}",
                                 state["hosted"])
    if len(state["states"]) != len(state["hosted"]):
        raise schema.state_error(f"{path}['states']", "one state per hosted share", state["states"])
    for at, (index, share_state) in enumerate(zip(state["hosted"], state["states"])):
        if share_state is not None and index in state["ended"]:
            raise schema.state_error(f"{path}['states'][{at}]", "None, for an ended share",
                                     share_state)
    if not set(state["ended"]) <= set(state["hosted"]) or len(set(state["ended"])) != len(
            state["ended"]):
        raise schema.state_error(f"{path}['ended']", "hosted shares, each once", state["ended"])


def _states(value, path, n_streams=None):
    if not isinstance(value, list) or not all(s is None or isinstance(s, dict) for s in value):
        raise schema.state_error(path, "a list of the shares' states (dicts) or None", value)


def check_seed(value, path, n_streams=None):
    """Refuse a pass's seed that is not four 32-bit words (or None: not drawn yet)."""
    if value is not None and not (isinstance(value, list) and len(value) == 4 and all(
            schema.is_count(word) and word < 2**32 for word in value)):
        raise schema.state_error(path, "the pass's seed, four 32-bit words, or None", value)


def check_turn(turn, n_shares, path):
    """Refuse a ProcessStreamer's turn of the shares that is not ``{"running": [...], "position": p}``.

    ``running``: the shares still running (below ``n_shares``), in order;
    ``position``: whose turn is next among them.
    """
    ok = (isinstance(turn, dict) and set(turn) == {"running", "position"}
          and isinstance(turn["running"], list) and all(
              isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_shares
              for i in turn["running"])
          and turn["running"] == sorted(set(turn["running"]))
          and isinstance(turn["position"], int) and not isinstance(turn["position"], bool)
          and 0 <= turn["position"] <= max(len(turn["running"]) - 1, 0))
    if not ok:
        raise schema.state_error(path, f"{{'running': the shares still running (below {n_shares}), "
                                       "'position': whose turn is next among them}", turn)


#: The fields of the state of a pass of a Shares stream.
_SCHEMA = {"n_shares": schema.count, "hosted": schema.count_list, "states": _states,
           "ended": schema.count_list, "seed": check_seed}


def merge_states(recipe, states, path="states"):
    """The state of a pass of ``recipe`` (all its shares) from those of passes of its parts.

    ``states`` are states of passes of parts of ``recipe`` (each hosting some
    shares) that together host every share once: the states of its hosts at
    one moment of one run.

    The hosts of one run may have drawn with other seeds (each rank's
    DataLoader draws its own): a share that has started goes on from its
    own state, which holds what it drew, and a share of a host that had not
    started it yet is given the state of its start under that host's seed,
    so that every share goes on as it would have where it ran.
    """
    merged = {}
    ended = []
    seeds = []
    parts = []
    for at, state in enumerate(states):
        if not isinstance(state, dict) or state.get("type") != "Shares" or not isinstance(
                state.get("hosted"), list):
            raise schema.state_error(f"{path}[{at}]", "the state of a pass of a part of "
                                     f"{recipe!r}", state)
        part = recipe.hosting(state["hosted"])
        try:
            check_pass_state(part, state, f"{path}[{at}]")
        except ShoalValueError as exc:
            add_note(exc, f"while putting together the states of the hosts of {recipe!r}")
            raise
        for index, share_state in zip(state["hosted"], state["states"]):
            if index in merged:
                raise ShoalValueError(
                    f"share {index} of {recipe!r} is in two of the states given ({path}): "
                    "give the states of the hosts of one run, each once"
                )
            merged[index] = share_state
        ended.extend(state["ended"])
        parts.append(state)
        if state["seed"] is not None:  # (a part that had not started drew none)
            seeds.append(state["seed"])
    for state in parts:
        if state["seed"] is not None and state["seed"] != seeds[0]:
            for index, share_state in zip(state["hosted"], state["states"]):
                if share_state is None and index not in state["ended"]:
                    merged[index] = _start_of_share(recipe, index, state["seed"])
    missing = sorted(set(range(recipe.n_shares)) - set(merged))
    if missing:
        raise ShoalValueError(
            f"the states given ({path}) hold no state of shares {missing} of {recipe!r}: give "
            "the states of every host of the run (every worker, every rank)"
        )
    return pass_state(recipe, range(recipe.n_shares), [merged[i] for i in range(recipe.n_shares)],
                      ended, seeds[0] if seeds else None)


def _start_of_share(recipe, index, seed):
    """The progress of share ``index`` of ``recipe`` at its start in a pass drawing with ``seed``."""
    share = recipe._parts[index]
    key = below(root_key(iteration_seed(None, seed), 0), index)  # as SharesNode._open opens it
    node, it = open_child(share, None, True, counter_at(0), key)
    try:
        return {"n": 0, "state": share._node_state(node, it, 0)}
    finally:
        close_quietly(it)


def split_state(recipe, state, hosts):
    """The states of the passes of ``recipe``'s parts hosting ``hosts``, from a whole pass's ``state``."""
    by_index = dict(zip(state["hosted"], state["states"]))
    return [pass_state(recipe, hosted, [by_index[i] for i in hosted],
                       [i for i in state["ended"] if i in hosted], state["seed"]) for hosted in hosts]


def join_parts(parts, axis):
    """The batch made of the shares' ``parts`` (batches), joined along ``axis``."""
    if len(parts) == 1:
        return parts[0]
    return _stack(parts, axis)


def whole_of_hosts(recipe, entries, seed, path="shares"):
    """The state of a whole pass of ``recipe`` from where its hosts' parts were.

    ``entries`` are the saved shares of a worker stream over ``recipe``, one
    per worker (``{"state": snapshot, "n_skip": k, "ahead": ...}``, see
    ``shoal.parallel._state``), the workers hosting ``recipe.hosts(n)``.
    Each part is resumed from its snapshot and brought, through the items
    its consumer took after it, to its consumer's position (checked to give
    them again, see :func:`~shoal._resume.resumed_share`); then the parts'
    states are put together.
    """
    if not isinstance(entries, list) or not entries or not all(
            isinstance(entry, dict) for entry in entries):
        raise schema.state_error(path, "a list of the workers' shares", entries)
    if len(entries) > recipe.n_shares:
        raise schema.state_error(path, f"at most n_shares={recipe.n_shares} workers' shares",
                                 entries)
    states = []
    for at, (hosted, entry) in enumerate(zip(recipe.hosts(len(entries)), entries)):
        schema.check_fields(entry, {"state": schema.stream_state, "n_skip": schema.count},
                            f"{path}[{at}]")
        part = recipe.hosting(hosted, marks=True, seed=seed)
        it, _, saved = resumed_share(part, entry["state"], entry["n_skip"], entry.get("ahead"),
                                     at_position=True)
        it.close()
        states.append(_pass_of_part(part, saved["state"]))
    return merge_states(recipe, states, path)


def _pass_of_part(part, root):
    """The state of the pass of ``part`` in ``root``, the state of an iteration of it (one pass).

    ``root`` None: not started.
    """
    hosted = list(part._hosted)
    if root is None:
        return pass_state(part, hosted, [None] * len(hosted), [], part._pass_seed)
    child = root["child"]
    if child is None:  # between passes: not started, or ended
        seed = part._pass_seed
        if seed is None and root.get("seed") is not None:  # what its pass will draw
            seed = seed_of_key(root_key(iteration_seed(None, root["seed"]), root["epoch"]))
        return pass_state(part, hosted, [None] * len(hosted), hosted if root["ended"] else [],
                          seed)
    return child


def root_of_part(part, state):
    """An iteration state of ``part`` (one pass, not cycling) at ``state``, the state of its pass."""
    n_given = sum(progress["n"] for progress in state["states"] if progress is not None)
    return {"version": STATE_VERSION, "stream": "Shares", "cycle": False, "n_given": n_given,
            "state": LeafRoot.root_of(state, n_given)}
