"""The ring: the shared memory through which a worker sends large buffers.

A worker sends the large buffers of its items (those of SHARED_MIN_BYTES or
more: the data of large numpy arrays) through a ring of shared memory, not
through its pipe: it copies each buffer into the ring, and the consumer's
arrays are views of it. Both sides are here: :class:`Ring` and
:class:`InRing` are the consumer's, :class:`Writer` is the worker's.

Who owns which chunk
--------------------
The ring is a file of ``size`` bytes in shared memory, handed out in chunks
of ``chunk`` bytes (CHUNK_BYTES, or the whole ring if it is smaller). A
table in shared memory, ``chunks``, has a byte per chunk that says whose the
chunk is:

0: free
    The worker's. The consumer holds nothing there; the worker may write it.
1: used
    The consumer's. It holds part of a buffer the worker sent (of an item on
    its way, in the consumer's queue, or in an array the consumer's code
    holds); the worker does not touch it.

Each side turns a chunk only one way, so no lock is needed:

- the worker turns free chunks used (:meth:`Writer.put`), then writes the
  buffer there, then sends the item, which names where its buffers are. A
  buffer takes a run of consecutive chunks, the first run of free ones
  that holds it: a ring the consumer keeps up with reuses its first
  chunks, which stay in the processor's cache.
- the consumer turns them free (:func:`free_chunks`) once it holds nothing
  there: when the last array viewing them is garbage, or at once when it
  copies the buffer out. It copies out while half the ring's room (below)
  or more is used, so that arrays a consumer keeps (in a cache, a list) never hold the
  whole ring, and always where asked to (a ZMQStreamer with ``copy=True``).
  Only the consumer's process frees chunks: a process forked from it shares
  its arrays, and dropping them there frees nothing.

A third state lives in the worker alone: a chunk *pinned* by an array of
the worker's. A batch made in the worker is built in a place of the ring
(:meth:`Writer.reserve`, for ``shoal._arena``): its chunks are free in the
table, but the worker gives them to nothing else while any array there
lives in the worker. Sending the place whole hands it over where it is
(the worker turns its chunks used, as for a copy), once; the pin stays
until the worker's arrays are gone, so a batch the worker keeps after
sending it is never overwritten, even once the consumer freed its chunks.

How large it is
----------------
The file is ``size`` bytes, of which the worker uses the first ``room``:
a count of chunks in shared memory, ``limit``, that only the worker
changes, and only upward, before it sends the item that needs it (so the
consumer, which reads it when it takes the item, never sees less room than
that item used). With a fixed size (the user's ``shared_memory_bytes``),
the room is the whole file. Otherwise the file is the worker's share of
the shared-memory file system (see :func:`max_ring_bytes`), which costs
nothing until written (a file there holds the pages written, not its
size), its room starts at DEFAULT_RING_BYTES, and it grows when an item
needs it: to ROOM_ITEMS of the item, within the file and the worker's
share of the room free in the file system then (see :meth:`Writer.grow`).
Pages once written stay the ring's until the iteration ends; the worker
reuses its first chunks, so a ring holds about what is in flight and in
the consumer's hands at most.

The window
----------
``taken``, a count in shared memory, is the ring bytes of the items the
consumer took; the worker counts those it sent. It keeps at most ``window``
bytes in flight (sent, not taken): RING_WINDOW_BYTES, or WINDOW_ITEMS of its
largest item, so that the consumer reads what the worker wrote while it is
still in the processor's cache. While there is no room (the window is full,
or no run of free chunks holds the buffer), the worker sends what it holds
and waits for the consumer to take an item. If nothing is in flight and
there is still no room (the consumer's arrays hold the rest), or the
buffers are larger than the ring, the item goes through the pipe instead.

The file
--------
The consumer makes the file, named after its process (``shoal-<pid>-...``)
so that what a crash leaves can be found, and maps it; the worker maps it
and says it is ready; the consumer removes the file once every worker is
ready, or when the iteration stops. A mapping lives on while arrays view it.
"""

import contextlib
import mmap
import os
import pickle
import sys
import tempfile
import weakref

import numpy as np

__all__ = [
    "SHARED_MIN_BYTES",
    "CHUNK_BYTES",
    "RING_WINDOW_BYTES",
    "WINDOW_ITEMS",
    "DEFAULT_RING_BYTES",
    "ROOM_ITEMS",
    "Ring",
    "InRing",
    "Writer",
    "Place",
    "free_chunks",
    "keep_small",
    "shared_memory_folder",
    "max_ring_bytes",
]

#: Buffers at least this large cross through shared memory, not the pipe.
SHARED_MIN_BYTES = 64 * 1024
#: A worker's ring is handed out in chunks of this many bytes (or the whole
#: ring, if it is smaller).
CHUNK_BYTES = 64 * 1024
#: A worker keeps at most this many bytes of buffers in flight in its ring, or
#: WINDOW_ITEMS of its largest item, whichever is more.
RING_WINDOW_BYTES = 4 * 2**20
WINDOW_ITEMS = 4
#: The room a ring that may grow starts with.
DEFAULT_RING_BYTES = 64 * 2**20
#: A ring that may grow grows to hold this many of its largest item: the
#: window in flight and two held by the consumer (the item its code works on
#: and the one it takes), twice over, since the consumer copies buffers out
#: while half the ring or more is used.
ROOM_ITEMS = 2 * (WINDOW_ITEMS + 2)
#: The largest file of a ring that may grow (its mapping's address space).
_MAX_FILE_BYTES = min(2**40, sys.maxsize // 4)
_SHM_PREFIX = "shoal-"


class Ring:
    """The consumer's side of a worker's ring: the file, its mapping and the shared counts.

    ``size`` is the file's bytes and ``room`` the bytes the worker may use
    at first (None: all of them, a fixed ring). ``chunks`` (the table of who
    owns which chunk), ``limit`` (the chunks the worker may use) and
    ``taken`` (the ring bytes the consumer took) are in shared memory of
    ``context``, for the worker to be started with. With ``copy_out``, every
    buffer is copied out of the ring.
    """

    __slots__ = ("path", "size", "chunk", "chunks", "table", "limit", "taken", "map", "view",
                 "copy_out")

    def __init__(self, context, size, copy_out, room=None):
        self.chunk = min(CHUNK_BYTES, size)
        self.copy_out = copy_out
        self.map = self.view = None
        # Named after this process, so that what it leaves can be found.
        fd, self.path = tempfile.mkstemp(prefix=f"{_SHM_PREFIX}{os.getpid()}-",
                                         dir=shared_memory_folder())
        try:
            try:
                os.ftruncate(fd, size)
                try:
                    self.map = mmap.mmap(fd, size)
                except OSError:
                    if room is None or room >= size:
                        raise
                    # No address space for the whole file (a limit on it): the
                    # ring keeps its first room, fixed.
                    size = room
                    os.ftruncate(fd, size)
                    self.map = mmap.mmap(fd, size)
            finally:
                os.close(fd)
            self.size = size
            self.view = memoryview(self.map)
            self.taken = context.RawValue("Q", 0)
            self.chunks = context.RawArray("B", size // self.chunk)  # all free
            self.table = memoryview(self.chunks)
            room = size if room is None else min(room, size)
            self.limit = context.RawValue("Q", max(1, room // self.chunk))
        except BaseException:
            self.close()
            raise

    def unlink(self):
        """Remove the file: the worker has mapped it, or will never."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None

    def close(self):
        """Remove the file and let go of the mapping."""
        self.unlink()
        # Arrays the consumer still holds keep their part of the ring
        # mapped (then these raise, and the ring goes with the last of them).
        with contextlib.suppress(Exception):
            self.view.release()
        with contextlib.suppress(Exception):
            self.map.close()


def ring_sizes(shared_memory_bytes, n_workers):
    """``(size, room)`` of each worker's ring: its file's bytes, and the bytes it may use at first.

    ``shared_memory_bytes`` is the recipe's: an int is a fixed ring (its
    room is None: all of it); None, a ring that grows from
    DEFAULT_RING_BYTES within the worker's share of the file system.
    """
    if shared_memory_bytes is not None:
        return shared_memory_bytes, None
    size = min(max_ring_bytes(n_workers), _MAX_FILE_BYTES)
    return size, min(DEFAULT_RING_BYTES, size)


class InRing:
    """An item whose large buffers wait in chunks of its worker's ring.

    :meth:`load` it when the consumer takes it: its arrays are then views
    into the ring (writable: the worker does not touch their chunks until
    they are freed), and the chunks are freed when the last array using them
    is garbage; or, while half the ring's room or more is used, copies, and the
    chunks freed at once.
    """

    __slots__ = ("ring", "data", "table", "size")

    def __init__(self, ring, data, table, size):
        self.ring = ring
        self.data = data  # the item, pickled without its large buffers
        self.table = table  # where they are: [(offset, size)]
        self.size = size  # the bytes it holds in the ring

    def load(self):
        ring = self.ring
        view, chunks, chunk = ring.view, ring.chunks, ring.chunk
        buffers = []
        limit = ring.limit.value  # the chunks in use: what the worker may use
        if not ring.copy_out and 2 * bytes(ring.table[:limit]).count(0) >= limit:
            pid = os.getpid()
            for offset, size in self.table:
                holder = np.frombuffer(view[offset:offset + size], dtype=np.uint8)
                weakref.finalize(holder, free_chunks, chunks, offset // chunk,
                                 -(-size // chunk), pid)
                buffers.append(holder)
        else:
            for offset, size in self.table:
                buffers.append(bytearray(view[offset:offset + size]))
                free_chunks(chunks, offset // chunk, -(-size // chunk))
        ring.taken.value += self.size
        return pickle.loads(self.data, buffers=buffers)


def free_chunks(chunks, first, count, pid=None):
    """Mark ``count`` chunks of a ring free from ``first`` on: the worker may reuse them.

    Only in the consumer's process (``pid``): a process forked from it
    shares the arrays, and dropping its references frees nothing.
    """
    if pid is None or pid == os.getpid():
        chunks[first:first + count] = bytes(count)


class Writer:
    """The worker's side of its ring: it places buffers in free chunks and writes them there.

    It maps the file at ``path``; ``chunks``, ``limit`` and ``taken`` are
    the shared table and counts the consumer made (see :class:`Ring`).
    ``n_workers`` share the file system's free room when rings grow.
    """

    __slots__ = ("map", "size", "chunk", "chunks", "limit", "room", "taken", "sent", "window",
                 "n_workers", "refused", "pins", "reserved")

    def __init__(self, path, size, chunk, chunks, limit, taken, n_workers=1):
        with open(path, "r+b") as f:
            self.map = mmap.mmap(f.fileno(), size)
        self.size = size
        self.chunk = chunk  # bytes: as the consumer counts them
        self.chunks = chunks  # shared: 1 used, 0 free (the consumer frees them)
        self.limit = limit  # shared: the chunks this worker may use (it alone raises it)
        self.room = limit.value * chunk  # their bytes
        self.taken = taken  # ring bytes the consumer took (shared)
        self.sent = 0  # ring bytes sent
        self.window = min(self.room, RING_WINDOW_BYTES)
        self.n_workers = n_workers
        self.refused = 0  # the most room the file system refused (asked again only for more)
        # Places reserved for batches built in the ring (see :meth:`reserve`):
        # {first chunk: chunks} while the worker's arrays there live...
        self.pins = {}
        # ...and {address: Place}.
        self.reserved = {}

    def put(self, views, wait):
        """Write ``views``, the large buffers of one item, into the ring: ``(places, total)``, or None.

        ``places`` are their ``(offset, size)`` and ``total`` their bytes.
        A buffer that is a place :meth:`reserve` gave, whole, and not sent
        before, is handed over where it is, with no copy. While there is no
        room, calls ``wait()``, which sends what the worker holds and waits
        for the consumer to take an item. None if they do not fit even then
        (larger than the ring, or the arrays the consumer holds leave no
        room): the item goes through the pipe.
        """
        handed = self._handed(views) if self.reserved else None
        copied, extra = views, 0
        if handed is not None:
            copied = [view for view, place in zip(views, handed) if place is None]
            extra = sum(place.size for place in handed if place is not None)
        written = self._place([view.nbytes for view in copied], wait, extra)
        if written is None:
            return None
        ring = self.map
        for (offset, size), view in zip(written, copied):
            ring[offset:offset + size] = view
        places = written
        if handed is not None:
            # Handed over: the consumer's now, as a copied buffer's chunks are.
            chunks, chunk = self.chunks, self.chunk
            written = iter(written)
            places = []
            for place in handed:
                if place is None:
                    places.append(next(written))
                else:
                    chunks[place.first:place.first + place.count] = b"\x01" * place.count
                    place.handed = True
                    places.append((place.first * chunk, place.size))
        total = sum(size for _, size in places)
        self.sent += total
        return places, total

    def reserve(self, nbytes):
        """A place of ``nbytes`` in the ring for a batch to be built in: a writable uint8 array, or None.

        The place is the worker's while an array viewing it lives in the
        worker (its chunks are *pinned*: free in the shared table, but never
        given out again), and sending an item whose buffer is that place,
        whole, hands it to the consumer with no copy (:meth:`put`), once:
        the worker may hold the batch after sending it (a cache, a
        generator's local), and if it sends it again, it is copied, as any
        buffer. None when the ring has no room for it now (the worker does
        not wait for any here): the batch is built as numpy builds it.
        """
        self.grow(nbytes)
        if WINDOW_ITEMS * nbytes > self.room:
            return None
        chunk = self.chunk
        count = -(-nbytes // chunk)
        first = self._free_table().find(bytes(count))
        if first < 0:
            return None
        self.pins[first] = count
        place = np.frombuffer(self.map, np.uint8, count=nbytes, offset=first * chunk)
        address = place.__array_interface__["data"][0]
        self.reserved[address] = Place(first, count, nbytes)
        weakref.finalize(place, self._unpin, first, address)
        return place

    def unsent(self, address, nbytes):
        """The Place reserved at ``address``, if it is ``nbytes`` long and not handed over yet; else None."""
        place = self.reserved.get(address)
        if place is None or place.handed or place.size != nbytes:
            return None
        return place

    def _unpin(self, first, address):
        """The worker's arrays on a reserved place are gone: its chunks go back to the table's say."""
        self.reserved.pop(address, None)
        self.pins.pop(first, None)

    def _handed(self, views):
        """For each of ``views``, its reserved place if it is one, whole and not sent yet; else None.

        None if none is.
        """
        handed = []
        for view in views:
            address = np.frombuffer(view, np.uint8).__array_interface__["data"][0]
            place = self.unsent(address, view.nbytes)
            if place is not None and any(p is place for p in handed):
                place = None  # twice in one item: sent whole once, copied once
            handed.append(place)
        return handed if any(place is not None for place in handed) else None

    def _free_table(self):
        """The table of the chunks the worker may use, as a bytearray, its pinned chunks marked used."""
        free = bytearray(memoryview(self.chunks)[:self.room // self.chunk])
        for first, count in list(self.pins.items()):
            free[first:first + count] = b"\x01" * count
        return free

    def grow(self, total):
        """Make room for ROOM_ITEMS items of ``total`` bytes, as far as the file and the file system allow.

        Within the file, and within this worker's share (one in
        ``n_workers``) of the room free in the file system now: pages are
        taken when written, and a ring that outgrew what the file system
        holds would kill its worker (SIGBUS) when it writes there. A fixed
        ring (its room is its file) never grows, and a ring whose room holds
        them already is left as it is, without asking the file system.
        """
        chunk = self.chunk
        wanted = min(self.size // chunk, -(-ROOM_ITEMS * total // chunk))  # in chunks
        if wanted * chunk <= max(self.room, self.refused):
            return
        try:
            stat = os.statvfs(shared_memory_folder())
            free = stat.f_bavail * stat.f_frsize // self.n_workers
        except (AttributeError, OSError):
            free = 0
        limit = min(wanted, (self.room + free) // chunk)
        if limit < wanted:
            self.refused = wanted * chunk
        if limit * chunk > self.room:
            self.limit.value = limit
            self.room = limit * chunk
            self.window = max(self.window, min(self.room, RING_WINDOW_BYTES))

    def _place(self, sizes, wait, extra=0):
        """Turn free chunks used for buffers of ``sizes`` bytes: their ``(offset, size)``, or None.

        ``extra`` bytes of the item are handed over where they are: they
        count in the window, not in the room to find.
        """
        total = sum(sizes)
        self.grow(total)
        if total > self.room:
            return None
        if WINDOW_ITEMS * (total + extra) > self.window:
            self.window = min(self.room, WINDOW_ITEMS * (total + extra))
        chunk, chunks, taken = self.chunk, self.chunks, self.taken
        while True:
            if self.sent + total + extra - taken.value > self.window:
                wait()
                continue
            if not sizes:
                return []
            free = self._free_table()
            places = []
            for size in sizes:
                count = -(-size // chunk)
                first = free.find(bytes(count))
                if first < 0:
                    break
                free[first:first + count] = b"\x01" * count
                places.append((first, count, size))
            else:
                for first, count, _ in places:
                    chunks[first:first + count] = b"\x01" * count
                return [(first * chunk, size) for first, _, size in places]
            if taken.value >= self.sent:
                return None  # nothing in flight: the consumer holds the rest
            wait()


class Place:
    """A place of the ring reserved for a batch (:meth:`Writer.reserve`): ``count`` chunks from ``first``.

    ``size`` is its bytes, and ``handed`` says whether the worker sent it
    whole (after which a send of it copies it, as any buffer).
    """

    __slots__ = ("first", "count", "size", "handed")

    def __init__(self, first, count, size):
        self.first, self.count, self.size = first, count, size
        self.handed = False


def keep_small(buffer, large):
    """pickle's buffer_callback: small buffers stay in the pickle, large ones are collected."""
    if memoryview(buffer).nbytes < SHARED_MIN_BYTES:
        return True
    large.append(buffer)
    return False


def shared_memory_folder():
    """Where the rings' files are made: a file system in memory, where there is one."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def max_ring_bytes(n_workers):
    """The largest ring each of ``n_workers`` may have: their rings share the file system."""
    try:
        stat = os.statvfs(shared_memory_folder())
        total = stat.f_blocks * stat.f_frsize
    except (AttributeError, OSError):
        total = 2**48
    return max(mmap.PAGESIZE, total // n_workers // mmap.PAGESIZE * mmap.PAGESIZE)
