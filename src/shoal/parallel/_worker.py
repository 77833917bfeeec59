"""The worker process: it runs its share of the stream and sends the items to its consumer.

:func:`worker_main` is the whole life of a worker: it seeds its global
random states, guards against outliving its consumer, runs its share (from
a saved state, checked, when it resumes) and sends what the share gives
through a :class:`Sender`, in batches (see ``shoal.parallel._protocol``),
with large buffers through its ring (see ``shoal.parallel._ring``). It
always says how the stream ended: DONE, or ERROR with the exception, after
the items made before it; and it closes its share's generators (their
``finally`` runs) before it exits, as one process would.
"""

import contextlib
import functools
import gc
import os
import pickle
import random
import signal
import sys
import threading
import time
import traceback

import numpy as np

from .. import _arena
from .._random import share_seed
from ._protocol import (
    DONE,
    ERROR,
    IN_RING,
    ITEMS,
    PICKLED,
    PLAIN,
    READY,
    RUN,
    SNAPSHOT,
    WAITS,
    encode,
    pack_run,
)
from ._ring import SHARED_MIN_BYTES, Writer, keep_small
from ._state import resumed_share

__all__ = ["worker_info", "worker_main", "send_tracked", "set_thread_info", "Stopped",
           "BATCH_ITEMS", "BATCH_SECONDS", "RING_FLUSH_BYTES", "SNAPSHOT_RATIO"]

#: A worker sends a batch when it holds this many items...
BATCH_ITEMS = 64
#: ...or this many seconds after its first item, whatever its generator does next.
BATCH_SECONDS = 0.005
#: ...or when its arrays fill this many bytes of the ring (or an eighth of it).
RING_FLUSH_BYTES = 2**20
#: A worker takes its share's state at most once per this many times what it costs.
SNAPSHOT_RATIO = 100
#: How often a waiting worker checks that it should go on.
_POLL = 0.05
#: How often a worker checks that its consumer is alive.
_WATCH = 0.1
_PR_SET_PDEATHSIG = 1

_WORKER = None  # (index, n_workers) inside a worker process
_THREAD = threading.local()  # .info: (index, n_workers) inside a worker thread


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
    return getattr(_THREAD, "info", None) or _WORKER


def set_thread_info(info):
    """Say, in a worker thread (the thread backend), which worker it is: ``(index, n_workers)``."""
    _THREAD.info = info


def worker_main(config, conn, credits, stop, taken, chunks, limit):
    """Run the share of a worker started with ``config`` (a WorkerConfig), sending into ``conn``.

    ``credits`` and ``stop`` are what it shares with its consumer, and
    ``taken``, ``chunks`` and ``limit`` its ring's shared counts and table.
    """
    global _WORKER
    _WORKER = (config.worker_index, config.n_workers)
    # Not what a forked worker inherits: each worker draws apart.
    _seed_globals(config.seed, config.worker_index)
    # The consumer decides when to stop: a Ctrl-C reaches it too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = _guard_parent(config.parent, config.pdeathsig)
    sender = source = None
    try:
        ring = Writer(config.ring_path, config.ring_size, config.chunk, chunks, limit, taken,
                      config.n_workers)
        conn.send_bytes(encode(READY, None))
        _arena.lend(ring)  # batches built here are built in the ring
        sender = Sender(conn, ring, stop, parent, credits, config.prefetch)
        if not config.track:
            source = config.share.iterate(config.max_iter)
            credit = sender.credit
            for item in source:
                credit()
                sender.add(item)
        else:
            source, held, _ = resumed_share(config.share, config.start, config.n_skip,
                                            config.ahead)
            send_tracked(source, held, sender)
        sender.finish()
        conn.send_bytes(encode(DONE, None))
    except (BrokenPipeError, ConnectionResetError, Stopped):
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
        message = encode(ERROR, (exc_bytes, type(exc).__name__, str(exc), trace))
        with contextlib.suppress(Exception):
            conn.send_bytes(message)
    finally:
        if source is not None:
            # As in one process, the generators are closed when the stream
            # stops: their `finally` runs before the consumer's close returns.
            _close_source(source, config.worker_index)
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


def send_tracked(it, held, sender):
    """Send the items of ``it``, a share's iteration, with snapshots of its state.

    ``held`` are the items after the consumer's position, which the share
    was checked to give again when it resumed: they go first. ``sender`` is
    a :class:`Sender`, or a thread worker's (``_threads``), which hands the
    items on as they are.
    """
    credit = sender.credit
    for item in held:
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


class Stopped(Exception):
    """The consumer asked the worker to stop while it waited."""


class Sender:
    """Sends a worker's items in batches, large buffers through the ring.

    Each item is pickled when it is added, and its large buffers copied into
    the ring then: a generator may reuse its output buffer for the next item.
    What was added is sent within BATCH_SECONDS, whatever the generator
    does next (sleep, block on I/O, compute): the worker's main thread sends
    a batch itself when it is full or when it adds an item to one that old,
    and a thread sends one that the generator leaves waiting longer. The
    same thread watches the consumer: if it dies, the worker kills itself.
    """

    def __init__(self, conn, ring, stop, parent, credits, prefetch):
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
        self.ring = ring  # a Writer
        # Seconds waited for credit and for room in the ring, and those sent.
        self.credit_wait = self.ring_wait = 0.0
        self.waits_sent = (0.0, 0.0)
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
        self.ring_flush = min(RING_FLUSH_BYTES, ring.room // 8)
        self.lock = threading.Lock()
        # When the batch's first item (or snapshot) was added, None while
        # there is no batch; the thread sends a batch this old by
        # BATCH_SECONDS, unless the main thread did when it added an item.
        self.started = None
        self.idle = False  # the thread waits for a batch to start: wake it
        self.wake = threading.Event()
        self.closing = False
        self.failure = None  # what stopped the thread from sending
        self.thread = threading.Thread(target=self._send_in_time, name="shoal-sender",
                                       daemon=True)
        self.thread.start()

    def _send_in_time(self):
        # The main thread sends a batch itself when it adds an item to one
        # that is old enough; this thread, only when the generator takes
        # longer than that to give the next. It wakes once per batch (or less:
        # a batch started while it slept waits no longer than the next), and
        # is woken only from idling, never to be told of each batch: a wake
        # costs the main thread a hand-over of the interpreter lock.
        wake, lock, clock = self.wake, self.lock, time.perf_counter
        while True:
            if os.getppid() != self.parent:  # the consumer is dead
                os.kill(os.getpid(), signal.SIGKILL)
            if self.closing:
                return
            started = self.started
            if started is None:
                self.idle = True
                if self.started is None:  # (seen after the main thread sees idle)
                    wake.wait(_WATCH)
                self.idle = False
                wake.clear()
                continue
            delay = started + BATCH_SECONDS - clock()
            if delay > 0:
                time.sleep(delay)
                continue  # the main thread may have sent it, and started another
            with lock:
                if self.started == started:
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
            start = time.monotonic()
            got = 0
            while got < self.refill:
                got += self._wait_for_credit()
            self.credit_wait += time.monotonic() - start
            self.held = got - 1  # one is for the item at hand

    def _wait_for_credit(self):
        """1 when a credit was taken, 0 after a while without one; Stopped once told to stop."""
        got = self.credits.acquire(timeout=_POLL)
        if self.stop.is_set():  # the consumer gives a credit to wake a worker it stops
            raise Stopped
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
            elif self.started is None:
                self._start()
            elif time.perf_counter() - self.started >= BATCH_SECONDS:
                self._flush()

    def add_snapshot(self, state):
        with self.lock:
            self.run = None
            self.batch.append((SNAPSHOT, self.n_added, state))
            if self.started is None:  # sent in time, even if the next item takes long
                self._start()

    def _start(self):
        """A batch starts (the caller holds the lock): the thread sends it in time."""
        self.started = time.perf_counter()
        if self.idle:
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
        data = pickle.dumps(item, protocol=5, buffer_callback=lambda b: keep_small(b, large))
        if large:
            written = self.ring.put([buffer.raw() for buffer in large], self._wait_for_consumer)
            if written is not None:
                places, total = written
                self.batch.append((IN_RING, data, places, total))
                self.ring_bytes += total
                return
            # No room in the ring for it: it goes in the pipe.
            data = pickle.dumps(pickle.loads(data, buffers=large), protocol=5)
        self.batch.append((PICKLED, data))

    def _wait_for_consumer(self):
        """Send the batch, and wait for the consumer to take an item."""
        self._flush()  # the consumer frees chunks as it takes what was sent...
        # ...and then returns a credit: wait for one, not for a fixed time.
        start = time.monotonic()
        self.held += self._wait_for_credit()
        self.ring_wait += time.monotonic() - start

    def _add_to_run(self, item):
        """Add a dict of small arrays to a run of dicts laid out alike; False if it is not one.

        A run sends each key's arrays as one block of bytes: a few numpy
        calls a batch instead of pickling every array. Its values that are
        plain Python numbers, strings, bytes or None (a label, a path) go as
        a list, pickled with the batch. The bytes are copied
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
            for value, layout in zip(values, layouts):
                if layout is None:
                    if type(value) not in PLAIN:
                        break
                    continue
                dtype, shape, strides = layout
                if (type(value) is not ndarray or value.strides != strides or value.shape != shape
                        or (value.dtype is not dtype and value.dtype != dtype)):
                    break
            else:
                for column, value, layout in zip(run[3], values, layouts):
                    column.append(value if layout is None else value.tobytes())
                run[2] += 1
                return True
        layouts = []
        for value in values:
            if type(value) in PLAIN:
                layouts.append(None)  # kept as it is: a number, a string, None
                continue
            if type(value) is not np.ndarray or value.nbytes >= SHARED_MIN_BYTES or value.dtype.hasobject:
                return False
            if not value.flags.c_contiguous:
                return False
            layouts.append((value.dtype, value.shape, value.strides))
        self.run = [list(item), layouts, 1,
                    [[value if layout is None else value.tobytes()]
                     for value, layout in zip(values, layouts)]]
        self.batch.append((RUN, self.run))
        return True

    def _flush(self):
        """Send the batch (the caller holds the lock)."""
        if not self.batch:
            return
        segments = [pack_run(segment[1]) if segment[0] == RUN else segment
                    for segment in self.batch]
        waits = (self.credit_wait, self.ring_wait)
        if waits != self.waits_sent:
            segments.append((WAITS, *waits))
            self.waits_sent = waits
        message = encode(ITEMS, segments)
        self.started = None
        self.ring_bytes = 0
        self.batch = []
        self.run = None
        self.n_items = 0
        self.conn.send_bytes(message)
