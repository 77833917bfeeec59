"""Closing: every generator an iteration opened is closed at once when it stops.

At once means without the garbage collector: the checks run with it off, so
that a generator closed only when collected counts as left open.
"""

import gc
import sys
from contextlib import contextmanager
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from muxes import ALL_MUXES, Opened, make_muxes

from shoal import (
    ChainMux,
    RoundRobinMux,
    ShoalError,
    ShuffledMux,
    StochasticMux,
    Streamer,
    buffer_stream,
    cache,
    keras_tuples,
    tuples,
)


class Boom(Exception):
    """The error a leaf raises on purpose."""

class Log:
    """Which leaf generators are open; a leaf may raise at a given item."""

    def __init__(self):
        self.open = {}
        self.n_opened = 0

    def leaf(self, name, n_items, fail_at=None, fail_on_close=False):
        key = (name, self.n_opened)
        self.n_opened += 1
        self.open[key] = True
        try:
            for i in range(n_items):
                if i == fail_at:
                    raise Boom(f"leaf {name} fails at item {i}")
                yield {"x": i, "y": name}
        finally:
            del self.open[key]
            if fail_on_close:
                raise Boom(f"leaf {name} fails as it is closed")

    def source(self, name, n_items, fail_at=None, fail_on_close=False):
        """A callable source (not a generator function); ``fail_at=-1`` fails when called."""
        if fail_at == -1:
            raise Boom(f"source {name} fails when called")
        return self.leaf(name, n_items, fail_at, fail_on_close)


@contextmanager
def no_gc():
    """Turn the garbage collector off; collect the errors raised in ``__del__``.

    A generator closed by being dropped, rather than by its iteration, can
    only report an error of its ``close()`` that way.
    """
    was = gc.isenabled()
    hook = sys.unraisablehook
    unraisable = []
    gc.disable()
    sys.unraisablehook = lambda info: unraisable.append(info.exc_value)
    try:
        yield unraisable
    finally:
        sys.unraisablehook = hook
        if was:
            gc.enable()


# -- random trees ---------------------------------------------------------------
#
# A tree gives dict items ({"x": int, "y": int}) or tuple items; every node
# keeps the kind of its children, so that no map meets items it cannot read.


MUX_KINDS = {
    "chain": [{"mode": m} for m in ("exhaustive", "cycle")],
    "chain_source": [{"mode": m} for m in ("exhaustive", "cycle")],
    "round_robin": [{"mode": m} for m in ("exhaustive", "cycle", "permuted_cycle")],
    "shuffled": [{}],
    "stochastic": [
        {"n_active": 1, "rate": 2, "mode": "with_replacement"},
        {"n_active": 2, "rate": 3, "mode": "with_replacement", "dist": "poisson"},
        {"n_active": 1, "rate": None, "mode": "single_active"},
        {"n_active": 1, "rate": 2, "mode": "exhaustive", "dist": "constant"},
        {"n_active": 2, "rate": None, "mode": "exhaustive", "prune_empty_streams": False},
    ],
}


MUXES = {"chain": ChainMux, "chain_source": ChainMux, "round_robin": RoundRobinMux, "shuffled": ShuffledMux,
         "stochastic": StochasticMux}


def leaves():
    return st.tuples(st.just("leaf"), st.integers(0, 4),
                     st.sampled_from([None, None, None, -1, 0, 1, 3]),
                     st.sampled_from([False, False, False, True]))


def _extend(children):
    mux = st.tuples(st.just("mux"), st.sampled_from(sorted(MUXES)), st.integers(0, 4),
                    st.lists(children, min_size=1, max_size=3))
    maps = st.tuples(st.just("map"),
                     st.sampled_from(["buffer", "buffer_partial", "cache", "streamer"]),
                     children)
    return st.one_of(mux, maps)


def trees():
    """Trees of muxes and maps over leaves; the root is never a bare leaf."""
    return _extend(st.recursive(leaves(), _extend, max_leaves=5))


TUPLE_MAPS = ["tuples", "keras_tuples"]


def _given(streamers):
    yield from streamers


def build(tree, log, seed):
    """The Streamer a tree describes."""
    kind = tree[0]
    if kind == "leaf":
        _, n_items, fail_at, fail_on_close = tree
        return Streamer(log.source, seed, n_items, fail_at, fail_on_close)
    if kind == "mux":
        _, name, variant, children = tree
        options = MUX_KINDS[name]
        settings_ = dict(options[variant % len(options)])
        streamers = [build(child, log, seed * 7 + k) for k, child in enumerate(children)]
        if name == "chain_source":  # a source of streamers, started at every pass
            streamers = Streamer(_given, streamers)
        if name == "stochastic" and settings_["mode"] != "with_replacement":
            settings_["n_active"] = min(settings_["n_active"], len(streamers))
        if (name != "chain" and name != "round_robin") or (name == "round_robin" and \
                settings_["mode"] == "permuted_cycle"):
            settings_["random_state"] = seed
        return MUXES[name](streamers, **settings_)
    _, name, child = tree
    inner = build(child, log, seed)
    if name == "buffer":
        return Streamer(buffer_stream, inner, 2)
    if name == "buffer_partial":
        return Streamer(buffer_stream, inner, 2, partial=True)
    if name == "cache":
        return Streamer(cache, inner, 2, prob=0.5, random_state=seed)
    return Streamer(inner)


def finish(tree_stream, how, n_items, keep):
    """Read ``n_items`` of the stream as ``how`` says, then stop it that way.

    What it made goes into ``keep``, so that nothing is closed by being dropped.
    """
    if how == "iterator":
        it = tree_stream.iterator()
        keep.append(it)
        list(islice(it, n_items))
        it.close()
    elif how == "iterator_cycle":
        it = tree_stream.iterator(cycle=True)
        keep.append(it)
        list(islice(it, n_items))
        it.close()
    elif how == "break":
        it = tree_stream.iterator()
        keep.append(it)
        for k, _ in enumerate(it):
            if k + 1 >= n_items:
                break
        it.close()
    elif how == "resumed":
        it = tree_stream.iterator()
        keep.append(it)
        list(islice(it, n_items))
        state = it.state_dict()
        it.load_state_dict(state)
        list(islice(it, 2))
        it.close()
    elif how == "iterate":
        gen = tree_stream.iterate()
        keep.append(gen)
        list(islice(gen, n_items))
        gen.close()
    elif how == "cycle":
        gen = tree_stream.cycle()
        keep.append(gen)
        list(islice(gen, n_items))
        gen.close()
    elif how == "max_iter":
        gen = tree_stream(max_iter=n_items + 1, cycle=True)
        keep.append(gen)
        list(islice(gen, n_items))
        gen.close()
    elif how in TUPLE_MAPS:
        if how == "tuples":
            gen = tuples(tree_stream, "x", "y")
            keep.append(gen)
        else:
            gen = keras_tuples(tree_stream, "x", "y")
            keep.append(gen)
        list(islice(gen, n_items))
        gen.close()
    elif how == "for_break":  # nothing kept: dropping the generator must close it
        for k, _ in enumerate(tree_stream):
            if k + 1 >= n_items:
                break
    elif how == "with":
        with tree_stream as items:
            keep.append(items)
            list(islice(items, n_items))


HOWS = ["iterator", "iterator_cycle", "break", "resumed", "iterate", "cycle", "max_iter",
        "tuples", "keras_tuples", "for_break", "with"]


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(trees(), st.sampled_from(HOWS), st.integers(0, 12), st.integers(0, 2**16))
def test_stopping_closes_every_generator_at_once(tree, how, n_items, seed):
    log = Log()
    stream = build(tree, log, seed)
    keep = []
    with no_gc() as unraisable:
        try:
            finish(stream, how, n_items, keep)
        except (Boom, ShoalError):
            # A leaf raised, or a map met items of two shapes, or a cycle was
            # empty: the error itself must have closed everything.
            pass
        assert not log.open, f"left open: {sorted(log.open)} of {log.n_opened} opened"
        if how != "for_break":  # only a dropped generator reports its close() error so
            assert not unraisable
        assert all(isinstance(exc, Boom) for exc in unraisable)


# -- the cases that were left open, one by one ----------------------------------


def _nested_chains(g):
    return ChainMux([ChainMux([Streamer(g)])])


@pytest.mark.parametrize("make, how", [
    (_nested_chains, "iterator"),
    (lambda g: Streamer(ChainMux([Streamer(g)])), "iterator"),
    (lambda g: ChainMux([ChainMux([Streamer(g)])], mode="cycle"), "iterator"),
    (lambda g: ChainMux([Streamer(ChainMux([Streamer(g)]))]), "iterator_cycle"),
    (lambda g: RoundRobinMux([ChainMux([Streamer(g)])]), "iterator"),
    (lambda g: Streamer(buffer_stream, Streamer(ChainMux([Streamer(g)])), 1), "iterator"),
    (_nested_chains, "iterate"),
    (_nested_chains, "break"),
    (lambda g: Streamer(g), "cycle"),
    (lambda g: ChainMux([Streamer(g)]), "cycle"),
])
def test_close_closes_a_chain_read_through_a_counter(make, how):
    log = Log()
    keep = []
    with no_gc() as unraisable:
        with pytest.raises(Boom, match="fails as it is closed"):
            finish(make(lambda: log.leaf(0, 3, fail_on_close=True)), how, 1, keep)
        assert log.n_opened == 1
        assert not log.open
        assert not unraisable  # closed by the iteration, not by being dropped


@pytest.mark.parametrize("make", [
    lambda s: RoundRobinMux(s),
    lambda s: ShuffledMux(s, random_state=0),
    lambda s: StochasticMux(s, n_active=2, rate=None, mode="single_active", random_state=0),
    lambda s: StochasticMux(s, n_active=2, rate=None, random_state=0),
])
def test_a_close_that_raises_does_not_leave_the_others_open(make):
    log = Log()
    stream = make([Streamer(log.leaf, k, 5, None, True) for k in range(2)])
    it = stream.iterator()
    with no_gc():
        list(islice(it, 4))
        assert log.n_opened == 2
        with pytest.raises(Boom, match="fails as it is closed"):
            it.close()
        assert not log.open


def test_a_resumed_map_closes_its_input_before_its_first_item():
    # The map's input is positioned (and so open) when the state is loaded;
    # the mux fails in another streamer before reading the map.
    log = Log()

    def make():
        return RoundRobinMux([Streamer(buffer_stream, Streamer(log.leaf, 0, 4), 2),
                              Streamer(log.source, 1, 3, 1)])

    it = make().iterator()
    next(it)
    state = it.state_dict()
    it.close()
    resumed = make().iterator()
    with no_gc():
        resumed.load_state_dict(state)
        with pytest.raises(Boom, match="leaf 1 fails at item 1"):
            list(resumed)
        assert not log.open


# -- every mux, stopped early --------------------------------------------------


@ALL_MUXES
def test_stopping_early_closes_every_generator_the_mux_opened(index):
    opened = Opened()
    mux = make_muxes([Streamer(opened.stream, t, 50) for t in "abc"])[index]
    for count, _ in enumerate(mux, 1):
        if count == 10:
            break
    assert opened.open == 0

    gen = iter(mux)
    next(gen)
    assert opened.open >= 1
    gen.close()
    assert opened.open == 0

    def consume():
        for _ in mux:
            raise KeyError("consumer failed")

    with pytest.raises(KeyError):
        consume()
    assert opened.open == 0
