"""Item counters: how a reader counts the items it gives at C speed.

A counter is ``itertools.repeat(True, BIG - n)``; a reader
``compress(source, counter)`` gives the items of ``source`` and consumes one
element of the counter per item, so ``given(counter)`` reads how many it
gave. The muxes, the maps and :class:`~shoal.StreamIterator` all count this
way, so this module sits beneath all of them and imports nothing of shoal.
"""

from itertools import compress, repeat

__all__ = ["BIG", "given", "counter_at", "hand_counter", "counted_if_needed"]

#: The length of an item counter, ``itertools.repeat(True, BIG)``: never reached.
BIG = 2**62


def given(counter):
    """The items counted so far by ``counter``."""
    return BIG - counter.__length_hint__()


def counter_at(n):
    """A new item counter that has counted ``n`` items."""
    return repeat(True, BIG - n)


def hand_counter(node, counter):
    """Give ``node`` the counter of its items, if it needs one (a ChainMux's node does)."""
    if hasattr(node, "out_counter"):
        node.out_counter = counter


def counted_if_needed(node, it, n_given):
    """``it``, through a counter of its own started at ``n_given`` if ``node`` needs one.

    For a reader that does not count the items of what it reads (a chain
    reading a chain, a StreamIterator reading a pass of a Streamer).
    """
    if not hasattr(node, "out_counter"):
        return it
    counter = counter_at(n_given)
    node.out_counter = counter
    return compress(it, counter)
