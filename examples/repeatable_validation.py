"""A repeatable validation stream
==============================

A repeatable validation stream: the same N*M examples, in the same order, every epoch.

One streamer per validation file, chained in ``cycle`` mode: the stream
repeats exactly every N*M items, so a training loop that takes N*M
validation items per epoch (Keras: ``validation_steps=N*M``) validates on
the same set every time.

Run it with ``python examples/repeatable_validation.py``.
"""

import tempfile
from pathlib import Path

import numpy as np

import shoal

N_FILES = 4  # N: validation files
M_EXAMPLES = 5  # M: examples used from each file


def write_files(folder, n_files, n_rows=8, seed=0):
    """Write n_files small .npz files, each with arrays X and Y."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(n_files):
        path = Path(folder) / f"val_{index}.npz"
        X = rng.normal(size=(n_rows, 3)).astype(np.float32)
        Y = np.arange(n_rows) + 100 * index  # labels that say where they came from
        np.savez(path, X=X, Y=Y)
        paths.append(path)
    return paths


@shoal.streamable
def data_gen(filename, m):
    """Yield the first m examples of one file."""
    with np.load(filename) as data:
        X, Y = data["X"], data["Y"]
    for i in range(m):
        yield dict(X=X[i], y=Y[i])


def main():
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(folder, N_FILES)
        val_streams = [data_gen(path, M_EXAMPLES) for path in paths]
        validation = shoal.ChainMux(val_streams, mode="cycle")

        period = N_FILES * M_EXAMPLES
        stream = validation.iterate()
        epochs = [[int(next(stream)["y"]) for _ in range(period)] for _ in range(3)]
        stream.close()

    for number, labels in enumerate(epochs, 1):
        print(f"epoch {number}: {labels}")
    assert epochs[0] == epochs[1] == epochs[2], "the validation set changed between epochs"
    assert len(set(epochs[0])) == period, "an example was repeated within an epoch"
    print(f"The stream repeats every N*M = {N_FILES}*{M_EXAMPLES} = {period} items: "
          "every epoch validates on the same examples, in the same order.")


if __name__ == "__main__":
    main()
