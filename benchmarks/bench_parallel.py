"""Worker processes: shoal's ProcessStreamer against pescador 3.0.0's ZMQStreamer.

Measures, side by side in one process (alternating rounds, median):

- 1 MiB float32 arrays: throughput in MB/s of a bare shared-memory ring (a
  worker copies each array in, the consumer copies it out into a new array:
  the reference for what the machine allows), of 64 MiB (shoal's ring size)
  and of 4 MiB (the part of its ring shoal uses for such items, which stays
  in the processor's cache), pescador's ZMQStreamer, and ProcessStreamer
  with 1 and 2 workers;
- small items (a dict of 10 float32 values): items per second, pescador
  against ProcessStreamer with 2 workers, ordered and as they come, and the
  cost of tracking the workers' states (``iterator()``) against plain
  iteration;
- the time to restore a ProcessStreamer iteration 1e3 and 1e5 items in;
- 4 MB arrays: throughput in MB/s;
- a CPU-bound generator (about 1 ms per item): the rate with 2 workers
  against the same generator run in the consumer's process;
- the consumer's peak memory with 4 MB items and a slow consumer (each
  library in a fresh process);
- ``ProcessStreamer(Shares(mux, 8))`` against a plain ``ProcessStreamer(mux)``
  over the same mux (a RoundRobinMux of 8 streamers of small items): items
  per second with 1 and 2 workers, items one by one and batches of 64 made
  in the workers (best of alternating rounds; issue 17's target: 0.95x).

Run from the repository root: ``python benchmarks/bench_parallel.py [--quick]``
(``--shares`` runs only the last comparison).
Benchmarks are not tests: nothing here asserts.
"""

import argparse
import mmap
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pescador

import shoal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parallel_sources as sources


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
    (getattr(items, "close", None) or iterable.close)()
    return n / elapsed


def bare_ring(n, item_bytes=2**20, ring_bytes=64 * 2**20):
    """The reference: ``n`` arrays through a shared-memory ring and nothing else."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="bench-ring-", dir=folder)
    os.ftruncate(fd, ring_bytes)
    ring = mmap.mmap(fd, ring_bytes)
    os.close(fd)
    view = np.frombuffer(ring, dtype=np.uint8)
    counters = multiprocessing.get_context("fork").RawArray("q", 2)
    worker = multiprocessing.get_context("fork").Process(
        target=sources.ring_worker, args=(path, ring_bytes, item_bytes, counters, n))
    worker.start()
    n_slots = ring_bytes // item_bytes
    try:
        for k in range(n):
            while counters[0] <= k:
                time.sleep(0)
            slot = (k % n_slots) * item_bytes
            out = np.empty(item_bytes // 4, dtype=np.float32)  # a new array, the consumer's own
            out.view(np.uint8)[:] = view[slot:slot + item_bytes]
            counters[1] = k + 1
            yield {"x": out}
    finally:
        worker.terminate()  # it may wait for ring space the consumer will not free
        worker.join()
        del view
        ring.close()
        os.unlink(path)


def alternate(contenders, n, rounds, unit=1.0, pick=statistics.median):
    """Median rate (or ``pick``'s) of each contender, measured in turn, the order reversed every round."""
    rates = {name: [] for name in contenders}
    order = list(contenders)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            rates[name].append(rate(contenders[name](), n) * unit)
    return {name: pick(values) for name, values in rates.items()}


def shares_against_plain(n_items, rounds, n_shares=8, batch=64):
    """``ProcessStreamer(Shares(mux, n_shares))`` against ``ProcessStreamer(mux)``, the same mux.

    Best of alternating rounds: on a shared machine the best round is the
    one least disturbed by other work, for both alike.
    """
    def mux():
        return shoal.RoundRobinMux([shoal.Streamer(sources.small, 10**9) for _ in range(8)])

    def batched(stream):
        return shoal.Streamer(shoal.buffer_stream, stream, batch)

    print(f"Shares(mux, {n_shares}) against the plain split of the same mux (a RoundRobinMux of "
          "8 streamers of dicts of 10 float32), items/s, best of alternating rounds:")
    print("| workers | what crosses | ProcessStreamer(mux) | ProcessStreamer(Shares(mux, "
          f"{n_shares})) | Shares / plain |")
    print("|---:|---|---:|---:|---:|")
    for n_workers in (1, 2):
        for what, n, unit, wrap in (("items", n_items, 1, lambda s: s),
                                    (f"batches of {batch}", n_items // batch, batch, batched)):
            found = alternate({
                "plain": lambda wrap=wrap, w=n_workers: shoal.ProcessStreamer(wrap(mux()),
                                                                              n_workers=w),
                "shares": lambda wrap=wrap, w=n_workers: shoal.ProcessStreamer(
                    wrap(shoal.Shares(mux(), n_shares)), n_workers=w),
            }, n, rounds, unit=unit, pick=max)
            print(f"| {n_workers} | {what} | {found['plain']:,.0f} | {found['shares']:,.0f} | "
                  f"{found['shares'] / found['plain']:.2f}x |", flush=True)


def restore_seconds(position, rounds):
    """Median seconds to load a state saved ``position`` items in, and take the next item."""
    def make():
        files = shoal.ChainMux([shoal.Streamer(sources.rows, 10**6, k) for k in range(8)])
        return shoal.ProcessStreamer(files, n_workers=2)

    it = make().iterator()
    for _ in range(position):
        next(it)
    state = it.state_dict()
    it.close()
    times = []
    for _ in range(rounds):
        resumed = make().iterator()
        start = time.perf_counter()
        resumed.load_state_dict(state)
        next(resumed)
        times.append(time.perf_counter() - start)
        resumed.close()
    return statistics.median(times)


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
    parser.add_argument("--shares", action="store_true",
                        help="run only the comparison of Shares with the plain split")
    parser.add_argument("--peak-memory", nargs=3, metavar=("LIBRARY", "N_ITEMS", "PREFETCH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_memory:
        library, n_items, prefetch = args.peak_memory
        _peak_memory_here(library, int(n_items), int(prefetch))
        return
    rounds = 3 if args.quick else 5
    scale = 0.3 if args.quick else 1.0
    if args.shares:
        shares_against_plain(int(200_000 * scale), 2 * rounds)
        return

    n_mib = int(2000 * scale)
    mb = alternate({
        "ring": lambda: bare_ring(n_mib + 100),
        "ring 4 MiB": lambda: bare_ring(n_mib + 100, ring_bytes=4 * 2**20),
        "pescador": lambda: pescador.ZMQStreamer(pescador.Streamer(sources.arrays_1mib, 10**9)),
        "shoal 1 worker": lambda: shoal.ProcessStreamer(shoal.Streamer(sources.arrays_1mib, 10**9)),
        "shoal 2 workers": lambda: shoal.ProcessStreamer(
            shoal.Streamer(sources.arrays_1mib, 10**9), n_workers=2),
    }, n_mib, rounds, unit=2**20 / 1e6)
    print("1 MiB float32 arrays, MB/s (median of alternating rounds):")
    print("| bare ring, 64 MiB | bare ring, 4 MiB | pescador ZMQStreamer | shoal, 1 worker | "
          "shoal, 2 workers | 1 worker / ring | 1 worker / 4 MiB ring | 1 worker / pescador | "
          "2 workers / 1 worker |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {mb['ring']:,.0f} | {mb['ring 4 MiB']:,.0f} | {mb['pescador']:,.0f} | "
          f"{mb['shoal 1 worker']:,.0f} | {mb['shoal 2 workers']:,.0f} | "
          f"{mb['shoal 1 worker'] / mb['ring']:.2f}x | "
          f"{mb['shoal 1 worker'] / mb['ring 4 MiB']:.2f}x | "
          f"{mb['shoal 1 worker'] / mb['pescador']:.2f}x | "
          f"{mb['shoal 2 workers'] / mb['shoal 1 worker']:.2f}x |", flush=True)
    print()

    n_small = int(100_000 * scale)
    small = alternate({
        "pescador": lambda: pescador.ZMQStreamer(pescador.Streamer(sources.small, 10**9)),
        "ordered": lambda: shoal.ProcessStreamer(shoal.Streamer(sources.small, 10**9),
                                                 n_workers=2),
        "as they come": lambda: shoal.ProcessStreamer(shoal.Streamer(sources.small, 10**9),
                                                      n_workers=2, ordered=False),
        "plain": lambda: shoal.ProcessStreamer(shoal.Streamer(sources.small, 10**9)),
        "tracked": lambda: shoal.ProcessStreamer(shoal.Streamer(sources.small, 10**9)).iterator(),
    }, n_small, rounds)
    print("Small items (dict of 10 float32), items/s:")
    print("| pescador ZMQStreamer | shoal, 2 workers, ordered | shoal, 2 workers, as they come | "
          "ordered / as they come | ordered / pescador |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {small['pescador']:,.0f} | {small['ordered']:,.0f} | {small['as they come']:,.0f} | "
          f"{small['ordered'] / small['as they come']:.2f}x | "
          f"{small['ordered'] / small['pescador']:.2f}x |")
    print()
    print(f"Tracking the workers' states (1 worker): iterator() {small['tracked']:,.0f} items/s, "
          f"plain iteration {small['plain']:,.0f} items/s: "
          f"{small['tracked'] / small['plain']:.2f}x", flush=True)
    near, far = restore_seconds(1000, rounds), restore_seconds(100_000, rounds)
    print(f"Restoring a ProcessStreamer (2 workers, a ChainMux of 8 resumable sources) and "
          f"taking the next item: {near * 1e3:.0f} ms at 1e3 items in, {far * 1e3:.0f} ms at "
          f"1e5 items in", flush=True)
    print()
    print("| pipeline | pescador ZMQStreamer | shoal | ratio |")
    print("|---|---:|---:|---:|")
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
          "(shoal's arrays are views of its shared-memory ring: pages the consumer reads count)")
    print()
    shares_against_plain(int(200_000 * scale), 2 * rounds)


if __name__ == "__main__":
    main()
