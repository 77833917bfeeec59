"""One checker for every stream: save anywhere, restore, and the rest is identical."""

import json
import pickle
from itertools import islice


def roundtrip(state):
    """The state after json and pickle, as a checkpoint would store it."""
    return pickle.loads(pickle.dumps(json.loads(json.dumps(state))))


def assert_resumes_exactly(make, n_positions=200, n_after=30, cycle=False, normalize=None):
    """Check that an iteration of ``make()`` resumes exactly from any position.

    Saves the state of one iteration before each of its first
    ``n_positions`` items (and at its end, if it ends sooner); restores each state in an
    iteration of a freshly made stream; and checks that the next ``n_after``
    items are the ones the uninterrupted iteration gave (compared after
    ``normalize``, for items such as arrays). Returns those items.
    """
    normalize = normalize or (lambda item: item)
    it = make().iterator(cycle)
    states, items = [], []
    while len(items) < n_positions + n_after:
        if len(items) <= n_positions:
            states.append(roundtrip(it.state_dict()))
        item = next(it, _END)
        if item is _END:
            break
        items.append(normalize(item))
    it.close()
    for position, state in enumerate(states):
        assert state["n_given"] == position
        resumed = make().iterator(cycle)
        resumed.load_state_dict(state)
        got = [normalize(item) for item in islice(resumed, n_after)]
        expected = items[position:position + n_after]
        assert got == expected, f"after restoring at item {position}: {got} != {expected}"
        resumed.close()
    return items


_END = object()


def take(stream, state, n):
    """Iterate ``stream`` from ``state``; take ``n`` items: (items, new state)."""
    it = stream.iterator()
    if state is not None:
        it.load_state_dict(roundtrip(state))
    items = list(islice(it, n))
    saved = it.state_dict()
    it.close()
    return items, saved


def rest(stream, state):
    """Iterate ``stream`` from ``state`` to its end: the items left."""
    it = stream.iterator()
    it.load_state_dict(roundtrip(state))
    return list(it)
