"""Stream from background worker processes.

:class:`ProcessStreamer` runs a stream in one or more worker processes and
yields its items in the consumer. Items are pickled (protocol 5), except the
buffers of large numpy arrays, which cross through a shared-memory ring: the
worker copies them into free chunks of it, and the consumer receives views of
those chunks, which go back to the worker when the consumer drops the arrays.
So received arrays are writable, and a worker that reuses its output buffer
changes nothing the consumer holds. Workers send items in small batches; a prefetch depth bounds
the items in flight.

Nothing fails silently: an exception in a worker is raised in the consumer
with the worker's traceback, after the items the worker gave before it; a
worker that dies (killed by the OS, say) is detected at once, through its
process sentinel; stopping the consumer (break, ``close()``, an exception,
garbage collection) stops every worker and removes the shared memory; a
consumer that dies takes its workers with it.
"""

import collections
import contextlib
import functools
import gc
import mmap
import multiprocessing
import multiprocessing.connection
import os
import pickle
import random
import resource
import signal
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections import deque
from itertools import islice

import numpy as np

from ._checks import check_choice, check_int, short_repr, state_difference
from ._iterutil import END, add_note, limited
from ._random import iteration_seed, share_seed
from .core import Streamer
from .exceptions import ShoalError, ShoalTypeError, ShoalValueError
from .iterator import loaded_root
from .mux._base import BaseMux, as_streamer, check_flag, restored_node
from .reshard import reshard_states

__all__ = ["ProcessStreamer", "ZMQStreamer", "WorkerError", "worker_info"]

#: Buffers at least this large cross through shared memory, not the pipe.
SHARED_MIN_BYTES = 64 * 1024
#: A worker sends a batch when it holds this many items...
BATCH_ITEMS = 64
#: ...or this many seconds after its first item, whatever its generator does next.
BATCH_SECONDS = 0.002
#: ...or when its arrays fill this many bytes of the ring (or an eighth of it).
RING_FLUSH_BYTES = 2**20
#: A worker's ring is handed out in chunks of this many bytes (or the whole
#: ring, if it is smaller).
CHUNK_BYTES = 64 * 1024
#: A worker keeps at most this many bytes of arrays in flight in its ring, or
#: WINDOW_ITEMS of its largest item, whichever is more.
RING_WINDOW_BYTES = 4 * 2**20
WINDOW_ITEMS = 4
#: A worker takes its share's state at most once per this many times what it costs.
SNAPSHOT_RATIO = 100
#: The most workers a ProcessStreamer runs (each is a process with a pipe and a ring).
MAX_WORKERS = 1024
#: How often a waiting worker checks that it should go on.
_POLL = 0.05
#: How often a worker checks that its consumer is alive.
_WATCH = 0.1
_PR_SET_PDEATHSIG = 1
_SHM_PREFIX = "shoal-"
_SEM_VALUE_MAX = 2**31 - 1  # what a semaphore can count to (SEM_VALUE_MAX on Linux)

_WORKER = None  # (index, n_workers) inside a worker process

# The consumer's ends of its workers' pipes. A process forked from the
# consumer (a worker, or any other) closes its copies of them at once: while
# another process holds a copy, closing the consumer's end does not break the
# pipe, and a worker writing into it would block, not fail, when the consumer
# stops reading.
_RECEIVERS: weakref.WeakSet = weakref.WeakSet()


def _close_inherited_receivers():
    for conn in list(_RECEIVERS):
        with contextlib.suppress(Exception):
            conn.close()
    _RECEIVERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_receivers)


class WorkerError(ShoalError, RuntimeError):
    """A worker process failed in a way its own exception cannot tell.

    It died (killed, or crashed), or raised an exception that cannot be sent
    to the consumer; the message says which worker and how.
    """


def worker_info():
    """``(index, n_workers)`` inside a ProcessStreamer's worker, else None.

    A generator function can use it to read its own share of the data.

    Examples
    --------
    >>> worker_info() is None  # not in a worker
    True
    >>> def my_share(n):
    ...     index, n_workers = worker_info() or (0, 1)
    ...     yield from range(index, n, n_workers)
    >>> sorted(ProcessStreamer(Streamer(my_share, 6), n_workers=2, start_method="fork"))
    [0, 1, 2, 3, 4, 5]
    """
    return _WORKER


def _split(stream, index, n_workers):
    """The share of ``stream`` that worker ``index`` of ``n_workers`` runs."""
    if n_workers == 1:
        return stream
    if isinstance(stream, BaseMux):
        # Too few streamers is refused: copies of the mux would repeat its items.
        return stream.shard(index, n_workers)
    try:
        return stream.shard(index, n_workers)  # a map over a mux: the mux's share
    except ShoalValueError as exc:
        if "is one stream" not in str(exc):
            raise
        return stream  # one generator: each worker runs it, and reads worker_info()


class ProcessStreamer(Streamer):
    """Run a stream in background worker processes.

    Parameters
    ----------
    stream : Streamer
        The stream to run: a streamer or a mux.
    n_workers : int, 1 to MAX_WORKERS (1024)
        The number of worker processes. A mux (or a map over a mux, such
        as ``Streamer(buffer_stream, mux, 32)``) is split with
        :meth:`~shoal.Streamer.shard`: worker ``w`` runs share ``w``, a mux
        of the same kind over ``streamers[w::n_workers]``, seeded from the
        mux's seed and ``w``; a mux with fewer streamers than workers is
        refused, since copies of it would repeat its items. Any other stream
        (one generator function) runs whole in every worker, which reads its
        own share through :func:`worker_info`.
    prefetch : int >= 1
        The most items each worker may have produced and the consumer not
        yet taken: it bounds the memory in flight (arrays of 64 KiB or more
        also wait for room in the worker's ring). The default keeps about a
        scheduler's time slice of small items in hand, so that an ordered
        consumer does not stall when the system pauses one of its workers.
    ordered : bool
        Take items from the workers in strict turn (deterministic: two runs
        of a seeded stream give the same items), or as they come (faster when
        the workers' speeds vary).
    start_method : None or {"fork", "spawn", "forkserver"}
        How workers start; ``None`` is multiprocessing's default. With
        ``spawn`` and ``forkserver`` the stream must be picklable, which is
        checked here.
    timeout : float > 0
        Seconds to wait, when the stream is closed, for a worker busy in its
        generator's code to stop, before it is terminated. Finite. A worker
        waiting for the consumer stops at once; either way, as in one
        process, the workers' generators are closed (their ``finally``
        runs) before ``close()`` returns, unless terminated.
    shared_memory_bytes : int
        The size of each worker's shared-memory ring for large arrays. An
        item whose arrays do not fit is sent through the pipe instead. The
        rings of all workers must fit in the shared-memory file system.
    item_timeout : None or float > 0
        The most seconds the consumer waits for a worker's next item; a
        worker silent for longer raises :class:`WorkerError`. The default,
        ``None``, waits as long as it takes (a worker that dies is still
        detected at once). It counts from when the consumer starts waiting,
        so include the time a worker takes to start (to import its modules
        with ``spawn``) and to make an item.

    Raises
    ------
    WorkerError
        While iterating, if a worker dies, fails with an exception that
        cannot be sent, or is silent for longer than ``item_timeout``. An
        exception a worker raises is raised as itself, with the worker's
        traceback in a note, after the items the worker gave before it.
        Also from ``state_dict()``, which may wait for a worker's next
        snapshot, if the worker dies or is silent meanwhile.
    ShoalValueError
        From ``load_state_dict`` of an iteration of it (or of a Streamer or
        a map over it), for a state of another stream (each worker's share
        state is checked there, as one process checks a state, and the
        message says what does not fit), or saved with another
        ``n_workers`` whose pass cannot be split exactly among these
        workers (see :func:`~shoal.reshard_states`): the message names both
        numbers of workers and the stream, and says why. The iteration goes
        on as it was. A state that can be split is resharded there, once,
        and the workers start at the next item.

        While iterating, from a worker resumed from a state, before any of
        its items, if its share does not give again the items it gave
        between its last snapshot and the consumer's position when the
        state was saved: a source now yields fewer or other items (a file
        was rewritten), or the stream is not the one that saved it (a map
        with another ``buffer_size``, say). One process raises the same
        error for a source that now yields fewer items than its state
        says; a worker never goes on with items lost or repeated.

    Notes
    -----
    Each worker's global random states (numpy's legacy one and ``random``'s)
    are seeded, when the stream starts, from one draw from the consumer's
    numpy global state (as ``np.random.randint(0, 2**32, size=4)`` would
    draw) and the worker's index, apart: ``np.random.seed`` in the consumer
    makes the workers' draws repeat, each pass draws anew, and no two
    workers draw the same numbers.

    Examples
    --------
    >>> import numpy as np
    >>> @streamable
    ... def squares(n):
    ...     for i in range(n):
    ...         yield {"x": np.full(3, i * i)}
    >>> stream = ProcessStreamer(squares(4), start_method="fork")
    >>> [item["x"].tolist() for item in stream]
    [[0, 0, 0], [1, 1, 1], [4, 4, 4], [9, 9, 9]]
    """

    def __init__(self, stream, n_workers=1, prefetch=256, ordered=True, start_method=None,
                 timeout=5.0, shared_memory_bytes=64 * 2**20, item_timeout=None):
        stream = as_streamer(stream, "stream")
        self.stream = stream
        self.n_workers = check_int("n_workers", n_workers, minimum=1)
        limit = _max_workers()
        if self.n_workers > limit:
            raise ShoalValueError(
                f"n_workers must be <= {limit} (each worker is a process with its own pipe "
                f"and shared memory), got {self.n_workers}"
            )
        self.prefetch = check_int("prefetch", prefetch, minimum=1)
        if self.prefetch > _SEM_VALUE_MAX:
            raise ShoalValueError(f"prefetch must be <= {_SEM_VALUE_MAX}, got {self.prefetch}")
        self.ordered = check_flag("ordered", ordered)
        if start_method is not None:
            check_choice("start_method", start_method, tuple(multiprocessing.get_all_start_methods()))
        self.start_method = start_method
        self.timeout = _check_seconds("timeout", timeout)
        self.item_timeout = None if item_timeout is None else _check_seconds("item_timeout",
                                                                             item_timeout)
        self.shared_memory_bytes = check_int("shared_memory_bytes", shared_memory_bytes,
                                             minimum=mmap.PAGESIZE)
        limit = _max_ring_bytes(self.n_workers)
        if self.shared_memory_bytes > limit:
            raise ShoalValueError(
                f"shared_memory_bytes must be <= {limit} (the shared-memory file system holds "
                f"{limit * self.n_workers} bytes, for the rings of {self.n_workers} "
                f"worker(s)), got {self.shared_memory_bytes}"
            )
        self._shares = [_split(stream, w, self.n_workers) for w in range(self.n_workers)]
        self._copy_out = False  # copy every received array out of the ring
        if self._context().get_start_method() != "fork":
            for share in self._shares:
                try:
                    pickle.dumps(share)
                except Exception as exc:
                    raise ShoalTypeError(
                        f"stream {stream!r} cannot be sent to a worker started with "
                        f"{self._context().get_start_method()!r}: {type(exc).__name__}: {exc}; "
                        "use module-level generator functions and picklable arguments, "
                        "or start_method='fork' where it is available"
                    ) from exc

    def _context(self):
        return multiprocessing.get_context(self.start_method)

    @property
    def source(self):
        return self.stream

    def _open(self, max_iter=None):
        gen = _ProcessIterator(self, max_iter).run()
        # Each worker stops after max_iter items; the consumer takes max_iter in all.
        return gen if max_iter is None or self.n_workers == 1 else limited(gen, max_iter)

    def _open_items(self):
        return self._open()

    # Resumable iteration: the workers send their shares' states with their
    # items, and a pass's state holds each share's state up to the items the
    # consumer took. It resumes by starting each worker where its share was.
    _plain_leaf = False
    _takes_key = False

    def _open_node(self, state=None, track=False, key=None):
        # The workers run the stream as a root: no key reaches another process.
        node = _ProcessIterator(self, None, track, state)
        return node, node.run()

    def _ready_state(self, state, path="state", n_given=None):
        # Checked when it is loaded, and a state saved with another number of
        # workers resharded then, once, in this process (no worker starts): one
        # that cannot be split exactly is refused at load_state_dict.
        shares = restored_node(self, state, lambda: _saved_shares(state))
        if len(shares) != self.n_workers:
            return _reshard(self, shares)
        # Each worker loads its share's states: they are checked here, as one
        # process checks a state, so that one of another stream is refused at
        # the call and the iteration goes on.
        for index, share in enumerate(shares):
            ahead = share.get("ahead")
            for saved in (share["state"], ahead and ahead["state"]):
                if saved is not None:
                    try:
                        loaded_root(self._shares[index], saved)
                    except ShoalError as exc:
                        add_note(exc, f"in the state of worker {index}'s share, "
                                      f"{self._shares[index]!r}, of {self!r}")
                        raise
        return state

    def __repr__(self):
        return f"{type(self).__name__}({self.stream!r}, n_workers={self.n_workers})"


@contextlib.contextmanager
def _interrupts_held():
    """Hold Ctrl-C back while the block runs, and raise it after.

    For the short, bounded work that must not be cut in the middle (ending
    the workers, removing the rings). Only in the main thread, and only
    while Ctrl-C raises KeyboardInterrupt (Python's default handler).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    held = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if held:
            raise KeyboardInterrupt


def _check_seconds(name, value):
    """``value`` as a float number of seconds, > 0, finite and within what waits accept."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ShoalTypeError(
            f"{name} must be a number of seconds, got {short_repr(value)} ({type(value).__name__})"
        )
    if not 0 < value <= threading.TIMEOUT_MAX:  # also refuses nan and inf
        raise ShoalValueError(
            f"{name} must be a number of seconds > 0 and <= {threading.TIMEOUT_MAX:.0f}, got {value!r}"
        )
    return float(value)


def _max_workers():
    """The most workers: MAX_WORKERS, or fewer if this process may open fewer files."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ValueError, OSError):
        return MAX_WORKERS
    if soft == resource.RLIM_INFINITY:
        return MAX_WORKERS
    # A worker holds about 4 of the consumer's file descriptors while it starts.
    return max(1, min(MAX_WORKERS, (soft - 64) // 4))


def _max_ring_bytes(n_workers):
    """The largest ring each of ``n_workers`` may have: their rings share the file system."""
    try:
        stat = os.statvfs(_shared_memory_folder())
        total = stat.f_blocks * stat.f_frsize
    except (AttributeError, OSError):
        total = 2**48
    return max(mmap.PAGESIZE, total // n_workers // mmap.PAGESIZE * mmap.PAGESIZE)


class ZMQStreamer(ProcessStreamer):
    """pescador's ZMQStreamer: a stream in one background process.

    Code written for pescador runs unchanged. No sockets or ports are used
    (the transport is a pipe and shared memory), so the port arguments are
    only checked. Received arrays are writable; with ``copy=True`` they are
    always copies of the consumer's own, else views into shared memory (as
    for :class:`ProcessStreamer`), as pescador's ``copy=False`` gives views
    of the received message.

    Parameters
    ----------
    streamer : Streamer
    min_port, max_port : int
        Accepted for compatibility: ``1 <= min_port < max_port <= 65535``.
    max_tries : int > 0
        Accepted for compatibility.
    copy : bool
        Copy every received array out of shared memory.
    timeout : float > 0
        Seconds to wait for the worker to stop when the stream is closed.

    Examples
    --------
    >>> def numbers(n):
    ...     for i in range(n):
    ...         yield {"x": np.arange(i, i + 2)}
    >>> stream = ZMQStreamer(Streamer(numbers, 3))
    >>> [item["x"].tolist() for item in stream]
    [[0, 1], [1, 2], [2, 3]]
    """

    def __init__(self, streamer, min_port=49152, max_port=65535, max_tries=100, copy=False,
                 timeout=5):
        streamer = as_streamer(streamer, "streamer")
        min_port = check_int("min_port", min_port, minimum=1)
        max_port = check_int("max_port", max_port, minimum=1)
        if not min_port < max_port <= 65535:
            raise ShoalValueError(
                f"ports must satisfy 1 <= min_port < max_port <= 65535, got "
                f"min_port={min_port}, max_port={max_port}"
            )
        self.min_port, self.max_port = min_port, max_port
        self.max_tries = check_int("max_tries", max_tries, minimum=1)
        self.copy = check_flag("copy", copy)
        super().__init__(streamer, n_workers=1, timeout=timeout if timeout is not None else 5.0)
        self._copy_out = self.copy

    @property
    def streamer(self):
        return self.stream


# -- the consumer --------------------------------------------------------------


class _Worker:
    """The consumer's handle on one worker: process, pipe, credits, ring and progress.

    ``received`` counts the items that arrived from the worker; those taken
    are ``received - len(queue)``. ``snapshots`` holds the share states the
    worker sent, ``(k, state or pickled state)`` for the state after its
    ``k``-th item, not yet reached by the consumer; ``base`` is the latest
    reached, ``(k, state or pickled state, skip)``: the share is there after
    ``k`` items, plus ``skip`` items. ``ahead`` is ``(k, state)``, the
    state after its ``k``-th item that its loaded state said it reaches
    (see :func:`_resumed_share`), or None.
    """

    __slots__ = ("index", "process", "conn", "credits", "ring", "ring_path", "taken", "chunks",
                 "view", "chunk", "copy_out",
                 "queue", "ready", "done", "error", "since", "received", "snapshots", "base",
                 "ahead")


class _ProcessIterator:
    """The running state of one iteration of a ProcessStreamer.

    With ``track``, the workers send the states of their shares along with
    their items and :meth:`state_dict` reports, for every worker, the state
    of its share up to the items the consumer took.
    """

    def __init__(self, recipe, max_iter=None, track=False, state=None):
        self.recipe = recipe
        self.max_iter = max_iter
        self.track = track or state is not None
        self.workers = []
        self.stop = None
        self.live = None  # the workers still giving items, in turn order
        self.position = 0  # ordered: whose turn is next, in ``live``
        # Where each share starts: (state or None, skip, ahead or None), and which ones run.
        n = recipe.n_workers
        self.starts = [(None, 0, None)] * n
        self.running = list(range(n))
        if state is not None:
            self._load(state)

    # -- state

    def _load(self, state):
        recipe = self.recipe
        # A state a StreamIterator loaded is ready (checked, and resharded if
        # need be): this checks it again, which is cheap. One a mux restores
        # is made ready here.
        state = recipe._ready_state(state)
        self.starts = [(share["state"], share["skip"], share.get("ahead"))
                       for share in state["shares"]]
        self.running = list(state["running"])
        self.position = state["position"] if recipe.ordered and state["ordered"] else 0

    def state_dict(self, n_given=None):
        shares = [_share(state, skip, ahead) for state, skip, ahead in self.starts]
        for worker in self.workers:
            shares[worker.index] = self._share_state(worker)
        # Before its first item (a mux opened it, and has not read it yet), as loaded.
        running = list(self.running) if self.live is None else [w.index for w in self.live]
        return {
            "type": "ProcessStreamer",
            "n_workers": self.recipe.n_workers,
            "ordered": self.recipe.ordered,
            "running": running,
            "position": self.position,
            "shares": shares,
        }

    def _share_state(self, worker):
        """The state of the share of ``worker``, at the items the consumer took.

        It is the worker's last snapshot the consumer reached, and the
        number of items the consumer took after it; with those, the next
        snapshot, so that the worker checks, when it resumes, that its share
        goes through those items as it did (see :func:`_resumed_share`). If
        none has arrived yet, this waits for it: the worker takes one a few
        milliseconds on, or after its next item if that takes longer, and
        before it waits for the consumer (whose items waiting in the ring
        are read meanwhile, so that it does not wait for room there).
        """
        taken = worker.received - len(worker.queue)
        snapshots = worker.snapshots
        while True:
            while snapshots and snapshots[0][0] <= taken:
                worker.base = (*snapshots.popleft(), 0)
            k, share_state, skip = worker.base
            skip += taken - k
            if not skip:
                ahead = None
                break
            if snapshots:
                ahead = snapshots[0]
                if isinstance(ahead[1], bytes):
                    ahead = snapshots[0] = (ahead[0], pickle.loads(ahead[1]))
                break
            ahead = worker.ahead
            if (ahead is not None and ahead[0] > taken) or worker.done or worker.conn.closed:
                break  # (a worker that failed sends no more: its state goes unchecked)
            self._load_ring_items(worker)  # a worker waiting for room in its ring goes on
            self._receive(worker)
        if isinstance(share_state, bytes):
            share_state = pickle.loads(share_state)
            worker.base = (worker.base[0], share_state, worker.base[2])
        if ahead is not None and ahead[0] <= taken:
            ahead = None
        return _share(share_state, skip, ahead and {"n": ahead[0] - taken, "state": ahead[1]})

    @staticmethod
    def _load_ring_items(worker):
        """Read the items of ``worker`` that wait in its ring, so that it can reuse the room."""
        queue = worker.queue
        for _ in range(len(queue)):
            item = queue.popleft()
            queue.append(item.load() if type(item) is _InRing else item)

    # -- starting and stopping

    def _start(self):
        recipe = self.recipe
        context = recipe._context()
        self.stop = context.Event()
        folder = _shared_memory_folder()
        # A worker dies with its consumer (see _guard_parent): through the
        # kernel, where the thread that starts it is the main thread.
        parent = os.getpid() if context.get_start_method() in ("fork", "spawn") else None
        use_pdeathsig = threading.current_thread() is threading.main_thread()
        # The seed of the workers' global random states (see _seed_globals):
        # one draw from numpy's global state, so that np.random.seed repeats it.
        seed = iteration_seed(None)
        for index in self.running:
            worker = _Worker()
            worker.index = index
            worker.ring = worker.conn = worker.view = None
            # Named after this process, so that what it leaves can be found.
            fd, worker.ring_path = tempfile.mkstemp(prefix=f"{_SHM_PREFIX}{os.getpid()}-",
                                                    dir=folder)
            receiver = sender = None
            try:
                try:
                    os.ftruncate(fd, recipe.shared_memory_bytes)
                    worker.ring = mmap.mmap(fd, recipe.shared_memory_bytes)
                finally:
                    os.close(fd)
                worker.taken = context.RawValue("Q", 0)  # ring bytes the consumer took
                worker.chunk = min(CHUNK_BYTES, recipe.shared_memory_bytes)
                # Which chunks of the ring hold an item's arrays (1) or are free
                # (0): the worker marks them used, the consumer frees them.
                worker.chunks = context.RawArray("B", recipe.shared_memory_bytes // worker.chunk)
                worker.view = memoryview(worker.ring)
                worker.copy_out = recipe._copy_out
                worker.credits = context.Semaphore(recipe.prefetch)
                receiver, sender = context.Pipe(duplex=False)
                _RECEIVERS.add(receiver)  # no process forked from now on keeps it open
                worker.conn = receiver
                start, skip, ahead = self.starts[index]
                config = {
                    "index": index, "n_workers": recipe.n_workers, "share": recipe._shares[index],
                    "max_iter": self.max_iter, "track": self.track, "start": start, "skip": skip,
                    "ahead": ahead,
                    "prefetch": recipe.prefetch, "chunk": worker.chunk,
                    "ring_path": worker.ring_path, "ring_size": recipe.shared_memory_bytes,
                    "parent": parent, "pdeathsig": use_pdeathsig, "seed": seed,
                }
                worker.process = context.Process(
                    target=_worker_main,
                    args=(config, sender, worker.credits, self.stop, worker.taken, worker.chunks),
                    daemon=True,
                    name=f"shoal-worker-{index}",
                )
                worker.process.start()
                self.workers.append(worker)  # from here on, _shut_down ends it
            except BaseException:
                # Not started (spawn refuses to start a process while the main
                # module is being imported by one, say): nothing of it stays.
                for end in (receiver, sender):
                    if end is not None:
                        end.close()
                if worker.view is not None:
                    worker.view.release()
                if worker.ring is not None:
                    worker.ring.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(worker.ring_path)
                raise
            sender.close()  # the worker has its own end now
            worker.queue = collections.deque()
            worker.ready = worker.done = False
            worker.error = None
            worker.since = None
            worker.received = 0
            worker.snapshots = collections.deque()
            worker.base = (0, start, skip)
            worker.ahead = ahead and (ahead["n"], ahead["state"])

    def _unlink_rings(self):
        for worker in self.workers:
            if worker.ring_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(worker.ring_path)
                worker.ring_path = None

    def _shut_down(self):
        try:
            self._stop_workers()
        finally:
            # Whatever cut the wait short (a second Ctrl-C, say), no worker
            # and no ring outlives the iteration.
            with _interrupts_held():
                self._end_workers()

    def _stop_workers(self):
        """Ask every worker to stop, and wait up to ``timeout`` for them to end.

        A worker stops at once, closing its generators as it goes, wherever
        it waits for the consumer: one writing into its pipe fails when the
        consumer's end is closed (no other process holds it), and one
        waiting for credit is woken with one, and sees the stop. Only a
        worker in its generator's code takes longer.
        """
        if self.stop is not None:
            self.stop.set()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.conn.close()
            with contextlib.suppress(Exception):
                worker.credits.release()
        deadline = time.monotonic() + self.recipe.timeout
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))

    def _end_workers(self):
        """Terminate the workers still running, then free their pipes and rings."""
        alive = [w.process for w in self.workers if w.process.is_alive()]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + 1.0
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        self._unlink_rings()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.conn.close()
            # Arrays the consumer still holds keep their part of the ring
            # mapped (then these raise, and the ring goes with the last of them).
            with contextlib.suppress(Exception):
                worker.view.release()
            with contextlib.suppress(Exception):
                worker.ring.close()
            with contextlib.suppress(Exception):
                worker.process.close()

    # -- receiving

    def _silent(self, worker):
        """The WorkerError for a worker silent for longer than item_timeout."""
        silent = time.monotonic() - worker.since
        return WorkerError(
            f"worker {worker.index} (pid {worker.process.pid}) of {self.recipe!r} has sent "
            f"nothing for {silent:.1f} s while the consumer waited for its next item "
            f"(item_timeout={self.recipe.item_timeout} s)"
        )

    def _receive(self, worker):
        """Wait for the next message of ``worker`` and handle it."""
        conn, process = worker.conn, worker.process
        item_timeout = self.recipe.item_timeout
        if item_timeout is None:
            ready = multiprocessing.connection.wait([conn, process.sentinel])
        else:
            if worker.since is None:
                worker.since = time.monotonic()
            left = worker.since + item_timeout - time.monotonic()
            ready = multiprocessing.connection.wait([conn, process.sentinel], max(left, 0.0))
            if not ready:
                raise self._silent(worker)
        if conn in ready:
            try:
                message = conn.recv_bytes()
            except EOFError:
                pass  # the worker closed its end without a word: it died
            else:
                worker.since = None
                self._handle(worker, message)
                return
        # The worker is gone without saying that its stream ended.
        process.join(self.recipe.timeout)
        code = process.exitcode
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
            with contextlib.suppress(ValueError):
                how += f" ({signal.Signals(-code).name})"
        else:
            how = f"exited with code {code}"
        if not worker.ready:
            how += (" before it started its stream (its error, if any, is on its standard "
                    "error; with start_method 'spawn' or 'forkserver', a script must start "
                    "streams under `if __name__ == '__main__':`)")
        else:
            how += " before the end of its stream"
        raise WorkerError(f"worker {worker.index} (pid {process.pid}) of {self.recipe!r} {how}")

    def _handle(self, worker, message):
        kind, payload = pickle.loads(message)
        if kind == "items":
            queue = worker.queue
            loads = pickle.loads
            received = 0
            for segment in payload:
                tag = segment[0]
                if tag == "c":
                    queue.extend(_unpack_run(*segment[1:]))
                    received += segment[3]
                elif tag == "p":
                    queue.append(loads(segment[1]))
                    received += 1
                elif tag == "r":  # read out of the ring when the consumer takes it
                    queue.append(_InRing(worker, *segment[1:]))
                    received += 1
                else:  # "s": the share's state after the worker's k-th item
                    worker.snapshots.append(segment[1:])
            worker.received += received
            snapshots = worker.snapshots
            if len(snapshots) > 1:  # forget those the consumer went past
                taken = worker.received - len(queue)
                while len(snapshots) > 1 and snapshots[1][0] <= taken:
                    snapshots.popleft()
                if snapshots[0][0] <= taken:
                    worker.base = (*snapshots.popleft(), 0)
        elif kind == "ready":
            worker.ready = True
            if all(w.ready for w in self.workers):
                self._unlink_rings()
        elif kind == "end":
            worker.done = True
        else:  # "error": raised once the items the worker gave before it are taken
            worker.done = True
            exc_bytes, name, text, trace = payload
            exc = None
            if exc_bytes is not None:
                with contextlib.suppress(Exception):
                    exc = pickle.loads(exc_bytes)
            where = f"in worker {worker.index} (pid {worker.process.pid}) of {self.recipe!r}"
            if exc is None:
                exc = WorkerError(f"{name}: {text} (raised {where}, and it cannot be sent)")
            add_note(exc, f"raised {where}; the worker's traceback:\n{trace.rstrip()}")
            worker.error = exc

    @staticmethod
    def _raise_error(worker):
        exc, worker.error = worker.error, None
        raise exc

    # -- iterating

    def run(self):
        try:
            self._start()
            if self.recipe.ordered:
                yield from self._ordered()
            else:
                yield from self._as_they_come()
        finally:
            self._shut_down()

    def _ordered(self):
        live = self.live = list(self.workers)
        while live:
            position = self.position
            if position >= len(live):
                position = self.position = 0
            worker = live[position]
            queue = worker.queue
            while not queue and not worker.done:
                self._receive(worker)
            if not queue:
                if worker.error is not None:
                    self._raise_error(worker)
                del live[position]
                continue
            credits = worker.credits
            # Take this worker's turn, then the next one's, as long as their items are here.
            while True:
                item = queue.popleft()
                if type(item) is _InRing:
                    item = item.load()
                credits.release()
                position += 1
                if position == len(live):
                    position = 0
                self.position = position
                yield item
                worker = live[position]
                queue = worker.queue
                if not queue:
                    break
                credits = worker.credits

    def _as_they_come(self):
        live = self.live = list(self.workers)
        item_timeout = self.recipe.item_timeout
        while live:
            for worker in live:
                queue = worker.queue
                if queue:
                    release = worker.credits.release
                    while queue:
                        item = queue.popleft()
                        if type(item) is _InRing:
                            item = item.load()
                        release()
                        yield item
                    worker.since = None  # waiting for it starts now
                if worker.error is not None:
                    self._raise_error(worker)
            live = self.live = [w for w in live if not w.done or w.queue]
            if not live:
                return
            waiting = [w for w in live if not w.queue]
            objects = [w.conn for w in waiting] + [w.process.sentinel for w in waiting]
            if item_timeout is None:
                ready = multiprocessing.connection.wait(objects)
            else:
                now = time.monotonic()
                for worker in waiting:
                    if worker.since is None:
                        worker.since = now
                first = min(waiting, key=lambda w: w.since)
                ready = multiprocessing.connection.wait(
                    objects, max(first.since + item_timeout - now, 0.0))
                if not ready:
                    raise self._silent(first)
            for worker in waiting:
                if worker.conn in ready or worker.process.sentinel in ready:
                    self._receive(worker)


class _InRing:
    """An item whose large buffers wait in chunks of its worker's ring.

    When the consumer takes the item, its arrays are views into the ring
    (writable, and the worker does not touch their chunks until they are
    freed): the chunks are freed when the last array using them is garbage.
    While half the ring or more is in use, they are copied out instead and
    the chunks freed at once, so that arrays a consumer keeps (in a cache, a
    list) never hold the whole ring; and a worker that finds no room while
    the consumer has taken all it sent sends through the pipe instead.
    """

    __slots__ = ("worker", "data", "table", "size")

    def __init__(self, worker, data, table, size):
        self.worker = worker
        self.data = data
        self.table = table
        self.size = size  # the bytes it holds in the ring

    def load(self):
        worker = self.worker
        view, chunks, chunk = worker.view, worker.chunks, worker.chunk
        buffers = []
        if not worker.copy_out and 2 * bytes(chunks).count(0) >= len(chunks):
            pid = os.getpid()
            for offset, size in self.table:
                holder = np.frombuffer(view[offset:offset + size], dtype=np.uint8)
                weakref.finalize(holder, _free_chunks, chunks, offset // chunk,
                                 -(-size // chunk), pid)
                buffers.append(holder)
        else:
            for offset, size in self.table:
                buffers.append(bytearray(view[offset:offset + size]))
                _free_chunks(chunks, offset // chunk, -(-size // chunk))
        worker.taken.value += self.size
        return pickle.loads(self.data, buffers=buffers)


def _free_chunks(chunks, first, count, pid=None):
    """Mark ``count`` chunks of a ring free from ``first`` on (the worker may reuse them).

    Only in the consumer's process (``pid``): a process forked from it
    shares the arrays, and dropping its references frees nothing.
    """
    if pid is None or pid == os.getpid():
        chunks[first:first + count] = bytes(count)


def _saved_shares(state):
    """The shares of ``state``, the state of a ProcessStreamer pass; refused if it is not one."""
    if not isinstance(state, dict) or state.get("type") != "ProcessStreamer":
        got = state.get("type") if isinstance(state, dict) else type(state).__name__
        raise ShoalValueError(f"state must be the state of a ProcessStreamer iteration, got one of {got!r}")
    missing = [field for field in ("n_workers", "ordered", "running", "position", "shares")
               if field not in state]
    if missing:
        raise ShoalValueError(
            f"state of a ProcessStreamer iteration lacks {', '.join(map(repr, missing))}")
    shares, running = state["shares"], state["running"]
    if not isinstance(shares, list) or not shares or not all(
            isinstance(share, dict) and "state" in share and "skip" in share for share in shares):
        raise ShoalValueError(
            "state of a ProcessStreamer iteration is corrupted: its 'shares' must be a list "
            f"of {{'state': ..., 'skip': ...}}, one per worker, got {short_repr(shares)}")
    for index, share in enumerate(shares):
        ahead = share.get("ahead")
        if ahead is None:
            continue
        # The state the share had ahead["n"] items after the skip: so it counts them.
        start = share["state"]
        expected = (start["n_given"] if isinstance(start, dict) else 0) + share["skip"] + (
            ahead["n"] if isinstance(ahead, dict) else 0)
        if not (isinstance(ahead, dict) and type(ahead.get("n")) is int and ahead["n"] >= 1
                and isinstance(ahead.get("state"), dict)
                and ahead["state"].get("n_given") == expected):
            raise ShoalValueError(
                f"state of a ProcessStreamer iteration is corrupted: the 'ahead' of its share "
                f"{index} must be {{'n': n >= 1, 'state': the share's state {expected} items "
                f"in}}, got {short_repr(ahead)}")
    if not isinstance(running, list) or not all(
            type(index) is int and 0 <= index < len(shares) for index in running):
        raise ShoalValueError(
            "state of a ProcessStreamer iteration is corrupted: its 'running' must list "
            f"workers in 0..{len(shares) - 1}, got {short_repr(running)}")
    return shares


def _reshard(recipe, shares):
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
        for index, share in enumerate(shares):
            it, _, state = _resumed_share(_split(stream, index, n_saved), share["state"],
                                          share["skip"], share.get("ahead"), at_position=True)
            it.close()
            states.append(state)
    except ShoalError as exc:
        add_note(exc, f"while loading {where}")
        raise
    try:
        new = reshard_states(stream, states, n_new)
    except ShoalValueError as exc:
        raise ShoalValueError(f"cannot load {where}: {exc}") from exc
    return {"type": "ProcessStreamer", "n_workers": n_new, "ordered": recipe.ordered,
            "running": list(range(n_new)), "position": 0,
            "shares": [{"state": state, "skip": 0} for state in new]}


def _share(state, skip, ahead=None):
    """A share's entry in a ProcessStreamer state (see :func:`_resumed_share`)."""
    share = {"state": state, "skip": skip}
    if ahead is not None:
        share["ahead"] = ahead
    return share


def _resumed_share(share, start, skip, ahead, at_position=False):
    """An iteration of ``share`` at a worker's saved position, checked: ``(iterator, held, state)``.

    A worker's saved state is a snapshot of its share, ``start`` (None: the
    start), and the ``skip`` items its consumer took after it; and, when
    ``skip`` is not 0, ``ahead``: ``{"n": n, "state": s}``, the state the
    share had ``n`` items further on. The share is resumed from the
    snapshot, skips ``skip`` items, and reads ``n`` more, which it holds
    (``held``: the items after the consumer's position); then its state
    must be ``s``. A share that ends sooner, or gets elsewhere, gives other
    items than when the state was saved (a file was rewritten), or is not
    the stream that saved it (a map with another ``buffer_size``): that is
    refused, as one process refuses a source that now yields fewer items,
    rather than go on with items lost or repeated. ``state`` is the state
    at the position (with ``at_position``), else None.
    """
    it = share.iterator()
    try:
        if start is not None:
            it.load_state_dict(start)
        first = it.n_given
        if skip:
            deque(islice(it, skip), maxlen=0)
            if it.n_given - first < skip:
                raise _not_where_it_was(share, ahead, (
                    f"it now yields only {it.n_given - first} of the {skip} items its consumer "
                    "had taken after its saved state"))
        state = it.state_dict() if at_position else None
        held = []
        if ahead is not None:
            n = ahead["n"]
            held = list(islice(it, n))
            if len(held) < n:
                raise _not_where_it_was(share, ahead, (
                    f"it now yields only {skip + len(held)} of the {skip + n} items it gave "
                    "after its saved state when that state was saved"))
            difference = state_difference(it.state_dict(), ahead["state"])
            if difference is not None and next(it, END) is END:
                # A worker's last snapshot is taken once its share has ended.
                difference = state_difference(it.state_dict(), ahead["state"])
            if difference is not None:
                raise _not_where_it_was(share, ahead, (
                    f"{skip + n} items after its saved state, it is not where it was when the "
                    f"state was saved ({difference})"))
    except BaseException:
        it.close()
        raise
    return it, held, state


def _not_where_it_was(share, ahead, what):
    """The error for a share that does not go on from a saved state as it did when it was saved.

    The error one process gives for the state the share was saved at
    further on, if it gives one (a source that now yields fewer items
    than that state says it gave); else one that says ``what``.
    """
    note = (f"raised while resuming {share!r} from a worker's saved state: it did not give "
            "again the items it gave when the state was saved")
    if ahead is not None:
        probe = share.iterator()
        try:
            probe.load_state_dict(ahead["state"])
            next(probe, None)
        except ShoalValueError as exc:
            add_note(exc, note)
            return exc
        except BaseException as exc:  # the user's code: raised as itself
            add_note(exc, note)
            raise
        finally:
            probe.close()
    return ShoalValueError(
        f"cannot restore {share!r} from a worker's saved state: {what}. A source resumed by "
        "skipping must yield the same items every time it is started, and a worker's state "
        "goes on only in the stream that saved it (not in a map with another buffer_size, say)")


# -- the worker ----------------------------------------------------------------


def _guard_parent(parent, use_pdeathsig):
    """Make this worker die with its consumer, even while it is stuck in user code.

    On Linux, the kernel kills it when the thread that started it ends
    (PR_SET_PDEATHSIG), so only where that thread is the consumer's main
    thread. Everywhere, the sender's thread watches for a change of parent.
    Returns the parent's pid to watch.
    """
    expected = parent if parent is not None else os.getppid()
    if use_pdeathsig and sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected:  # the consumer died before the guard was up
        os._exit(1)
    return expected


def _seed_globals(seed, index):
    """Seed the global random states of worker ``index`` from ``seed``, the consumer's draw.

    numpy's legacy global state and ``random``'s get seeds of their own
    (both are Mersenne Twisters: the same seed would give the same numbers),
    derived from ``seed`` and ``index`` as numpy derives a child's seed:
    the workers of one pass draw apart, and ``np.random.seed`` in the
    consumer repeats them.
    """
    numpy_seed, random_seed = share_seed(seed, index).spawn(2)
    np.random.seed(numpy_seed.generate_state(8))
    random.seed(int.from_bytes(random_seed.generate_state(8).tobytes(), "little"))


def _worker_main(config, conn, credits, stop, taken, chunks):
    global _WORKER
    _WORKER = (config["index"], config["n_workers"])
    # Not what a forked worker inherits: each worker draws apart.
    _seed_globals(config["seed"], config["index"])
    # The consumer decides when to stop: a Ctrl-C reaches it too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = _guard_parent(config["parent"], config["pdeathsig"])
    sender = source = None
    try:
        with open(config["ring_path"], "r+b") as f:
            ring = mmap.mmap(f.fileno(), config["ring_size"])
        conn.send_bytes(pickle.dumps(("ready", None)))
        sender = _Sender(conn, ring, config["ring_size"], taken, chunks, config["chunk"], stop,
                         parent, credits, config["prefetch"])
        share = config["share"]

        credit = sender.credit
        if not config["track"]:
            source = share.iterate(config["max_iter"])
            for item in source:
                credit()
                sender.add(item)
        else:
            it, held, _ = _resumed_share(share, config["start"], config["skip"], config["ahead"])
            source = it
            for item in held:  # the items after the consumer's position, checked
                credit()
                sender.add(item)
            if held:
                sender.add_snapshot(pickle.dumps(it.state_dict(), protocol=5))
            del held
            try_credit = sender.try_credit
            next_snapshot = 0.0
            clock = time.perf_counter
            for item in it:
                credit()
                sender.add(item)
                now = clock()
                if not sender.held:  # the credit for the next item, taken now if there is one
                    if try_credit():
                        sender.held = 1
                    else:
                        # It will wait for the consumer: a snapshot first, since a
                        # consumer saving its state waits for one after the items it took.
                        next_snapshot = 0.0
                if now >= next_snapshot:
                    # The share's state after this item. Taking it costs time,
                    # so it is taken at most once per SNAPSHOT_RATIO times that.
                    sender.add_snapshot(pickle.dumps(it.state_dict(), protocol=5))
                    done = clock()
                    next_snapshot = done + SNAPSHOT_RATIO * (done - now)
            sender.add_snapshot(pickle.dumps(it.state_dict(), protocol=5))
        sender.finish()
        conn.send_bytes(pickle.dumps(("end", None)))
    except (BrokenPipeError, ConnectionResetError, _Stopped):
        return  # the consumer went away or asked to stop
    except BaseException as exc:  # sent to the consumer, never swallowed
        trace = traceback.format_exc()
        if sender is not None:  # the items made before the error go first
            with contextlib.suppress(Exception):
                sender.finish()
        try:
            exc_bytes = pickle.dumps(exc)
        except Exception:
            exc_bytes = None
        message = ("error", (exc_bytes, type(exc).__name__, str(exc), trace))
        with contextlib.suppress(Exception):
            conn.send_bytes(pickle.dumps(message))
    finally:
        if source is not None:
            # As in one process, the generators are closed when the stream
            # stops: their `finally` runs before the consumer's close returns.
            _close_source(source, config["index"])
        if sender is not None:
            sender.close()
        with contextlib.suppress(Exception):
            conn.close()
        # The stream is closed: what is left is the interpreter's exit, which
        # the consumer's close waits for. Its last garbage collection walks
        # every object (numpy's, the user's) and takes most of that time in
        # a spawned worker; leave them out of it. (A forked worker ends with
        # os._exit, which collects nothing.)
        gc.freeze()


def _close_source(source, index):
    """Close the worker's iteration; an error doing so goes to the worker's standard error.

    The consumer has stopped reading by then (or read the end or the error
    of the stream, after which this closes nothing).
    """
    try:
        source.close()
    except BaseException:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"shoal: closing the stream of worker {index} raised:\n"
                             f"{traceback.format_exc()}")
            sys.stderr.flush()


class _Stopped(Exception):
    """The consumer asked the worker to stop while it waited."""


class _Sender:
    """Sends a worker's items in batches, large buffers through the ring.

    Each item is pickled when it is added, and its large buffers copied into
    the ring then: a generator may reuse its output buffer for the next item.
    A thread sends what was added within BATCH_SECONDS, whatever the
    generator does next (sleep, block on I/O, compute); the worker's main
    thread sends a batch itself when it is full. The same thread watches
    the consumer: if it dies, the worker kills itself.
    """

    def __init__(self, conn, ring, ring_size, taken, chunks, chunk, stop, parent, credits,
                 prefetch):
        self.conn = conn
        # One credit per item: the consumer returns it when it takes the item
        # (after it freed the item's ring space). A worker out of credit
        # waits for a batch of them, not for one: an ordered consumer returns
        # each worker's credits one by one, and a worker woken for each
        # would send its items one message at a time.
        self.credits = credits
        self.try_credit = functools.partial(credits.acquire, False)
        self.held = 0  # credits taken and not used yet
        self.refill = max(1, min(prefetch // 4, BATCH_ITEMS))
        self.ring = ring
        self.ring_size = ring_size
        # The ring is handed out in chunks: an array goes in the first run
        # of free chunks that holds it, so a ring the consumer keeps up with
        # reuses its first chunks, which stay in the processor's cache.
        self.chunks = chunks  # shared: 1 used, 0 free (the consumer frees them)
        self.chunk = chunk  # bytes: as the consumer counts them
        # A worker keeps at most WINDOW_ITEMS of its largest item, or
        # RING_WINDOW_BYTES, in the ring ahead of the consumer: so the
        # consumer reads what the worker wrote while it is still in cache.
        self.taken = taken  # ring bytes the consumer took (shared)
        self.sent = 0  # ring bytes sent
        self.window = min(ring_size, RING_WINDOW_BYTES)
        self.stop = stop
        self.parent = parent
        # The batch: pickled items (data, their buffers' (offset, size) in the
        # ring), runs of dicts of small arrays stored column by column, and
        # snapshots of the share's state.
        self.batch = []
        self.n_items = 0  # items in the batch
        self.n_added = 0  # items ever added
        self.run = None  # the open run of dicts: [keys, layouts, n, columns]
        self.ring_bytes = 0  # bytes the batch holds in the ring
        # Send a large share of the ring at once: the consumer can start on it.
        self.ring_flush = min(RING_FLUSH_BYTES, ring_size // 8)
        self.lock = threading.Lock()
        self.wake = threading.Event()  # set when a batch starts
        self.closing = False
        self.failure = None  # what stopped the thread from sending
        self.thread = threading.Thread(target=self._send_in_time, name="shoal-sender",
                                       daemon=True)
        self.thread.start()

    def _send_in_time(self):
        wake, lock = self.wake, self.lock
        while True:
            wake.wait(_WATCH)
            if os.getppid() != self.parent:  # the consumer is dead
                os.kill(os.getpid(), signal.SIGKILL)
            if self.closing:
                return
            if not wake.is_set():
                continue
            time.sleep(BATCH_SECONDS)  # let a burst gather
            with lock:
                wake.clear()
                try:
                    self._flush()
                except BaseException as exc:  # the main thread raises it
                    self.failure = exc
                    return

    def credit(self):
        """Take the credit for one more item; without one, wait for a batch of them."""
        if self.held:
            self.held -= 1
        elif not self.try_credit():
            self.flush()  # never sit on items while waiting for credits
            got = 0
            while got < self.refill:
                got += self._wait_for_credit()
            self.held = got - 1  # one is for the item at hand

    def _wait_for_credit(self):
        """1 when a credit was taken, 0 after a while without one; _Stopped once told to stop."""
        got = self.credits.acquire(timeout=_POLL)
        if self.stop.is_set():  # the consumer gives a credit to wake a worker it stops
            raise _Stopped
        return 1 if got else 0

    def add(self, item):
        with self.lock:
            if self.failure is not None:
                raise self.failure
            if type(item) is not dict or not self._add_to_run(item):
                self.run = None
                self._add_pickled(item)
            self.n_added += 1
            self.n_items += 1
            if self.n_items >= BATCH_ITEMS or self.ring_bytes >= self.ring_flush:
                self._flush()
            elif self.n_items == 1:
                # Only a batch that is not sent at once wakes the thread: waking
                # it costs the main thread a hand-over of the interpreter lock.
                self.wake.set()

    def add_snapshot(self, state):
        with self.lock:
            self.run = None
            self.batch.append(("s", self.n_added, state))
            if not self.n_items:  # sent in time, even if the next item takes long
                self.wake.set()

    def flush(self):
        with self.lock:
            if self.failure is not None:
                raise self.failure
            self._flush()

    def finish(self):
        """Send what is left and stop the thread (before the worker's last message)."""
        self.flush()
        self.close()

    def close(self):
        # No join: whatever the thread is sending, it sends under the lock,
        # which whoever sends next takes first.
        self.closing = True
        self.wake.set()

    def _add_pickled(self, item):
        large = []
        data = pickle.dumps(item, protocol=5, buffer_callback=lambda b: _keep_small(b, large))
        if large:
            views = [buffer.raw() for buffer in large]
            places = self._place([view.nbytes for view in views])
            if places is not None:
                ring = self.ring
                for (offset, size), view in zip(places, views):
                    ring[offset:offset + size] = view
                total = sum(size for _, size in places)
                self.batch.append(("r", data, places, total))
                self.sent += total
                self.ring_bytes += total
                return
            # No room in the ring for it: it goes in the pipe.
            data = pickle.dumps(pickle.loads(data, buffers=large), protocol=5)
        self.batch.append(("p", data))

    def _place(self, sizes):
        """Chunks of the ring for buffers of ``sizes`` bytes: their ``(offset, size)``, or None.

        Waits for the consumer to take the items in flight while there is
        no room; None if the item does not fit even then (larger than the
        ring, or the arrays the consumer holds leave no room for it).
        """
        total = sum(sizes)
        if total > self.ring_size:
            return None
        if WINDOW_ITEMS * total > self.window:
            self.window = min(self.ring_size, WINDOW_ITEMS * total)
        chunk, chunks, taken = self.chunk, self.chunks, self.taken
        while True:
            if self.sent + total - taken.value > self.window:
                self._wait_for_consumer()
                continue
            free = bytearray(chunks)
            places = []
            for size in sizes:
                count = -(-size // chunk)
                first = free.find(bytes(count))
                if first < 0:
                    break
                free[first:first + count] = b"\x01" * count
                places.append((first, count, size))
            else:
                for first, count, _ in places:
                    chunks[first:first + count] = b"\x01" * count
                return [(first * chunk, size) for first, _, size in places]
            if taken.value >= self.sent:
                return None  # nothing in flight: the consumer holds the rest
            self._wait_for_consumer()

    def _wait_for_consumer(self):
        """Send the batch, and wait for the consumer to take an item."""
        self._flush()  # the consumer frees chunks as it takes what was sent...
        # ...and then returns a credit: wait for one, not for a fixed time.
        self.held += self._wait_for_credit()

    def _add_to_run(self, item):
        """Add a dict of small arrays to a run of dicts laid out alike; False if it is not one.

        A run sends each key's arrays as one block of bytes: a few numpy
        calls a batch instead of pickling every array. The bytes are copied
        now, so a generator may reuse its arrays. They arrive in C order, so
        a run takes C-contiguous arrays only (those of one key have the same
        strides): any other layout (Fortran order, a strided view) is pickled,
        and arrives as pickle gives it.
        """
        run = self.run
        values = list(item.values())
        if run is not None and run[0] == list(item):
            layouts = run[1]
            ndarray = np.ndarray
            for value, (dtype, shape, strides) in zip(values, layouts):
                if (type(value) is not ndarray or value.strides != strides or value.shape != shape
                        or (value.dtype is not dtype and value.dtype != dtype)):
                    break
            else:
                for column, value in zip(run[3], values):
                    column.append(value.tobytes())
                run[2] += 1
                return True
        layouts = []
        for value in values:
            if type(value) is not np.ndarray or value.nbytes >= SHARED_MIN_BYTES or value.dtype.hasobject:
                return False
            if not value.flags.c_contiguous:
                return False
            layouts.append((value.dtype, value.shape, value.strides))
        self.run = [list(item), layouts, 1, [[value.tobytes()] for value in values]]
        self.batch.append(("c", self.run))
        return True

    def _flush(self):
        """Send the batch (the caller holds the lock)."""
        if not self.batch:
            return
        segments = []
        for segment in self.batch:
            if segment[0] == "c":
                keys, layouts, n, columns = segment[1]
                # The dtype itself, not its string: a record's fields survive.
                segment = ("c", keys, layouts, n, [b"".join(column) for column in columns])
            segments.append(segment)
        message = pickle.dumps(("items", segments), protocol=5)
        self.ring_bytes = 0
        self.batch = []
        self.run = None
        self.n_items = 0
        self.conn.send_bytes(message)


def _unpack_run(keys, layouts, n, blocks):
    """The dicts of a run: each key's block becomes one writable array, sliced by item."""
    columns = []
    for (dtype, shape, _), block in zip(layouts, blocks):
        column = np.frombuffer(bytearray(block), dtype=dtype).reshape((n, *shape))
        if not shape:  # 0-d arrays: rows of a 1-d column would be numpy scalars
            column = [column[i:i + 1].reshape(()) for i in range(n)]
        columns.append(column)
    return [dict(zip(keys, row)) for row in zip(*columns)]


def _keep_small(buffer, large):
    """pickle's buffer_callback: small buffers stay in the pickle, large ones are collected."""
    if memoryview(buffer).nbytes < SHARED_MIN_BYTES:
        return True
    large.append(buffer)
    return False


def _shared_memory_folder():
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
