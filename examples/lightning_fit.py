"""Lightning: shoal streams as training and validation data, resumed exactly
=========================================================================

A ``LightningDataModule`` whose training data is a shoal stream of batches and
whose validation data is a chain of files, run by ``Trainer.fit``:

- every validation run sees the same examples, in the same order;
- the training stream's state goes into the trainer's checkpoint (through the
  data module's ``state_dict`` and ``load_state_dict``), so that
  ``Trainer.fit(..., ckpt_path=...)`` goes on with exactly the batches that a
  run that never stopped trains on, even from the middle of an epoch.

The script checks both: it records the ids of the examples that the model
sees, trains once without stopping, then stops a second run in the middle of
an epoch, resumes it from its last checkpoint with a new trainer, a new model
and a new data module, and compares.

Run it with ``python examples/lightning_fit.py`` (needs PyTorch and
Lightning: ``pip install torch lightning``); ``--record PATH`` also writes the
ids of the uninterrupted run's training batches to PATH, as JSON.
"""

import argparse
import json
import tempfile
import warnings
from itertools import islice
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

import shoal
from shoal.torch import StreamDataset

N_TRAIN_FILES, N_VAL_FILES, N_ROWS = 6, 3, 8
BATCH_SIZE = 4
BATCHES_PER_EPOCH = 10
EPOCHS = 3


@shoal.streamable
def rows(file_index, n_rows):
    """One file's rows (made up here, the same every time): features, target, id."""
    rng = np.random.default_rng(file_index)
    for i in range(n_rows):
        x = rng.normal(size=4).astype(np.float32)
        yield {"x": x, "y": np.float32(x.sum()), "id": 1000 * file_index + i}


class ShoalDataModule(L.LightningDataModule):
    """Training and validation batches from shoal streams, resumable from a checkpoint.

    ``train`` is read by one iteration across all epochs, ``batches_per_epoch``
    batches an epoch; ``validation`` is read from its start by every
    validation run. The state of the training iteration after the last batch
    trained on goes into the trainer's checkpoint.
    """

    def __init__(self, train, validation, batches_per_epoch):
        super().__init__()
        self.train, self.validation = train, validation
        self.batches_per_epoch = batches_per_epoch
        self.iterator = None  # the training iteration, across epochs
        self.batch_in_epoch = 0  # batches this epoch given to the trainer
        self.trained = None  # the state after the last batch trained on
        self.resume_from = None  # a state from a checkpoint

    def train_dataloader(self):
        # In this process, so that the state of the iteration is here to save.
        return DataLoader(_TrainingBatches(self), batch_size=None, num_workers=0)

    def val_dataloader(self):
        return DataLoader(StreamDataset(self.validation), batch_size=None)

    def epoch(self):
        """The next epoch's batches, each with the state after it."""
        if self.iterator is None:
            self.iterator = self.train.iterator(cycle=True)
            if self.resume_from is not None:
                self.iterator.load_state_dict(self.resume_from["stream"])
                self.batch_in_epoch = self.resume_from["batch_in_epoch"]
        if self.batch_in_epoch == self.batches_per_epoch:
            self.batch_in_epoch = 0
        for batch in islice(self.iterator, self.batches_per_epoch - self.batch_in_epoch):
            self.batch_in_epoch += 1
            yield batch, {"stream": self.iterator.state_dict(),
                          "batch_in_epoch": self.batch_in_epoch}

    def on_before_batch_transfer(self, batch, dataloader_idx):
        # Lightning reads a batch ahead; this hook sees the batch about to be
        # trained on, so the state saved is the one after it.
        if self.trainer is not None and self.trainer.training:
            batch, self.trained = batch
        return batch

    def state_dict(self):
        return {"train": self.trained} if self.trained is not None else {}

    def load_state_dict(self, state):
        self.resume_from = state.get("train")


class _TrainingBatches(IterableDataset):
    def __init__(self, datamodule):
        self.datamodule = datamodule

    def __iter__(self):
        return self.datamodule.epoch()


class TinyModel(L.LightningModule):
    """A linear model that records the ids of the examples it sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(4, 1)
        self.trained_on = []  # (global step, ids) of each training batch
        self.validated_on = []  # the ids of each validation run

    def training_step(self, batch, batch_idx):
        self.trained_on.append((self.global_step, batch["id"].tolist()))
        return torch.nn.functional.mse_loss(self.layer(batch["x"]).squeeze(1), batch["y"])

    def on_validation_epoch_start(self):
        self.validated_on.append([])

    def validation_step(self, batch, batch_idx):
        self.validated_on[-1].extend(batch["id"].tolist())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def make_datamodule():
    train_files = [rows(f, N_ROWS) for f in range(N_TRAIN_FILES)]
    val_files = [rows(100 + f, N_ROWS) for f in range(N_VAL_FILES)]
    train = shoal.StochasticMux(train_files, n_active=2, rate=4, random_state=0)
    validation = shoal.ChainMux(val_files)  # one pass: every validation example once
    return ShoalDataModule(shoal.Streamer(shoal.buffer_stream, train, BATCH_SIZE),
                           shoal.Streamer(shoal.buffer_stream, validation, BATCH_SIZE),
                           BATCHES_PER_EPOCH)


def fit(checkpoints=None, max_steps=-1, ckpt_path=None, callbacks=()):
    """Train a new model on a new data module; checkpoint every 3 steps into ``checkpoints``."""
    callbacks = list(callbacks)
    if checkpoints is not None:
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(
            dirpath=checkpoints, every_n_train_steps=3, save_last=True, save_top_k=0))
    trainer = L.Trainer(max_epochs=EPOCHS, max_steps=max_steps, accelerator="cpu", devices=1,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=checkpoints is not None, num_sanity_val_steps=0,
                        callbacks=callbacks)
    model = TinyModel()
    trainer.fit(model, datamodule=make_datamodule(), ckpt_path=ckpt_path)
    return model


def quiet():
    # The training data is read in this process on purpose (its state is saved
    # here); Lightning suggests DataLoader workers.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def main(record=None):
    quiet()
    n_steps = EPOCHS * BATCHES_PER_EPOCH
    whole = fit()
    assert len(whole.trained_on) == n_steps, len(whole.trained_on)
    if record is not None:
        Path(record).write_text(json.dumps(whole.trained_on))
    runs = whole.validated_on
    assert len(runs) == EPOCHS and len(runs[0]) == N_VAL_FILES * N_ROWS
    assert all(run == runs[0] for run in runs), "a validation run saw other examples"
    print(f"Each of the {EPOCHS} validation runs saw the same {len(runs[0])} examples, "
          "in the same order.")

    with tempfile.TemporaryDirectory() as checkpoints:
        stop = 15  # in the middle of the second epoch, at a checkpoint
        first = fit(checkpoints, max_steps=stop)
        resumed = fit(checkpoints, ckpt_path=Path(checkpoints) / "last.ckpt")
    steps = first.trained_on + resumed.trained_on
    assert [step for step, _ in steps] == list(range(n_steps)), [s for s, _ in steps]
    assert steps == whole.trained_on, "the resumed run trained on other batches"
    assert torch.equal(resumed.layer.weight, whole.layer.weight)
    print(f"Stopped after {stop} steps, in epoch 2, and resumed from the checkpoint: the "
          f"{n_steps} training batches are exactly those of a run that never stopped.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Lightning on shoal streams, resumed exactly")
    parser.add_argument("--record", help="write the uninterrupted run's batch ids here")
    main(parser.parse_args().record)
