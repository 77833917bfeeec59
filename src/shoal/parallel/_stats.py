"""WorkerStats: where an iteration over worker processes waits.

The consumer adds up the time it waits for its workers' messages; each
worker adds up the time it waits for credit and for room in its ring, and
sends its totals with its batches of items (see ``shoal.parallel._protocol``).
Only waits are timed (``time.monotonic`` around them), never an item.
"""

from dataclasses import dataclass

__all__ = ["WorkerStats"]


@dataclass(frozen=True)
class WorkerStats:
    """Where an iteration over worker processes waits: is loading or training the bottleneck?

    What :meth:`StreamIterator.worker_stats` returns, for the pass of a
    :class:`ProcessStreamer` open now (or the last one, once it ended). The
    per-worker figures are tuples indexed by worker; a worker's waits are
    those it reported with its last batch of items, so a wait still going
    on counts once it ends.

    Attributes
    ----------
    consumer_wait_s : float
        Seconds the consumer waited for its workers' items, their start
        included. Large against the time of the whole loop: the workers are
        the bottleneck (add workers, or make items cheaper).
    n_items : tuple of int
        The items each worker produced that reached the consumer (taken, or
        waiting in its queue). A worker far behind the others lags.
    credit_wait_s : tuple of float
        Seconds each worker waited for credit: it had ``prefetch`` items in
        flight, the consumer not taking them. Large: the consumer (your
        training step) is the bottleneck, and more workers would not help.
    ring_wait_s : tuple of float
        Seconds each worker waited for room in its shared-memory ring
        (arrays the consumer holds, or the window of bytes in flight full):
        the consumer is the bottleneck, as above.

    Examples
    --------
    >>> import time
    >>> def slow(n):
    ...     for i in range(n):
    ...         time.sleep(0.01)  # a loader slower than its consumer
    ...         yield i
    >>> it = ProcessStreamer(Streamer(slow, 5), start_method="fork").iterator()
    >>> list(it)
    [0, 1, 2, 3, 4]
    >>> stats = it.worker_stats()
    >>> stats.n_items
    (5,)
    >>> stats.consumer_wait_s > 0  # the consumer waited for the worker
    True
    >>> stats.credit_wait_s, stats.ring_wait_s  # the worker never waited for the consumer
    ((0.0,), (0.0,))
    """

    consumer_wait_s: float
    n_items: tuple[int, ...]
    credit_wait_s: tuple[float, ...]
    ring_wait_s: tuple[float, ...]
