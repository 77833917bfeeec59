"""One training run for tests/test_keras_resume.py (run as a script).

    python keras_resume_run.py DIRECTORY LOG EPOCHS [KILL_EPOCH KILL_BATCH]

Trains a tiny model on a shoal stream with a StreamCheckpoint in DIRECTORY,
resuming from it if it holds a checkpoint. A layer records the ids of the
examples of every batch the model trains on; each batch is appended to LOG
as a JSON line ``[epoch, ids]``. With KILL_EPOCH and KILL_BATCH the process
kills itself (SIGKILL: no clean-up) after that batch of that epoch (from 0).
At the end it saves the model's weights to DIRECTORY/final.npz.
"""

import json
import os
import signal
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

import shoal
import shoal.keras

SEEN = []  # the ids of the batches the model trained on, not yet logged


@keras.saving.register_keras_serializable(package="shoal_tests")
class RecordTraining(keras.layers.Layer):
    """Passes x through; while training, records the ids (first column) of the batch."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x, training=None):
        if training:
            SEEN.append([int(float(v)) for v in x[:, 0]])
        return x


class LogAndKill(keras.callbacks.Callback):
    def __init__(self, log, kill_at):
        super().__init__()
        self.log, self.kill_at, self.epoch = log, kill_at, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        with open(self.log, "a") as f:
            for ids in SEEN:
                f.write(json.dumps([self.epoch, ids]) + "\n")
        SEEN.clear()
        if self.kill_at == (self.epoch, batch):
            os.kill(os.getpid(), signal.SIGKILL)


def examples(file_index):
    rng = np.random.default_rng(file_index)
    for i in range(10**6):
        yield {"x": np.array([1000 * file_index + i, rng.normal()], np.float32),
               "y": np.array([rng.normal()], np.float32)}


def main(directory, log, epochs, kill_at=None):
    keras.utils.set_random_seed(0)
    train = shoal.StochasticMux([shoal.Streamer(examples, k) for k in range(5)], n_active=2,
                                rate=3, random_state=0)
    data = shoal.keras.training_data(train, batch_size=4, inputs="x", outputs="y")
    checkpoint = shoal.keras.StreamCheckpoint(directory, data)
    model = keras.Sequential([keras.Input((2,)), RecordTraining(), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    model, initial_epoch = checkpoint.restore(model)
    model.run_eagerly = True  # so that the recording layer sees every batch
    model.fit(data, steps_per_epoch=6, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
              callbacks=[checkpoint, LogAndKill(log, kill_at)])
    np.savez(os.path.join(directory, "final.npz"), *model.get_weights())


if __name__ == "__main__":
    directory, log, epochs, *kill = sys.argv[1:]
    main(directory, log, int(epochs), tuple(map(int, kill)) if kill else None)
