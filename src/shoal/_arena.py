"""Where a batch is built: straight in the ring of the worker that makes it.

A worker process sends its items' large arrays through its ring (see
``shoal.parallel._ring``): it copies each into shared memory, and the
consumer's arrays are views of it. A batch made in the worker would cost
more than its items sent one by one: its items are all alive at once (the
generator cannot reuse one warm buffer), stacked into fresh memory (which
the kernel hands out and zeroes page by page), then copied into the ring.

So a worker lends its ring to ``buffer_stream``: :func:`gather` copies each
item's large arrays, as the item comes, into a batch reserved in the ring
(the item's own arrays are then free for the generator's next one), and
:func:`stack` sees that the values to stack are the rows of such a batch,
in order, and gives the batch, which the worker hands to the consumer where
it is, with no copy. One copy an item, as one by one. Values that are not
(a batch a few items broke, a ``partial`` end) are stacked as numpy stacks
them, the same values, into a new place of the ring where they are large.

Outside a worker process's main thread (in one process, in a thread
worker, in a process a worker forked), or for arrays that are not plain,
alike and large, nothing here applies, and the caller stacks as numpy does.
"""

import os
import threading
from itertools import islice

import numpy as np

__all__ = ["lend", "active", "gather", "stack", "MIN_BYTES"]

#: Batches of arrays smaller than this are stacked as numpy stacks them (in
#: the worker, they cross in the pipe or are copied into the ring).
MIN_BYTES = 2**18
# The dtype kinds built in the ring: numpy's own fixed-size values (not
# objects, not structured records).
_KINDS = frozenset("biufcmMUS")

_lent = None  # (pid, thread id, the worker's ring Writer) in a worker process


def lend(writer):
    """Build batches made in this thread of this process in ``writer``'s ring (None: stop).

    ``writer.reserve(nbytes)`` gives a writable uint8 array of ``nbytes`` in
    the ring or None, and ``writer.unsent(address, nbytes)`` says whether
    such a place is there, whole and not sent yet.
    """
    global _lent
    _lent = None if writer is None else (os.getpid(), threading.get_ident(), writer)


def active():
    """The Writer lent to this thread of this process, or None."""
    lent = _lent
    if lent is None or lent[1] != threading.get_ident() or lent[0] != os.getpid():
        return None
    return lent[2]


def gather(writer, items, n):
    """Up to ``n`` items of the iterator ``items``, their large arrays copied into ``writer``'s ring.

    The first item decides: each of its large arrays (the item itself, a
    dict's value, a tuple's or list's field) gets a batch of ``n`` rows in
    the ring, and each item is given back as a shallow copy whose arrays of
    that shape and dtype are views of their rows (a user's dict or list is
    never changed). An item that does not fit is given back as it is, and
    :func:`stack` then stacks its batch as numpy would.
    """
    first = next(items, _END)
    if first is _END:
        return []
    slots = _slots(writer, first, n)
    if not slots:
        return [first, *islice(items, n - 1)]
    gathered = [_copy_in(first, slots, 0)]
    del first  # its arrays are free for the next item
    for i in range(1, n):
        item = next(items, _END)
        if item is _END:
            break
        gathered.append(_copy_in(item, slots, i))
        del item
    return gathered


_END = object()


def _slots(writer, item, n):
    """``[(type(item), key, batch)]``: a batch in the ring for each large array of ``item``.

    ``key`` is a dict's key, a tuple's or list's index, or None (the item).
    """
    kind = type(item)
    if kind is np.ndarray:
        candidates = [(None, item)]
    elif kind is dict:
        candidates = list(item.items())
    elif kind is tuple or kind is list:
        candidates = list(enumerate(item))
    else:
        return None
    slots = []
    for key, value in candidates:
        if type(value) is not np.ndarray or value.nbytes * n < MIN_BYTES or not _plain(value.dtype):
            continue
        place = writer.reserve(value.nbytes * n)
        if place is None:
            break  # no room: the rest are stacked as numpy stacks them
        slots.append((kind, key, place.view(value.dtype).reshape((n, *value.shape))))
    return slots


def _copy_in(item, slots, i):
    """``item`` with its arrays that fit their slots copied into row ``i`` (a shallow copy), or as it is.

    ``slots`` are the first item's (see :func:`_slots`): an item of another
    type than the first is given back as it is.
    """
    kind = type(item)
    if kind is not slots[0][0]:
        return item
    if kind is np.ndarray:
        batch = slots[0][2]
        if _fits(item, batch):
            batch[i] = item
            return batch[i]
        return item
    size = len(item)
    copy = None
    for _, key, batch in slots:
        if kind is dict:
            value = item.get(key)
        else:
            value = item[key] if key < size else None
        if _fits(value, batch):
            if copy is None:
                copy = dict(item) if kind is dict else list(item)
            batch[i] = value
            copy[key] = batch[i]
    if copy is None:
        return item
    return tuple(copy) if kind is tuple else copy


def _plain(dtype):
    """Are batches of ``dtype`` built in the ring? numpy's own fixed-size values, in native order."""
    return dtype.kind in _KINDS and dtype.isnative


def _fits(value, batch):
    """Is ``value`` an array that goes in a row of ``batch`` as it is?"""
    return (type(value) is np.ndarray and value.shape == batch.shape[1:]
            and value.dtype == batch.dtype)


def stack(values, axis):
    """``values`` stacked (``axis`` None) or joined along ``axis``, in the ring lent; None if not there.

    None unless a ring is lent to this thread of this process and the
    values are numpy arrays of one native dtype, of shapes that stack (or
    join), MIN_BYTES or more in all: then what numpy's ``np.array(values)``
    or ``np.concatenate(values, axis)`` would give, C-ordered. Values that
    are the rows of a batch :func:`gather` made, all of them in order, are
    that batch, with no copy.
    """
    writer = active()
    if writer is None:
        return None
    first = values[0]
    if type(first) is not np.ndarray:
        return None
    dtype, shape = first.dtype, first.shape
    if not _plain(dtype):
        return None
    if axis is None:
        if first.nbytes * len(values) < MIN_BYTES:
            return None
        for value in values:
            if type(value) is not np.ndarray or value.shape != shape or value.dtype != dtype:
                return None
        out_shape = (len(values), *shape)
        batch = _rows_of(writer, values, out_shape)
        if batch is not None:
            return batch
    else:
        ndim = len(shape)
        if not -ndim <= axis < ndim:
            return None  # numpy's error says it
        axis %= ndim
        length = 0
        for value in values:
            if (type(value) is not np.ndarray or value.dtype != dtype or value.ndim != ndim
                    or value.shape[:axis] != shape[:axis]
                    or value.shape[axis + 1:] != shape[axis + 1:]):
                return None
            length += value.shape[axis]
        out_shape = (*shape[:axis], length, *shape[axis + 1:])
    nbytes = dtype.itemsize * int(np.prod(out_shape, dtype=np.int64))
    if nbytes < MIN_BYTES:
        return None
    place = writer.reserve(nbytes)
    if place is None:
        return None
    out = place.view(dtype).reshape(out_shape)
    if axis is None:
        np.stack(values, out=out)
    else:
        np.concatenate(values, axis=axis, out=out)
    return out


def _rows_of(writer, values, shape):
    """The batch of ``shape`` whose rows ``values`` are, all and in order, if gather made it; else None."""
    place = values[0].base
    if type(place) is not np.ndarray:
        return None
    start = place.__array_interface__["data"][0]
    if writer.unsent(start, place.nbytes) is None:
        return None
    row = values[0].nbytes
    if row * len(values) != place.nbytes:
        return None
    for i, value in enumerate(values):
        if (value.base is not place or not value.flags.c_contiguous
                or value.__array_interface__["data"][0] != start + i * row):
            return None
    return place.view(values[0].dtype).reshape(shape)
