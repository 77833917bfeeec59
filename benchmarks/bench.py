#!/usr/bin/env python
"""Benchmark shoal against pescador 3.0.0, pipeline by pipeline.

For every pipeline the same stream is built in both libraries, with the same
constructor arguments, and a fixed number of items is consumed from it. The
two libraries are measured alternately, round after round, so that machine
noise hits both alike; the median (or, with ``--best``, the fastest) round of
each library is reported in nanoseconds per item, with the speed-up
``pescador time / shoal time`` and whether it meets the pipeline's target.

Run ``python benchmarks/bench.py --help`` for the options. This is a
benchmark, not a test: it asserts nothing and always exits 0 once it ran.
"""

import argparse
import gc
import itertools
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

try:
    import numpy as np
    import pescador

    import shoal
except ImportError as exc:  # pragma: no cover - a setup problem, not a result
    sys.exit(
        f"cannot import {exc.name!r}: install the benchmark extra first, "
        "with  pip install -e \".[bench]\"  from the repository root"
    )

LIBS = {"pescador": pescador, "shoal": shoal}
INF = 1 << 62  # the length of an "infinite" leaf stream

N_ACTIVE = 8
RATE = 16
BATCH = 64
ARRAY = np.arange(128, dtype=np.float32)  # the array of every buffered item


# -- leaf streams --------------------------------------------------------------


def leaf(n):
    """The default leaf: n small dicts."""
    for i in range(n):
        yield {"x": i}


def leaf_xy(n):
    """n dicts with two keys, for tuples / keras_tuples."""
    for i in range(n):
        yield {"x": i, "y": -i}


def leaf_array(n):
    """n dicts holding a float32 array of 128 values and an int."""
    array = ARRAY
    for i in range(n):
        yield {"x": array, "y": i}


def zipf_weights(n):
    """Non-uniform weights 1, 1/2, ..., 1/n (a fresh list for every mux)."""
    return [1.0 / (i + 1) for i in range(n)]


# -- the pipelines ---------------------------------------------------------------


@dataclass
class Case:
    """One pipeline.

    ``build(lib, n)`` returns a fresh iterable of ``n`` items made with
    ``lib`` (``None`` for the no-library baseline); ``items`` maps each
    contender to the number of items to consume in a full run.
    """

    name: str
    build: object
    items: dict
    target: float = None  # the speed-up shoal should reach, if any
    baseline: bool = False  # also time a bare generator (as contender "bare")
    max_overhead: float = None  # shoal / bare, when baseline is set
    contenders: list = field(default_factory=lambda: ["pescador", "shoal"])


def take(iterable, n):
    return itertools.islice(iter(iterable), n)


def streamers(lib, n_streams, length, source=leaf):
    return [lib.Streamer(source, length) for _ in range(n_streams)]


def build_streamer(lib, n):
    if lib is None:
        return leaf(n)
    return lib.Streamer(leaf, n)


def build_chain(mode):
    def build(lib, n):
        if mode == "exhaustive":
            return lib.ChainMux(streamers(lib, 10, n // 10), mode=mode)
        return take(lib.ChainMux(streamers(lib, 10, 1000), mode=mode), n)

    return build


def build_round_robin(mode):
    def build(lib, n):
        if mode == "exhaustive":
            return lib.RoundRobinMux(streamers(lib, 10, n // 10), mode=mode, random_state=0)
        mux = lib.RoundRobinMux(streamers(lib, 10, 1000), mode=mode, random_state=0)
        return take(mux, n)

    return build


def build_shuffled(n_streams, weighted):
    def build(lib, n):
        weights = zipf_weights(n_streams) if weighted else None
        mux = lib.ShuffledMux(streamers(lib, n_streams, INF), weights=weights, random_state=0)
        return take(mux, n)

    return build


def build_stochastic(n_streams, mode, dist, weighted=True):
    def build(lib, n):
        mux = lib.StochasticMux(
            streamers(lib, n_streams, INF),
            n_active=min(N_ACTIVE, n_streams),
            rate=RATE,
            weights=zipf_weights(n_streams) if weighted else None,
            mode=mode,
            prune_empty_streams=True,
            dist=dist,
            random_state=0,
        )
        if mode == "exhaustive":
            # A pass activates each streamer once (about n_streams * RATE
            # items): cycle pass after pass, as an epoch loop would.
            return take(mux.cycle(), n)
        return take(mux, n)

    return build


def build_buffer(lib, n):
    return lib.buffer_stream(lib.Streamer(leaf_array, n * BATCH), BATCH)


def build_cache(lib, n):
    # pescador's cache needs an iterator; give both libraries the same one.
    return take(lib.cache(lib.Streamer(leaf, INF).iterate(), 64, prob=0.5, random_state=0), n)


def build_tuples(lib, n):
    return lib.tuples(lib.Streamer(leaf_xy, n), "x", "y")


def build_keras_tuples(lib, n):
    return lib.keras_tuples(lib.Streamer(leaf_xy, n), inputs="x", outputs="y")


def cases():
    """Every pipeline, with its full-run item counts."""
    out = [
        Case("Streamer(gen, n)", build_streamer,
             {"bare": 1_000_000, "pescador": 1_000_000, "shoal": 1_000_000},
             baseline=True, max_overhead=1.3,
             contenders=["bare", "pescador", "shoal"]),
    ]
    for mode in ("exhaustive", "cycle"):
        out.append(Case(f"ChainMux 10 {mode}", build_chain(mode),
                        {"pescador": 300_000, "shoal": 1_000_000}, target=5))
    for mode in ("exhaustive", "cycle", "permuted_cycle"):
        out.append(Case(f"RoundRobinMux 10 {mode}", build_round_robin(mode),
                        {"pescador": 300_000, "shoal": 1_000_000}, target=4))
    for n_streams in (10, 100):
        for weighted in (False, True):
            kind = "weighted" if weighted else "uniform"
            out.append(Case(f"ShuffledMux {n_streams} {kind}",
                            build_shuffled(n_streams, weighted),
                            {"pescador": 20_000, "shoal": 500_000}, target=40))
    for n_streams in (10, 100):
        for mode in ("with_replacement", "single_active", "exhaustive"):
            for dist in ("binomial", "constant", "poisson"):
                out.append(Case(
                    f"StochasticMux {n_streams} {mode} {dist}",
                    build_stochastic(n_streams, mode, dist),
                    {"pescador": 20_000, "shoal": 500_000}, target=40))
    # The pipelines above weigh their streamers 1, 1/2, ..., 1/n; with equal
    # weights each item's slot is picked without a search.
    out.append(Case("StochasticMux 10 with_replacement binomial, equal weights",
                    build_stochastic(10, "with_replacement", "binomial", weighted=False),
                    {"pescador": 20_000, "shoal": 500_000}, target=40))
    out += [
        Case(f"buffer_stream {BATCH} x {{x: f32[128], y: int}} (per batch)", build_buffer,
             {"pescador": 5_000, "shoal": 5_000}, target=2),
        Case("cache(n_cache=64, prob=0.5)", build_cache,
             {"pescador": 100_000, "shoal": 1_000_000}),
        Case("tuples(x, y)", build_tuples, {"pescador": 1_000_000, "shoal": 1_000_000}),
        Case("keras_tuples(x -> y)", build_keras_tuples,
             {"pescador": 1_000_000, "shoal": 1_000_000}),
    ]
    return out


# -- timing ----------------------------------------------------------------------


def run_once(case, who, n):
    """Seconds to consume a fresh stream of n items (construction not timed)."""
    stream = case.build(LIBS.get(who), n)
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in stream:
            pass
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed


def count_items(case, who, n):
    count = 0
    for _ in case.build(LIBS.get(who), n):
        count += 1
    return count


def measure(case, scale, rounds, best):
    """ns/item of each contender, measured alternately."""
    # Multiples of 10, so that 10 chained streamers give exactly n items.
    n_items = {who: max(10, int(round(case.items[who] * scale, -1))) for who in case.contenders}
    # Warm-up: one untimed pass each, which also counts the items.
    counts = {who: count_items(case, who, n_items[who]) for who in case.contenders}
    for who, count in counts.items():
        if count != n_items[who]:
            print(f"  note: {case.name}: {who} gave {count} items, not {n_items[who]}",
                  file=sys.stderr)
    times = {who: [] for who in case.contenders}
    for r in range(rounds):
        order = case.contenders if r % 2 == 0 else case.contenders[::-1]
        for who in order:
            times[who].append(run_once(case, who, n_items[who]) / max(counts[who], 1))
    pick = min if best else statistics.median
    return {who: pick(ts) * 1e9 for who, ts in times.items()}, counts


# -- report ----------------------------------------------------------------------


def machine_line():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    return (
        f"Machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()} "
        f"({platform.python_implementation()}); numpy {np.__version__}; "
        f"pescador {pescador.__version__}; shoal {shoal.__version__}"
    )


def fmt_ns(value):
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def table_rows(results):
    rows = []
    for case, ns in results:
        if case.baseline:
            bare = ns["bare"]
            over = ns["shoal"] / bare
            rows.append([
                "bare generator (no library, baseline)", "-", fmt_ns(bare), "-", "-", "-",
            ])
        speedup = ns["pescador"] / ns["shoal"]
        if case.target is None:
            target, status = "-", "-"
        else:
            target = f">={case.target:g}x"
            status = "ok" if speedup >= case.target else "MISS"
        rows.append([case.name, fmt_ns(ns["pescador"]), fmt_ns(ns["shoal"]),
                     f"{speedup:.2f}x", target, status])
        if case.baseline:
            rows.append([
                f"{case.name} / bare generator (overhead)",
                f"{ns['pescador'] / bare:.2f}x", f"{over:.2f}x", "-",
                f"shoal <={case.max_overhead:g}x",
                "ok" if over <= case.max_overhead else "MISS",
            ])
    return rows


def markdown(rows):
    header = ["pipeline", "pescador ns/item", "shoal ns/item", "speed-up", "target", ""]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    align = ["<", ">", ">", ">", "<", "<"]

    def line(cells):
        return "| " + " | ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)) + " |"

    sep = "|" + "|".join(
        ("-" * (w + 1) + ":") if a == ">" else ("-" * (w + 2)) for a, w in zip(align, widths)
    ) + "|"
    return "\n".join([line(header), sep, *map(line, rows)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a fifth of the items and 3 rounds (well under a minute)")
    parser.add_argument("--only", action="append", metavar="SUBSTRING", default=[],
                        help="run only the pipelines whose name contains SUBSTRING "
                             "(case-insensitive; repeat to select several)")
    parser.add_argument("--rounds", type=int, help="rounds per pipeline (default 7, quick 3)")
    parser.add_argument("--scale", type=float,
                        help="multiply every item count (default 1, quick 0.2)")
    parser.add_argument("--best", action="store_true",
                        help="report each library's fastest round instead of the median")
    parser.add_argument("--list", action="store_true", help="list the pipelines and exit")
    args = parser.parse_args(argv)

    selected = cases()
    if args.only:
        wanted = [s.lower() for s in args.only]
        selected = [c for c in selected if any(s in c.name.lower() for s in wanted)]
    if args.list:
        for case in selected:
            print(case.name)
        return 0
    if not selected:
        parser.error(f"no pipeline matches {args.only}")
    rounds = args.rounds or (3 if args.quick else 7)
    scale = args.scale or (0.2 if args.quick else 1.0)

    print(machine_line(), file=sys.stderr)
    print(f"{'best' if args.best else 'median'} of {rounds} alternating rounds, "
          f"item counts x{scale:g}", file=sys.stderr)
    started = time.perf_counter()
    results = []
    for case in selected:
        t0 = time.perf_counter()
        ns, counts = measure(case, scale, rounds, args.best)
        results.append((case, ns))
        detail = ", ".join(f"{who} {fmt_ns(v)} ns ({counts[who]:,} items)" for who, v in ns.items())
        print(f"  {case.name}: {detail}  [{time.perf_counter() - t0:.1f} s]", file=sys.stderr)

    print()
    print(machine_line())
    print(f"ns per item, {'best' if args.best else 'median'} of {rounds} alternating rounds; "
          "speed-up = pescador time / shoal time")
    print()
    rows = table_rows(results)
    print(markdown(rows))
    misses = [r[0] for r in rows if r[5] == "MISS"]
    print()
    print(f"targets missed: {len(misses)}" + (": " + "; ".join(misses) if misses else ""))
    print(f"total time {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
