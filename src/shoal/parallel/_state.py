"""The state of a ProcessStreamer's pass: its workers' shares, checked, resumed and resharded.

A worker runs a share of the stream (:func:`shares_of`). The state of a pass
holds, for each worker, the state of its share up to the items the consumer
took::

    {"type": "ProcessStreamer", "n_workers": 2, "ordered": True,
     "running": [0, 1],  # the workers still giving items, in turn order
     "position": 1,  # ordered: whose turn is next, in "running"
     "shares": [share, ...]}  # one per worker

A share (:func:`share_entry`) is ``{"state": s, "n_skip": k}``, with
``"ahead": {"n": n, "state": a}`` when ``k`` is not 0: ``s`` is a snapshot of
the share's iteration that its worker sent (None: its start), ``k`` the items
the consumer took after it, and ``a`` the snapshot the worker sent ``n``
items further on. A worker resumes by loading ``s``, skipping ``k`` items and
checking that ``n`` items on its share is at ``a`` (:func:`resumed_share`):
a share that does not give again the items it gave is refused, never run
with items lost or repeated.

A state saved with another number of workers is resharded when it is
loaded (:func:`reshard`), through :func:`~shoal.reshard_states`.
"""


from .._contract import OneStream
from .._iterutil import add_note
from .._resume import resumed_share
from .._schema import check_fields, child, count, count_list, flag, state_error, stream_state
from ..exceptions import ShoalError, ShoalValueError
from ..iterator import loaded_root
from ..reshard import reshard_states
from ..shares import Shares, join_parts, root_of_part, split_state, turn_of, whole_of_hosts
from ..shares import check_seed as _check_seed
from ..shares import check_turn as _check_turn

__all__ = ["shares_of", "pass_state", "share_entry", "ready_state", "check_pass_state", "SCHEMA",
           "reshard", "resumed_share", "host_of", "state_of_shares", "join_parts"]


def shares_of(stream, n_workers):
    """The shares of ``stream`` that ``n_workers`` workers run: one each.

    A stream that can be split (a mux, a map over one) gives worker ``w``
    ``stream.shard(w, n_workers)``, which refuses too few streamers: copies
    of a mux would repeat its items. A stream that is one stream (a
    generator function: its share refusal is a ``_contract.OneStream``)
    runs whole in every worker, which reads its own share through
    :func:`~shoal.worker_info`.

    A :class:`~shoal.Shares` stream gives worker ``w`` its shares ``w::n_workers``
    (:func:`host_of` says whose a share is), each of which it runs in the
    turn of the shares, saying where one ends (a ``ShareEnd``), so that its
    consumer follows the turn of the shares; it cannot have more workers
    than shares.
    """
    if isinstance(stream, Shares):
        if n_workers > stream.n_shares:
            raise ShoalValueError(
                f"n_workers must be at most the n_shares={stream.n_shares} of {stream!r}: each "
                f"worker runs one share or more, got {n_workers}"
            )
        return [stream.hosting(hosted, marks=True) for hosted in stream.hosts(n_workers)]
    if n_workers == 1:
        return [stream]
    if isinstance(stream._share_refusal(n_workers), OneStream):
        return [stream] * n_workers
    return [stream.shard(index, n_workers) for index in range(n_workers)]


def ready_state(recipe, state, path="state"):
    """``state``, of a pass of ``recipe`` (a ProcessStreamer), checked and made ready to load.

    Its fields are checked with :data:`SCHEMA`, naming the ``path`` of what
    does not fit. A state saved with another number of workers is
    resharded here, once, in this process (no worker starts); one that
    cannot be split exactly is refused. Each worker's share states are
    checked here, as one process checks a state, so that one of another
    stream is refused at ``load_state_dict`` and the iteration goes on.
    """
    check_pass_state(state, path)
    shares = state["shares"]
    if isinstance(recipe.stream, Shares):
        turn = state.get("turn")
        _check_seed(state.get("seed"), f"{path}['seed']")
        if turn is not None:
            _check_turn(turn, recipe.stream.n_shares, f"{path}['turn']")
        if len(shares) != recipe.n_workers or (turn is None and recipe.ordered):
            return _resharded_shares(recipe, state)
    elif len(shares) != recipe.n_workers:
        return reshard(recipe, shares)
    for index, share in enumerate(shares):
        ahead = share.get("ahead")
        for saved in (share["state"], ahead and ahead["state"]):
            if saved is not None:
                try:
                    loaded_root(recipe._shares[index], saved)
                except ShoalError as exc:
                    add_note(exc, f"in the state of worker {index}'s share, "
                                  f"{recipe._shares[index]!r}, of {recipe!r}")
                    raise
    return state


def check_pass_state(state, path):
    """Refuse ``state`` if it is not the state of a ProcessStreamer pass, naming the path of what is not."""
    if not isinstance(state, dict):
        raise state_error(path, "the state of a ProcessStreamer pass", state)
    if state.get("type") != "ProcessStreamer":
        raise state_error(f"{path}['type']", "'ProcessStreamer'", state.get("type"))
    shares = state.get("shares")
    check_fields(state, SCHEMA, path, len(shares) if isinstance(shares, list) else None)


def _shares(value, path, n_workers=None):
    """The workers' shares: one per worker, at least one."""
    if not isinstance(value, list) or not value:
        raise state_error(path, "a list of the workers' shares, one per worker", value)
    for index, share in enumerate(value):
        _share(share, f"{path}[{index}]")


def _share(value, path):
    """A worker's share: see :func:`share_entry`."""
    if not isinstance(value, dict):
        raise state_error(path, "a worker's share, {'state': ..., 'n_skip': ...}", value)
    check_fields(value, {"state": stream_state, "n_skip": count}, path)
    ahead = value.get("ahead")
    if ahead is None:
        return
    # The share's state ahead["n"] items after those it skips: so it counts them.
    start = value["state"]
    if start is not None:
        count(start.get("n_given"), f"{path}['state']['n_given']")
    child(ahead, f"{path}['ahead']")
    expected = (start["n_given"] if start is not None else 0) + value["n_skip"] + ahead["n"]
    if not (ahead["n"] >= 1 and isinstance(ahead["state"], dict)
            and ahead["state"].get("n_given") == expected):
        raise state_error(f"{path}['ahead']",
                          f"{{'n': n >= 1, 'state': the share's state {expected} items in}}", ahead)


def _n_workers(value, path, n_workers=None):
    """The number of workers: as many as the shares."""
    count(value, path)
    if n_workers is not None and value != n_workers:
        raise state_error(path, f"{n_workers}, the number of its shares", value)


def _running(value, path, n_workers=None):
    """The workers still giving items, in turn order."""
    count_list(value, path)
    if n_workers is not None and any(index >= n_workers for index in value):
        raise state_error(path, f"a list of worker numbers below {n_workers}", value)


#: The fields of the state of a ProcessStreamer pass, and their checkers.
SCHEMA = {
    "shares": _shares,
    "n_workers": _n_workers,
    "ordered": flag,
    "running": _running,
    "position": count,
}


def reshard(recipe, shares):
    """The state of a pass of ``recipe`` from the shares of one saved with another n_workers.

    Each saved share is first brought to exactly where its consumer was (its
    snapshot, then the items after it, run here: a bounded number), then
    :func:`~shoal.reshard_states` splits what the old shares had left among
    the new ones. A pass that cannot be split exactly is refused, saying why.
    """
    stream, n_saved, n_new = recipe.stream, len(shares), recipe.n_workers
    where = f"a state saved with n_workers={n_saved} into {recipe!r}"
    try:
        states = []
        for saved, share in zip(shares_of(stream, n_saved), shares):
            it, _, state = resumed_share(saved, share["state"], share["n_skip"],
                                         share.get("ahead"), at_position=True)
            it.close()
            states.append(state)
    except ShoalError as exc:
        add_note(exc, f"while loading {where}")
        raise
    try:
        new = reshard_states(stream, states, n_new)
    except ShoalValueError as exc:
        raise ShoalValueError(f"cannot load {where}: {exc}") from exc
    return pass_state(recipe, list(range(n_new)), 0, [share_entry(state, 0) for state in new])


def pass_state(recipe, running, position, shares, turn=None, seed=None):
    """The state of a pass of ``recipe``, a ProcessStreamer (see the module docstring).

    Over a Shares stream, ``turn`` is the turn of the shares:
    ``{"running": [shares still running], "position": whose turn is next}``
    (None: as they come), and ``seed`` the seed of the Shares pass (see
    ``shoal.shares``).
    """
    state = {
        "type": "ProcessStreamer",
        "n_workers": recipe.n_workers,
        "ordered": recipe.ordered,
        "running": running,
        "position": position,
        "shares": shares,
    }
    if isinstance(recipe.stream, Shares):
        state["turn"] = turn
        state["seed"] = seed
    return state


def host_of(share, n_workers):
    """The worker that runs ``share`` of a Shares stream, among ``n_workers``."""
    return share % n_workers


def _resharded_shares(recipe, state):
    """The state of a pass of ``recipe`` (over a Shares stream) from its workers' ``shares``.

    They were saved by any number of workers: each worker's part is brought
    to its consumer's position here, the parts put together, and split among
    ``recipe``'s workers. Exact for any stream: its shares are the same.
    """
    stream, shares = recipe.stream, state["shares"]
    try:
        whole = whole_of_hosts(stream, shares, state["seed"], "state['shares']")
    except ShoalError as exc:
        add_note(exc, f"while loading a state saved with n_workers={len(shares)} into {recipe!r}")
        raise
    return state_of_shares(recipe, whole)


def state_of_shares(recipe, whole):
    """The state of a pass of ``recipe`` (a ProcessStreamer over a Shares stream) at ``whole``.

    ``whole`` is the state of a whole pass of the Shares stream (see
    ``shoal.shares``): each worker starts its part from its shares' states.
    """
    stream = recipe.stream
    hosts = stream.hosts(recipe.n_workers)
    entries = [share_entry(root_of_part(stream.hosting(hosted, marks=True), part), 0)
               for hosted, part in zip(hosts, split_state(stream, whole, hosts))]
    running, position = turn_of(dict(zip(whole["hosted"], whole["states"])), whole["ended"])
    workers = sorted({host_of(share, recipe.n_workers) for share in running})
    turn = {"running": running, "position": position} if recipe.ordered else None
    return pass_state(recipe, workers, 0, entries, turn, whole["seed"])


def share_entry(state, n_skip, ahead=None):
    """A share's entry in a ProcessStreamer state (see :func:`resumed_share`)."""
    share = {"state": state, "n_skip": n_skip}
    if ahead is not None:
        share["ahead"] = ahead
    return share
