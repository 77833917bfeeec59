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
import mmap
import multiprocessing
import multiprocessing.connection
import os
import pickle
import resource
import signal
import threading
import time
import weakref

import numpy as np

from .._checks import check_choice, check_int, short_repr
from .._iterutil import add_note, limited
from .._random import iteration_seed
from ..core import Streamer
from ..exceptions import ShoalError, ShoalTypeError, ShoalValueError
from ..mux._base import as_streamer, check_flag
from ._protocol import DONE, IN_RING, ITEMS, PICKLED, READY, RUN, WorkerConfig, decode, unpack_run
from ._ring import InRing, Ring, max_ring_bytes
from ._state import ready_state, share_entry, shares_of
from ._worker import worker_info, worker_main

__all__ = ["ProcessStreamer", "ZMQStreamer", "WorkerError", "worker_info"]

#: The most workers a ProcessStreamer runs (each is a process with a pipe and a ring).
MAX_WORKERS = 1024
_SEM_VALUE_MAX = 2**31 - 1  # what a semaphore can count to (SEM_VALUE_MAX on Linux)

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
        limit = max_ring_bytes(self.n_workers)
        if self.shared_memory_bytes > limit:
            raise ShoalValueError(
                f"shared_memory_bytes must be <= {limit} (the shared-memory file system holds "
                f"{limit * self.n_workers} bytes, for the rings of {self.n_workers} "
                f"worker(s)), got {self.shared_memory_bytes}"
            )
        self._shares = shares_of(stream, self.n_workers)
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

    def _ready_state(self, state):
        # Checked when it is loaded, and a state saved with another number of
        # workers resharded then, once, in this process (no worker starts): one
        # that cannot be split exactly is refused at load_state_dict.
        return ready_state(self, state)

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
    (see :func:`~shoal.parallel._state.resumed_share`), or None.
    """

    __slots__ = ("index", "process", "conn", "credits", "ring",
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
        shares = [share_entry(state, skip, ahead) for state, skip, ahead in self.starts]
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
        goes through those items as it did (see :func:`~shoal.parallel._state.resumed_share`). If
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
        return share_entry(share_state, skip, ahead and {"n": ahead[0] - taken, "state": ahead[1]})

    @staticmethod
    def _load_ring_items(worker):
        """Read the items of ``worker`` that wait in its ring, so that it can reuse the room."""
        queue = worker.queue
        for _ in range(len(queue)):
            item = queue.popleft()
            queue.append(item.load() if type(item) is InRing else item)

    # -- starting and stopping

    def _start(self):
        recipe = self.recipe
        context = recipe._context()
        self.stop = context.Event()
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
            worker.ring = worker.conn = None
            receiver = sender = None
            try:
                ring = worker.ring = Ring(context, recipe.shared_memory_bytes, recipe._copy_out)
                worker.credits = context.Semaphore(recipe.prefetch)
                receiver, sender = context.Pipe(duplex=False)
                _RECEIVERS.add(receiver)  # no process forked from now on keeps it open
                worker.conn = receiver
                start, skip, ahead = self.starts[index]
                config = WorkerConfig(
                    index=index, n_workers=recipe.n_workers, share=recipe._shares[index],
                    max_iter=self.max_iter, track=self.track, start=start, skip=skip,
                    ahead=ahead, prefetch=recipe.prefetch, ring_path=ring.path,
                    ring_size=ring.size, chunk=ring.chunk, parent=parent,
                    pdeathsig=use_pdeathsig, seed=seed,
                )
                worker.process = context.Process(
                    target=worker_main,
                    args=(config, sender, worker.credits, self.stop, ring.taken, ring.chunks),
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
                if worker.ring is not None:
                    worker.ring.close()
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
            worker.ring.unlink()

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
        kind, payload = decode(message)
        if kind == ITEMS:
            queue = worker.queue
            loads = pickle.loads
            received = 0
            for segment in payload:
                tag = segment[0]
                if tag == RUN:
                    queue.extend(unpack_run(*segment[1:]))
                    received += segment[3]
                elif tag == PICKLED:
                    queue.append(loads(segment[1]))
                    received += 1
                elif tag == IN_RING:  # read out of the ring when the consumer takes it
                    queue.append(InRing(worker.ring, *segment[1:]))
                    received += 1
                else:  # SNAPSHOT: the share's state after the worker's k-th item
                    worker.snapshots.append(segment[1:])
            worker.received += received
            snapshots = worker.snapshots
            if len(snapshots) > 1:  # forget those the consumer went past
                taken = worker.received - len(queue)
                while len(snapshots) > 1 and snapshots[1][0] <= taken:
                    snapshots.popleft()
                if snapshots[0][0] <= taken:
                    worker.base = (*snapshots.popleft(), 0)
        elif kind == READY:
            worker.ready = True
            if all(w.ready for w in self.workers):
                self._unlink_rings()
        elif kind == DONE:
            worker.done = True
        else:  # ERROR: raised once the items the worker gave before it are taken
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
                if type(item) is InRing:
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
                        if type(item) is InRing:
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
