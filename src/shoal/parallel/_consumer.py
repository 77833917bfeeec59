"""The consumer's side of a ProcessStreamer: the node that takes the workers' items.

A :class:`ProcessIterator` is the running state of one pass: it starts the
workers (through a ``_lifecycle.Crew``), receives their messages (see
``shoal.parallel._protocol``) into a queue per worker, and gives their
items, in strict turn (ordered) or as they come, returning a credit for
each. It raises a worker's error after the items the worker gave before
it, and a :class:`~shoal.WorkerError` for a worker that dies or, with an
``item_timeout``, is silent too long. Tracked, it keeps the snapshots of
each worker's share state and reports the state of the pass at the items
the consumer took (the shape is in ``shoal.parallel._state``).
"""

import contextlib
import multiprocessing.connection
import pickle
import queue
import time

from .._iterutil import add_note
from .._random import iteration_seed, seed_of_key
from ..shares import ShareEnd, Shares
from ._lifecycle import Crew, WorkerError
from ._protocol import (
    DONE,
    IN_RING,
    ITEMS,
    PICKLED,
    READY,
    RUN,
    SNAPSHOT,
    WAITS,
    WorkerConfig,
    decode,
    unpack_run,
)
from ._ring import InRing
from ._state import host_of, join_parts, pass_state, share_entry
from ._stats import WorkerStats
from ._threads import OBJECT, ThreadCrew

__all__ = ["ProcessIterator"]


class ProcessIterator:
    """The running state of one iteration of a ProcessStreamer.

    With ``track``, the workers send the states of their shares along with
    their items and :meth:`state_dict` reports, for every worker, the state
    of its share up to the items the consumer took.
    """

    def __init__(self, recipe, max_iter=None, track=False, state=None, key=None):
        self.recipe = recipe
        self.max_iter = max_iter
        self.track = track or state is not None
        self.crew = None  # the worker processes, once started
        self.workers = []  # their handles
        self.live = None  # the workers still giving items, in turn order
        self.by_index = {}  # the workers started, by index
        self.position = 0  # ordered: whose turn is next, in ``live``
        self.waited = 0.0  # seconds the consumer waited for its workers
        # Where each share starts: (state or None, n_skip, ahead or None), and which ones run.
        n = recipe.n_workers
        self.starts = [(None, 0, None)] * n
        self.running = list(range(n))
        # Over a Shares stream: the turn of the shares (those still running, whose is next).
        self.shares = recipe.stream if isinstance(recipe.stream, Shares) else None
        self.turn = None
        self.seed = None  # the seed of the Shares pass, which every worker's part shares
        if self.shares is not None:
            self.seed = seed_of_key(key)
            if recipe.ordered:
                self.turn = [list(range(self.shares.n_shares)), 0]
        if state is not None:
            self._load(state)

    # -- state

    def _load(self, state):
        recipe = self.recipe
        # A state a StreamIterator loaded is ready (checked, and resharded if
        # need be): this checks it again, which is cheap. One a mux restores
        # is made ready here.
        state = recipe._ready_state(state)
        self.starts = [(share["state"], share["n_skip"], share.get("ahead"))
                       for share in state["shares"]]
        self.running = list(state["running"])
        self.position = state["position"] if recipe.ordered and state["ordered"] else 0
        if self.turn is not None:
            self.turn = [list(state["turn"]["running"]), state["turn"]["position"]]
        if self.shares is not None and state["seed"] is not None:
            self.seed = state["seed"]

    def state_dict(self, n_given=None):
        shares = [share_entry(*start) for start in self.starts]
        for worker in self.workers:
            shares[worker.index] = self._share_state(worker)
        # Before its first item (a mux opened it, and has not read it yet), as loaded.
        running = list(self.running) if self.live is None else [w.index for w in self.live]
        turn = None
        if self.turn is not None:
            turn = {"running": list(self.turn[0]), "position": self.turn[1]}
            n_workers = self.recipe.n_workers
            running = sorted({host_of(share, n_workers) for share in self.turn[0]})
        return pass_state(self.recipe, running, self.position, shares, turn, self.seed)

    def _share_state(self, worker):
        """The state of the share of ``worker``, at the items the consumer took.

        It is the worker's last snapshot the consumer reached, and the
        number of items the consumer took after it; with those, the next
        snapshot, so that the worker checks, when it resumes, that its share
        goes through those items as it did (see :func:`~shoal._resume.resumed_share`). If
        none has arrived yet, this waits for it: the worker takes one a few
        milliseconds on, or after its next item if that takes longer, and
        before it waits for the consumer (whose items waiting in the ring
        are read meanwhile, so that it does not wait for room there).
        """
        taken = worker.received - len(worker.queue)
        snapshots = worker.snapshots
        while True:
            worker.pass_snapshots(taken)
            k, share_state, n_skip = worker.base
            n_skip += taken - k
            if not n_skip:
                ahead = None
                break
            if snapshots:
                ahead = snapshots[0]
                if isinstance(ahead[1], bytes):
                    ahead = snapshots[0] = (ahead[0], pickle.loads(ahead[1]))
                break
            ahead = worker.ahead
            if (ahead is not None and ahead[0] > taken) or worker.done or (
                    worker.conn is not None and worker.conn.closed):
                break  # (a worker that failed sends no more: its state goes unchecked)
            self._load_ring_items(worker)  # a worker waiting for room in its ring goes on
            self._receive(worker)
        if isinstance(share_state, bytes):
            share_state = pickle.loads(share_state)
            worker.base = (worker.base[0], share_state, worker.base[2])
        if ahead is not None and ahead[0] <= taken:
            ahead = None
        return share_entry(share_state, n_skip, ahead and {"n": ahead[0] - taken, "state": ahead[1]})

    @staticmethod
    def _load_ring_items(worker):
        """Read the items of ``worker`` that wait in its ring, so that it can reuse the room."""
        queue = worker.queue
        for _ in range(len(queue)):
            item = queue.popleft()
            queue.append(item.load() if type(item) is InRing else item)

    def worker_stats(self):
        """What the consumer and each worker waited for, and the items each sent: a WorkerStats."""
        n = self.recipe.n_workers
        n_items, waits = [0] * n, [(0.0, 0.0)] * n
        for worker in self.workers:
            n_items[worker.index] = worker.received
            waits[worker.index] = worker.waits
        return WorkerStats(self.waited, tuple(n_items), tuple(w[0] for w in waits),
                           tuple(w[1] for w in waits))

    # -- starting and stopping

    def _start(self):
        recipe = self.recipe
        crew = self.crew = (ThreadCrew if recipe.backend == "thread" else Crew)(recipe)
        self.by_index = {}
        self.workers = crew.workers
        # The seed of the workers' global random states (see _worker._seed_globals):
        # one draw from numpy's global state, so that np.random.seed repeats it.
        seed = iteration_seed(None)
        for index in self.running:
            start, n_skip, ahead = self.starts[index]
            share = recipe._shares[index]
            if self.shares is not None:  # a part of a Shares pass: its seed is the pass's
                share = share._derive(_pass_seed=self.seed)
            worker = crew.start(WorkerConfig(
                worker_index=index, n_workers=recipe.n_workers, share=share,
                max_iter=self.max_iter if self.shares is None else None, track=self.track,
                start=start, n_skip=n_skip, ahead=ahead,
                prefetch=recipe.prefetch, seed=seed,
            ))
            self.by_index[index] = worker

    def _shut_down(self):
        if self.crew is not None:
            self.crew.shut_down()

    # -- receiving

    def _silent(self, worker):
        """The WorkerError for a worker silent for longer than item_timeout."""
        silent = time.monotonic() - worker.since
        return WorkerError(
            f"worker {worker.index} ({_where(worker)}) of {self.recipe!r} has sent "
            f"nothing for {silent:.1f} s while the consumer waited for its next item "
            f"(item_timeout={self.recipe.item_timeout} s)"
        )

    def _receive(self, worker):
        """Wait for the next message of ``worker`` and handle it."""
        if self.crew.threads:
            self._receive_from_threads(worker)
            return
        conn, process = worker.conn, worker.process
        item_timeout = self.recipe.item_timeout
        start = time.monotonic()
        if item_timeout is None:
            ready = multiprocessing.connection.wait([conn, process.sentinel])
        else:
            if worker.since is None:
                worker.since = start
            left = worker.since + item_timeout - start
            ready = multiprocessing.connection.wait([conn, process.sentinel], max(left, 0.0))
        self.waited += time.monotonic() - start
        if item_timeout is not None and not ready:
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
        raise self.crew.ended(worker)

    def _receive_from_threads(self, worker=None):
        """Wait for the next message of any worker thread and handle it.

        ``worker``: the one the consumer waits for (its ``item_timeout``
        counts); None: any of them, the one that waits longest counting.
        """
        item_timeout = self.recipe.item_timeout
        start = time.monotonic()
        left = None
        if item_timeout is not None:
            waiting = [worker] if worker is not None else [
                w for w in self.workers if not w.queue and not w.done]
            for w in waiting:
                if w.since is None:
                    w.since = start
            worker = min(waiting, key=lambda w: w.since)
            left = max(worker.since + item_timeout - start, 0.0)
        try:
            index, kind, payload = self.crew.inbox.get(timeout=left)
        except queue.Empty:
            raise self._silent(worker) from None
        finally:
            self.waited += time.monotonic() - start
        sender = self.by_index[index]
        sender.since = None
        if kind == OBJECT:
            sender.queue.append(payload)
            sender.received += 1
            if len(sender.snapshots) > 1:  # forget those the consumer went past
                sender.pass_snapshots(sender.received - len(sender.queue))
        elif kind == SNAPSHOT:
            sender.snapshots.append(payload)
        elif kind == WAITS:
            sender.waits = payload
        elif kind == DONE:
            sender.done = True
        else:  # ERROR: raised as it is, once the items the worker gave before it are taken
            sender.done = True
            add_note(payload, f"raised in worker {index} (a thread) of {self.recipe!r}")
            sender.error = payload

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
                elif tag == WAITS:
                    worker.waits = segment[1:]
                else:  # SNAPSHOT: the share's state after the worker's k-th item
                    worker.snapshots.append(segment[1:])
            worker.received += received
            if len(worker.snapshots) > 1:  # forget those the consumer went past
                worker.pass_snapshots(worker.received - len(queue))
        elif kind == READY:
            worker.ready = True
            if all(w.ready for w in self.workers):
                self.crew.unlink_rings()
        elif kind == DONE:
            worker.done = True
        else:  # ERROR: raised once the items the worker gave before it are taken
            worker.done = True
            exc_bytes, name, text, trace = payload
            exc = None
            if exc_bytes is not None:
                with contextlib.suppress(Exception):
                    exc = pickle.loads(exc_bytes)
            where = f"in worker {worker.index} ({_where(worker)}) of {self.recipe!r}"
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
            if self.turn is not None:
                if self.shares._join_axis is None:
                    yield from self._turn_of_shares()
                else:
                    yield from self._rounds_of_shares()
            elif self.shares is not None:  # as they come: the shares' ends are for no one
                for item in self._as_they_come():
                    if type(item) is not ShareEnd:
                        yield item
            elif self.recipe.ordered:
                yield from self._ordered()
            else:
                yield from self._as_they_come()
        finally:
            self._shut_down()

    def _wait_for(self, worker):
        """Wait until ``worker`` has an item for the consumer (True) or has ended (False).

        A worker that failed raises its error here, once its items are taken.
        """
        queue = worker.queue
        while not queue and not worker.done:
            self._receive(worker)
        if queue:
            return True
        if worker.error is not None:
            self._raise_error(worker)
        return False

    def _take(self, share):
        """The next thing the worker of ``share`` sends: an item, or a ShareEnd."""
        worker = self.by_index[host_of(share, self.recipe.n_workers)]
        if not self._wait_for(worker):
            raise WorkerError(
                f"worker {worker.index} of {self.recipe!r} ended before its share {share} did"
            )
        item = worker.queue.popleft()
        if type(item) is InRing:
            item = item.load()
        worker.credits.release()
        return item

    def _turn_of_shares(self):
        """The items of a Shares stream's shares, in the turn of the shares (not of the workers)."""
        self.live = list(self.workers)
        by_index = self.by_index = {worker.index: worker for worker in self.workers}
        turn, n_workers = self.turn, self.recipe.n_workers
        running = turn[0]
        hosts = [by_index[host_of(share, n_workers)] for share in running]  # as ``running``
        position = turn[1]
        while hosts:
            n = len(hosts)
            while position < n:
                worker = hosts[position]
                queue = worker.queue
                if queue:
                    item = queue.popleft()
                    if type(item) is InRing:
                        item = item.load()
                    worker.credits.release()
                else:
                    item = self._take(running[position])
                if type(item) is ShareEnd:
                    del running[position], hosts[position]
                    n -= 1
                    turn[1] = position if position < n else 0
                    continue
                position += 1
                turn[1] = position if position < n else 0
                yield item
            position = 0

    def _rounds_of_shares(self):
        """The batches of a batched Shares stream: each share's part, joined, round by round."""
        self.live = list(self.workers)
        self.by_index = {worker.index: worker for worker in self.workers}
        running, take, axis = self.turn[0], self._take, self.shares._join_axis
        while running:
            parts = []
            for share in list(running):
                part = take(share)
                if type(part) is ShareEnd:
                    running.remove(share)
                else:
                    parts.append(part)
            if parts:
                yield join_parts(parts, axis)

    def _ordered(self):
        live = self.live = list(self.workers)
        while live:
            position = self.position
            if position >= len(live):
                position = self.position = 0
            worker = live[position]
            queue = worker.queue
            if not queue and not self._wait_for(worker):
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
            if not waiting:
                # Items came in for workers already passed (received while a
                # state was saved, which may also take in every message
                # there is): take them, rather than wait for more.
                continue
            if self.crew.threads:
                self._receive_from_threads()
                continue
            objects = [w.conn for w in waiting] + [w.process.sentinel for w in waiting]
            start = time.monotonic()
            if item_timeout is None:
                ready = multiprocessing.connection.wait(objects)
            else:
                now = start
                for worker in waiting:
                    if worker.since is None:
                        worker.since = now
                first = min(waiting, key=lambda w: w.since)
                ready = multiprocessing.connection.wait(
                    objects, max(first.since + item_timeout - now, 0.0))
            self.waited += time.monotonic() - start
            if item_timeout is not None and not ready:
                raise self._silent(first)
            for worker in waiting:
                if worker.conn in ready or worker.process.sentinel in ready:
                    self._receive(worker)


def _where(worker):
    """Where ``worker`` runs, for a message: its process id, or a thread."""
    process = worker.process
    return f"pid {process.pid}" if hasattr(process, "pid") else "a thread"
