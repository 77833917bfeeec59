"""How fast can a weighted StochasticMux be in Python? A floor, beside pescador and shoal.

A StochasticMux gives each item from one of its ``n_active`` active
streamers, chosen in proportion to the streamers' weights (as pescador does),
and replaces a streamer when its activation has given its count. This script
times, side by side in one process, for 10 streamers with weights
``1/(i+1)``, ``n_active=8``, ``rate=16``:

- pescador 3.0.0's StochasticMux;
- shoal's StochasticMux;
- a *floor*: the least any pure-Python mux with those semantics does per
  item. It picks each item's slot with ``bisect`` over the cumulative slot
  weights (at C speed, through ``map``), draws every activation and count
  ahead with numpy, and updates the cumulative weights when a slot changes
  streamer. It keeps no state, counts nothing, and its counts do not depend
  on the slot's share: it cannot resume, report or close, so it is a lower
  bound, not an alternative;
- the floor, plus what a correct mux cannot skip: closing each finished
  activation's generator, and a binomial count whose ``p`` is the slot's
  share of the active weight (pescador's formula, drawn in Python);
- the same floor with equal weights, where a slot is picked with one list
  lookup (``floor(u * n)`` made by numpy a block at a time).

The gap between the two floors is the price of weighted picks. Run from the
repository root: ``python benchmarks/bench_floor.py``. Nothing here asserts.
"""

import statistics
import time
from bisect import bisect_right
from itertools import compress, islice, repeat

import numpy as np
import pescador

import shoal
from shoal._random import binomial_count

N_STREAMS, N_ACTIVE, RATE = 10, 8, 16
INF = 1 << 62


def leaf(n):
    for i in range(n):
        yield {"x": i}


def weights():
    return [1.0 / (i + 1) for i in range(N_STREAMS)]


def floor_mux(weighted, required=False):
    """The floor: weighted (or equal) picks among active slots, and nothing else.

    With ``required``, also what a correct mux cannot skip: close each
    finished activation's generator, and draw its binomial count with ``p``
    the new slot's share of the active weight (in Python, as shoal does).
    """
    rng = np.random.default_rng(0)
    w = np.array(weights()) if weighted else np.ones(N_STREAMS)
    chances = w / w.sum()
    by_sid = w.tolist()
    activations = iter(rng.choice(N_STREAMS, size=1 << 20, p=chances).tolist())
    counts = iter((1 + rng.poisson(RATE - 1, 1 << 20)).tolist())
    uniforms_for_counts = iter(rng.random(1 << 20).tolist())
    gens = [leaf(INF) for _ in range(N_ACTIVE)]
    readers = [compress(islice(gen, next(counts)), repeat(True, INF)) for gen in gens]
    slot_weights = [by_sid[next(activations)] for _ in range(N_ACTIVE)]
    cum = [0.0] * N_ACTIVE

    def normalise():
        scale = 1.0 / sum(slot_weights)
        total = 0.0
        for k, weight in enumerate(slot_weights):
            total += weight
            cum[k] = total * scale
        cum[-1] = 1.0

    normalise()
    while True:
        uniforms = rng.random(1024)
        if weighted:
            picks = map(bisect_right, repeat(cum), uniforms.tolist())
        else:
            picks = (uniforms * N_ACTIVE).astype(np.intp).tolist()
        for k in picks:
            try:
                item = next(readers[k])
            except StopIteration:
                pass
            else:
                yield item
                continue
            sid = next(activations)
            if required:
                gens[k].close()
                weight = by_sid[sid]
                p = weight / (sum(slot_weights) - slot_weights[k] + weight)
                count = 1 + binomial_count(next(uniforms_for_counts), (RATE - 1) / (1 - p), 1 - p)
            else:
                count = next(counts)
            gen = gens[k] = leaf(INF)
            readers[k] = compress(islice(gen, count), repeat(True, INF))
            if weighted and slot_weights[k] != by_sid[sid]:
                slot_weights[k] = by_sid[sid]
                normalise()


def library_mux(lib, weighted=True):
    return iter(lib.StochasticMux(
        [lib.Streamer(leaf, INF) for _ in range(N_STREAMS)], n_active=N_ACTIVE, rate=RATE,
        weights=weights() if weighted else None, mode="with_replacement", dist="binomial",
        random_state=0,
    ))


def ns_per_item(make, n):
    it = make()
    next(it)  # built and started: time the steady state
    start = time.perf_counter()
    for _ in islice(it, n):
        pass
    return (time.perf_counter() - start) / n * 1e9


def main():
    contenders = {
        "pescador": (lambda: library_mux(pescador), 20_000),
        "shoal": (lambda: library_mux(shoal), 300_000),
        "floor, weighted": (lambda: floor_mux(True), 300_000),
        "floor, weighted, with what is required": (lambda: floor_mux(True, True), 300_000),
        "shoal, equal weights": (lambda: library_mux(shoal, weighted=False), 300_000),
        "floor, equal weights": (lambda: floor_mux(False), 300_000),
    }
    times = {name: [] for name in contenders}
    order = list(contenders)
    for r in range(5):
        for name in (order if r % 2 == 0 else order[::-1]):
            make, n = contenders[name]
            times[name].append(ns_per_item(make, n))
    median = {name: statistics.median(values) for name, values in times.items()}
    pescador_ns = median["pescador"]
    print(f"StochasticMux, {N_STREAMS} streamers, n_active={N_ACTIVE}, rate={RATE}, "
          "with_replacement: ns per item, median of 5 alternating rounds")
    print()
    print("| contender | ns/item | pescador / it |")
    print("|---|---:|---:|")
    for name, value in median.items():
        print(f"| {name} | {value:,.0f} | {pescador_ns / value:.1f}x |")


if __name__ == "__main__":
    main()
