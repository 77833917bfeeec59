"""Stream from background worker processes.

:class:`ProcessStreamer` runs a stream in one or more worker processes and
yields its items in the consumer. Items are pickled (protocol 5), except the
buffers of large numpy arrays, which cross through a shared-memory ring: the
worker copies them in, the consumer copies them out, so received arrays are
writable and a worker that reuses its output buffer changes nothing the
consumer holds. Workers send items in small batches; a prefetch depth bounds
the items in flight.

Nothing fails silently: an exception in a worker is raised in the consumer
with the worker's traceback; a worker that dies (killed by the OS, say) is
detected at once, through its process sentinel; stopping the consumer
(break, ``close()``, an exception, garbage collection) stops every worker and
removes the shared memory.
"""

import collections
import contextlib
import mmap
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import tempfile
import time
import traceback

import numpy as np

from ._checks import check_choice, check_int, short_repr
from ._iterutil import add_note, limited
from .core import Streamer, skip_items
from .exceptions import ShoalError, ShoalTypeError, ShoalValueError
from .mux._base import BaseMux, check_flag

__all__ = ["ProcessStreamer", "ZMQStreamer", "WorkerError", "worker_info"]

#: Buffers at least this large cross through shared memory, not the pipe.
SHARED_MIN_BYTES = 64 * 1024
#: A worker sends a batch when it holds this many items...
BATCH_ITEMS = 64
#: ...or this many seconds passed since its first item.
BATCH_SECONDS = 0.002
#: How often a waiting worker checks that it should go on.
_POLL = 0.05
_SHM_PREFIX = "shoal-"

_WORKER = None  # (index, n_workers) inside a worker process


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
    if isinstance(stream, BaseMux) and n_workers > 1:
        n_streams = stream._lazy_count()
        if n_streams is not None and n_streams < n_workers:
            return stream._replica(index)  # too few streamers: each worker its own copy
        return stream.shard(index, n_workers)
    return stream


class ProcessStreamer(Streamer):
    """Run a stream in background worker processes.

    Parameters
    ----------
    stream : Streamer
        The stream to run: a streamer or a mux.
    n_workers : int >= 1
        The number of worker processes. With a mux of at least
        ``n_workers`` streamers, worker ``w`` runs a mux of the same kind over
        ``streamers[w::n_workers]``, seeded from the mux's seed and ``w``.
        Otherwise every worker runs its own copy of the stream (a mux seeded
        from its seed and ``w``); a generator function can read its own
        share through :func:`worker_info`.
    prefetch : int >= 1
        The most items each worker may have produced and the consumer not
        yet taken: it bounds the memory in flight.
    ordered : bool
        Take items from the workers in strict turn (deterministic: two runs
        of a seeded stream give the same items), or as they come (faster when
        the workers' speeds vary).
    start_method : None or {"fork", "spawn", "forkserver"}
        How workers start; ``None`` is multiprocessing's default. With
        ``spawn`` and ``forkserver`` the stream must be picklable, which is
        checked here.
    timeout : float > 0
        Seconds to wait for workers to stop when the stream is closed,
        before they are terminated.
    shared_memory_bytes : int
        The size of each worker's shared-memory ring for large arrays. An
        item whose arrays do not fit is sent through the pipe instead.

    Raises
    ------
    WorkerError
        While iterating, if a worker dies, or fails with an exception that
        cannot be sent. An exception a worker raises is raised as itself,
        with the worker's traceback in a note.

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

    def __init__(self, stream, n_workers=1, prefetch=64, ordered=True, start_method=None,
                 timeout=5.0, shared_memory_bytes=64 * 2**20):
        if not isinstance(stream, Streamer):
            try:
                stream = Streamer(stream)
            except ShoalTypeError:
                raise ShoalTypeError(
                    f"stream must be a Streamer, a mux or an iterable, got {short_repr(stream)} "
                    f"({type(stream).__name__})"
                ) from None
        self.stream = stream
        self.n_workers = check_int("n_workers", n_workers, minimum=1)
        self.prefetch = check_int("prefetch", prefetch, minimum=1)
        self.ordered = check_flag("ordered", ordered)
        if start_method is not None:
            check_choice("start_method", start_method, tuple(multiprocessing.get_all_start_methods()))
        self.start_method = start_method
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ShoalValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.timeout = float(timeout)
        self.shared_memory_bytes = check_int("shared_memory_bytes", shared_memory_bytes,
                                             minimum=mmap.PAGESIZE)
        self._shares = [_split(stream, w, self.n_workers) for w in range(self.n_workers)]
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

    def _source_iter(self):
        return self._open()

    # Resumable iteration: the state of a pass is the number of items it gave;
    # it resumes by restarting the workers and skipping those items.
    _plain_leaf = True
    _takes_key = False

    def _child(self, state=None, track=False, key=None):
        # The workers run the stream as a root: no key reaches another process.
        return None, skip_items(self, self._open(), state["given"] if state else 0)

    def _child_state(self, node, it, n_given):
        return {"given": n_given}

    def __repr__(self):
        return f"{type(self).__name__}({self.stream!r}, n_workers={self.n_workers})"


class ZMQStreamer(ProcessStreamer):
    """pescador's ZMQStreamer: a stream in one background process.

    Code written for pescador runs unchanged. No sockets or ports are used
    (the transport is a pipe and shared memory), so the port arguments are
    only checked; ``copy`` is accepted, and received arrays are always the
    consumer's own, writable copies.

    Parameters
    ----------
    streamer : Streamer
    min_port, max_port : int
        Accepted for compatibility: ``1 <= min_port < max_port <= 65535``.
    max_tries : int > 0
        Accepted for compatibility.
    copy : bool
        Accepted for compatibility.
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

    @property
    def streamer(self):
        return self.stream


# -- the consumer --------------------------------------------------------------


class _Worker:
    """The consumer's handle on one worker: process, pipe, credits and ring."""

    __slots__ = ("index", "process", "conn", "credits", "ring", "ring_path", "tail",
                 "queue", "ready", "done")


class _ProcessIterator:
    """The running state of one iteration of a ProcessStreamer."""

    def __init__(self, recipe, max_iter):
        self.recipe = recipe
        self.max_iter = max_iter
        self.workers = []
        self.stop = None

    def _start(self):
        recipe = self.recipe
        context = recipe._context()
        self.stop = context.Event()
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        for index, share in enumerate(recipe._shares):
            worker = _Worker()
            worker.index = index
            # Named after this process, so that what it leaves can be found.
            fd, worker.ring_path = tempfile.mkstemp(prefix=f"{_SHM_PREFIX}{os.getpid()}-",
                                                    dir=folder)
            try:
                os.ftruncate(fd, recipe.shared_memory_bytes)
                worker.ring = mmap.mmap(fd, recipe.shared_memory_bytes)
            finally:
                os.close(fd)
            worker.tail = context.RawValue("Q", 0)
            worker.credits = context.Semaphore(recipe.prefetch)
            worker.queue = collections.deque()
            worker.ready = worker.done = False
            receiver, sender = context.Pipe(duplex=False)
            worker.conn = receiver
            worker.process = context.Process(
                target=_worker_main,
                args=(index, recipe.n_workers, share, self.max_iter, sender, worker.credits,
                      self.stop, worker.ring_path, recipe.shared_memory_bytes, worker.tail),
                daemon=True,
                name=f"shoal-worker-{index}",
            )
            self.workers.append(worker)
            worker.process.start()
            sender.close()  # the worker has its own end now

    def _receive(self, worker):
        """Wait for the next message of ``worker`` and handle it."""
        conn, process = worker.conn, worker.process
        ready = multiprocessing.connection.wait([conn, process.sentinel])
        if conn in ready:
            try:
                message = conn.recv_bytes()
            except EOFError:
                pass  # the worker closed its end without a word: it died
            else:
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
        raise WorkerError(
            f"worker {worker.index} (pid {process.pid}) of {self.recipe!r} {how} "
            "before the end of its stream"
        )

    def _handle(self, worker, message):
        kind, payload = pickle.loads(message)
        if kind == "items":
            segments, end = payload
            view = memoryview(worker.ring)
            queue = worker.queue
            loads = pickle.loads
            for segment in segments:
                if segment[0] == "c":
                    queue.extend(_unpack_run(*segment[1:]))
                    continue
                _, data, table = segment
                if table:
                    # One copy out of the ring: the consumer's own, writable buffers.
                    buffers = [bytearray(view[offset:offset + size]) for offset, size in table]
                    queue.append(loads(data, buffers=buffers))
                else:
                    queue.append(loads(data))
            view.release()
            worker.tail.value = end  # the ring space is free again
        elif kind == "ready":
            worker.ready = True
            if all(w.ready for w in self.workers):
                self._unlink_rings()
        elif kind == "end":
            worker.done = True
        else:  # "error"
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
            raise exc

    def _unlink_rings(self):
        for worker in self.workers:
            if worker.ring_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(worker.ring_path)
                worker.ring_path = None

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
        live = list(self.workers)
        position = 0
        while live:
            if position >= len(live):
                position = 0
            worker = live[position]
            queue = worker.queue
            while not queue and not worker.done:
                self._receive(worker)
            if not queue:
                del live[position]
                continue
            item = queue.popleft()
            worker.credits.release()
            position += 1
            yield item

    def _as_they_come(self):
        live = list(self.workers)
        while live:
            for worker in live:
                queue = worker.queue
                while queue:
                    item = queue.popleft()
                    worker.credits.release()
                    yield item
            live = [w for w in live if not w.done or w.queue]
            if not live:
                return
            waiting = [w for w in live if not w.queue]
            ready = multiprocessing.connection.wait(
                [w.conn for w in waiting] + [w.process.sentinel for w in waiting])
            for worker in waiting:
                if worker.conn in ready or worker.process.sentinel in ready:
                    self._receive(worker)

    def _shut_down(self):
        if self.stop is not None:
            self.stop.set()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.conn.close()
        deadline = time.monotonic() + self.recipe.timeout
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self._unlink_rings()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.ring.close()
            with contextlib.suppress(Exception):
                worker.process.close()
        self.workers = []


# -- the worker ----------------------------------------------------------------


def _worker_main(index, n_workers, stream, max_iter, conn, credits, stop, ring_path, ring_size,
                 tail):
    global _WORKER
    _WORKER = (index, n_workers)
    # A forked worker inherits numpy's global random state: give unseeded
    # streams their own randomness in each worker.
    np.random.seed()
    # The consumer decides when to stop: a Ctrl-C reaches it too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    try:
        with open(ring_path, "r+b") as f:
            ring = mmap.mmap(f.fileno(), ring_size)
        conn.send_bytes(pickle.dumps(("ready", None)))
        sender = _Sender(conn, ring, ring_size, tail, stop, parent)
        for item in stream.iterate(max_iter):
            # One credit per item: the consumer returns it when it takes the item.
            if not credits.acquire(False):
                sender.flush()  # never sit on items while waiting for credits
                while not credits.acquire(timeout=_POLL):
                    if stop.is_set() or (parent is not None and not parent.is_alive()):
                        return
            sender.add(item)
        sender.flush()
        conn.send_bytes(pickle.dumps(("end", None)))
    except (BrokenPipeError, ConnectionResetError, _Stopped):
        return  # the consumer went away or asked to stop
    except BaseException as exc:  # sent to the consumer, never swallowed
        try:
            exc_bytes = pickle.dumps(exc)
        except Exception:
            exc_bytes = None
        message = ("error", (exc_bytes, type(exc).__name__, str(exc), traceback.format_exc()))
        with contextlib.suppress(Exception):
            conn.send_bytes(pickle.dumps(message))
    finally:
        with contextlib.suppress(Exception):
            conn.close()


class _Stopped(Exception):
    """The consumer asked the worker to stop while it waited."""


class _Sender:
    """Sends a worker's items in batches, large buffers through the ring.

    Each item is pickled when it is added, and its large buffers copied into
    the ring then: a generator may reuse its output buffer for the next item.
    """

    def __init__(self, conn, ring, ring_size, tail, stop, parent):
        self.conn = conn
        self.ring = ring
        self.ring_size = ring_size
        self.tail = tail
        self.stop = stop
        self.parent = parent
        self.head = 0  # bytes ever written to the ring
        # The batch: pickled items (data, their buffers' (offset, size) in the
        # ring), and runs of dicts of small arrays stored column by column.
        self.batch = []
        self.n_items = 0
        self.run = None  # the open run of dicts: [keys, layouts, n, columns]
        self.started = 0.0

    def add(self, item):
        if type(item) is dict and self._add_to_run(item):
            self._added()
            return
        self.run = None
        large = []
        data = pickle.dumps(item, protocol=5, buffer_callback=lambda b: _keep_small(b, large))
        table = []
        if large:
            total = sum(b.raw().nbytes for b in large)
            if total > self.ring_size:  # too large for the ring: it goes in the pipe
                data = pickle.dumps(pickle.loads(data, buffers=large), protocol=5)
            else:
                table = [self._write(buffer.raw()) for buffer in large]
        self.batch.append(("p", data, table))
        self._added()

    def _add_to_run(self, item):
        """Add a dict of small arrays to a run of dicts laid out alike; False if it is not one.

        A run sends each key's arrays as one block of bytes: a few numpy
        calls a batch instead of pickling every array. The bytes are copied
        now, so a generator may reuse its arrays.
        """
        run = self.run
        values = list(item.values())
        if run is not None and run[0] == list(item):
            layouts = run[1]
            for value, (dtype, shape) in zip(values, layouts):
                if type(value) is not np.ndarray or value.dtype != dtype or value.shape != shape:
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
            layouts.append((value.dtype, value.shape))
        self.run = [list(item), layouts, 1, [[value.tobytes()] for value in values]]
        self.batch.append(("c", self.run))
        return True

    def _added(self):
        self.n_items += 1
        if self.n_items == 1:
            self.started = time.perf_counter()
        if self.n_items >= BATCH_ITEMS or time.perf_counter() - self.started >= BATCH_SECONDS:
            self.flush()

    def flush(self):
        if not self.batch:
            return
        segments = []
        for segment in self.batch:
            if segment[0] == "c":
                keys, layouts, n, columns = segment[1]
                segment = ("c", keys, [(d.str, s) for d, s in layouts], n,
                           [b"".join(column) for column in columns])
            segments.append(segment)
        message = pickle.dumps(("items", (segments, self.head)), protocol=5)
        self.batch = []
        self.run = None
        self.n_items = 0
        self.conn.send_bytes(message)

    def _write(self, view):
        """Copy ``view`` into the ring; return its (offset, size)."""
        size = view.nbytes
        offset = self.head % self.ring_size
        if offset + size > self.ring_size:  # it does not fit before the end: wrap
            self.head += self.ring_size - offset
            offset = 0
        if self.head + size - self.tail.value > self.ring_size:
            self.flush()  # the consumer frees the ring as it reads what was sent
            wait = 0.0001
            while self.head + size - self.tail.value > self.ring_size:
                if self.stop.is_set() or (self.parent is not None and not self.parent.is_alive()):
                    raise _Stopped
                time.sleep(wait)
                wait = min(wait * 2, _POLL)
        self.ring[offset:offset + size] = view
        self.head += size
        return offset, size


def _unpack_run(keys, layouts, n, blocks):
    """The dicts of a run: each key's block becomes one writable array, sliced by item."""
    columns = []
    for (dtype, shape), block in zip(layouts, blocks):
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
