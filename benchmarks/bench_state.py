"""What resumable iteration costs: shoal's iterator() against plain iteration.

For each pipeline, times consuming items through ``stream.iterator()`` (which
tracks the state) and through plain ``iter(stream)``, alternately, and reports
the overhead; then times ``state_dict()`` and ``load_state_dict()`` and the
size of the state as JSON. Benchmarks are not tests: nothing here asserts.

Run from the repository root: ``python benchmarks/bench_state.py [--quick]``.
"""

import argparse
import gc
import json
import statistics
import sys
import time
from itertools import islice

import shoal

RATE = 16
N_ACTIVE = 8


def leaf(n):
    for i in range(n):
        yield {"x": i}


def zipf(n):
    return [1.0 / (i + 1) for i in range(n)]


def streamers(n_streams, length):
    return [shoal.Streamer(leaf, length) for _ in range(n_streams)]


INF = 10**12

PIPELINES = {
    "Streamer(gen, n)": lambda: shoal.Streamer(leaf, INF),
    "ChainMux 10 cycle": lambda: shoal.ChainMux(streamers(10, 1000), mode="cycle"),
    "RoundRobinMux 10 cycle": lambda: shoal.RoundRobinMux(streamers(10, 1000), mode="cycle"),
    "ShuffledMux 100 weighted": lambda: shoal.ShuffledMux(
        streamers(100, INF), weights=zipf(100), random_state=0),
    **{
        f"StochasticMux {n} {mode} binomial": (lambda n=n, mode=mode: shoal.StochasticMux(
            streamers(n, INF), min(N_ACTIVE, n), RATE, weights=zipf(n), mode=mode,
            random_state=0))
        for n in (10, 100) for mode in ("with_replacement", "single_active", "exhaustive")
    },
}


def consume(iterable, n):
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in islice(iterable, n):
            pass
        return (time.perf_counter() - start) / n * 1e9
    finally:
        gc.enable()


def plain(make, n):
    mux = make()
    cycling = getattr(mux, "mode", None) == "exhaustive"
    return consume(mux.cycle() if cycling else iter(mux), n)


def resumable(make, n):
    mux = make()
    cycling = getattr(mux, "mode", None) == "exhaustive"
    return consume(mux.iterator(cycle=cycling), n)


def state_costs(make, n, repeats):
    mux = make()
    cycling = getattr(mux, "mode", None) == "exhaustive"
    it = mux.iterator(cycle=cycling)
    for _ in islice(it, n):
        pass
    start = time.perf_counter()
    for _ in range(repeats):
        state = it.state_dict()
    save = (time.perf_counter() - start) / repeats * 1e6
    size = len(json.dumps(state))
    start = time.perf_counter()
    fresh = make().iterator(cycle=cycling)
    fresh.load_state_dict(state)
    next(fresh)
    load = (time.perf_counter() - start) * 1e3
    return save, size, load


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and rounds")
    args = parser.parse_args(argv)
    n, rounds = (100_000, 3) if args.quick else (500_000, 7)
    print("| pipeline | plain ns/item | resumable ns/item | overhead | state_dict() µs "
          "| state JSON bytes | load + first item ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, make in PIPELINES.items():
        plain(make, n // 10), resumable(make, n // 10)  # warm-up
        times = {"plain": [], "resumable": []}
        for r in range(rounds):
            pair = [("plain", plain), ("resumable", resumable)]
            for who, run in (pair if r % 2 == 0 else pair[::-1]):
                times[who].append(run(make, n))
        base = statistics.median(times["plain"])
        tracked = statistics.median(times["resumable"])
        save, size, load = state_costs(make, n // 10, 200)
        print(f"| {name} | {base:.1f} | {tracked:.1f} | {100 * (tracked / base - 1):+.1f}% "
              f"| {save:.1f} | {size:,} | {load:.1f} |", flush=True)
        print(f"  {name}: done", file=sys.stderr)


if __name__ == "__main__":
    main()
