"""The pictures of the documentation, drawn from the code when it is built."""

import json
import textwrap
from collections import defaultdict
from itertools import islice, pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

import shoal

N_ITEMS = 300


def tagged(tag, n=None):
    """Items that say which streamer they came from: ``tag`` for ever, or ``n`` times."""
    i = 0
    while n is None or i < n:
        yield tag
        i += 1


def streams(n, lengths=None):
    lengths = lengths or [None] * n
    return [shoal.Streamer(tagged, k, length) for k, length in zip(range(n), lengths)]


def raster(ax, mux, title, n_streams, n_items=N_ITEMS):
    """Which streamer each of the first items came from."""
    items = list(islice(mux, n_items))
    ax.scatter(range(len(items)), items, s=6, marker="|", color="C0")
    ax.set_yticks(range(n_streams))
    ax.set_ylim(-0.5, n_streams - 0.5)
    ax.set_xlim(0, n_items)
    ax.set_ylabel("streamer")
    ax.set_title(title, fontsize=9, loc="left")
    return items


def proportions(ax, items, weights, title):
    """Realised against requested shares of each streamer."""
    n = len(weights)
    counts = np.bincount(items, minlength=n) / len(items)
    requested = np.asarray(weights, float) / np.sum(weights)
    x = np.arange(n)
    ax.bar(x - 0.2, requested, 0.4, label="requested", color="C1")
    ax.bar(x + 0.2, counts, 0.4, label="realised", color="C0")
    ax.set_xticks(x)
    ax.set_xlabel("streamer")
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(fontsize=7)


def muxes_figure(kind):
    """Rasters of one mux in each of its modes."""
    lengths = [12, 30, 20, 6]
    if kind == "ChainMux":
        cases = [(f"ChainMux(mode={m!r})", shoal.ChainMux(streams(4, lengths), mode=m))
                 for m in ("exhaustive", "cycle")]
    elif kind == "RoundRobinMux":
        cases = [(f"RoundRobinMux(mode={m!r})",
                  shoal.RoundRobinMux(streams(4, lengths), mode=m, random_state=1))
                 for m in ("exhaustive", "cycle", "permuted_cycle")]
    elif kind == "ShuffledMux":
        cases = [("ShuffledMux(weights=None)", shoal.ShuffledMux(streams(4), random_state=1)),
                 ("ShuffledMux(weights=[4, 3, 2, 1])",
                  shoal.ShuffledMux(streams(4), weights=[4, 3, 2, 1], random_state=1))]
    else:
        cases = [(f"StochasticMux(n_active=2, rate=16, mode={m!r})",
                  shoal.StochasticMux(streams(6, [40] * 6), 2, 16, mode=m, random_state=1))
                 for m in ("with_replacement", "single_active", "exhaustive")]
    n_streams = 6 if kind == "StochasticMux" else 4
    fig, axes = plt.subplots(len(cases), 1, figsize=(8, 1.6 * len(cases)), sharex=True,
                             squeeze=False)
    for ax, (title, mux) in zip(axes[:, 0], cases):
        raster(ax, mux, title, n_streams)
    axes[-1, 0].set_xlabel("item")
    fig.tight_layout()


def shares_figure():
    """Realised against requested shares, for both random muxes."""
    weights = [1, 2, 3, 4]
    n = 20_000
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.6))
    shuffled = shoal.ShuffledMux(streams(4), weights=weights, random_state=2)
    proportions(axes[0], list(islice(shuffled, n)), weights, f"ShuffledMux, {n} items")
    stochastic = shoal.StochasticMux(streams(4), 2, 16, weights=weights, random_state=2)
    proportions(axes[1], list(islice(stochastic, n)), weights,
                f"StochasticMux(n_active=2, rate=16), {n} items")
    fig.tight_layout()


def activation(tag, counter):
    """``(tag, activation number)`` for ever: tells the activations apart."""
    number = next(counter)
    while True:
        yield number


def counts_figure(rate=8):
    """How many items an activation gives, under each dist."""
    from itertools import count

    fig, axes = plt.subplots(1, 3, figsize=(8, 2.4), sharey=True)
    for ax, dist in zip(axes, ("constant", "binomial", "poisson")):
        counter = count()
        mux = shoal.StochasticMux([shoal.Streamer(activation, k, counter) for k in range(4)],
                                  2, rate, dist=dist, random_state=3)
        per_activation = defaultdict(int)
        for number in islice(mux, 40_000):
            per_activation[number] += 1
        sizes = list(per_activation.values())[:-2]  # the last ones may be cut short
        ax.hist(sizes, bins=np.arange(0.5, 4 * rate + 1.5), color="C0")
        ax.axvline(np.mean(sizes), color="C1", label=f"mean {np.mean(sizes):.2f}")
        ax.set_title(f"dist={dist!r}, rate={rate}", fontsize=9)
        ax.set_xlabel("items per activation")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("activations")
    fig.tight_layout()


def recipe_figure(n_files=3, n_items=5, n_epochs=3):
    """The landing page's picture: a validation chain that repeats, a random training mix."""
    validation = shoal.ChainMux(streams(n_files, [n_items] * n_files), mode="cycle")
    train = shoal.StochasticMux(streams(6, [1000] * 6), 2, 16, random_state=0)
    epoch = n_files * n_items
    fig, axes = plt.subplots(2, 1, figsize=(8, 3.4), gridspec_kw={"height_ratios": [3, 6]})
    raster(axes[0], validation, f"validation: ChainMux(mode='cycle') over {n_files} files "
           f"of {n_items}: every epoch the same {epoch} items", n_files, n_epochs * epoch)
    for k in range(1, n_epochs):
        axes[0].axvline(k * epoch - 0.5, color="C1", linewidth=1)
    axes[0].set_xticks([(k + 0.5) * epoch for k in range(n_epochs)],
                       [f"epoch {k + 1}" for k in range(n_epochs)])
    raster(axes[1], train, "training: StochasticMux(n_active=2, rate=16) over 6 files",
           6, N_ITEMS)
    axes[1].set_xlabel("item")
    fig.tight_layout()


def _box(ax, x, y, text, color, width=2.6, height=0.55):
    ax.add_patch(matplotlib.patches.FancyBboxPatch(
        (x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.04",
        facecolor=color, edgecolor="0.3", linewidth=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5, family="monospace")


def _arrow(ax, start, end, text="", color="0.3", offset=(0.0, 0.12)):
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": "->", "color": color, "linewidth": 0.9})
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text,
                ha="center", va="bottom", fontsize=7, color=color, style="italic")


def architecture_figure():
    """Recipes (configuration) on the left, the nodes one iteration builds on the right."""
    fig, ax = plt.subplots(figsize=(8.2, 4.3))
    ax.set_xlim(0, 10)
    ax.set_ylim(0.3, 5.5)
    ax.axis("off")
    recipe, node, state = "#dbe9f6", "#fde9cf", "#e3f1df"
    ax.text(1.8, 5.25, "recipes: configuration, never changed", ha="center", fontsize=8.5,
            weight="bold")
    ax.text(6.2, 5.25, "nodes: the running state of one iteration", ha="center", fontsize=8.5,
            weight="bold")
    levels = [
        (3.5, "Streamer(buffer_stream,\n  mux, 32)", "map node\n(counts its input)"),
        (2.4, "StochasticMux(streamers,\n  n_active=2, ...)", "mux node: policy,\ncounts, 2 slots"),
        (1.3, "Streamer(read, file_k)\n  (one of N)", "generator read(file_k)\n(an activation)"),
    ]
    _box(ax, 6.2, 4.6, "StreamIterator", node)
    for y, left, right in levels:
        _box(ax, 1.8, y, left, recipe)
        _box(ax, 6.2, y, right, node)
        _arrow(ax, (3.15, y), (4.85, y), "_open_node", "C0")
    for (y0, *_), (y1, *_) in pairwise(levels):
        _arrow(ax, (1.8, y0 - 0.3), (1.8, y1 + 0.3))
        _arrow(ax, (6.2, y1 + 0.3), (6.2, y0 - 0.3))
    _arrow(ax, (6.2, 3.8), (6.2, 4.3))
    _arrow(ax, (1.8, 3.8), (4.85, 4.55), "iterator()", "C0", (-0.3, 0.05))
    saved = "state_dict()\n{version,\n n_given,\n state: {map,\n  input: {\n  slots: [\n  {n, state}]}}}"
    _box(ax, 9.0, 2.95, saved, state, width=1.7, height=2.3)
    _arrow(ax, (7.55, 4.6), (8.3, 4.15), "", "C2")
    _arrow(ax, (8.3, 1.75), (7.55, 1.3), "load_state_dict\n-> _ready_state", "C2", (0.5, -0.75))
    ax.text(6.2, 0.45, "items flow up the nodes: generator -> mux -> map -> StreamIterator -> you",
            ha="center", fontsize=7.5, color="0.35")
    fig.tight_layout()


def _lane(ax, y, cells, colors, label, height=0.7):
    """A row of item cells at height ``y``: ``cells`` maps a global position to its item's name."""
    for position, name in cells.items():
        share = "abcdefgh".index(name[0])
        ax.add_patch(matplotlib.patches.Rectangle(
            (position + 0.05, y - height / 2), 0.9, height, facecolor=colors[share],
            edgecolor="white", linewidth=0.5))
        ax.text(position + 0.5, y, name, ha="center", va="center", fontsize=8,
                family="monospace")
    ax.text(-0.3, y, label, ha="right", va="center", fontsize=8, family="monospace")


def topology_figure(n_shares=8, n_items=2):
    """The turn of 8 shares, and where their items come from on four topologies."""
    names = "abcdefgh"[:n_shares]
    files = [shoal.Streamer([f"{name}{k}" for k in range(n_items)]) for name in names]
    stream = shoal.Shares(shoal.ChainMux(files), n_shares)  # share i: file i
    order = list(stream)  # the turn of the shares: a0 b0 ... h0 a1 b1 ...
    where = {name: position for position, name in enumerate(order)}
    colors = [matplotlib.colormaps["Pastel1"](k) for k in range(n_shares)]

    def lane_of(shares):
        return {where[name]: name for name in order if names.index(name[0]) in shares}

    def sharing(shares):
        return "shares " + " ".join(str(s) for s in shares)

    everything = tuple(range(n_shares))
    panels = [("in one process: Shares(mux, 8), share i = file i (a, b, ...), in turn",
               [(f"process: {sharing(everything)}", everything)])]
    for n_workers in (2, 4):
        panels.append((f"ProcessStreamer(Shares(mux, 8), n_workers={n_workers}): "
                       f"worker j runs shares j::{n_workers}",
                       [(f"worker {j}: {sharing(hosted)}", hosted)
                        for j, hosted in enumerate(stream.hosts(n_workers))]))
    n_ranks, n_workers = 2, 2
    hosts = stream.hosts(n_ranks * n_workers)
    panels.append(("2 ranks x 2 DataLoader workers: worker k of rank r is host g = r + 2k, "
                   "runs shares g::4",
                   [(f"rank {r} worker {k}, g={g}: {sharing(hosts[g])}", hosts[g])
                    for r in range(n_ranks) for k in range(n_workers)
                    for g in [r + n_ranks * k]]))

    n_lanes = sum(len(lanes) for _, lanes in panels) + 1
    fig, ax = plt.subplots(figsize=(8.4, 0.33 * n_lanes + 0.4 * (len(panels) + 1) + 0.4))
    for position in range(len(order)):
        ax.text(position + 0.5, 0.55, str(position), ha="center", va="center", fontsize=7.5,
                color="0.4")
    ax.text(-0.3, 0.55, "global position", ha="right", va="center", fontsize=8, color="0.4")
    y = 0.0
    for title, lanes in panels:
        ax.text(-7.6, y, title, ha="left", va="center", fontsize=9, weight="bold")
        y -= 0.75
        for label, hosted in lanes:
            _lane(ax, y, lane_of(hosted), colors, label)
            y -= 0.8
        y -= 0.15
    ax.text(-7.6, y, "every topology above gives this order (rank r of 2: positions r, r + 2, ...)",
            ha="left", va="center", fontsize=9, weight="bold")
    y -= 0.75
    _lane(ax, y, dict(enumerate(order)), colors, "global order")
    ax.set_xlim(-7.7, len(order) + 0.1)
    ax.set_ylim(y - 0.6, 0.8)
    ax.axis("off")
    fig.tight_layout()


SCALING_JSON = Path(__file__).resolve().parent / "figures" / "scaling.json"

#: How each contender of benchmarks/bench_scaling.py is drawn: label, color, line, marker.
#: Ceilings in grey and dashed, shoal in blues and greens, DataLoader in oranges.
SCALING_STYLES = {
    "bare processes": ("bare processes (the ceiling)", "0.2", "--", "s"),
    "one-copy ceiling": ("bare processes + one copy (one-copy ceiling)", "0.55", ":", "D"),
    "shoal ordered": ("shoal, ordered", "tab:blue", "-", "o"),
    "shoal as they come": ("shoal, as they come", "tab:cyan", "-", "^"),
    "shoal": ("shoal, one by one", "tab:blue", "-", "o"),
    "shoal, batches of 8": ("shoal, batches of 8 made in the workers", "tab:green", "-", "v"),
    "DataLoader(StreamDataset)": ("DataLoader(StreamDataset)", "tab:orange", "-", "o"),
    "DataLoader(map-style)": ("DataLoader(map-style dataset)", "tab:red", "-", "^"),
    "DataLoader": ("DataLoader(StreamDataset), one by one", "tab:orange", "-", "o"),
    "DataLoader, batches of 8": ("DataLoader(StreamDataset), batch_size=8", "tab:red", "-", "v"),
}
SCALING_PANELS = [("cpu_bound", "CPU-bound items (about 0.5 ms of numpy work each)"),
                  ("arrays", "fresh 4 MiB float32 arrays")]


def scaling_series(figures):
    """``(title, unit, [(contender, workers, rates)])`` for each workload of a bench_scaling JSON."""
    panels = []
    for key, title in SCALING_PANELS:
        rows = sorted(figures[key]["rows"], key=lambda row: row["workers"])
        names = list(dict.fromkeys(name for row in rows for name in row["rates"]))
        series = []
        for name in names:
            points = [(row["workers"], row["rates"][name]) for row in rows if name in row["rates"]]
            series.append((name, [k for k, _ in points], [rate for _, rate in points]))
        panels.append((title, figures[key]["unit"], series))
    return panels


def _thousands(value, _position):
    return f"{value:,.0f}"


def scaling_figure(path=SCALING_JSON):
    """Throughput against the number of workers, as benchmarks/bench_scaling.py measured it."""
    with open(path) as f:
        figures = json.load(f)
    panels = scaling_series(figures)
    workers = sorted({k for _, _, series in panels for _, ks, _ in series for k in ks})
    fig, axes = plt.subplots(1, len(panels), figsize=(8.4, 4.6))
    for ax, (title, unit, series) in zip(axes, panels):
        # One number of workers: the contenders side by side, each with its figure.
        dodges = np.linspace(-0.3, 0.3, len(series)) if len(workers) == 1 else [0.0] * len(series)
        for (name, ks, rates), dodge in zip(series, dodges):
            label, color, line, marker = SCALING_STYLES.get(name, (name, None, "-", "o"))
            xs = [k + dodge for k in ks]
            ax.plot(xs, rates, color=color, linestyle=line if len(ks) > 1 else "none",
                    marker=marker, markersize=6, linewidth=1.4, label=label)
            if len(workers) == 1:
                for x, rate in zip(xs, rates):
                    ax.annotate(f"{rate:,.0f}", (x, rate), xytext=(0, 6), textcoords="offset points",
                                ha="center", va="bottom", fontsize=7, color="0.25")
        ax.set_yscale("log")
        if len(workers) == 1:
            ax.margins(y=0.15)  # room for the figures above the markers
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(workers[0] - 0.5, workers[-1] + 0.5)
        if len(workers) <= 16:
            ax.set_xticks(workers)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("workers (n_workers)", fontsize=9)
        ax.set_ylabel(f"{unit}, log scale", fontsize=9)
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="major", color="0.9", linewidth=0.8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1,
                  frameon=False)
    machine = figures["machine"]
    torch_version = machine.get("torch")
    run = "--quick" if figures.get("settings", {}).get("quick") else ""
    caption = (f"Measured {machine['date']} on {machine['cores']} cores "
               f"({machine.get('cpu') or 'processor unknown'}), "
               f"{f'torch {torch_version}' if torch_version else 'without torch'}: "
               f"python benchmarks/bench_scaling.py {run}".strip())
    fig.suptitle("\n".join(textwrap.wrap(caption, 110)), fontsize=8.5)
    fig.tight_layout()
    return fig
