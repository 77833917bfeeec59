"""The recipes: ProcessStreamer, and pescador's ZMQStreamer over it.

A recipe holds its settings and the shares its workers run (see
``shoal.parallel._state.shares_of``), all checked when it is made; each
iteration opens a ``_consumer.ProcessIterator``, which starts the workers.
"""

import mmap
import multiprocessing
import pickle
import resource
import threading

import numpy as np

from .._checks import check_choice, check_int, short_repr
from .._iterutil import limited
from ..core import Streamer
from ..exceptions import ShoalTypeError, ShoalValueError
from ..iterator import check_version
from ..mux._base import as_streamer, check_flag
from ..shares import Shares
from ._consumer import ProcessIterator
from ._ring import max_ring_bytes
from ._state import ready_state, shares_of, state_of_shares

__all__ = ["ProcessStreamer", "ZMQStreamer", "MAX_WORKERS", "max_workers", "check_seconds"]

#: The most workers a ProcessStreamer runs (each is a process with a pipe and a ring).
MAX_WORKERS = 1024
_SEM_VALUE_MAX = 2**31 - 1  # what a semaphore can count to (SEM_VALUE_MAX on Linux)


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
    shared_memory_bytes : None or int
        The size of each worker's shared-memory ring for large arrays
        (those of 64 KiB or more; smaller ones go through the pipe). The
        default, ``None``, sizes each ring from the items: it starts with
        64 MiB (less if the shared-memory file system is smaller than 64 MiB
        a worker), and grows when an item needs more, to hold 12 of it,
        within the worker's share of the file system (its size over
        ``n_workers``) and of the room free there when it grows; it holds
        the pages written, which a worker reuses, and gives them back when
        the iteration ends. So batches made in the workers, however large,
        cross without a copy. An int is a limit you choose: each ring is
        that size, fixed, and must fit in the worker's share of the file
        system. Either way, an item whose arrays do not fit is sent through
        the pipe instead, and while half a ring or more is held by arrays
        the consumer keeps, the consumer copies what it takes out of it.
    item_timeout : None or float > 0
        The most seconds the consumer waits for a worker's next item; a
        worker silent for longer raises :class:`WorkerError`. The default,
        ``None``, waits as long as it takes (a worker that dies is still
        detected at once). It counts from when the consumer starts waiting,
        so include the time a worker takes to start (to import its modules
        with ``spawn``) and to make an item.

    backend : {"process", "thread"}
        Run the workers as processes (the default), or as threads of this
        process: the items reach the consumer as they are (no pickling, no
        shared memory, no copy), with the same shares, order, states and
        errors. Choose threads for work that releases the interpreter lock
        (large numpy operations, file reads, decoders), processes for pure
        Python work, which threads run one at a time. Threads share this
        process's global random states, which they do not seed, and cannot
        be terminated: one busy in its generator's code when the stream is
        closed stops, closing its generators, when its generator next gives
        an item. ``start_method`` and ``shared_memory_bytes`` are for
        processes.

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
    Each worker process's global random states (numpy's legacy one and
    ``random``'s) are seeded, when the stream starts, from one draw from the
    consumer's numpy global state (as ``np.random.randint(0, 2**32, size=4)``
    would draw) and the worker's index, apart: ``np.random.seed`` in the
    consumer makes the workers' draws repeat, each pass draws anew, and no
    two workers draw the same numbers. Worker threads share the consumer's.

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

    #: It makes its own passes, in its workers (see Streamer): to whoever shards
    #: or reshards it, it is one stream.
    _OWN_KIND = "workers"

    def __init__(self, stream, n_workers=1, prefetch=256, ordered=True, start_method=None,
                 timeout=5.0, shared_memory_bytes=None, item_timeout=None, backend="process"):
        stream = as_streamer(stream, "stream")
        super().__init__(stream)  # its source is the stream, which its workers run
        self.stream = stream
        self.n_workers = check_int("n_workers", n_workers, minimum=1)
        limit = max_workers()
        if self.n_workers > limit:
            raise ShoalValueError(
                f"n_workers must be <= {limit} (each worker is a process with its own pipe "
                f"and shared memory), got {self.n_workers}"
            )
        self.prefetch = check_int("prefetch", prefetch, minimum=1)
        if self.prefetch > _SEM_VALUE_MAX:
            raise ShoalValueError(f"prefetch must be <= {_SEM_VALUE_MAX}, got {self.prefetch}")
        self.ordered = check_flag("ordered", ordered)
        self.backend = check_choice("backend", backend, ("process", "thread"))
        if backend == "thread" and (start_method is not None or shared_memory_bytes is not None):
            raise ShoalValueError(
                "start_method and shared_memory_bytes are for backend='process'; threads "
                f"start in this process and hand on their items as they are, got "
                f"start_method={start_method!r}, shared_memory_bytes={shared_memory_bytes!r}"
            )
        if start_method is not None:
            check_choice("start_method", start_method, tuple(multiprocessing.get_all_start_methods()))
        self.start_method = start_method
        self.timeout = check_seconds("timeout", timeout)
        self.item_timeout = None if item_timeout is None else check_seconds("item_timeout",
                                                                             item_timeout)
        self.shared_memory_bytes = None if shared_memory_bytes is None else check_int(
            "shared_memory_bytes", shared_memory_bytes, minimum=mmap.PAGESIZE)
        limit = max_ring_bytes(self.n_workers)
        if self.shared_memory_bytes is not None and self.shared_memory_bytes > limit:
            raise ShoalValueError(
                f"shared_memory_bytes must be <= {limit} (the shared-memory file system holds "
                f"{limit * self.n_workers} bytes, for the rings of {self.n_workers} "
                f"worker(s)), got {self.shared_memory_bytes}"
            )
        if isinstance(stream, Shares) and stream._join_axis is not None and not self.ordered:
            raise ShoalValueError(
                f"ordered must be True for {stream!r}: its batches are joined from every share's "
                "part, in the turn of the shares"
            )
        self._shares = shares_of(stream, self.n_workers)
        self._copy_out = False  # copy every received array out of the ring
        if self.backend == "process" and self._context().get_start_method() != "fork":
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

    def _open(self, max_iter=None):
        gen = ProcessIterator(self, max_iter).run()
        # Each worker stops after max_iter items; the consumer takes max_iter in all.
        # (A worker's part of a Shares stream runs on: what it gives is not all items.)
        if max_iter is None or (self.n_workers == 1 and not isinstance(self.stream, Shares)):
            return gen
        return limited(gen, max_iter)

    def _open_items(self):
        return self._open()

    # Resumable iteration: the workers send their shares' states with their
    # items, and a pass's state holds each share's state up to the items the
    # consumer took. It resumes by starting each worker where its share was.
    # The workers run the stream as a root: no key reaches another process.
    # (A Shares stream's pass draws its seed from the key, in the consumer.)
    @property
    def _takes_key(self):
        return isinstance(self.stream, Shares)

    _has_workers = True

    def _open_node(self, state=None, track=False, key=None):
        node = ProcessIterator(self, None, track, state, key)
        return node, node.run()

    def _ready_state(self, state, path="state", n_given=None):
        # Checked when it is loaded, and a state saved with another number of
        # workers resharded then, once, in this process (no worker starts): one
        # that cannot be split exactly is refused at load_state_dict.
        return ready_state(self, state, path)

    def _translate_state(self, state):
        """A state of an iteration of its Shares stream in one process, as one of this iteration.

        The state of each share is handed to the worker that hosts it here.
        """
        stream = self.stream
        if not (isinstance(stream, Shares) and isinstance(state, dict)
                and state.get("stream") == "Shares"):
            return state
        check_version(state)
        root = state.get("state")
        if isinstance(root, dict) and root.get("child") is not None:
            whole = stream._ready_state(root["child"], "state['state']['child']")
            if whole["hosted"] != list(range(stream.n_shares)):
                raise ShoalValueError(f"state is of a part of {stream!r}, not of all its shares")
            root = {**root, "child": state_of_shares(self, whole)}
        return {**state, "stream": type(self).__name__, "state": root}

    def __repr__(self):
        backend = ", backend='thread'" if self.backend == "thread" else ""
        return f"{type(self).__name__}({self.stream!r}, n_workers={self.n_workers}{backend})"


def check_seconds(name, value):
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


def max_workers():
    """The most workers: MAX_WORKERS, or fewer if this process may open fewer files."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ValueError, OSError):
        return MAX_WORKERS
    if soft == resource.RLIM_INFINITY:
        return MAX_WORKERS
    # A worker holds about 4 of the consumer's file descriptors while it starts.
    return max(1, min(MAX_WORKERS, (soft - 64) // 4))


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
