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

The package, from the recipe down:

- ``_recipe``: :class:`ProcessStreamer` and :class:`ZMQStreamer`, the recipes;
- ``_consumer``: the node of one pass, which takes the workers' items;
- ``_lifecycle``: starting and ending the worker processes;
- ``_worker``: the worker process, and :func:`worker_info`;
- ``_protocol``: what a worker and its consumer say to each other;
- ``_ring``: the shared memory for large buffers, and who owns which part;
- ``_state``: the workers' shares, and the state of a pass: checked,
  resumed, resharded;
- ``_stats``: :class:`WorkerStats`, where an iteration waits.
"""

from ._lifecycle import WorkerError
from ._recipe import MAX_WORKERS as MAX_WORKERS  # the limit of ProcessStreamer's n_workers
from ._recipe import ProcessStreamer, ZMQStreamer
from ._stats import WorkerStats
from ._worker import worker_info

__all__ = ["ProcessStreamer", "ZMQStreamer", "WorkerError", "WorkerStats", "worker_info"]
