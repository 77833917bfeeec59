"""Worker processes: shoal's ProcessStreamer against pescador 3.0.0's ZMQStreamer.

Measures, side by side in one process (alternating rounds, median):

- small items (a dict of 10 float32 values): items per second;
- 4 MB arrays: throughput in MB/s;
- a CPU-bound generator (about 1 ms per item): the rate with 2 workers
  against the same generator run in the consumer's process;
- the consumer's peak memory with 4 MB items and a slow consumer (each
  library in a fresh process).

Run from the repository root: ``python benchmarks/bench_parallel.py [--quick]``.
Benchmarks are not tests: nothing here asserts.
"""

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import time
from pathlib import Path


import pescador
import shoal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parallel_sources as sources  # noqa: E402  (module-level: workers import it)


def rate(iterable, n, warm_up=50):
    """Items per second to consume ``n`` items of ``iterable``, after ``warm_up`` items.

    The warm-up leaves out starting the workers: this measures the steady state.
    """
    items = iter(iterable)
    for _ in range(warm_up):
        next(items)
    start = time.perf_counter()
    for _ in range(n):
        next(items)
    elapsed = time.perf_counter() - start
    items.close()
    return n / elapsed


def compare(name, make_pescador, make_shoal, n, rounds, unit=1.0, unit_name="items/s"):
    rates = {"pescador": [], "shoal": []}
    for r in range(rounds):
        pair = [("pescador", make_pescador), ("shoal", make_shoal)]
        for who, make in (pair if r % 2 == 0 else pair[::-1]):
            stream = make()
            rates[who].append(rate(stream, n) * unit)
    p, s = statistics.median(rates["pescador"]), statistics.median(rates["shoal"])
    print(f"| {name} | {p:,.0f} {unit_name} | {s:,.0f} {unit_name} | {s / p:.2f}x |", flush=True)


def peak_memory(library, n_items=400, prefetch=4):
    """The consumer's peak memory growth (MB) for a slow consumer, measured in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--peak-memory", library, str(n_items), str(prefetch)],
        capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _high_water_mb():
    """This process's peak resident memory (VmHWM), in MB.

    Not getrusage's ru_maxrss: Linux carries that over from the parent of a
    process started by fork and exec, so a child of a large process starts high.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _peak_memory_here(library, n_items, prefetch):
    base = _high_water_mb()
    if library == "pescador":
        stream = pescador.ZMQStreamer(pescador.Streamer(sources.arrays_4mb, n_items))
    else:
        stream = shoal.ProcessStreamer(shoal.Streamer(sources.arrays_4mb, n_items),
                                       prefetch=prefetch)
    items = iter(stream)
    for i, _ in enumerate(items):
        time.sleep(0.05)  # a slow consumer: 20 items a second
        if i == 40:
            break
    peak = _high_water_mb()
    items.close()
    print(peak - base)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peak-memory", nargs=3, metavar=("LIBRARY", "N_ITEMS", "PREFETCH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_memory:
        library, n_items, prefetch = args.peak_memory
        _peak_memory_here(library, int(n_items), int(prefetch))
        return
    rounds = 3 if args.quick else 5
    scale = 0.3 if args.quick else 1.0
    print("| pipeline | pescador ZMQStreamer | shoal | ratio |")
    print("|---|---:|---:|---:|")
    n_small = int(100_000 * scale)
    compare("small items (dict of 10 float32)",
            lambda: pescador.ZMQStreamer(pescador.Streamer(sources.small, 10**9)),
            lambda: shoal.ZMQStreamer(shoal.Streamer(sources.small, 10**9)),
            n_small, rounds)
    n_big = int(500 * scale)
    compare("4 MB arrays",
            lambda: pescador.ZMQStreamer(pescador.Streamer(sources.arrays_4mb, 10**9)),
            lambda: shoal.ZMQStreamer(shoal.Streamer(sources.arrays_4mb, 10**9)),
            n_big, rounds, unit=4.0, unit_name="MB/s")
    n_cpu = int(2000 * scale)
    one = statistics.median(rate(shoal.Streamer(sources.busy, 10**9), n_cpu)
                            for _ in range(rounds))
    two = statistics.median(
        rate(shoal.ProcessStreamer(shoal.Streamer(sources.busy, 10**9), n_workers=2,
                                   ordered=False), n_cpu)
        for _ in range(rounds))
    zmq = statistics.median(
        rate(pescador.ZMQStreamer(pescador.Streamer(sources.busy, 10**9)), n_cpu)
        for _ in range(rounds))
    print(f"| CPU-bound, ~1 ms/item: in-process {one:,.0f} items/s | ZMQStreamer {zmq:,.0f} "
          f"items/s | 2 workers {two:,.0f} items/s | {two / one:.2f}x in-process |")
    print()
    # pescador's workers outlive their stream for up to its timeout: let them go first.
    deadline = time.monotonic() + 15
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    mem = {lib: peak_memory(lib) for lib in ("pescador", "shoal")}
    print(f"Peak growth of the consumer's memory, 4 MB items, a consumer taking 20 a second "
          f"for 2 s: pescador {mem['pescador']:,.0f} MB, shoal (prefetch=4) {mem['shoal']:,.0f} MB "
          "(shoal's includes the pages of its 64 MB shared-memory ring it has read)")


if __name__ == "__main__":
    main()
