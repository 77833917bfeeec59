"""Keras 3 (torch backend, CPU): the repeatable validation recipe holds on a real model."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip(
    "keras", reason="Keras 3 is not installed (pip install keras, or pip install '.[keras]')"
)
pytest.importorskip("torch", reason="the Keras tests use the torch backend: pip install torch")

import shoal  # noqa: E402
from shoal.keras import StreamAdapter, training_data, validation_data  # noqa: E402

N_FILES, M_BATCHES = 3, 4
ID = 1000.0  # validation inputs are >= ID: what Keras feeds when it builds the model is not


def validation_file(index, m):
    """m batches of one example; x says which file and which example."""
    for i in range(m):
        yield (np.array([[ID + 100.0 * index + i]], dtype=np.float32), np.zeros((1, 1), np.float32))


def training_examples(index):
    rng = np.random.default_rng(index)
    while True:
        yield {"x": rng.normal(size=1).astype(np.float32), "y": np.zeros(1, np.float32)}


def validation_set():
    files = [shoal.Streamer(validation_file, f, M_BATCHES) for f in range(N_FILES)]
    return shoal.ChainMux(files, mode="cycle")


def training_batches():
    mux = shoal.StochasticMux([shoal.Streamer(training_examples, k) for k in range(4)], 2, 8,
                              random_state=0)
    batches = shoal.Streamer(shoal.buffer_stream, mux, 4)
    return shoal.Streamer(shoal.keras_tuples, batches, inputs="x", outputs="y")


class Recorder(keras.layers.Layer):
    """Records the first input of every batch the model validates on."""

    def __init__(self, seen, **kwargs):
        super().__init__(**kwargs)
        self.record = seen.append  # (a list attribute would be replaced by Keras's own)

    def call(self, x, training=None):
        if not training and float(x[0, 0]) >= ID:
            self.record(float(x[0, 0]))
        return x


def fit_and_record(validation_data, epochs=3):
    keras.utils.set_random_seed(0)
    seen = []
    model = keras.Sequential([keras.Input((1,)), Recorder(seen), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(training_data(training_batches()), steps_per_epoch=5, epochs=epochs,
              validation_data=validation_data, validation_steps=N_FILES * M_BATCHES, verbose=0)
    period = N_FILES * M_BATCHES
    return [seen[k * period:(k + 1) * period] for k in range(epochs)]


EXPECTED = [ID + 100.0 * f + i for f in range(N_FILES) for i in range(M_BATCHES)]


def test_every_epoch_validates_on_the_same_batches_in_the_same_order():
    epochs = fit_and_record(validation_data(validation_set()), epochs=4)
    assert epochs == [EXPECTED] * 4


def test_a_plain_generator_shows_why_the_adapter_is_needed():
    # Keras replays the batches it peeked at when validation starts again:
    # the validation set shifts from the second epoch on.
    epochs = fit_and_record(validation_set().cycle(), epochs=3)
    assert epochs[1] != epochs[0]
    assert sorted(epochs[1]) != sorted(EXPECTED)  # some batches twice, some not at all


def test_the_adapter_checks_its_arguments_and_its_batches():
    for wrap in (training_data, validation_data):
        with pytest.raises(shoal.ShoalTypeError, match=r"stream must be a Streamer or a mux, got \[1\]"):
            wrap([1])
    adapter = validation_data(shoal.Streamer([{"x": 1}]))
    assert isinstance(adapter, StreamAdapter)
    with pytest.raises(shoal.ShoalTypeError, match="must yield tuples .* shape dict items"):
        next(iter(adapter.get_numpy_iterator()))


def test_the_adapter_iteration_can_be_saved_with_a_checkpoint():
    adapter = training_data(validation_set())
    batches = iter(adapter.get_numpy_iterator())
    for _ in range(5):
        next(batches)
    state = adapter.iterator.state_dict()
    resumed = validation_set().iterator()
    resumed.load_state_dict(state)
    assert float(next(resumed)[0][0, 0]) == EXPECTED[5]
