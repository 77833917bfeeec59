"""Hand a shoal stream to PyTorch: an IterableDataset sharded by worker and by rank.

With ``DataLoader(dataset, num_workers=W)`` every worker process iterates its
own copy of a dataset; :class:`StreamDataset` gives each its own share of a
mux's streamers (and, across machines, each rank its own share), so that no
item comes twice.

:func:`to_device` feeds a device: a stream's batches as tensors there, the
next ones converted and copied by a thread while the training step computes.

This module imports PyTorch; ``import shoal`` does not import it.

A state loaded into a dataset, and where its iterations run
-----------------------------------------------------------
``load_state_dict`` is for the next iteration only, whatever runs it: the
main process, or the DataLoader's worker processes, which iterate copies of
the dataset (inherited with ``fork``, pickled with ``spawn`` and
``forkserver``) and, without ``persistent_workers``, new copies each epoch.
The main process never sees the workers' iterations, so each dataset keeps
a small ledger in shared memory (a tensor of int64, which torch shares with
worker processes however they start) that its copies write to:

- every iteration that starts records where it runs (the main process or
  DataLoader workers), so that ``state_dict()`` in the main process refuses
  to answer for an iteration that ran in workers (the state is there);
- every state loaded in the main process gets a random token, recorded as
  the last loaded; the iteration that takes it records the token as taken,
  with who took it: the main process, or a DataLoader iteration, known by
  its base seed (the workers' ``seed - id``) and number of workers, and
  each of its workers by its id. A worker takes a loaded state only if no
  iteration has taken it yet, or if its own iteration has and this worker
  has not: the workers of the next epoch (another base seed; or the same
  one, given by a generator seeded alike, with workers that have already
  taken it) start from the beginning;
- a persistent worker made before a state was loaded in the main process
  cannot load it (its copy of the dataset does not hold it): it raises
  when its next iteration starts, rather than ignore the state.

A running iteration stays in the process that made it: a copy of the dataset
(a pickled one, as ``spawn`` makes) carries no iteration, and an iteration a
forked worker inherits is neither used nor closed there (its generators'
``finally`` would run in the worker, on the main process's files).
"""

import copy
import os
import queue
import secrets
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as _np

try:
    import torch as _torch
    import torch.distributed as _dist
    import torch.utils.data as _data
except ImportError as exc:  # pragma: no cover - depends on what is installed
    # A ModuleNotFoundError (an ImportError) naming torch: what a missing package raises.
    raise ModuleNotFoundError(
        "shoal.torch needs PyTorch: pip install torch (from a clone of shoal: pip install '.[torch]')",
        name="torch",
    ) from exc

from ._checks import check_bool, check_int, is_iterable, short_repr
from ._contract import StateDict, check_stream
from ._iterutil import add_note, close_quietly
from .core import Streamer
from .exceptions import DataError, ShoalError, ShoalTypeError, ShoalValueError
from .iterator import StreamIterator, loaded_root
from .reshard import reshard_states
from .shares import Shares, hosts_at, merge_states, pass_of_iteration, root_of_part, split_state

__all__ = ["StreamDataset", "share_states", "JoinedBatches", "to_device", "DeviceFeed"]

# The ledger a dataset shares with its copies in DataLoader workers (see the
# module docstring): int64 values at these indices.
_RAN_IN_WORKERS = 0  # 1 if the last iteration to start ran in DataLoader workers, else 0
_LOADED = 1  # the token of the last state loaded in the main process (0: none)
_TAKEN = 2  # the token of the loaded state that an iteration has taken (0: none)
_TAKEN_BY = 3  # the base seed of the DataLoader iteration that took it (-1: the main process)
_TAKEN_WORKERS = 4  # that iteration's number of workers (0: the main process)
_WORKER_TOOK = 5  # at _WORKER_TOOK + w: the token worker w took
_LEDGER_SIZE = 512  # one page; workers with ids past the last slot are known by seed alone

# Iterations a forked worker inherited from the main process: kept, never closed
# nor collected here (their generators' `finally` would run in this process).
_INHERITED: list = []


def _new_ledger():
    return _torch.zeros(_LEDGER_SIZE, dtype=_torch.int64).share_memory_()


class StreamDataset(_data.IterableDataset):
    """An IterableDataset over a shoal stream, with one share per worker and rank.

    Share ``s`` of ``n = world_size * num_workers`` (with ``s = rank *
    num_workers + worker``) is ``stream.shard(s, n)``: for a mux, the mux
    over ``streamers[s::n]``, seeded from the mux's seed and ``s``; for a
    map over a mux (``Streamer(buffer_stream, mux, 32)``), the map over the
    mux's share. The shares are disjoint, together they are the whole
    stream, and each is deterministic for a given seed.

    Parameters
    ----------
    stream : Streamer
        A mux with at least as many streamers as shares, or a map over one,
        or any stream when there is one share (no workers, one rank).
    rank, world_size : None or int
        This process's rank among ``world_size``. By default they come from
        ``torch.distributed`` when it is initialised, else from the ``RANK``
        and ``WORLD_SIZE`` environment variables, else 0 and 1.

    Raises
    ------
    ShoalValueError
        When iterated, if the stream cannot be split into that many shares.

    Examples
    --------
    >>> from torch.utils.data import DataLoader
    >>> letters = [Streamer(letter * 3) for letter in "abcd"]
    >>> dataset = StreamDataset(ChainMux(letters))
    >>> "".join(DataLoader(dataset, batch_size=None, num_workers=0))
    'aaabbbcccddd'
    >>> sorted(DataLoader(dataset, batch_size=None, num_workers=2))
    ['a', 'a', 'a', 'b', 'b', 'b', 'c', 'c', 'c', 'd', 'd', 'd']

    Its state can be saved and restored (PyTorch's ``state_dict``
    convention), within a process or by ``torchdata``'s StatefulDataLoader.
    The states of all the shares of a run can be loaded into a run with
    another number of ranks or workers (see :meth:`load_state_dict`). A
    loaded state is for the next iteration only, in this process or in
    DataLoader workers; the state of an iteration that ran in workers is
    in the workers, and :meth:`state_dict` in the main process says so
    rather than answer for it (see the module's docstring).

    >>> iterator = iter(DataLoader(dataset, batch_size=None))
    >>> [next(iterator) for _ in range(4)]
    ['a', 'a', 'a', 'b']
    >>> saved = [dataset.state_dict()]  # one share: the states of all shares
    >>> resumed = StreamDataset(ChainMux(letters))
    >>> resumed.load_state_dict(saved)
    >>> sorted(DataLoader(resumed, batch_size=None, num_workers=2))  # now two shares
    ['b', 'b', 'c', 'c', 'c', 'd', 'd', 'd']
    """

    def __init__(self, stream: Streamer, rank: int | None = None,
                 world_size: int | None = None) -> None:
        check_stream(stream)
        if (rank is None) != (world_size is None):
            raise ShoalValueError(
                f"give both rank and world_size, or neither: got rank={rank!r}, "
                f"world_size={world_size!r}"
            )
        if rank is not None:
            world_size = check_int("world_size", world_size, minimum=1)
            rank = check_int("rank", rank, minimum=0)
            if rank >= world_size:
                raise ShoalValueError(f"rank must be < world_size ({world_size}), got {rank}")
        self.stream = stream
        self.rank = rank
        self.world_size = world_size
        self._iterator: StreamIterator | None = None  # the last iteration started, and the process it runs in
        self._iterator_pid: int | None = None
        self._pending: Any = None  # a state to start the next iteration from
        self._pending_token = 0  # its token, if loaded in the main process; 0 if in a worker
        self._token = 0  # the token of the last state loaded in the main process, as this copy knows
        self._ledger = _new_ledger()
        self._joined = False  # iterated through JoinedBatches (see _shares_iteration)

    def __getstate__(self):
        # A running iteration stays in its process: its generators cannot be
        # pickled, and a copy (in a worker) starts its own.
        state = dict(self.__dict__)
        state["_iterator"] = state["_iterator_pid"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if not self._ledger.is_shared():
            # A copy pickled without sharing (pickle, copy.deepcopy): a dataset of its own.
            self._ledger = self._ledger.clone().share_memory_()

    def __copy__(self):
        # A dataset of its own, as a deep copy is (it shares the stream).
        copied = type(self).__new__(type(self))
        copied.__setstate__({**self.__getstate__(), "_ledger": self._ledger.clone()})
        return copied

    def rank_and_world_size(self) -> tuple[int, int]:
        """This process's ``(rank, world_size)``, as the dataset uses them."""
        if self.rank is not None:
            return self.rank, self.world_size  # type: ignore[return-value]  # set with rank
        if _dist.is_available() and _dist.is_initialized():
            return _dist.get_rank(), _dist.get_world_size()
        if "RANK" in os.environ or "WORLD_SIZE" in os.environ:
            try:
                rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            except (KeyError, ValueError):
                raise ShoalValueError(
                    "the RANK and WORLD_SIZE environment variables must both be whole "
                    f"numbers, got RANK={os.environ.get('RANK')!r}, "
                    f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}"
                ) from None
            if not 0 <= rank < world_size:
                raise ShoalValueError(
                    f"RANK must be in 0..WORLD_SIZE-1, got RANK={rank}, WORLD_SIZE={world_size}"
                )
            return rank, world_size
        return 0, 1

    def shard(self) -> tuple[int, int]:
        """``(share, n_shares)`` of the worker or process calling it.

        Over a :class:`~shoal.Shares` stream, ``(host, n_hosts)``: worker
        ``k`` of rank ``r`` is host ``r + k * world_size``, so that rank
        ``r`` runs the shares at places ``r, r + world_size, ...`` of the
        turn.
        """
        rank, world_size = self.rank_and_world_size()
        info = _data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if isinstance(self.stream, Shares):
            return rank + worker * world_size, world_size * n_workers
        return rank * n_workers + worker, world_size * n_workers

    def _shares_iteration(self, info, pending):
        """An iteration of this host's part of the Shares stream, from ``pending`` if given.

        The hosts (every rank's DataLoader workers) each run the shares of
        the turn at their places (``shoal.shares.hosts_at``); a DataLoader
        worker among several refuses shares that end apart (its DataLoader
        could no longer follow the turn). Every host of one pass draws with
        the pass's seed: the loaded state's, or, in DataLoader workers, one
        made from the DataLoader's base seed (the same in all its workers).
        """
        stream = self.stream
        host, n_hosts = self.shard()
        _, world_size = self.rank_and_world_size()
        topology = f" ({world_size} rank(s) x {n_hosts // world_size} DataLoader worker(s))"
        if stream.n_shares % n_hosts:
            raise ShoalValueError(
                f"n_shares={stream.n_shares} of {stream!r} must be a multiple of the number of "
                f"hosts, ranks x DataLoader workers, got {n_hosts}{topology}: each host runs "
                "as many shares, so that the DataLoader, taking from its workers in turn, "
                "follows the turn of the shares"
            )
        if isinstance(pending, dict) and "part" in pending:  # this worker's own state
            part_state = pending["part"]
            hosted, seed = part_state["hosted"], part_state["seed"]
            start = part_state["iterator"]
        else:
            whole = pending["whole"] if pending is not None else None
            hosted = hosts_at(stream, whole, n_hosts, topology)[host]
            seed = whole["seed"] if whole is not None else None
            start = None if whole is None else root_of_part(
                stream.hosting(hosted), split_state(stream, whole, [hosted])[0])
        if seed is None and info is not None:
            base_seed = (info.seed - info.id) % 2**64
            seed = [int(word) for word in _np.random.SeedSequence(base_seed).generate_state(4)]
        in_workers = info is not None and info.num_workers > 1
        if in_workers and stream._join_axis is not None and not self._joined:
            raise ShoalValueError(
                f"iterate a DataLoader over {stream!r} through shoal.torch.JoinedBatches("
                "loader): each of its workers makes its part of every batch, which the "
                "DataLoader hands on one by one, and JoinedBatches joins them"
            )
        # A DataLoader worker's shares, and a rank's, must end together: the
        # DataLoader takes from its workers in turn, and each rank takes its
        # places in the turn, which no one could follow once one has ended.
        strict = in_workers or world_size > 1
        part = stream.hosting(hosted, strict=strict, seed=seed, last_word=in_workers)
        iterator = part.iterator()
        if start is not None:
            iterator.load_state_dict(start)
        return iterator

    def _share(self):
        share, n_shares = self.shard()
        try:
            return self.stream.shard(share, n_shares)
        except ShoalValueError as exc:
            _, world_size = self.rank_and_world_size()
            add_note(exc, f"StreamDataset splits the stream into {n_shares} shares: "
                          f"{world_size} ranks x {n_shares // world_size} DataLoader workers")
            raise

    def __iter__(self) -> Iterator[Any]:
        info = _data.get_worker_info()
        if info is not None:
            refusal = self._newer_load()
            if refusal is not None:
                # At the first item: a persistent worker's loop lets an error
                # raised here kill the worker, without a word of why.
                return _raising(refusal)
        pending = self._next_start(info)
        if isinstance(self.stream, Shares):
            iterator = self._shares_iteration(info, pending)
        else:
            iterator = self._share().iterator()
            if pending is not None:
                state = self._pending_state(pending)
                if state is not None:
                    iterator.load_state_dict(state)
        self._started(info, took=pending is not None)
        previous = self._own_iterator()
        if previous is not None:
            previous.close()
        elif self._iterator is not None:
            _INHERITED.append(self._iterator)  # a forked worker's copy of the main's
        self._iterator, self._iterator_pid = iterator, os.getpid()
        return iter(iterator)

    def _own_iterator(self):
        """The last iteration started in this process, or None."""
        return self._iterator if self._iterator_pid == os.getpid() else None

    def _next_start(self, info):
        """The loaded state the iteration starting now is to start from (None: the beginning).

        It changes nothing: :meth:`_started` records the start once the
        state is loaded (a state refused is still there to refuse again).
        """
        pending, token = self._pending, self._pending_token
        if info is None:  # the main process
            if token and int(self._ledger[_TAKEN]) == token:
                return None  # DataLoader workers took it: this is a later iteration
            return pending
        if pending is None or token == 0:
            return pending  # loaded in this worker (as torchdata's StatefulDataLoader does)
        return pending if self._may_take(token, info) else None

    def _started(self, info, took):
        """Record that an iteration started here, and whether it took the loaded state."""
        ledger = self._ledger
        ledger[_RAN_IN_WORKERS] = 0 if info is None else 1
        token = self._pending_token
        if took and token:
            if info is None:
                ledger[_TAKEN_BY], ledger[_TAKEN_WORKERS] = -1, 0
                ledger[_TAKEN] = token
            else:
                self._record_taken(token, info)
        self._pending, self._pending_token = None, 0

    def _newer_load(self):
        """In a worker: the error for a state loaded in the main process that this copy lacks."""
        ledger = self._ledger
        loaded = int(ledger[_LOADED])
        if loaded != self._token and int(ledger[_TAKEN]) != loaded:
            return ShoalValueError(
                "a state was loaded into this StreamDataset in the main process after this "
                "DataLoader's persistent workers started: they iterate their own copies of "
                "the dataset, which do not hold it. Load the state before making the "
                "DataLoader, or make a new DataLoader after loading it"
            )

    def _may_take(self, token, info):
        """May this worker's iteration take the state the main process loaded with ``token``?

        Yes if no iteration has taken it yet, or if this one has (the same
        base seed and number of workers) and this worker has not.
        """
        ledger = self._ledger
        if int(ledger[_TAKEN]) != token:
            return True
        if (int(ledger[_TAKEN_BY]) != info.seed - info.id
                or int(ledger[_TAKEN_WORKERS]) != info.num_workers):
            return False
        slot = _WORKER_TOOK + info.id
        return slot >= _LEDGER_SIZE or int(ledger[slot]) != token

    def _record_taken(self, token, info):
        """Record that this worker's iteration took the state loaded with ``token``."""
        ledger = self._ledger
        slot = _WORKER_TOOK + info.id
        if slot < _LEDGER_SIZE:
            ledger[slot] = token
        if int(ledger[_TAKEN]) != token:
            # The first worker of its iteration to start (the others write the
            # same values, if they get here at the same time).
            ledger[_TAKEN_BY], ledger[_TAKEN_WORKERS] = info.seed - info.id, info.num_workers
            ledger[_TAKEN] = token

    def state_dict(self) -> StateDict:
        """The state of the iteration that runs in this process.

        After :meth:`load_state_dict`, and until the next iteration starts,
        it is the state that iteration will start from; before any
        iteration, that of a start from the beginning (its ``"iterator"``
        is ``None``), which :meth:`load_state_dict` takes as it takes any.

        Raises
        ------
        ShoalValueError
            In the main process, if the dataset's last iteration ran in
            DataLoader workers: its state is in the workers, not here. Use
            torchdata's ``StatefulDataLoader`` (its ``state_dict()`` holds
            each worker's dataset state; :func:`share_states` takes them
            out), or ``persistent_workers=True`` and send each worker's
            ``dataset.state_dict()`` to the main process yourself.
        """
        info = _data.get_worker_info()
        if info is None and int(self._ledger[_RAN_IN_WORKERS]):
            raise ShoalValueError(
                "StreamDataset.state_dict() in the main process: the dataset's last iteration "
                "ran in DataLoader workers, which iterate their own copies of it, so its state "
                "is in the workers, not here. Use torchdata's StatefulDataLoader, whose "
                "state_dict() holds each worker's (shoal.torch.share_states takes them out), or "
                "persistent_workers=True and send each worker's dataset.state_dict() to the "
                "main process yourself"
            )
        if isinstance(self.stream, Shares):
            return self._shares_state()
        if self._pending is not None:
            return {"shard": list(self.shard()), "iterator": self._pending_state(self._pending)}
        iterator = self._own_iterator()
        if iterator is None:
            return {"shard": list(self.shard()), "iterator": None}
        return {"shard": list(self.shard()), "iterator": iterator.state_dict()}

    def _shares_state(self):
        """The state of this host's part of the Shares stream (see :meth:`state_dict`).

        ``{"shard": [host, n_hosts], "hosted": [its shares], "seed": the
        pass's seed, "iterator": the state of its iteration}``; before an
        iteration, or once a state is loaded, that of the whole stream as
        one host.
        """
        pending = self._pending
        if isinstance(pending, dict) and "part" in pending:
            return pending["part"]
        iterator = self._own_iterator()
        if pending is None and iterator is not None:
            part = iterator.stream
            return {"shard": list(self.shard()), "hosted": list(part._hosted),
                    "seed": part._pass_seed, "iterator": iterator.state_dict()}
        stream = self.stream
        whole = pending["whole"] if pending is not None else None
        return {"shard": [0, 1], "hosted": list(range(stream.n_shares)),
                "seed": whole["seed"] if whole is not None else None,
                "iterator": None if whole is None else root_of_part(stream, whole)}

    def load_state_dict(self, state: StateDict | Sequence[StateDict]) -> None:
        """Start the next iteration from ``state``.

        ``state`` is either the :meth:`state_dict` of this share (the same
        rank and worker, as torchdata's StatefulDataLoader hands each
        worker), or a list of the states of all the shares of a run, one per
        rank and worker, in any order. The state of a run of one share (no
        ranks, no DataLoader workers) is all its shares, as a list of it.
        The state of one share among several goes on only as that share:
        loaded here and iterated in DataLoader workers, which are other
        shares, it is refused when they start (it would repeat its items).
        With a list, each share goes on from its part of them, whatever the
        number of ranks and workers now:

        - with as many shares as before, share ``s`` resumes from the state
          of share ``s``;
        - with another number, the pass those shares were making is split
          anew (:func:`~shoal.reshard_states`): for exhaustive streams
          (ChainMux and RoundRobinMux in exhaustive mode, StochasticMux
          with ``mode="exhaustive"`` and ``rate=None``, and ``buffer_stream``,
          ``tuples`` and ``keras_tuples`` over them) the items given before
          and after are exactly one pass, nothing repeated or lost. For any
          other stream the next iteration raises a ShoalValueError that
          says why, rather than repeat or lose items. (Not this call: the
          new number of shares, ranks times DataLoader workers, is known
          only in each worker when it starts iterating, and with as many
          shares as before any stream resumes.)

        Use :func:`share_states` to take the states out of a
        StatefulDataLoader's ``state_dict()``, and gather them from every
        rank (``torch.distributed.all_gather_object``).

        The state is for the next iteration only, wherever it runs: in this
        process, or in the workers of a DataLoader made after this call
        (see the module's docstring); the iterations after it start from
        the beginning. A DataLoader's persistent workers started before
        this call cannot see the state: they raise when their next
        iteration starts.

        Raises
        ------
        ShoalValueError
            If ``state`` is the state of another share, or a list that is
            not one state for each share ``0..n-1`` of one run, or empty
            (``{}`` is no checkpoint). When the next iteration starts, if
            the states cannot be split anew.
        ShoalTypeError
            If ``state`` is neither a dict nor a list.
        """
        pending = self._checked(state)
        info = _data.get_worker_info()
        if info is None:
            token = secrets.randbits(63) or 1
            self._ledger[_LOADED] = token
            self._token = token
        else:
            # In a worker (torchdata's StatefulDataLoader loads each worker's own
            # state there): for this worker's next iteration, in place of any the
            # main process loaded, which that iteration takes.
            token = 0
            if (self._pending is not None and self._pending_token
                    and self._may_take(self._pending_token, info)):
                self._record_taken(self._pending_token, info)
        self._pending, self._pending_token = pending, token

    def _checked(self, state):
        """What to start from, as ``_pending`` holds it: a share's state, or all the shares'."""
        if isinstance(self.stream, Shares):
            return _shares_pending(self.stream, state, list(self.shard()))
        if isinstance(state, (list, tuple)):
            return _all_shares(state)
        if not isinstance(state, dict):
            raise ShoalTypeError(
                "state must be a StreamDataset.state_dict() or a list of them, got "
                f"{short_repr(state)} ({type(state).__name__})"
            )
        if not state:
            raise ShoalValueError(
                "state must be a StreamDataset.state_dict() or a list of them, got {}: an empty "
                "state is no checkpoint (it resumes nothing). Where the dataset was iterated "
                "by DataLoader workers, take the state from torchdata's StatefulDataLoader "
                "(see StreamDataset.state_dict)"
            )
        if "shard" not in state or "iterator" not in state:
            raise ShoalValueError(
                "state must be a StreamDataset.state_dict() or a list of them, got "
                f"{short_repr(state)}"
            )
        shard = state.get("shard")
        if isinstance(shard, list) and len(shard) == 2 and shard[1] == 1:
            # The one share of its run: all its shares, which any number split anew.
            return _all_shares([state])
        self._check_shard(shard)
        # Checked again when the iteration starts: loaded here, it may run
        # in DataLoader workers, each of which is another share.
        return {"shard": shard, "iterator": state["iterator"]}

    def _check_shard(self, shard):
        if list(self.shard()) != shard:
            raise ShoalValueError(
                f"state is of share {shard}, this one is {list(self.shard())}; to go on "
                "with another number of ranks or workers, load the list of the states of "
                "all the shares"
            )

    def _pending_state(self, pending):
        """The iterator state this share starts from, out of ``pending`` (None: the beginning).

        ``pending`` is this share's state, or the states of all the shares of
        a run (a share's is None if it had not started).
        """
        if isinstance(pending, dict):
            self._check_shard(pending["shard"])
            return pending["iterator"]
        share, n_shares = self.shard()
        if len(pending) == n_shares:
            return pending[share]
        if all(state is None for state in pending):
            return None  # no share had started: every new one starts from the beginning
        try:
            return reshard_states(self.stream, _with_starts(self.stream, pending), n_shares)[share]
        except ShoalValueError as exc:
            add_note(exc, f"while splitting the states of {len(pending)} shares (ranks x "
                          f"DataLoader workers) among {n_shares}")
            raise


def _shares_pending(stream, state, shard):
    """What an iteration over ``stream``, a Shares stream, starts from, out of a loaded ``state``.

    ``{"whole": the state of a whole pass}`` from the states of every host
    of a run (any number of ranks and workers), from one host's state that
    hosts every share, or from a StreamIterator state of the Shares stream
    or of a ProcessStreamer over it; ``{"part": state}`` for this host's own
    state (as torchdata's StatefulDataLoader hands each worker).
    """
    if isinstance(state, dict) and "version" in state:  # an iteration of it, anywhere
        state = stream._translate_state(state)
        if state.get("cycle"):
            raise ShoalValueError("state is of an iteration with cycle=True: a StreamDataset "
                                  "iterates one pass at a time")
        root = loaded_root(stream, state)
        return {"whole": pass_of_iteration(stream, {"state": root})}
    states = list(state) if isinstance(state, (list, tuple)) else [state]
    if not states or not all(isinstance(s, dict) and s for s in states):
        raise ShoalValueError(
            "state must be a StreamDataset.state_dict(), a list of them (one per rank and "
            f"DataLoader worker), or the state_dict() of an iteration of {stream!r}, got "
            f"{short_repr(state)}"
        )
    for index, one in enumerate(states):
        if not {"shard", "hosted", "seed", "iterator"} <= set(one):
            raise ShoalValueError(
                f"state[{index}] must be the state_dict() of a StreamDataset over {stream!r}, got "
                f"{short_repr(one)}"
            )
    if len(states) == 1 and not isinstance(state, (list, tuple)) and states[0]["shard"] == shard \
            and shard[1] > 1:
        return {"part": states[0]}
    passes = []
    for index, one in enumerate(states):
        part = stream.hosting(one["hosted"], seed=one["seed"])
        saved = one["iterator"]
        try:
            if saved is not None:
                saved = {**saved, "state": loaded_root(part, saved)}
            passes.append(pass_of_iteration(part, saved))
        except ShoalError as exc:
            add_note(exc, f"in state[{index}], of host {one['shard']} of {stream!r}")
            raise
    return {"whole": merge_states(stream, passes, "state")}


def _raising(exc):
    """An iterator that raises ``exc`` at its first item."""
    raise exc
    yield  # a generator


def _with_starts(stream, states):
    """``states``, with the state of a share that had not started (None) as that of its start."""
    states = list(states)
    for share, state in enumerate(states):
        if state is None:
            with stream.shard(share, len(states)).iterator() as iterator:
                states[share] = iterator.state_dict()
    return states


def _all_shares(states):
    """The iterator states of shares ``0..n-1``, from the dataset states of all ``n`` shares."""
    if not states:
        raise ShoalValueError(
            "state must be a StreamDataset.state_dict() or a list of the states of all the "
            "shares of a run, got an empty list"
        )
    for index, state in enumerate(states):
        if not isinstance(state, dict) or not state:
            raise ShoalValueError(
                f"state[{index}] must be the state_dict() of a StreamDataset that has started "
                f"iterating, got {short_repr(state)}"
            )
        shard = state.get("shard")
        if not isinstance(shard, list) or len(shard) != 2 or "iterator" not in state:
            raise ShoalValueError(
                f"state[{index}] must be a StreamDataset.state_dict(), got {short_repr(state)}"
            )
    counts = sorted({state["shard"][1] for state in states})
    if len(counts) != 1:
        raise ShoalValueError(
            f"the states must be of the shares of one run, got shares of {counts}"
        )
    (n_shares,) = counts
    by_share = {}
    for index, state in enumerate(states):
        share = state["shard"][0]
        if share in by_share:
            raise ShoalValueError(f"state[{index}] is of share {share}, as an earlier one")
        by_share[share] = state["iterator"]
    missing = sorted(set(range(n_shares)) - set(by_share))
    if missing or len(by_share) != n_shares:
        raise ShoalValueError(
            f"the states must be one for each of the {n_shares} shares, but shares "
            f"{missing} are missing; gather the states of every rank and worker"
        )
    return [by_share[share] for share in range(n_shares)]


def share_states(loader_state: dict[str, Any]) -> list[StateDict]:
    """The StreamDataset states in the ``state_dict()`` of a torchdata StatefulDataLoader.

    One per worker (one in all with ``num_workers=0``), to gather from every
    rank and hand, as one list, to :meth:`StreamDataset.load_state_dict` of
    a run with another number of ranks or workers.

    Raises
    ------
    ShoalValueError
        If ``loader_state`` holds no dataset state.
    """
    if isinstance(loader_state, dict):
        workers = loader_state.get("_snapshot", {}).get("_worker_snapshots")
        if isinstance(workers, dict):
            found = [snapshot.get("dataset_state") for _, snapshot in sorted(
                workers.items(), key=lambda pair: int(pair[0].rpartition("_")[2]))]
        else:
            found = [loader_state.get("dataset_state")]
        if found and all(isinstance(state, dict) and state for state in found):
            return found
    raise ShoalValueError(
        "loader_state must be the state_dict() of a StatefulDataLoader over a StreamDataset "
        f"that has started iterating, got {short_repr(loader_state)}"
    )


class JoinedBatches:
    """The batches of a DataLoader over a batched :class:`~shoal.Shares` stream, joined.

    ``Streamer(buffer_stream, Shares(stream, n), size)`` gives batches of
    ``size`` items, ``size // n`` of each share. In a DataLoader with
    several workers, each worker makes its part of every batch (its shares'
    items) and the DataLoader hands the parts on one by one, in turn: this
    joins them, round by round, into the batches of this rank, which hold
    the same items as in one process (``size // world_size`` of them; the
    workers' parts in turn, each in share order). With one worker or none
    it hands on the DataLoader's batches as they are.

    It forwards ``state_dict`` and ``load_state_dict`` to the loader (a
    torchdata StatefulDataLoader): a state saved between two of its
    batches is at a whole round.

    Parameters
    ----------
    loader : DataLoader
        A DataLoader (or StatefulDataLoader) over a :class:`StreamDataset`
        of a batched Shares stream, with ``batch_size=None``.

    Raises
    ------
    ShoalTypeError
        If ``loader`` is not a DataLoader over a StreamDataset of a batched
        Shares stream.

    Examples
    --------
    >>> from torch.utils.data import DataLoader
    >>> files = ChainMux([Streamer([{"x": np.array([f, k])} for k in range(4)]) for f in range(4)])
    >>> batches = Streamer(buffer_stream, Shares(files, 4), 8)
    >>> [batch["x"][:, 0].tolist() for batch in batches]  # files 0..3: 2 items of each
    [[0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 1, 1, 2, 2, 3, 3]]
    >>> loader = DataLoader(StreamDataset(batches), batch_size=None, num_workers=2)
    >>> [batch["x"][:, 0].tolist() for batch in JoinedBatches(loader)]  # workers' parts in turn
    [[0, 0, 2, 2, 1, 1, 3, 3], [0, 0, 2, 2, 1, 1, 3, 3]]
    """

    def __init__(self, loader: Any) -> None:
        dataset = getattr(loader, "dataset", None)
        stream = getattr(dataset, "stream", None)
        if not (isinstance(dataset, StreamDataset) and isinstance(stream, Shares)
                and stream._join_axis is not None):
            raise ShoalTypeError(
                "loader must be a DataLoader over a StreamDataset of a batched Shares stream "
                f"(Streamer(buffer_stream, Shares(...), size)), got {short_repr(loader)}"
            )
        if getattr(loader, "batch_size", None) is not None:
            raise ShoalValueError(
                f"loader must have batch_size=None, got batch_size={loader.batch_size}: the "
                "stream gives its batches, and a DataLoader that batches them again makes each "
                "of its batches of one worker's parts"
            )
        self.loader: Any = loader
        self._axis: int = stream._join_axis
        dataset._joined = True

    def __iter__(self) -> Iterator[Any]:
        alive = max(self.loader.num_workers, 1)  # the workers still making parts
        items = iter(self.loader)
        while alive:
            parts = []
            for _ in range(alive):  # a round: one from each worker still going
                part = next(items, None)
                if part is None:  # a worker's last word (or the loader's end)
                    alive -= 1
                    continue
                parts.append(part)
            if parts:
                yield _joined(parts, self._axis)

    def __len__(self) -> int:
        raise TypeError("JoinedBatches has no length: its stream's may be endless")

    def state_dict(self) -> StateDict:
        """The loader's state (a StatefulDataLoader's), at the batches this gave."""
        return self.loader.state_dict()

    def load_state_dict(self, state: StateDict) -> None:
        """Load the loader's state (see :meth:`state_dict`)."""
        self.loader.load_state_dict(state)


def _joined(parts, axis):
    """``parts`` (tensors, arrays, or dicts, tuples and lists of them) joined along ``axis``."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if isinstance(first, dict):
        return {key: _joined([part[key] for part in parts], axis) for key in first}
    if isinstance(first, (tuple, list)):
        joined = [_joined(list(values), axis) for values in zip(*parts)]
        if hasattr(first, "_fields"):  # a namedtuple
            return type(first)(*joined)
        return type(first)(joined) if isinstance(first, tuple) else joined
    if isinstance(first, _torch.Tensor):
        return _torch.cat(parts, dim=axis)
    return _np.concatenate(parts, axis=axis)


# -- Feeding a device: batch s+1 converted and copied while step s computes ------------------

# What the copy thread hands the consumer: (kind, payload, state). It ends with
# _END or _ERROR, or, stopped by the feed, with _STOPPED (for a caller that waits).
_ITEM, _END, _ERROR, _STOPPED = "item", "end", "error", "stopped"

# numpy's dtypes that torch has a tensor dtype for (in this process's byte order).
_TORCH_DTYPES = {}
for _name in ("bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "complex64", "complex128"):
    try:
        _TORCH_DTYPES[_np.dtype(_name)] = _torch.from_numpy(_np.empty(0, _name)).dtype
    except TypeError:  # pragma: no cover - torch < 2.3 has no uint16, uint32, uint64
        pass
del _name


def to_device(stream: Any, device: Any, prefetch: int = 2, pin_memory: bool | None = None,
              non_blocking: bool = True) -> "DeviceFeed":
    """Iterate ``stream`` as torch tensors on ``device``, the next batches made ready meanwhile.

    A background thread takes the stream's next batch, copies its arrays
    into tensors (in page-locked memory, for CUDA) and starts their copy to
    the device, on a CUDA stream of its own, while the caller's training
    step computes on the batch before. The caller's CUDA stream waits for
    a batch's copy when it takes the batch, not before: it never reads a
    batch whose copy has not finished, and it never waits for the copy of
    the batches after it.

    Each batch is an item of the stream: a numpy array or a torch tensor,
    or a dict, tuple (named tuples included) or list of them, nested as
    deep as need be. It comes out with the same structure: every array as
    a tensor on ``device`` with its dtype, shape and values (contiguous, a
    copy of the array: a source that reuses its arrays' memory is safe);
    every tensor moved to ``device`` (one already there is given as it
    is); any other value (a number, a string, ``None``) as it was.

    Parameters
    ----------
    stream : iterable
        The batches: a shoal stream (such as ``Streamer(buffer_stream,
        mux, 64)`` or a :class:`~shoal.ProcessStreamer` over it), an
        iteration of one (:meth:`~shoal.Streamer.iterator`), or any
        iterable (a ``DataLoader``, a generator). One pass of it is taken.
    device : str, int or torch.device
        Where the tensors go: ``"cuda"`` (the current CUDA device),
        ``"cuda:1"``, ``"cpu"``, an index of a CUDA device.
    prefetch : int >= 1
        The most batches made ready ahead of the one the caller holds. Each
        takes its room on the device: ``prefetch + 1`` batches are there at
        most, with the caller's.
    pin_memory : None or bool
        Copy each batch through page-locked host memory, from which the
        copy to a CUDA device runs without holding the host: ``None``
        (the default) does so for CUDA devices, and only CUDA devices take
        ``True``.
    non_blocking : bool
        Start the copies to the device without waiting for them to finish
        (the caller's stream still waits for them, see above).

    Returns
    -------
    DeviceFeed
        An iterator over the batches, on ``device``. Close it, or use it
        in a ``with`` block, to stop early: the thread stops and the
        stream is closed (its generators' ``finally`` runs).

    Raises
    ------
    ShoalTypeError
        If ``stream`` is not iterable, or an argument has the wrong type.
    ShoalValueError
        If ``device`` names no device, or a CUDA device where there is
        none, or ``prefetch < 1``, or ``pin_memory=True`` for a device
        other than CUDA.

    Notes
    -----
    Tensors and memory. On a CUDA device, each batch's tensors are new
    memory, allocated on the copy thread's stream and recorded on the
    caller's stream when the caller takes the batch (``record_stream``):
    PyTorch's allocator reuses their memory only once the caller's work
    queued on them has run. The page-locked host buffers come from
    PyTorch's pinned-memory cache, which records each copy made from a
    buffer and hands the buffer out again only when that copy has
    finished: a buffer is never overwritten while its copy may still read
    it. On the CPU, the tensors are the copies of the arrays, made in the
    thread.

    An error of the stream (of its generators, or of its workers) is raised
    from ``next`` as itself, with its traceback, after the batches before
    it; so is a :class:`~shoal.DataError` for an array of a dtype torch
    has no tensor for (strings, objects, dates). The stream's first batch
    is taken in the calling thread, the next ones in the copy thread: a
    :class:`~shoal.ProcessStreamer` starts its worker processes from the
    calling thread, before the copy thread exists.

    Examples
    --------
    >>> import torch
    >>> def batches():
    ...     for i in range(3):
    ...         yield {"x": np.full((2, 3), i, dtype="float32"), "y": np.arange(2) + i}
    >>> device = "cuda" if torch.cuda.is_available() else "cpu"
    >>> with to_device(Streamer(batches), device) as feed:
    ...     for batch in feed:
    ...         print(batch["x"].dtype, tuple(batch["x"].shape), batch["y"].tolist())
    torch.float32 (2, 3) [0, 1]
    torch.float32 (2, 3) [1, 2]
    torch.float32 (2, 3) [2, 3]

    A feed over a shoal stream saves the state of the stream at the
    batches the caller took (not those made ready ahead), and resumes:

    >>> feed = to_device(Streamer(batches), "cpu")
    >>> first = next(feed)
    >>> saved = feed.state_dict()
    >>> feed.close()
    >>> resumed = to_device(Streamer(batches), "cpu")
    >>> resumed.load_state_dict(saved)
    >>> [batch["y"].tolist() for batch in resumed]
    [[1, 2], [2, 3]]
    """
    return DeviceFeed(stream, device, prefetch, pin_memory, non_blocking)


class DeviceFeed:
    """The batches of a stream as tensors on a device: see :func:`to_device`, which makes it.

    An iterator of one pass. Its copy thread starts at the first batch
    taken, and stops when the stream ends, fails, or the feed is closed
    (:meth:`close`, the end of a ``with`` block, or garbage collection).
    """

    def __init__(self, stream: Any, device: Any, prefetch: int = 2,
                 pin_memory: bool | None = None, non_blocking: bool = True) -> None:
        self.device = _check_device(device)
        self.prefetch = check_int("prefetch", prefetch, minimum=1)
        is_cuda = self.device.type == "cuda"
        self.pin_memory = is_cuda if pin_memory is None else check_bool("pin_memory", pin_memory)
        if self.pin_memory and not is_cuda:
            raise ShoalValueError(
                f"pin_memory=True is for CUDA devices (page-locked memory speeds up copies to "
                f"them), got device {str(self.device)!r}"
            )
        self.non_blocking = check_bool("non_blocking", non_blocking)
        if isinstance(stream, StreamIterator):
            source = stream
        elif isinstance(stream, Streamer):
            source = stream.iterator()  # opens nothing until its first item
        elif is_iterable(stream) and not isinstance(stream, (str, bytes, dict)):
            source = None  # iter(stream) when the first batch is taken
        else:
            raise ShoalTypeError(
                "stream must be an iterable of batches (a shoal stream, a DataLoader, a "
                f"generator), got {short_repr(stream)} ({type(stream).__name__})"
            )
        self.stream = stream
        self._source = source
        self._resumable = source is not None
        self._convert = _Converter(self.device, self.pin_memory, self.non_blocking)
        self._run: _CopyRun | None = None  # the copy thread and what it shares, while it runs
        self._kept: deque = deque()  # messages to give before the copy thread's
        self._state: StateDict | None = None  # the source's state at the batches taken
        self._done = False
        self._closed = False

    def __iter__(self) -> "DeviceFeed":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        if self._kept:
            kind, payload, state = self._kept.popleft()
        elif self._run is None:
            kind, payload, state = self._start()
        else:
            run = self._run
            kind, payload, state = run.out.get()
            run.slots.release()
        if kind is _ITEM:
            if self._resumable:
                self._state = state
            return self._convert.received(payload)
        if kind is _STOPPED:  # closed meanwhile, from another thread
            self._done = True
            raise StopIteration
        self._done = True
        self._stop_run(closing=False)
        if kind is _END:
            if self._resumable:
                self._state = state
            raise StopIteration
        try:
            raise payload
        finally:
            del payload  # no cycle through this frame's traceback

    def _start(self):
        """Take the first batch here, start the copy thread for the next ones; give the first."""
        source = self._source
        if source is None:
            source = self._source = iter(self.stream)
        if self._resumable and self._state is None:
            self._state = source.state_dict()  # the state before any batch: what it starts from
        try:
            batch = next(source)
        except StopIteration:
            return _END, None, source.state_dict() if self._resumable else None
        except BaseException:
            self._done = True
            raise
        state = source.state_dict() if self._resumable else None
        try:
            message = (_ITEM, self._convert(batch), state)
        except BaseException:
            self._done = True
            raise
        del batch
        run = self._run = _CopyRun(source, self._convert, self._resumable, self.prefetch)
        run.thread.start()
        return message

    def _stop_run(self, closing):
        """Stop the copy thread; keep its converted batches unless ``closing``.

        Returns whether the thread has ended (it has not when this runs in
        the thread itself, from garbage collection there).
        """
        run = self._run
        if run is None:
            return True
        self._run = None
        run.closing = closing
        run.stop = True
        run.slots.release()  # wakes a thread waiting for room
        if run.thread is threading.current_thread():
            return False  # it sees run.stop when it comes back to its loop
        run.thread.join()  # after its current batch, if it is taking one
        if not closing:
            while True:
                try:
                    message = run.out.get_nowait()
                except queue.Empty:
                    break
                if message[0] is not _STOPPED:
                    self._kept.append(message)
        return True

    def close(self) -> None:
        """Stop: end the copy thread, drop the batches made ready, close the stream.

        If the thread is taking a batch from the stream, this waits for it
        (a generator cannot be stopped in the middle of an item).
        """
        if self._closed:
            return
        self._closed = self._done = True
        ended = self._stop_run(closing=True)
        self._kept.clear()
        if ended and self._source is not None:
            close_quietly(self._source)

    def __enter__(self) -> "DeviceFeed":
        return self

    def __exit__(self, *exc_info: object) -> Literal[False]:
        self.close()
        return False

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()

    def state_dict(self) -> StateDict:
        """The stream's state at the batches taken from this feed (not those made ready ahead).

        Raises
        ------
        ShoalTypeError
            If the feed is not over a shoal stream or an iteration of one:
            another iterable has no state to save.
        """
        self._check_resumable("state_dict")
        if self._state is None:  # nothing taken since it was made or loaded
            return self._source.state_dict()  # type: ignore[union-attr]  # resumable
        return copy.deepcopy(self._state)

    def load_state_dict(self, state: StateDict) -> None:
        """Go on from ``state``, a :meth:`state_dict` of a feed over the same stream.

        The batches made ready ahead are dropped. If ``state`` is refused,
        the feed goes on as it was.

        Raises
        ------
        ShoalTypeError
            If the feed is not over a shoal stream or an iteration of one.
        ShoalValueError
            If the feed is closed, or the stream refuses ``state`` (see
            :meth:`StreamIterator.load_state_dict`).
        """
        self._check_resumable("load_state_dict")
        if self._closed:
            raise ShoalValueError("load_state_dict on a closed DeviceFeed: make a new one")
        self._stop_run(closing=False)  # its batches are kept, to go on with if state is refused
        self._source.load_state_dict(state)  # type: ignore[union-attr]  # resumable
        self._kept.clear()
        self._state = None
        self._done = False

    def _check_resumable(self, method):
        if not self._resumable:
            raise ShoalTypeError(
                f"{method}() needs a feed over a shoal stream or its iterator(); this one is over "
                f"{short_repr(self.stream)} ({type(self.stream).__name__}), which has no state "
                "to save"
            )

    def __repr__(self) -> str:
        return f"<DeviceFeed of {self.stream!r} to {str(self.device)!r}>"


class _CopyRun:
    """What the copy thread shares with its feed (never the feed: it can be collected)."""

    __slots__ = ("source", "convert", "track", "out", "slots", "stop", "closing", "thread")

    def __init__(self, source, convert, track, prefetch):
        self.source = source
        self.convert = convert
        self.track = track  # record the source's state after each batch
        self.out: queue.SimpleQueue = queue.SimpleQueue()
        self.slots = threading.Semaphore(prefetch)  # batches it may make ready ahead
        self.stop = False
        self.closing = False  # close the source when it stops
        self.thread = threading.Thread(target=_copy_loop, args=(self,), name="shoal-to-device",
                                       daemon=True)


def _copy_loop(run):
    """The copy thread: take, convert and send batches until the stream ends or the feed stops."""
    source, convert, out, slots, track = run.source, run.convert, run.out, run.slots, run.track
    try:
        while True:
            slots.acquire()
            if run.stop:
                return
            try:
                batch = next(source)
            except StopIteration:
                out.put((_END, None, source.state_dict() if track else None))
                return
            if run.closing:
                return
            state = source.state_dict() if track else None
            out.put((_ITEM, convert(batch), state))
            del batch  # a ProcessStreamer's ring takes back its room
    except BaseException as exc:
        out.put((_ERROR, exc, None))
        del exc
    finally:
        if run.closing:
            close_quietly(source)
        if run.stop:
            out.put((_STOPPED, None, None))


class _Converter:
    """Makes a batch's tensors on the device (in the copy thread), and hands them over."""

    def __init__(self, device, pin_memory, non_blocking):
        self.device = device
        self.pin_memory = pin_memory
        self.non_blocking = non_blocking
        self.on_cpu = device.type == "cpu"
        self.copy_stream = _torch.cuda.Stream(device) if device.type == "cuda" else None

    def __call__(self, batch):
        """``(batch on the device, CUDA event of its copy or None, the tensors made)``."""
        made: list = []
        if self.copy_stream is None:
            return self._walk(batch, made, "batch"), None, made
        with _torch.cuda.device(self.device), _torch.cuda.stream(self.copy_stream):
            converted = self._walk(batch, made, "batch")
            event = _torch.cuda.Event()
            event.record(self.copy_stream)
        return converted, event, made

    def received(self, payload):
        """The batch, for the caller: its CUDA stream waits for the batch's copy."""
        converted, event, made = payload
        if event is not None:
            stream = _torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            for tensor in made:
                # Allocated on the copy stream: not reused until the caller's work on it has run.
                tensor.record_stream(stream)
        return converted

    def _walk(self, value, made, path):
        if isinstance(value, _np.ndarray):
            return self._array(value, made, path)
        if isinstance(value, _torch.Tensor):
            return self._tensor(value, made)
        if isinstance(value, dict):
            items = {key: self._walk(item, made, f"{path}[{key!r}]") for key, item in value.items()}
            if type(value) is not dict:
                try:
                    return type(value)(items)
                except TypeError:  # a dict subclass made otherwise (defaultdict): a plain dict
                    pass
            return items
        if isinstance(value, (tuple, list)):
            items = [self._walk(item, made, f"{path}[{i}]") for i, item in enumerate(value)]
            if type(value) is tuple:
                return tuple(items)
            if type(value) is list:
                return items
            if isinstance(value, tuple) and hasattr(value, "_fields"):
                return type(value)(*items)  # a named tuple
            return type(value)(items)
        return value

    def _array(self, array, made, path):
        dtype = _TORCH_DTYPES.get(array.dtype)
        if dtype is None:
            dtype = _TORCH_DTYPES.get(array.dtype.newbyteorder("="))
            if dtype is None:
                raise DataError(
                    f"{path} is an array of dtype {array.dtype}, which torch has no tensor for "
                    "(it takes bool, integers, floats and complex numbers)"
                )
        host = _torch.empty(array.shape, dtype=dtype, pin_memory=self.pin_memory)
        _np.copyto(host.numpy(), array)  # any strides or byte order; releases the GIL
        if self.on_cpu:
            return host
        tensor = host.to(self.device, non_blocking=self.non_blocking)
        made.append(tensor)
        return tensor

    def _tensor(self, tensor, made):
        if tensor.device == self.device:
            return tensor
        if self.pin_memory and tensor.device.type == "cpu" and not tensor.is_pinned():
            tensor = tensor.pin_memory()
        moved = tensor.to(self.device, non_blocking=self.non_blocking)
        made.append(moved)
        return moved


def _check_device(device):
    """``device`` as a torch.device, with the index of a CUDA device."""
    if isinstance(device, (bool, _np.bool_)) or not isinstance(device, (str, int, _torch.device)):
        raise ShoalTypeError(
            "device must be a torch.device, a string such as 'cuda' or 'cpu', or the index of "
            f"a CUDA device, got {short_repr(device)} ({type(device).__name__})"
        )
    try:
        checked = _torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ShoalValueError(
            f"device must name a torch device ('cpu', 'cuda', 'cuda:1'), got {device!r} ({exc})"
        ) from None
    if checked.type == "cuda":
        if not _torch.cuda.is_available():
            raise ShoalValueError(
                f"device is {device!r}, but CUDA is not available here "
                "(torch.cuda.is_available() is False)"
            )
        index = _torch.cuda.current_device() if checked.index is None else checked.index
        if index >= _torch.cuda.device_count():
            raise ShoalValueError(
                f"device is {device!r}, but there are {_torch.cuda.device_count()} CUDA devices"
            )
        checked = _torch.device("cuda", index)
    return checked
