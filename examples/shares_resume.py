"""Stop on 2 DataLoader workers, go on with 4 or none: the same batches
=====================================================================

``shoal.Shares(mux, 8)`` splits a mux of files once and for all into 8
canonical shares and takes them in turn, so that its items, and the batches
of ``Streamer(buffer_stream, Shares(mux, 8), 32)`` (4 rows of each share),
do not depend on how many DataLoader workers (or ranks) run it.

This script trains a tiny linear model on those batches with 2 DataLoader
workers (torchdata's ``StatefulDataLoader``, its workers' parts of each
batch joined by ``shoal.torch.JoinedBatches``), stops after a few steps and
saves the loader's state, then resumes with 4 workers, and with none. It
asserts that every batch after the resume holds the same rows as the batch
of a run that never stopped (the rows of the workers' parts come in another
order), and that the resumed model ends where the uninterrupted one does.

Run it with ``python examples/shares_resume.py`` (needs PyTorch and
torchdata: ``pip install torch torchdata``).
"""

import json
import warnings

import numpy as np
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

import shoal
from shoal.torch import JoinedBatches, StreamDataset, share_states

N_FILES, N_SHARES, BATCH_SIZE = 16, 8, 32
N_STEPS, STOP_AFTER = 24, 10

# torchdata 0.11 with PyTorch 2.13 says 'set_vital' is deprecated; 4 workers may be
# more than the machine's cores, which is only slower.
warnings.filterwarnings("ignore", message="'set_vital' is deprecated")
warnings.filterwarnings("ignore", message="This DataLoader will create")


@shoal.streamable
def rows(file_index, n_rows=50):
    """One file's rows (made up, the same every time): features, a target and an id."""
    rng = np.random.default_rng(file_index)
    for i in range(n_rows):
        x = rng.normal(size=4).astype(np.float32)
        yield {"x": x, "y": np.float32(x @ [1.0, -2.0, 0.5, 3.0]), "id": 1000 * file_index + i}


def batches():
    """Batches of 32 rows: 4 from each of the 8 shares of a mux of 16 files."""
    files = [rows(f) for f in range(N_FILES)]
    mux = shoal.StochasticMux(files, n_active=2, rate=16, mode="with_replacement",
                              random_state=0)
    return shoal.Streamer(shoal.buffer_stream, shoal.Shares(mux, N_SHARES), BATCH_SIZE)


def loader(num_workers, states=None):
    dataset = StreamDataset(batches())
    if states is not None:
        dataset.load_state_dict(states)
    return JoinedBatches(StatefulDataLoader(dataset, batch_size=None, num_workers=num_workers))


def train(data, n_steps, model=None):
    """Train on ``n_steps`` batches of ``data``: the model and each batch's ids, sorted."""
    if model is None:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    seen = []
    for step, batch in enumerate(data):
        loss = torch.nn.functional.mse_loss(model(batch["x"]).squeeze(1), batch["y"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen.append(sorted(batch["id"].tolist()))
        if step + 1 == n_steps:
            break
    return model, seen


def main():
    _, uninterrupted = train(loader(num_workers=2), N_STEPS)
    reference, _ = train(loader(num_workers=2), N_STEPS)  # the same model, trained the same

    data = loader(num_workers=2)
    stopped, before = train(data, STOP_AFTER)
    assert before == uninterrupted[:STOP_AFTER]
    # Each worker's state (plain, JSON-serialisable); on several ranks, gather
    # every rank's with torch.distributed.all_gather_object.
    states = json.loads(json.dumps(share_states(data.state_dict())))
    weights = {key: value.clone() for key, value in stopped.state_dict().items()}

    for num_workers in (4, 0):
        model = torch.nn.Linear(4, 1)
        model.load_state_dict(weights)
        model, after = train(loader(num_workers, states), N_STEPS - STOP_AFTER, model)
        assert after == uninterrupted[STOP_AFTER:], f"other batches with {num_workers} workers"
        for got, expected in zip(model.parameters(), reference.parameters()):
            # The same rows, in another order within a batch: the same up to rounding.
            assert torch.allclose(got, expected, atol=1e-5), (got, expected)
        print(f"stopped after {STOP_AFTER} of {N_STEPS} batches with 2 workers, resumed with "
              f"{num_workers}: the {N_STEPS - STOP_AFTER} batches after the resume hold the same "
              f"{BATCH_SIZE} rows as those of a run that never stopped.")
    print(f"{len({tuple(ids) for ids in uninterrupted})} different batches; the model ends "
          "where the uninterrupted one does.")


if __name__ == "__main__":
    main()
