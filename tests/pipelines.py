"""Streams for the resume tests, built by name (also in a fresh process)."""

import numpy as np

import shoal


def count(tag, n):
    """``n`` items ``(tag, i)``."""
    for i in range(n):
        yield (tag, i)


def forever(tag):
    """``(tag, i)`` for ever."""
    i = 0
    while True:
        yield (tag, i)
        i += 1


def arrays(tag, n):
    for i in range(n):
        yield {"x": np.array([tag, i]), "y": i}


def lengths(tags, sizes, source=count):
    return [shoal.Streamer(source, tag, size) for tag, size in zip(tags, sizes)]


def tagged(n_streams, length=3):
    """Streamers whose items say where they come from: (streamer, position)."""
    return [shoal.Streamer([(k, i) for i in range(length)]) for k in range(n_streams)]


def files():
    """A source of streamers: a generator function of no argument (one gives nothing)."""
    yield from lengths("abc", (8, 0, 9))


def some_files(tags, sizes):
    """A source of streamers with arguments, for ``Streamer(some_files, tags, sizes)``."""
    yield from lengths(tags, sizes)


def _stochastic(mode, dist, rate=4):
    def make():
        if mode == "with_replacement":
            streams = [shoal.Streamer(forever, tag) for tag in "abcde"]
        else:
            streams = lengths("abcde", (20, 5, 13, 30, 9))
        return shoal.StochasticMux(streams, 3, rate, weights=[1, 2, 3, 4, 5], mode=mode,
                                   dist=dist, random_state=11)
    return make


def _per_class(seed, tags):
    """A mux over endless streams, one per tag, as one would make for each class."""
    return shoal.ShuffledMux([shoal.Streamer(forever, tag) for tag in tags], random_state=seed)


PIPELINES = {
    "streamer": lambda: shoal.Streamer(count, "a", 60),
    "streamer of a list": lambda: shoal.Streamer(list(range(40))),
    "streamer of a streamer": lambda: shoal.Streamer(shoal.Streamer(count, "a", 30)),
    "streamer of a chain": lambda: shoal.Streamer(shoal.ChainMux(lengths("ab", (8, 9)))),
    "chain": lambda: shoal.ChainMux(lengths("abc", (7, 0, 11))),
    "chain cycle": lambda: shoal.ChainMux(lengths("abc", (7, 0, 11)), mode="cycle"),
    "chain of a generator": lambda: shoal.ChainMux(s for s in lengths("abc", (5, 6, 7))),
    "chain of a generator function": lambda: shoal.ChainMux(files),
    "chain of a source streamer": lambda: shoal.ChainMux(
        shoal.Streamer(some_files, "abcd", (6, 0, 7, 5))),
    "chain cycle of a source": lambda: shoal.ChainMux(
        shoal.Streamer(some_files, "ab", (3, 4)), mode="cycle"),
    "shuffled of chains of sources": lambda: shoal.ShuffledMux([
        shoal.ChainMux(shoal.Streamer(some_files, "ab", (3, 4))),
        shoal.ChainMux(files, mode="cycle"),
    ], random_state=7),
    "round robin": lambda: shoal.RoundRobinMux(lengths("abc", (3, 9, 5))),
    "round robin cycle": lambda: shoal.RoundRobinMux(lengths("abc", (3, 9, 5)), mode="cycle"),
    "round robin permuted": lambda: shoal.RoundRobinMux(
        lengths("abcd", (3, 9, 5, 1)), mode="permuted_cycle", random_state=3),
    "shuffled": lambda: shoal.ShuffledMux(
        lengths("abcd", (3, 9, 5, 0)), weights=[1, 2, 3, 4], random_state=3),
    "shuffled unseeded": lambda: shoal.ShuffledMux(lengths("abc", (3, 9, 5))),
    **{
        f"stochastic {mode} {dist}": _stochastic(mode, dist)
        for mode in ("with_replacement", "single_active", "exhaustive")
        for dist in ("binomial", "constant", "poisson")
    },
    "stochastic rate None": lambda: shoal.StochasticMux(
        lengths("abcd", (4, 0, 7, 2)), 2, None, mode="single_active", random_state=5),
    "stochastic no pruning": lambda: shoal.StochasticMux(
        lengths("abc", (4, 0, 7)), 2, 3, prune_empty_streams=False, random_state=5),
    "stochastic of chains": lambda: shoal.StochasticMux(
        [shoal.ChainMux(lengths([t + "x", t + "y"], (3, 4))) for t in "abc"], 2, 3,
        random_state=2),
    "chain of muxes": lambda: shoal.ChainMux([
        shoal.ShuffledMux(lengths("ab", (4, 6)), random_state=1),
        shoal.ChainMux([shoal.ChainMux(lengths("cd", (2, 3))), shoal.Streamer(count, "e", 4)]),
        shoal.RoundRobinMux(lengths("fg", (3, 2))),
    ], mode="cycle"),
    "shuffled of stochastic": lambda: shoal.ShuffledMux([
        shoal.StochasticMux([shoal.Streamer(forever, t) for t in "abc"], 2, 3, random_state=4),
        shoal.Streamer(count, "z", 10),
    ], random_state=6),
    "buffer_stream": lambda: shoal.Streamer(
        shoal.buffer_stream,
        shoal.ShuffledMux(lengths(range(3), (9, 9, 9), arrays), random_state=1), 4),
    "tuples": lambda: shoal.Streamer(
        shoal.tuples, shoal.ChainMux(lengths(range(3), (5, 6, 7), arrays), mode="cycle"), "y"),
    "cache": lambda: shoal.Streamer(
        shoal.cache, shoal.Streamer(count, "a", 300), 8, prob=0.3, random_state=4),
    "cache of a mux": lambda: shoal.Streamer(
        shoal.cache, shoal.StochasticMux(lengths("abc", (30, 30, 30)), 2, 4, random_state=4),
        5, random_state=4),
    "shuffled reseeded": lambda: shoal.ShuffledMux(
        lengths("abc", (2, 3, 1)), random_state=8, reseed_each_epoch=True),
    "shuffled on a schedule": lambda: shoal.ShuffledMux(
        [shoal.Streamer(forever, t) for t in "ab"], weights=lambda n: [1 + n // 64, 1],
        random_state=8),
    # Seeds flow down: nested seeded (and unseeded) muxes, each activation its own key.
    "stochastic of seeded shuffled": lambda: shoal.StochasticMux(
        [_per_class(100, "ab"), _per_class(101, "cd")], 1, 3, random_state=0),
    "shuffled of seeded stochastic": lambda: shoal.ShuffledMux([
        shoal.StochasticMux(lengths("ab", (3, 4)), 1, 2, mode="exhaustive", random_state=3),
        shoal.Streamer(count, "z", 5),
    ], random_state=6),
    "chain cycle of seeded muxes": lambda: shoal.ChainMux([
        shoal.StochasticMux([_per_class(1, "ab"), _per_class(2, "cd")], 1, 4, dist="constant",
                            mode="exhaustive", random_state=2),
        shoal.Streamer(count, "e", 3),
    ], mode="cycle"),
    "unseeded tree under a seed": lambda: shoal.StochasticMux([
        _per_class(None, "ab"),
        shoal.ChainMux([shoal.StochasticMux(lengths("cd", (3, 3)), 1, 2, mode="exhaustive")]),
    ], 2, 3, random_state=9),
    "round robin permuted of seeded muxes": lambda: shoal.RoundRobinMux([
        shoal.StochasticMux([_per_class(1, "ab")], 1, 3, mode="exhaustive", random_state=2),
        shoal.Streamer(count, "c", 2),
    ], mode="permuted_cycle", random_state=3),
    "reseeded stochastic of seeded muxes": lambda: shoal.StochasticMux(
        [_per_class(5, "ab"), _per_class(6, "cd")], 1, 8, dist="constant", mode="exhaustive",
        reseed_each_epoch=True, random_state=4),
    "batches of a cache that ends, in a mux": lambda: shoal.StochasticMux([shoal.Streamer(
        shoal.buffer_stream, shoal.Streamer(shoal.cache, shoal.Streamer(count, "a", 3), 3),
        2, partial=True)], 1, 7, random_state=0),
    "shuffled of a cache of a mux": lambda: shoal.ShuffledMux([
        shoal.Streamer(shoal.cache, _per_class(None, "ab"), 3),
        shoal.Streamer(count, "z", 4),
    ], random_state=2),
}

# Those that end, to check their cycling iterations too.
CYCLED = ["streamer", "streamer of a chain", "chain", "round robin",
          "chain of a generator function", "chain of a source streamer",
          "stochastic exhaustive poisson",
          "shuffled reseeded", "buffer_stream", "reseeded stochastic of seeded muxes"]


def plain(item):
    """An item as plain, comparable values (arrays as lists)."""
    if isinstance(item, dict):
        return {key: plain(value) for key, value in item.items()}
    if isinstance(item, (tuple, list)):
        return type(item)(plain(value) for value in item)
    if isinstance(item, np.ndarray):
        return item.tolist()
    return item
