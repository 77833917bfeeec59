"""The repeatable validation set on Keras 3
========================================

The repeatable validation recipe, end to end, on a tiny Keras 3 model.

One streamer per validation file, chained in cycle mode: N files of M batches
repeat every N*M batches. ``shoal.keras.validation_data`` hands the stream to
Keras so that, with ``validation_steps=N*M``, every epoch validates on exactly
the same batches in the same order. Training reads a StochasticMux over the
training files, batched with ``buffer_stream`` and shaped with ``keras_tuples``.

Run it with ``KERAS_BACKEND=torch python examples/keras_fit.py`` (needs Keras 3
and PyTorch). It prints the validation loss of each epoch and checks that the
validation batches were the same every epoch.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import shoal  # noqa: E402
import shoal.keras  # noqa: E402

N_FILES, M_BATCHES, BATCH_SIZE = 4, 3, 8
TRUE_W = np.array([2.0, -1.0, 0.5], dtype=np.float32)


@shoal.streamable
def examples(file_index, seed_offset=0):
    """One file's examples (made up: a noisy linear target), for ever."""
    rng = np.random.default_rng(file_index + seed_offset)
    while True:
        x = rng.normal(size=3).astype(np.float32)
        yield {"x": x, "y": np.array([x @ TRUE_W + 0.05 * rng.normal()], dtype=np.float32)}


@shoal.streamable
def validation_file(file_index, m_batches):
    """The first m batches of one validation file."""
    source = examples(file_index, seed_offset=1000)
    batches = shoal.buffer_stream(source, BATCH_SIZE)
    for _ in range(m_batches):
        batch = next(batches)
        yield batch["x"], batch["y"]


class RecordValidation(keras.callbacks.Callback):
    """Records a fingerprint of what each validation run saw."""

    def __init__(self, fingerprints):
        super().__init__()
        self.fingerprints = fingerprints

    def on_test_batch_end(self, batch, logs=None):
        self.fingerprints[-1].append(round(float(logs["loss"]), 6))

    def on_test_begin(self, logs=None):
        self.fingerprints.append([])


def main():
    keras.utils.set_random_seed(0)
    train_mux = shoal.StochasticMux([examples(i) for i in range(8)], n_active=3, rate=16,
                                    random_state=0)
    train = shoal.Streamer(shoal.keras_tuples,
                           shoal.Streamer(shoal.buffer_stream, train_mux, BATCH_SIZE),
                           inputs="x", outputs="y")
    validation = shoal.ChainMux([validation_file(i, M_BATCHES) for i in range(N_FILES)],
                                mode="cycle")

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    seen = []
    history = model.fit(shoal.keras.training_data(train), steps_per_epoch=30, epochs=3,
                        validation_data=shoal.keras.validation_data(validation),
                        validation_steps=N_FILES * M_BATCHES, verbose=0,
                        callbacks=[RecordValidation(seen)])
    for epoch, loss in enumerate(history.history["val_loss"], 1):
        print(f"epoch {epoch}: validation loss {loss:.4f} on {len(seen[epoch - 1])} batches")
    # The trained model, evaluated twice: the same batches give the same loss.
    first = model.evaluate(shoal.keras.validation_data(validation), steps=N_FILES * M_BATCHES,
                           verbose=0)
    second = model.evaluate(shoal.keras.validation_data(validation), steps=N_FILES * M_BATCHES,
                            verbose=0)
    assert all(len(run) == N_FILES * M_BATCHES for run in seen)
    assert first == second, "two evaluations of the same model saw different data"
    print(f"Every validation run read the same {N_FILES}*{M_BATCHES} = {N_FILES * M_BATCHES} "
          f"batches; the model learnt w = {np.round(model.layers[0].get_weights()[0].ravel(), 2)}")


if __name__ == "__main__":
    main()
