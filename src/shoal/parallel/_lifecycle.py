"""The life of a ProcessStreamer's worker processes, seen from the consumer.

A :class:`Crew` starts the workers of one iteration one by one, each with
what it shares with the consumer (see ``shoal.parallel._protocol``), all or
nothing: a worker that fails to start leaves no pipe, ring or process
behind. Whatever ends the iteration, :meth:`Crew.shut_down` ends every
worker and frees what it held:

1. it asks them to stop (the stop event, their pipes closed, a credit to
   wake one waiting for it) and waits up to the recipe's ``timeout`` for
   them to close their generators and exit;
2. then, with Ctrl-C held back so that nothing is left half done, it
   terminates (then kills) those still running, and closes the pipes and
   the rings (see ``shoal.parallel._ring``; their files go as soon as every
   worker has mapped its own).

A worker never outlives its consumer either: it dies with it (see
``_worker.worker_main``); and a worker whose process ends without saying
how its stream ended is a :class:`WorkerError` that says how it ended
(:meth:`Crew.ended`).
"""

import collections
import contextlib
import os
import signal
import threading
import time
import weakref

from ..exceptions import ShoalError
from ._ring import Ring, ring_sizes
from ._worker import worker_main

__all__ = ["WorkerError", "Worker", "Crew", "interrupts_held"]

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


class Worker:
    """The consumer's handle on one worker: its process, pipe, credits and ring, and what it received.

    ``queue`` holds the items that arrived and the consumer has not taken
    yet; ``received`` counts those that arrived, so the consumer took
    ``received - len(queue)``. ``ready``: the worker mapped its ring;
    ``done``: it said how its stream ended (``error``: the exception to
    raise once its items are taken). ``since``: when the consumer started
    waiting for it (with an ``item_timeout``). ``waits``: the seconds it
    said it waited, in all, for credit and for room in its ring.

    Its share's states: ``snapshots`` holds those the worker sent, ``(k,
    state or pickled state)`` for the state after its ``k``-th item, not yet
    reached by the consumer; ``base`` is the latest reached, ``(k, state or
    pickled state, n_skip)``: the share is there after ``k`` items, plus
    ``n_skip`` items. ``ahead`` is ``(k, state)``, the state after its ``k``-th
    item that its loaded state said it reaches (see
    ``shoal._resume.resumed_share``), or None.
    """

    __slots__ = ("index", "process", "conn", "credits", "ring",
                 "queue", "ready", "done", "error", "since", "received", "snapshots", "base",
                 "ahead", "waits")

    def __init__(self, index, start, n_skip, ahead):
        self.index = index
        self.process = self.conn = self.credits = self.ring = None
        self.queue = collections.deque()
        self.ready = self.done = False
        self.error = None
        self.since = None
        self.received = 0
        self.waits = (0.0, 0.0)
        self.snapshots = collections.deque()
        self.base = (0, start, n_skip)
        self.ahead = ahead and (ahead["n"], ahead["state"])

    def pass_snapshots(self, taken):
        """Make ``base`` the last snapshot the consumer reached, having taken ``taken`` items."""
        snapshots = self.snapshots
        while len(snapshots) > 1 and snapshots[1][0] <= taken:
            snapshots.popleft()
        if snapshots and snapshots[0][0] <= taken:
            self.base = (*snapshots.popleft(), 0)


class Crew:
    """The worker processes of one iteration of ``recipe``: started one by one, ended together."""

    threads = False  # (see _threads.ThreadCrew)

    def __init__(self, recipe):
        self.recipe = recipe
        context = self.context = recipe._context()
        self.stop = context.Event()
        self.workers = []  # those started, which shut_down ends
        # A worker dies with its consumer (see _worker._guard_parent): through
        # the kernel, where the thread that starts it is the main thread.
        self.parent = os.getpid() if context.get_start_method() in ("fork", "spawn") else None
        self.pdeathsig = threading.current_thread() is threading.main_thread()

    def start(self, config):
        """Start the worker of ``config``, a WorkerConfig without its ring yet, and return it.

        All or nothing: if it cannot start (spawn refuses to start a process
        while the main module is being imported by one, say), nothing of it
        stays.
        """
        recipe, context = self.recipe, self.context
        worker = Worker(config.worker_index, config.start, config.n_skip, config.ahead)
        receiver = sender = None
        try:
            size, room = ring_sizes(recipe.shared_memory_bytes, recipe.n_workers)
            ring = worker.ring = Ring(context, size, recipe._copy_out, room)
            worker.credits = context.Semaphore(recipe.prefetch)
            receiver, sender = context.Pipe(duplex=False)
            _RECEIVERS.add(receiver)  # no process forked from now on keeps it open
            worker.conn = receiver
            config = config._replace(ring_path=ring.path, ring_size=ring.size, chunk=ring.chunk,
                                     parent=self.parent, pdeathsig=self.pdeathsig)
            worker.process = context.Process(
                target=worker_main,
                args=(config, sender, worker.credits, self.stop, ring.taken, ring.chunks,
                      ring.limit),
                daemon=True,
                name=f"shoal-worker-{config.worker_index}",
            )
            worker.process.start()
            self.workers.append(worker)  # from here on, shut_down ends it
        except BaseException:
            for end in (receiver, sender):
                if end is not None:
                    end.close()
            if worker.ring is not None:
                worker.ring.close()
            raise
        sender.close()  # the worker has its own end now
        return worker

    def unlink_rings(self):
        """Remove the rings' files: call once every worker mapped its own."""
        for worker in self.workers:
            worker.ring.unlink()

    def shut_down(self):
        """End every worker, and free their pipes and rings."""
        try:
            self._stop_workers()
        finally:
            # Whatever cut the wait short (a second Ctrl-C, say), no worker
            # and no ring outlives the iteration.
            with interrupts_held():
                self._end_workers()

    def _stop_workers(self):
        """Ask every worker to stop, and wait up to ``timeout`` for them to end.

        A worker stops at once, closing its generators as it goes, wherever
        it waits for the consumer: one writing into its pipe fails when the
        consumer's end is closed (no other process holds it), and one
        waiting for credit is woken with one, and sees the stop. Only a
        worker in its generator's code takes longer.
        """
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
        self.unlink_rings()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.conn.close()
            worker.ring.close()
            with contextlib.suppress(Exception):
                worker.process.close()

    def ended(self, worker):
        """The WorkerError of ``worker``, whose process ended without saying how its stream ended."""
        process = worker.process
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
        return WorkerError(f"worker {worker.index} (pid {process.pid}) of {self.recipe!r} {how}")


@contextlib.contextmanager
def interrupts_held():
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
