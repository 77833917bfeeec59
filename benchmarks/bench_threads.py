"""Threads or processes: ProcessStreamer(backend="thread") against worker processes.

For each number of workers ``k`` (1 to cores, or ``--workers``), in one run,
side by side, items per second of the same stream run by ``k`` worker
threads and by ``k`` forked worker processes (ordered, default settings),
and of the same generator in the consumer itself (no workers), on three
workloads:

- ``fft, small items``: each item an FFT of a 4 MiB float32 array (numpy
  releases the interpreter lock), the item a small array of its result;
- ``fft, 4 MiB items``: the same work, the item the 4 MiB float32 result
  (what a decoder gives): processes move it through shared memory, threads
  hand it on as it is;
- ``pure Python``: each item a loop of Python arithmetic (about 1 ms),
  which threads run one at a time.

Each figure is the best of ``--rounds`` rounds, threads and processes
alternating (their order reversed every other round), timed from the first
item to the ``n``-th (the workers' start is left out). The ratio printed is
threads / processes.

Run from the repository root: ``python benchmarks/bench_threads.py
[--quick] [--workers 1 2]``. Benchmarks are not tests: nothing here asserts.
"""

import argparse
import os
import sys
import time
from itertools import islice

import numpy as np

import shoal

SIZE = 2**20  # float32 values: 4 MiB


def fft_items(big):
    """FFTs of a 4 MiB array, for ever: the result (4 MiB) if ``big``, else 64 values of it."""
    x = np.random.default_rng((shoal.worker_info() or (0, 1))[0]).standard_normal(SIZE)
    x = x.astype(np.float32)
    i = 0
    while True:
        y = np.fft.irfft(np.fft.rfft(x) * np.float32(1.0 + i % 7), n=SIZE).astype(np.float32)
        yield {"x": y if big else y[:64].copy(), "i": i}
        i += 1


def python_items(n_ops=20_000):
    """Items made by a loop of Python arithmetic, for ever."""
    i = 0
    while True:
        total = 0
        for j in range(n_ops):
            total += (i * j) % 7
        yield {"total": total, "i": i}
        i += 1


WORKLOADS = {
    "fft, small items": (lambda: shoal.Streamer(fft_items, False), 40),
    "fft, 4 MiB items": (lambda: shoal.Streamer(fft_items, True), 40),
    "pure Python": (lambda: shoal.Streamer(python_items), 300),
}


def rate(stream, n):
    """Items per second of ``stream``, from its first item to its ``n``-th."""
    it = iter(stream)
    try:
        next(it)  # the workers have started
        start = time.perf_counter()
        for _ in islice(it, n - 1):
            pass
        return (n - 1) / (time.perf_counter() - start)
    finally:
        it.close()


def contenders(make, k):
    return {
        "threads": lambda: shoal.ProcessStreamer(make(), n_workers=k, backend="thread"),
        "processes": lambda: shoal.ProcessStreamer(make(), n_workers=k, start_method="fork"),
    }


def best_rates(named, n, rounds):
    """The best rate of each of ``named`` (name: a maker of streams), alternating, over ``rounds``."""
    best = dict.fromkeys(named, 0.0)
    names = list(named)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            best[name] = max(best[name], rate(named[name](), n))
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds and half the items")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, 2 --quick)")
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="numbers of workers (default 1 to the number of cores)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    scale = 0.5 if args.quick else 1.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts = args.workers or list(range(1, cores + 1))
    print(f"{cores} cores; best of {rounds} rounds; items/s", file=sys.stderr)
    print("| workload | workers | in the consumer | threads | processes | threads / processes |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (make, n) in WORKLOADS.items():
        n = max(4, int(n * scale))
        inline = best_rates({"inline": lambda make=make: make()}, n, rounds)["inline"]
        for k in counts:
            best = best_rates(contenders(make, k), n * k, rounds)
            print(f"| {name} | {k} | {inline:,.1f} | {best['threads']:,.1f} | "
                  f"{best['processes']:,.1f} | {best['threads'] / best['processes']:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
