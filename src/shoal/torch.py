"""Hand a shoal stream to PyTorch: an IterableDataset sharded by worker and by rank.

With ``DataLoader(dataset, num_workers=W)`` every worker process iterates its
own copy of a dataset; :class:`StreamDataset` gives each its own share of a
mux's streamers (and, across machines, each rank its own share), so that no
item comes twice.

This module imports PyTorch; ``import shoal`` does not import it.
"""

import os

try:
    import torch.distributed as _dist
    import torch.utils.data as _data
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "shoal.torch needs PyTorch: pip install torch (from a clone of shoal: pip install '.[torch]')"
    ) from exc

from ._checks import check_int, short_repr
from ._iterutil import add_note
from .core import Streamer
from .exceptions import ShoalTypeError, ShoalValueError
from .iterator import reshard_states

__all__ = ["StreamDataset", "share_states"]


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
    another number of ranks or workers (see :meth:`load_state_dict`).

    >>> iterator = iter(DataLoader(dataset, batch_size=None))
    >>> [next(iterator) for _ in range(4)]
    ['a', 'a', 'a', 'b']
    >>> saved = [dataset.state_dict()]  # one share: the states of all shares
    >>> resumed = StreamDataset(ChainMux(letters))
    >>> resumed.load_state_dict(saved)
    >>> sorted(DataLoader(resumed, batch_size=None, num_workers=2))  # now two shares
    ['b', 'b', 'c', 'c', 'c', 'd', 'd', 'd']
    """

    def __init__(self, stream, rank=None, world_size=None):
        if not isinstance(stream, Streamer):
            raise ShoalTypeError(
                f"stream must be a Streamer or a mux, got {short_repr(stream)} "
                f"({type(stream).__name__})"
            )
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
        self._iterator = None  # the iteration now running in this process
        self._pending = None  # a state to start the next iteration from

    def rank_and_world_size(self):
        """This process's ``(rank, world_size)``, as the dataset uses them."""
        if self.rank is not None:
            return self.rank, self.world_size
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

    def shard(self):
        """``(share, n_shares)`` of the worker or process calling it."""
        rank, world_size = self.rank_and_world_size()
        info = _data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * n_workers + worker, world_size * n_workers

    def _share(self):
        share, n_shares = self.shard()
        try:
            return self.stream.shard(share, n_shares)
        except ShoalValueError as exc:
            rank, world_size = self.rank_and_world_size()
            add_note(exc, f"StreamDataset splits the stream into {n_shares} shares: "
                          f"{world_size} ranks x {n_shares // world_size} DataLoader workers")
            raise

    def __iter__(self):
        iterator = self._share().iterator()
        if self._pending is not None:
            iterator.load_state_dict(self._pending_state())
            self._pending = None
        if self._iterator is not None:
            self._iterator.close()
        self._iterator = iterator
        return iter(iterator)

    def state_dict(self):
        """The state of the iteration running in this process (empty before one starts).

        After :meth:`load_state_dict`, and until the next iteration starts,
        it is the state that iteration will start from.
        """
        if self._pending is not None:
            return {"shard": list(self.shard()), "iterator": self._pending_state()}
        if self._iterator is None:
            return {}
        return {"shard": list(self.shard()), "iterator": self._iterator.state_dict()}

    def load_state_dict(self, state):
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

        Raises
        ------
        ShoalValueError
            If ``state`` is the state of another share, or a list that is
            not one state for each share ``0..n-1`` of one run. When the
            next iteration starts, if the states cannot be split anew.
        """
        if isinstance(state, (list, tuple)):
            self._pending = _all_shares(state)
        elif state:
            if not isinstance(state, dict) or "shard" not in state or "iterator" not in state:
                raise ShoalValueError(
                    "state must be a StreamDataset.state_dict() or a list of them, got "
                    f"{short_repr(state)}"
                )
            shard = state.get("shard")
            if isinstance(shard, list) and len(shard) == 2 and shard[1] == 1:
                # The one share of its run: all its shares, which any number split anew.
                self._pending = _all_shares([state])
                return
            self._check_shard(shard)
            # Checked again when the iteration starts: loaded here, it may run
            # in DataLoader workers, each of which is another share.
            self._pending = {"shard": shard, "iterator": state["iterator"]}

    def _check_shard(self, shard):
        if list(self.shard()) != shard:
            raise ShoalValueError(
                f"state is of share {shard}, this one is {list(self.shard())}; to go on "
                "with another number of ranks or workers, load the list of the states of "
                "all the shares"
            )

    def _pending_state(self):
        """The state this share starts from: its own, or its part of all the shares' states."""
        pending = self._pending
        if isinstance(pending, dict):
            self._check_shard(pending["shard"])
            return pending["iterator"]
        share, n_shares = self.shard()
        if len(pending) == n_shares:
            return pending[share]
        try:
            return reshard_states(self.stream, pending, n_shares)[share]
        except ShoalValueError as exc:
            add_note(exc, f"while splitting the states of {len(pending)} shares (ranks x "
                          f"DataLoader workers) among {n_shares}")
            raise


def _all_shares(states):
    """The iterator states of shares ``0..n-1``, from the dataset states of all ``n`` shares."""
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


def share_states(loader_state):
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
