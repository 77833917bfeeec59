"""Resume an iteration at a host's saved position, checking that it gives again what it gave.

A host that runs a stream away from its consumer (a worker process) saves
its position lazily: a snapshot of its iteration's state, the number of
items its consumer took after it, and the snapshot it sent some items
further on. :func:`resumed_share` resumes from those and checks the way.
"""

from collections import deque
from itertools import islice

from ._checks import state_difference
from ._iterutil import END, add_note
from .exceptions import ShoalValueError

__all__ = ["resumed_share"]


def resumed_share(share, start, n_skip, ahead, at_position=False):
    """An iteration of ``share`` at a worker's saved position, checked: ``(iterator, held, state)``.

    A worker's saved state is a snapshot of its share, ``start`` (None: the
    start), and the ``n_skip`` items its consumer took after it; and, when
    ``n_skip`` is not 0, ``ahead``: ``{"n": n, "state": s}``, the state the
    share had ``n`` items further on. The share is resumed from the
    snapshot, skips ``n_skip`` items, and reads ``n`` more, which it holds
    (``held``: the items after the consumer's position); then its state
    must be ``s``. A share that ends sooner, or gets elsewhere, gives other
    items than when the state was saved (a file was rewritten), or is not
    the stream that saved it (a map with another ``buffer_size``): that is
    refused, as one process refuses a source that now yields fewer items,
    rather than go on with items lost or repeated. ``state`` is the state
    at the position (with ``at_position``), else None.
    """
    it = share.iterator()
    try:
        if start is not None:
            it.load_state_dict(start)
        first = it.n_given
        if n_skip:
            deque(islice(it, n_skip), maxlen=0)
            if it.n_given - first < n_skip:
                raise _not_where_it_was(share, ahead, (
                    f"it now yields only {it.n_given - first} of the {n_skip} items its consumer "
                    "had taken after its saved state"))
        state = it.state_dict() if at_position else None
        held = []
        if ahead is not None:
            n = ahead["n"]
            held = list(islice(it, n))
            if len(held) < n:
                raise _not_where_it_was(share, ahead, (
                    f"it now yields only {n_skip + len(held)} of the {n_skip + n} items it gave "
                    "after its saved state when that state was saved"))
            difference = state_difference(it.state_dict(), ahead["state"])
            if difference is not None and next(it, END) is END:
                # A worker's last snapshot is taken once its share has ended.
                difference = state_difference(it.state_dict(), ahead["state"])
            if difference is not None:
                raise _not_where_it_was(share, ahead, (
                    f"{n_skip + n} items after its saved state, it is not where it was when the "
                    f"state was saved ({difference})"))
    except BaseException:
        it.close()
        raise
    return it, held, state


def _not_where_it_was(share, ahead, what):
    """The error for a share that does not go on from a saved state as it did when it was saved.

    The error one process gives for the state the share was saved at
    further on, if it gives one (a source that now yields fewer items
    than that state says it gave); else one that says ``what``.
    """
    note = (f"raised while resuming {share!r} from a worker's saved state: it did not give "
            "again the items it gave when the state was saved")
    if ahead is not None:
        probe = share.iterator()
        try:
            probe.load_state_dict(ahead["state"])
            next(probe, None)
        except ShoalValueError as exc:
            add_note(exc, note)
            return exc
        except BaseException as exc:  # the user's code: raised as itself
            add_note(exc, note)
            raise
        finally:
            probe.close()
    return ShoalValueError(
        f"cannot restore {share!r} from a worker's saved state: {what}. A source resumed by "
        "skipping must yield the same items every time it is started, and a worker's state "
        "goes on only in the stream that saved it (not in a map with another buffer_size, say)")
