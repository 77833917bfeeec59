"""A mux in a PyTorch DataLoader
=============================

A shoal mux in a PyTorch DataLoader with worker processes: every example once.

``shoal.torch.StreamDataset`` gives each DataLoader worker (and, across
machines, each rank) its own share of the mux's streamers, each seeded from
the mux's seed, so that no example comes twice and a seeded run repeats.

Run it with ``python examples/torch_dataloader.py`` (needs PyTorch).
"""

import numpy as np
import torch
from torch.utils.data import DataLoader

import shoal
from shoal.torch import StreamDataset

N_FILES, N_ROWS = 8, 25


@shoal.streamable
def rows(file_index, n_rows):
    """One file's rows: features, and an id that says where the row came from."""
    rng = np.random.default_rng(file_index)
    for i in range(n_rows):
        yield {"x": rng.normal(size=4).astype(np.float32), "id": file_index * 1000 + i}


def main():
    files = [rows(f, N_ROWS) for f in range(N_FILES)]
    # One pass over every row of every file, three files open at a time.
    mux = shoal.StochasticMux(files, n_active=3, rate=None, mode="exhaustive", random_state=0)
    loader = DataLoader(StreamDataset(mux), batch_size=10, num_workers=2)

    seen = []
    for batch in loader:
        assert batch["x"].shape[1] == 4 and batch["x"].dtype == torch.float32
        seen.extend(batch["id"].tolist())
    expected = sorted(f * 1000 + i for f in range(N_FILES) for i in range(N_ROWS))
    assert sorted(seen) == expected, "an example was missed or came twice"
    again = [i for batch in DataLoader(StreamDataset(mux), batch_size=10, num_workers=2)
             for i in batch["id"].tolist()]
    assert again == seen, "the same seed gave another order"
    print(f"2 DataLoader workers gave all {len(seen)} examples of {N_FILES} files, each once, "
          "in the same order on every run.")


if __name__ == "__main__":
    main()
