"""Feeding a training step: how close each loader comes to data already on the device.

A small conv net takes SGD steps on batches of images (on CUDA when it is
available, else on the CPU). Measured side by side in one process, in
steps per second and as a fraction of the upper bound:

- the upper bound: the same step on batches already on the device;
- shoal batches made in the consumer (``Streamer(buffer_stream, mux, B)``),
  converted by a plain loop (``torch.from_numpy(x).to(device)``) and
  through ``shoal.torch.to_device``;
- shoal batches made in worker processes (a ``ProcessStreamer`` over the
  same stream), the same two ways;
- PyTorch's ``DataLoader(StreamDataset(mux), batch_size=B, num_workers=W,
  pin_memory=<CUDA>)``, each batch then moved with ``.to(device,
  non_blocking=True)``.

Two kinds of items: ``light`` (an image taken from memory) and ``heavy``
(about ``--heavy-ms`` of numpy work each). Last, without any step, the
cost per batch of ``to_device`` against the plain loop (what the feed
itself adds, when nothing hides it).

Run from the repository root: ``python benchmarks/bench_gpu_feed.py
[--quick]``; ``--quick`` runs in under a minute on two CPU cores.
Benchmarks are not tests: nothing here asserts.
"""

import argparse
import itertools
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import shoal
from shoal.torch import StreamDataset, to_device

N_FILES = 64
N_CLASSES = 10


# -- the data: module level, for worker processes started any way


def images(file, size, heavy_repeats):
    """One file of images: light (taken from memory) or heavy (numpy work each)."""
    rng = np.random.default_rng(file)
    pool = rng.random((16, 3, size, size), dtype=np.float32)
    for k in itertools.count():
        image = pool[k % 16]
        for _ in range(heavy_repeats):
            image = np.sqrt(image * image + 0.5) - 0.5  # stands for decoding, augmenting
        yield {"image": image, "label": np.int64((file + k) % N_CLASSES)}


def batches(size, batch_size, heavy_repeats):
    files = [shoal.Streamer(images, f, size, heavy_repeats) for f in range(N_FILES)]
    mux = shoal.StochasticMux(files, n_active=16, rate=64, random_state=0)
    return mux, shoal.Streamer(shoal.buffer_stream, mux, batch_size)


def calibrate_heavy(size, ms):
    """The number of repeats of the heavy work that takes about ``ms`` per image."""
    image = np.random.default_rng(0).random((3, size, size), dtype=np.float32)
    n = 50
    start = time.perf_counter()
    for _ in range(n):
        image = np.sqrt(image * image + 0.5) - 0.5
    per_repeat = (time.perf_counter() - start) / n
    return max(1, round(ms / 1e3 / per_repeat))


# -- the step


def make_net(device, width):
    a, b, c = 32 * width, 64 * width, 128 * width
    net = nn.Sequential(
        nn.Conv2d(3, a, 3, padding=1), nn.ReLU(),
        nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(b, c, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, N_CLASSES),
    ).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(batch["image"]), batch["label"])
        loss.backward()
        optimizer.step()
        return loss

    return step


def steps_per_second(step, feed, n_steps, n_warm_up, device):
    """Steps per second over ``n_steps`` batches of ``feed``, after ``n_warm_up``."""
    it = iter(feed)
    try:
        for _ in range(n_warm_up):
            step(next(it))
        synchronize(device)
        start = time.perf_counter()
        for _ in range(n_steps):
            step(next(it))
        synchronize(device)
        return n_steps / (time.perf_counter() - start)
    finally:
        close = getattr(it, "close", None) or getattr(feed, "close", None)
        if close is not None:
            close()
        elif hasattr(it, "_shutdown_workers"):  # a DataLoader's iterator
            it._shutdown_workers()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the loaders


def plain(stream, device):
    """The plain loop: convert each batch with torch.from_numpy and move it."""
    for batch in stream:
        yield {key: torch.from_numpy(value).to(device, non_blocking=True)
               for key, value in batch.items()}


def loaders(args, device, heavy_repeats):
    mux, stream = batches(args.size, args.batch_size, heavy_repeats)
    workers = shoal.ProcessStreamer(stream, n_workers=args.workers)
    cuda = device.type == "cuda"

    def dataloader():
        loader = DataLoader(StreamDataset(mux), batch_size=args.batch_size,
                            num_workers=args.workers, pin_memory=cuda)
        for batch in loader:
            yield {key: value.to(device, non_blocking=True) for key, value in batch.items()}

    return {
        "consumer, plain loop": lambda: plain(stream, device),
        "consumer, to_device": lambda: to_device(stream, device),
        "workers, plain loop": lambda: plain(workers, device),
        "workers, to_device": lambda: to_device(workers, device),
        f"DataLoader(StreamDataset), pin_memory={cuda}": dataloader,
    }


def upper_bound(args, device):
    """Batches already on the device, cycled."""
    _, stream = batches(args.size, args.batch_size, 0)
    made = list(itertools.islice(to_device(stream, device), 8))
    return lambda: itertools.cycle(made)


def feed_cost(args, device):
    """Seconds per batch of iterating each feed with no step: what the feed itself costs."""
    _, stream = batches(args.size, args.batch_size, 0)

    def per_batch(feed):
        it = iter(feed)
        for _ in range(5):
            next(it)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.cost_batches):
            next(it)
        synchronize(device)
        elapsed = (time.perf_counter() - start) / args.cost_batches
        it.close()
        return elapsed

    plain_times, feed_times = [], []
    for _ in range(args.rounds):
        plain_times.append(per_batch(plain(stream, device)))
        feed_times.append(per_batch(to_device(stream, device)))
    return statistics.median(plain_times), statistics.median(feed_times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a fast smoke run (under a minute on 2 CPU cores)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--workers", type=int, default=None, help="default: min(8, cores - 1)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="image side (3 x size x size)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--width", type=int, default=None,
                        help="the net's channels: 32, 64, 128 times this (default 2 on CUDA, else 1)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per loader (median)")
    parser.add_argument("--heavy-ms", type=float, default=0.5, help="numpy work per heavy item")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 on the CPU, leaving the cores to the loaders)")
    parser.add_argument("--kinds", default="light,heavy")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    cores = os.cpu_count() or 2
    args.workers = args.workers or max(1, min(8, cores - 1))
    args.batch_size = args.batch_size or (128 if cuda else 32)
    args.size = args.size or (64 if cuda else 32)
    args.steps = args.steps or ((100 if args.quick else 400) if cuda else (40 if args.quick else 100))
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.width = args.width or (2 if cuda else 1)
    args.cost_batches = 50 if args.quick else 200
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)
    n_warm_up = 5 if args.quick else 20

    print(f"# Feeding a training step ({device}; {cores} cores; {args.workers} worker(s); "
          f"batches of {args.batch_size} x 3x{args.size}x{args.size} float32; "
          f"{args.steps} steps, median of {args.rounds} round(s); torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch thread(s); net width {args.width})\n")
    if cuda:
        torch.backends.cudnn.benchmark = True
    step = make_net(device, args.width)
    bound = upper_bound(args, device)
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    repeats = {"light": 0, "heavy": calibrate_heavy(args.size, args.heavy_ms)}
    results = {}  # (kind, loader) -> [(steps/s, upper bound measured just before), ...]
    for round_ in range(args.rounds):
        for kind in kinds:
            for name, make in loaders(args, device, repeats[kind]).items():
                print(f"round {round_ + 1}: {kind}, {name}", file=sys.stderr, flush=True)
                # The bound next to each loader: a shared machine's load drifts.
                top = steps_per_second(step, bound(), args.steps, n_warm_up, device)
                rate = steps_per_second(step, make(), args.steps, n_warm_up, device)
                results.setdefault((kind, name), []).append((rate, top))
    tops = [top for runs in results.values() for _, top in runs]
    top = statistics.median(tops)
    print(f"upper bound (batches already on {device}): {top:.1f} steps/s "
          f"({1e3 / top:.2f} ms a step; {min(tops):.1f} to {max(tops):.1f} over the runs)\n")
    names = list(dict.fromkeys(name for _, name in results))
    print("| loader | " + " | ".join(f"{kind} items" for kind in kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for name in names:
        cells = []
        for kind in kinds:
            runs = results[(kind, name)]
            fraction = statistics.median(rate / bound for rate, bound in runs)
            cells.append(f"{fraction:.2f} ({statistics.median(rate for rate, _ in runs):.1f}/s)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nfraction of the upper bound measured just before each run (median over the rounds; "
          f"steps/s); heavy items: about {args.heavy_ms} ms of numpy work each")

    plain_s, feed_s = feed_cost(args, device)
    print(f"\nno step, light items made in the consumer: plain loop {plain_s * 1e3:.3f} ms a batch, "
          f"to_device {feed_s * 1e3:.3f} ms a batch ({(feed_s - plain_s) * 1e6:+.0f} us, "
          f"{feed_s / plain_s:.2f}x)")


if __name__ == "__main__":
    main()
