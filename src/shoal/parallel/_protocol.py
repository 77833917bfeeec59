"""What a worker process and its consumer say to each other.

The consumer starts each worker with a :class:`WorkerConfig` and four
things they share:

- a pipe, one way, from the worker to the consumer, for the messages below;
- *credits*, a semaphore of ``prefetch``: the worker takes one for each item
  it sends, and the consumer gives it back when it takes the item (after it
  freed the item's place in the ring), so that at most ``prefetch`` items
  are in flight. The consumer also gives one to wake a worker it stops;
- *stop*, an event, one for all the workers: the consumer sets it to stop
  them;
- the worker's ring, for large buffers: its table of chunks, the count of
  the chunks the worker may use, and the count of the bytes the consumer
  took (see ``shoal.parallel._ring``).

Messages
--------
A message is ``encode(kind, payload)``, sent with ``send_bytes`` (``decode`` reads it). Kinds, in
the order a worker sends them:

READY, payload None
    Once, first: the worker mapped its ring, and the consumer may remove
    the ring's file.
ITEMS, payload a list of segments (below)
    A batch, in the order the worker made what it holds: when it holds
    BATCH_ITEMS items, or RING_FLUSH_BYTES of the ring, or BATCH_SECONDS
    after its first item (whatever the generator does then), or before the
    worker waits for the consumer.
DONE, payload None
    Last: the stream of the worker's share ended.
ERROR, payload ``(exception, name, text, traceback)``
    Last, after the items the worker made before it: the stream raised.
    ``exception`` is the exception pickled (None if it cannot be),
    ``name`` its type's name, ``text`` its ``str``, ``traceback`` the
    worker's, formatted.

A worker that its consumer stops says nothing more, and one that dies says
nothing at all: the consumer sees its process end.

Segments of an ITEMS batch
--------------------------
``(RUN, keys, layouts, n, blocks)``
    ``n`` dicts with ``keys``, of small C-contiguous arrays laid out alike
    (``layouts``: each key's ``(dtype, shape, strides)``), each key's arrays
    sent as one block of bytes (see :func:`pack_run`, :func:`unpack_run`),
    and of PLAIN values (a key's layout None), each key's sent as a list.
``(PICKLED, data)``
    One item, pickled.
``(IN_RING, data, places, size)``
    One item, pickled without its large buffers, which are in the ring at
    ``places``, a list of ``(offset, size)``: ``size`` bytes in all.
``(SNAPSHOT, k, state)``
    The state of the worker's share after its ``k``-th item, pickled
    (sent only when the consumer tracks the workers' states).
``(WAITS, credit_s, ring_s)``
    The seconds the worker has waited so far, in all, for credit and for
    room in its ring (sent, last in a batch, when they changed since the
    last batch; see :class:`shoal.parallel.WorkerStats`).
"""

import pickle
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "READY",
    "ITEMS",
    "DONE",
    "ERROR",
    "RUN",
    "PICKLED",
    "IN_RING",
    "PLAIN",
    "SNAPSHOT",
    "WAITS",
    "WorkerConfig",
    "encode",
    "decode",
    "pack_run",
    "unpack_run",
]

# The kinds of messages.
READY = "ready"
ITEMS = "items"
DONE = "done"
ERROR = "error"

# The kinds of segments of an ITEMS batch.
RUN = "run"
PICKLED = "pickled"
IN_RING = "ring"
SNAPSHOT = "snapshot"
WAITS = "waits"


#: The types of the values a RUN carries as they are, in a list: immutable
#: values that pickle exactly.
PLAIN = frozenset({int, float, bool, complex, str, bytes, type(None)})


class WorkerConfig(NamedTuple):
    """What a worker process is started with, besides what it shares with its consumer."""

    worker_index: int
    n_workers: int
    share: Any  # the recipe the worker runs: its share of the stream
    max_iter: int | None  # the most items it gives (None: its whole pass)
    track: bool  # send SNAPSHOTs of its share's state
    start: dict | None  # the state its share resumes from (None: its start)...
    n_skip: int  # ...and the items its consumer took after it
    ahead: dict | None  # where its share must be further on (see shoal._resume.resumed_share)
    prefetch: int
    seed: Any  # the consumer's draw the worker seeds its global random states from
    # Filled in when the worker starts (see _lifecycle.Crew.start):
    ring_path: str = ""
    ring_size: int = 0
    chunk: int = 0  # the ring's chunks, in bytes
    parent: int | None = None  # the consumer's pid (None: the worker's parent when it starts)
    pdeathsig: bool = False  # may the kernel kill it when the thread that started it ends?


def encode(kind, payload):
    """The message of ``kind`` with ``payload``, as the pipe carries it."""
    return pickle.dumps((kind, payload), protocol=5)


def decode(message):
    """``(kind, payload)`` of a message the pipe carried."""
    return pickle.loads(message)


def pack_run(run):
    """The RUN segment of ``run``, ``[keys, layouts, n, columns]``: each key's bytes in one block."""
    keys, layouts, n, columns = run
    # The dtype itself, not its string: a record's fields survive.
    return (RUN, keys, layouts, n, [column if layout is None else b"".join(column)
                                    for layout, column in zip(layouts, columns)])


def unpack_run(keys, layouts, n, blocks):
    """The dicts of a RUN segment: each key's block becomes one writable array, sliced by item."""
    columns = []
    for layout, block in zip(layouts, blocks):
        if layout is None:  # PLAIN values, as they are
            columns.append(block)
            continue
        dtype, shape, _ = layout
        column = np.frombuffer(bytearray(block), dtype=dtype).reshape((n, *shape))
        if not shape:  # 0-d arrays: rows of a 1-d column would be numpy scalars
            column = [column[i:i + 1].reshape(()) for i in range(n)]
        columns.append(column)
    if not keys:  # empty dicts: no column to count them
        return [{} for _ in range(n)]
    return [dict(zip(keys, row)) for row in zip(*columns)]
