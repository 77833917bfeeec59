"""Scaling with workers: shoal against bare processes (the hardware's ceiling) and DataLoader.

For each number of workers ``k`` (1 to cores - 1, or ``--workers``), in one
run, side by side:

(a) CPU-bound items: 256 file streamers under ``StochasticMux(n_active=32,
    rate=64)``, each item a dict of a small float32 array made with about
    0.5 ms of numpy work (calibrated on the machine). Items per second of
    ``k`` bare forked processes running their shares of the mux with no
    transport at all (the ceiling), ``ProcessStreamer`` ordered and as they
    come, PyTorch's ``DataLoader`` over ``shoal.torch.StreamDataset`` and over
    a map-style dataset doing the same work (``batch_size=None``: items one
    by one); and the workers' CPU time per item against the bare processes'.
(b) 4 MiB float32 arrays, each made afresh, one by one, MB/s: bare
    processes; a one-copy ceiling (bare processes that also copy each array
    once into one of 4 slots of shared memory, what a worker must do); shoal;
    DataLoader.
(c) Batches of 8 of those arrays (32 MiB) made in the workers
    (``buffer_stream``; DataLoader's ``batch_size=8``), against (b).

Every ratio is printed: shoal / bare, shoal / one-copy ceiling, batches /
one by one. torch is optional: without it, its columns are skipped.

Run from the repository root: ``python benchmarks/bench_scaling.py [--quick]
[--workers 1 2 4] [--json PATH]``. ``--json`` also writes every figure of
the run, with the machine and the date, to ``PATH`` (``docs/pictures.py``
draws ``docs/figures/scaling.json`` from it). Benchmarks are not tests:
nothing here asserts.
"""

import argparse
import datetime
import itertools
import json
import mmap
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import numpy as np

import shoal

try:
    import torch
    import torch.utils.data

    import shoal.torch
except ImportError:  # its columns are skipped
    torch = None

FORK = multiprocessing.get_context("fork")
ARRAY_VALUES = 2**20  # float32: 4 MiB
MB = 1e6


# -- the work ---------------------------------------------------------------------------


def work(seed, rounds):
    """One CPU-bound item: a dict of a small array, made with ``rounds`` passes of numpy."""
    x = np.arange(4096, dtype=np.float32) * np.float32(1e-4 * (seed % 97 + 1))
    for _ in range(rounds):
        x = np.sin(x)
    return {"x": x[:64].copy(), "seed": seed}


def calibrate(target_s=0.0005):
    """The rounds of :func:`work` that take about ``target_s`` seconds here."""
    rounds = 100
    for _ in range(3):
        start = time.perf_counter()
        for i in range(100):
            work(i, rounds)
        rounds = max(1, round(rounds * target_s / ((time.perf_counter() - start) / 100)))
    return rounds


def cpu_file(k, rounds, n=10**9):
    """A 'file' of CPU-bound items: item i of file k."""
    for i in range(n):
        yield work(k * 100_003 + i, rounds)


def cpu_mux(rounds):
    return shoal.StochasticMux([shoal.Streamer(cpu_file, k, rounds) for k in range(256)],
                               n_active=32, rate=64, random_state=0)


def arrays(w, n):
    """``n`` fresh 4 MiB float32 arrays (one pass over memory each)."""
    base = np.arange(ARRAY_VALUES, dtype=np.float32)
    for i in range(n):
        yield base + np.float32(i + w)


def array_mux(k, n):
    return shoal.ChainMux([shoal.Streamer(arrays, w, n // k + 8) for w in range(k)])


class MapStyle(torch.utils.data.Dataset if torch else object):
    """The same CPU-bound items, by index."""

    def __init__(self, rounds, n):
        self.rounds, self.n = rounds, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return work(i, self.rounds)


# -- bare processes -----------------------------------------------------------------------


def _bare_cpu(w, times, warm, k, rounds, n):
    items = iter(cpu_mux(rounds).shard(w, k))
    for _ in itertools.islice(items, warm):
        pass
    times[2 * w] = time.perf_counter()
    for _ in itertools.islice(items, n):
        pass
    times[2 * w + 1] = time.perf_counter()


def _bare_arrays(w, times, warm, n, path=None):
    slots = None
    if path:
        with open(path, "r+b") as f:
            ring = mmap.mmap(f.fileno(), 4 * ARRAY_VALUES * 4)
        slots = np.frombuffer(ring, dtype=np.float32).reshape(4, ARRAY_VALUES)
    for i, x in enumerate(arrays(w, n + warm)):
        if i == warm:
            times[2 * w] = time.perf_counter()
        if slots is not None:
            slots[i % 4] = x  # the one copy a worker makes
    times[2 * w + 1] = time.perf_counter()


def bare(k, target, warm, *args, shared=False):
    """Seconds for ``k`` forked processes running ``target(w, times, warm, *args)``, and their CPU seconds.

    Each process makes ``warm`` items first (as the loaders do), then notes
    when it starts and ends its timed items in ``times``.
    """
    times = FORK.RawArray("d", 2 * k)
    paths = []
    if shared:
        for _ in range(k):
            fd, path = tempfile.mkstemp(prefix="bench-scaling-", dir="/dev/shm")
            os.ftruncate(fd, 4 * ARRAY_VALUES * 4)
            os.close(fd)
            paths.append(path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    processes = [FORK.Process(target=target,
                              args=(w, times, warm, *args, *([paths[w]] if shared else [])))
                 for w in range(k)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    elapsed = max(times[1::2]) - min(times[0::2])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for path in paths:
        os.unlink(path)
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


# -- timing a loader ----------------------------------------------------------------------


def timed(make, n, warm_up):
    """(seconds to take ``n`` items after ``warm_up``, the workers' CPU seconds, items they made)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    loader = make()
    items = loader.iterator() if isinstance(loader, shoal.ProcessStreamer) else iter(loader)
    for _ in range(warm_up):
        next(items)
    start = time.perf_counter()
    for _ in range(n):
        next(items)
    elapsed = time.perf_counter() - start
    made = None
    if isinstance(items, shoal.StreamIterator):
        made = sum(items.worker_stats().n_items)
        items.close()
    else:
        del items  # DataLoader's workers end with their iterator
    import gc
    gc.collect()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), made


def median_rates(contenders, rounds):
    """Median of each contender's rate over ``rounds`` rounds, in turn, reversed every other."""
    results = {name: [] for name in contenders}
    order = list(contenders)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            results[name].append(contenders[name]())
    return {name: statistics.median(values) for name, values in results.items()}


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


# -- the three workloads -------------------------------------------------------------------


def cpu_bound(k, n, rounds, n_rounds):
    warm = 64 * k
    cpu = {}

    def bare_rate():
        elapsed, seconds = bare(k, _bare_cpu, warm // k, k, rounds, n // k)
        cpu["bare"] = seconds / (n + warm)
        return n / elapsed

    def shoal_rate(ordered):
        def run():
            elapsed, seconds, made = timed(
                lambda: shoal.ProcessStreamer(cpu_mux(rounds), n_workers=k, ordered=ordered),
                n, warm)
            cpu["ordered" if ordered else "as they come"] = seconds / made
            return n / elapsed
        return run

    contenders = {"bare processes": bare_rate, "shoal ordered": shoal_rate(True),
                  "shoal as they come": shoal_rate(False)}
    if torch is not None:
        contenders["DataLoader(StreamDataset)"] = lambda: n / timed(
            lambda: torch.utils.data.DataLoader(shoal.torch.StreamDataset(cpu_mux(rounds)),
                                                batch_size=None, num_workers=k),
            n, warm)[0]
        contenders["DataLoader(map-style)"] = lambda: n / timed(
            lambda: torch.utils.data.DataLoader(MapStyle(rounds, 10**8), batch_size=None,
                                                num_workers=k),
            n, warm)[0]
    rates = median_rates(contenders, n_rounds)
    return rates, cpu


def large_arrays(k, n, n_rounds):
    item_mb = ARRAY_VALUES * 4 / MB
    warm = 4 * k

    def bare_rate(shared):
        return lambda: n * item_mb / bare(k, _bare_arrays, warm // k, n // k, shared=shared)[0]

    def loader(make, batch=1):
        # Batches warm up over 8 of them per worker: a worker's ring holds about
        # six batches in flight and in the consumer's hands, whose pages are
        # first written (and zeroed by the kernel) once an iteration.
        warm_up = warm if batch == 1 else 8 * k
        return lambda: (n // batch) * batch * item_mb / timed(make, n // batch, warm_up)[0]

    total = n + 16 * k + 64 * k
    contenders = {
        "bare processes": bare_rate(False),
        "one-copy ceiling": bare_rate(True),
        "shoal": loader(lambda: shoal.ProcessStreamer(array_mux(k, total), n_workers=k)),
        "shoal, batches of 8": loader(lambda: shoal.ProcessStreamer(
            shoal.Streamer(shoal.buffer_stream, array_mux(k, total), 8), n_workers=k), 8),
    }
    if torch is not None:
        contenders["DataLoader"] = loader(lambda: torch.utils.data.DataLoader(
            shoal.torch.StreamDataset(array_mux(k, total)), batch_size=None, num_workers=k))
        contenders["DataLoader, batches of 8"] = loader(lambda: torch.utils.data.DataLoader(
            shoal.torch.StreamDataset(array_mux(k, total)), batch_size=8, num_workers=k), 8)
    return median_rates(contenders, n_rounds)


def table(title, unit, rows):
    names = list(rows[0][1])
    print(f"\n{title} ({unit})\n")
    print("| workers | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for k, rates in rows:
        print(f"| {k} | " + " | ".join(f"{rates[name]:,.0f}" for name in names) + " |")


def cpu_model():
    """The processor's name from ``/proc/cpuinfo``, or None where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return None


def write_json(path, settings, cpu_rows, cpu_times, array_rows):
    """Write every figure of the run to ``path``, with the machine it ran on and the date.

    ``cpu_rows`` and ``array_rows`` are ``(workers, {contender: rate})`` as
    :func:`table` takes them (items/s, MB/s), ``cpu_times`` ``(workers, {loader:
    worker CPU seconds per item})``.
    """
    figures = {
        "machine": {"cores": os.cpu_count(), "cpu": cpu_model(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "torch": torch.__version__ if torch else None,
                    "shoal": shoal.__version__,
                    "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat()},
        "settings": settings,
        "cpu_bound": {"unit": "items/s", "rows": [
            {"workers": k, "rates": rates, "cpu_per_item_s": cpu}
            for (k, rates), (_, cpu) in zip(cpu_rows, cpu_times)]},
        "arrays": {"unit": "MB/s", "item_bytes": ARRAY_VALUES * 4, "rows": [
            {"workers": k, "rates": rates} for k, rates in array_rows]},
    }
    with open(path, "w") as f:
        json.dump(figures, f, indent=2)
        f.write("\n")
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer items and rounds: a few minutes on 2 cores")
    parser.add_argument("--workers", type=int, nargs="+",
                        help="the numbers of workers (default: 1 to cores - 1)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write every figure, the machine and the date to PATH")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 2
    workers = args.workers or list(range(1, max(2, cores)))
    n_rounds = 2 if args.quick else 3
    rounds = calibrate()
    print(f"{cores} cores; numpy work per CPU-bound item: {rounds} rounds (about 0.5 ms); "
          f"torch: {torch.__version__ if torch else 'not installed: its columns are skipped'}",
          file=sys.stderr)
    cpu_rows, cpu_times, array_rows = [], [], []
    for k in workers:
        n_cpu = (2000 if args.quick else 6000) * k
        n_arrays = (400 if args.quick else 1600) * k
        print(f"{k} worker(s): CPU-bound, {n_cpu} items...", file=sys.stderr)
        rates, cpu = cpu_bound(k, n_cpu, rounds, n_rounds)
        cpu_rows.append((k, rates))
        cpu_times.append((k, cpu))
        print(f"{k} worker(s): 4 MiB arrays, {n_arrays} items...", file=sys.stderr)
        array_rows.append((k, large_arrays(k, n_arrays, n_rounds)))

    table("(a) CPU-bound items", "items/s", cpu_rows)
    print("\n| workers | ordered / bare | as they come / bare |"
          + (" DataLoader(StreamDataset) / bare | DataLoader(map-style) / bare |" if torch else "")
          + " worker CPU per item: bare | ordered | as they come |")
    print("|---|---:|---:|" + ("---:|---:|" if torch else "") + "---:|---:|---:|")
    for (k, rates), (_, cpu) in zip(cpu_rows, cpu_times):
        bare_rate = rates["bare processes"]
        cells = [ratio(rates["shoal ordered"], bare_rate),
                 ratio(rates["shoal as they come"], bare_rate)]
        if torch:
            cells += [ratio(rates["DataLoader(StreamDataset)"], bare_rate),
                      ratio(rates["DataLoader(map-style)"], bare_rate)]
        cells += [f"{cpu['bare'] * 1e3:.3f} ms",
                  f"{cpu['ordered'] * 1e3:.3f} ms ({ratio(cpu['ordered'], cpu['bare'])})",
                  f"{cpu['as they come'] * 1e3:.3f} ms ({ratio(cpu['as they come'], cpu['bare'])})"]
        print(f"| {k} | " + " | ".join(cells) + " |")

    table("(b, c) 4 MiB float32 arrays", "MB/s", array_rows)
    print("\n| workers | shoal / bare | shoal / one-copy ceiling | one-copy ceiling / bare | "
          "shoal batches of 8 / one by one |" + (" DataLoader / bare |" if torch else ""))
    print("|---|---:|---:|---:|---:|" + ("---:|" if torch else ""))
    for k, rates in array_rows:
        cells = [ratio(rates["shoal"], rates["bare processes"]),
                 ratio(rates["shoal"], rates["one-copy ceiling"]),
                 ratio(rates["one-copy ceiling"], rates["bare processes"]),
                 ratio(rates["shoal, batches of 8"], rates["shoal"])]
        if torch:
            cells.append(ratio(rates["DataLoader"], rates["bare processes"]))
        print(f"| {k} | " + " | ".join(cells) + " |")
    if not torch:
        print("\n(torch is not installed: the DataLoader columns are skipped.)")
    if args.json:
        settings = {"quick": args.quick, "workers": workers, "rounds": n_rounds,
                    "work_rounds_per_item": rounds}
        write_json(args.json, settings, cpu_rows, cpu_times, array_rows)
        print(f"figures written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
