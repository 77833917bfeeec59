"""The repeatable validation set on Keras 3
========================================

The repeatable validation recipe, end to end, on a tiny Keras 3 model, with
proof that every epoch validates on the same examples in the same order.

One streamer per validation file, chained in cycle mode: N files of M
examples repeat every ``N*M`` examples. ``shoal.keras.validation_data`` hands
the stream to Keras in batches of B, so that with ``validation_steps = N*M/B``
(Keras counts batches) every epoch validates on exactly the same examples in
the same order. Training reads a StochasticMux over the training files,
batched and shaped by ``shoal.keras.training_data``.

Every example carries an id. A layer of the model records the ids of the
examples it validates on, batch by batch, and the script asserts that every
validation run (each epoch's, then two ``evaluate`` calls) saw the same ids
in the same order: those of one pass of the validation files.

Run it with ``KERAS_BACKEND=torch python examples/keras_fit.py`` (or ``jax``,
or ``tensorflow``; needs Keras 3 and that backend). The model runs eagerly,
so that the recording layer sees every batch.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

import shoal
import shoal.keras

N_FILES, M_EXAMPLES, BATCH_SIZE = 4, 6, 8
VALIDATION_STEPS = N_FILES * M_EXAMPLES // BATCH_SIZE  # batches: B divides N*M
TRUE_W = np.array([2.0, -1.0, 0.5], dtype=np.float32)


@shoal.streamable
def examples(file_index, n=None, first_id=0):
    """One file's examples (made up: a noisy linear target), each with an id."""
    rng = np.random.default_rng(first_id + file_index)
    i = 0
    while n is None or i < n:
        x = rng.normal(size=3).astype(np.float32)
        yield {"x": x, "y": np.array([x @ TRUE_W + 0.05 * rng.normal()], dtype=np.float32),
               "id": np.array([first_id + 1000 * file_index + i], dtype=np.float32)}
        i += 1


class RecordIds(keras.layers.Layer):
    """Passes x through; while validating, records the ids of the batch's examples."""

    def __init__(self, runs, **kwargs):
        super().__init__(**kwargs)
        # A function, not the list: Keras would replace a list attribute by its own.
        self.record = lambda batch: runs and runs[-1].extend(batch)

    def compute_output_shape(self, shapes):
        return shapes[0]

    def call(self, inputs, training=None):
        x, ids = inputs
        if not training:
            try:
                batch = [int(float(i)) for i in ids[:, 0]]
            except TypeError:  # traced while Keras builds the model: no values yet
                return x
            self.record(batch)  # (before the first validation run, Keras builds the model)
        return x


class MarkRuns(keras.callbacks.Callback):
    """Starts a new list of ids at every validation run."""

    def __init__(self, runs):
        super().__init__()
        self.runs = runs

    def on_test_begin(self, logs=None):
        self.runs.append([])


def main():
    keras.utils.set_random_seed(0)
    train = shoal.StochasticMux([examples(i) for i in range(8)], n_active=3, rate=16,
                                random_state=0)
    validation = shoal.ChainMux([examples(i, M_EXAMPLES, first_id=100_000)
                                 for i in range(N_FILES)], mode="cycle")
    shape = {"batch_size": BATCH_SIZE, "inputs": ["x", "id"], "outputs": "y"}

    runs = []
    x, ids = keras.Input((3,), name="x"), keras.Input((1,), name="id")
    dense = keras.layers.Dense(1)
    model = keras.Model([x, ids], dense(RecordIds(runs)([x, ids])))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", run_eagerly=True)
    history = model.fit(shoal.keras.training_data(train, **shape), steps_per_epoch=30,
                        epochs=3, verbose=0,
                        validation_data=shoal.keras.validation_data(validation, **shape),
                        validation_steps=VALIDATION_STEPS, callbacks=[MarkRuns(runs)])
    for epoch, loss in enumerate(history.history["val_loss"], 1):
        print(f"epoch {epoch}: validation loss {loss:.4f} on examples "
              f"{runs[epoch - 1][:3]} ... {runs[epoch - 1][-1]}")
    # The trained model, evaluated twice: the same examples, so the same loss.
    evaluations = [model.evaluate(shoal.keras.validation_data(validation, **shape),
                                  steps=VALIDATION_STEPS, verbose=0, callbacks=[MarkRuns(runs)])
                   for _ in range(2)]

    one_pass = [int(item["id"][0]) for item in validation(max_iter=N_FILES * M_EXAMPLES)]
    assert len(runs) == 5, f"expected 3 validation runs and 2 evaluations, got {len(runs)}"
    for k, run in enumerate(runs):
        assert run == one_pass, f"validation run {k + 1} saw {run}, not {one_pass}"
    assert evaluations[0] == evaluations[1], "two evaluations of the same model differ"
    print(f"Every validation run saw the same {N_FILES}*{M_EXAMPLES} = {len(one_pass)} "
          f"examples, in the same order, in {VALIDATION_STEPS} batches of {BATCH_SIZE}; "
          f"the model learnt w = {np.round(dense.get_weights()[0].ravel(), 2)}")


if __name__ == "__main__":
    main()
