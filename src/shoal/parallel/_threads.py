"""The thread backend: a ProcessStreamer's workers as threads of the consumer's process.

``ProcessStreamer(stream, n_workers, backend="thread")`` runs each worker's
share in a thread instead of a process: the items reach the consumer as
they are (no pickling, no shared memory, no copy), through one queue that
all the workers put their messages in. Worth it when the work releases the
interpreter lock (large numpy operations, file reads, decoders); pure
Python work runs one thread at a time.

Everything else is the process backend's: the shares (``_state.shares_of``),
the credits that bound the items in flight, the snapshots of each share's
state and the state of the pass (``_consumer``), the errors (an exception a
worker raises is raised as itself, with its traceback), closing (a worker
closes its generators as it stops). What differs:

- a thread cannot be terminated: one busy in its generator's code when the
  stream is closed stops, closing its generators, when its generator next
  gives an item; ``close()`` waits for it up to ``timeout`` seconds;
- the workers share the process's global random states (numpy's legacy one
  and ``random``'s), which they do not seed: a stream that draws should
  draw from its own seed;
- a worker's messages are ``(worker, kind, payload)`` tuples, not bytes:
  ``OBJECT`` (an item), ``SNAPSHOT`` (``(k, state)``), ``WAITS``, ``DONE``
  and ``ERROR`` (the exception, its traceback on it).
"""

import contextlib
import queue
import threading
import time

from .._resume import resumed_share
from ._lifecycle import Worker
from ._protocol import DONE, ERROR, SNAPSHOT, WAITS
from ._worker import Stopped, send_tracked, set_thread_info

__all__ = ["ThreadCrew", "OBJECT"]

#: The kind of a thread worker's message that carries one item.
OBJECT = "object"
#: How often a worker waiting for credit checks that it should go on.
_POLL = 0.05


class ThreadCrew:
    """The worker threads of one iteration of ``recipe`` (a ProcessStreamer with backend="thread")."""

    threads = True

    def __init__(self, recipe):
        self.recipe = recipe
        self.stop = threading.Event()
        self.inbox = queue.SimpleQueue()  # (worker index, kind, payload) from every worker
        self.workers = []

    def start(self, config):
        """Start the worker thread of ``config`` (a WorkerConfig) and return its handle."""
        worker = Worker(config.worker_index, config.start, config.n_skip, config.ahead)
        worker.credits = threading.Semaphore(self.recipe.prefetch)
        worker.ready = True
        worker.process = threading.Thread(
            target=_thread_main, args=(config, self.inbox, worker.credits, self.stop),
            name=f"shoal-worker-{config.worker_index}", daemon=True)
        worker.process.start()
        self.workers.append(worker)
        return worker

    def unlink_rings(self):
        """Nothing to remove: threads have no rings."""

    def shut_down(self):
        """Ask every worker to stop, and wait up to ``timeout`` for them to end.

        A worker waiting for credit stops at once, closing its generators;
        one busy in its generator's code stops when it next gives an item.
        """
        self.stop.set()
        for worker in self.workers:
            worker.credits.release()  # wakes a worker waiting for credit
        deadline = time.monotonic() + self.recipe.timeout
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))

    def ended(self, worker):  # pragma: no cover - a thread always says how its stream ended
        from ._lifecycle import WorkerError

        return WorkerError(f"worker {worker.index} (a thread) of {self.recipe!r} ended "
                           "without a word")


class _Sender:
    """What a worker thread hands its consumer: items as they are, snapshots, its waits."""

    __slots__ = ("index", "put", "credits", "try_credit", "stop", "held", "n_added",
                 "credit_wait", "ring_wait")

    def __init__(self, index, inbox, credits, stop):
        self.index = index
        self.put = inbox.put
        self.credits = credits
        self.try_credit = lambda: credits.acquire(False)
        self.stop = stop
        self.held = 0  # a credit taken ahead (see _worker._send_tracked)
        self.n_added = 0
        self.credit_wait = self.ring_wait = 0.0

    def credit(self):
        """Take the credit for one more item; raise Stopped once told to stop."""
        if self.stop.is_set():
            raise Stopped
        if self.held:
            self.held -= 1
            return
        if self.credits.acquire(False):
            return
        start = time.monotonic()
        while not self.credits.acquire(timeout=_POLL):
            if self.stop.is_set():
                raise Stopped
        if self.stop.is_set():  # the consumer gives a credit to wake a worker it stops
            raise Stopped
        self.credit_wait += time.monotonic() - start
        self.put((self.index, WAITS, (self.credit_wait, 0.0)))

    def add(self, item):
        self.n_added += 1
        self.put((self.index, OBJECT, item))

    def add_snapshot(self, state):
        self.put((self.index, SNAPSHOT, (self.n_added, state)))


def _thread_main(config, inbox, credits, stop):
    """Run the share of the worker of ``config`` in this thread, telling the consumer through ``inbox``."""
    set_thread_info((config.worker_index, config.n_workers))
    index = config.worker_index
    sender = _Sender(index, inbox, credits, stop)
    source = None
    try:
        if not config.track:
            source = config.share.iterate(config.max_iter)
            credit, add = sender.credit, sender.add
            for item in source:
                credit()
                add(item)
        else:
            source, held, _ = resumed_share(config.share, config.start, config.n_skip,
                                            config.ahead)
            send_tracked(source, held, sender)
        inbox.put((index, DONE, None))
    except Stopped:
        return
    except BaseException as exc:  # handed to the consumer as it is
        inbox.put((index, ERROR, exc))  # its traceback is on it
    finally:
        if source is not None:
            with contextlib.suppress(BaseException):
                source.close()
