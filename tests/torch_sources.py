"""Streams for the PyTorch tests (module-level: DataLoader workers and ranks import them)."""

import os

import numpy as np

import shoal


def rows(file_index, n):
    for i in range(n):
        yield {"x": np.array([file_index, i], dtype=np.int64), "id": file_index * 1000 + i}


def files(n_files=6, n_rows=5, mode="exhaustive"):
    """A mux over n_files files of n_rows examples: one pass is every example once."""
    streams = [shoal.Streamer(rows, f, n_rows) for f in range(n_files)]
    if mode == "chain":
        return shoal.ChainMux(streams)
    return shoal.StochasticMux(streams, 2, None, mode="exhaustive", random_state=7)


ALL_IDS = sorted(f * 1000 + i for f in range(6) for i in range(5))


def rows_logging_closes(file_index, n, log):
    """rows(), writing to the file ``log`` the process that started it and the one that
    ran its ``finally``, on one line, when it is closed or ends."""
    started_in = os.getpid()
    try:
        yield from rows(file_index, n)
    finally:
        with open(log, "a") as f:
            f.write(f"{started_in} {os.getpid()}\n")


def sampled(n_files=8, n_rows=5, random_state=3):
    """An endless sampling mux over n_files files (two open per share of 4 files or fewer)."""
    streams = [shoal.Streamer(rows, f, n_rows) for f in range(n_files)]
    return shoal.StochasticMux(streams, 2, 4, mode="with_replacement", random_state=random_state)


def chained(lengths):
    """A chain of files of the given lengths (file f has lengths[f] rows)."""
    return shoal.ChainMux([shoal.Streamer(rows, f, n) for f, n in enumerate(lengths)])
