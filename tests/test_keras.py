"""Keras 3 on a real model: the repeatable validation recipe, the shapes the
adapters take, and validation without validation_steps.

The backend is KERAS_BACKEND (torch when it is not set): CI runs this file on
the torch, JAX and TensorFlow backends, each in its own environment.
"""

import contextlib
import json
import os
import warnings

BACKEND = os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install '.[keras]')")
pytest.importorskip(BACKEND, reason=f"the Keras tests use the {BACKEND} backend (KERAS_BACKEND): "
                                    f"install it, or set KERAS_BACKEND to an installed one")

from hang_guard import no_hang  # noqa: E402
from keras_sources import ID, bounded_file, example_file  # noqa: E402

import shoal  # noqa: E402
from shoal.keras import StreamAdapter, training_data, validation_data  # noqa: E402

N_FILES, M_BATCHES = 3, 4


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


def training_mux():
    return shoal.StochasticMux([shoal.Streamer(training_examples, k) for k in range(4)], 2, 8,
                               random_state=0)


def _traced(x):
    """Is x a JAX tracer (Keras traces the model to build it)? It holds no values."""
    if BACKEND != "jax":
        return False
    import jax

    return isinstance(x, jax.core.Tracer)


class Recorder(keras.layers.Layer):
    """Records, batch by batch, the ids (first column) of the inputs the model
    validates on. The model runs eagerly, so that this runs for every batch."""

    def __init__(self, seen, **kwargs):
        super().__init__(**kwargs)
        self.record = seen.append  # (a list attribute would be replaced by Keras's own)

    def compute_output_shape(self, input_shape):
        return input_shape  # (so that Keras never calls `call` on symbolic inputs)

    def call(self, x, training=None):
        if not training and not _traced(x):
            ids = [float(v) for v in x[:, 0]]
            if ids[0] >= ID:
                self.record(ids)
        return x


def recording_model(seen, n_inputs=1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((n_inputs,)), Recorder(seen), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    return model


def fit_and_record(validation, epochs=3, validation_steps=N_FILES * M_BATCHES):
    seen = []
    model = recording_model(seen)
    train = shoal.Streamer(shoal.buffer_stream, training_mux(), 4)
    model.fit(training_data(train, inputs="x", outputs="y"), steps_per_epoch=5, epochs=epochs,
              validation_data=validation, validation_steps=validation_steps, verbose=0)
    period = N_FILES * M_BATCHES
    flat = [batch[0] for batch in seen]
    return [flat[k * period:(k + 1) * period] for k in range(epochs)]


EXPECTED = [ID + 100.0 * f + i for f in range(N_FILES) for i in range(M_BATCHES)]


def test_every_epoch_validates_on_the_same_batches_in_the_same_order():
    epochs = fit_and_record(validation_data(validation_set()), epochs=4)
    assert epochs == [EXPECTED] * 4


def test_a_plain_generator_shows_why_the_adapter_is_needed():
    if BACKEND == "tensorflow":
        pytest.skip("on TensorFlow, Keras reads a generator through tf.data, which does "
                    "not replay; the adapter still makes every run start from the first batch")
    # Keras replays the batches it peeked at when validation starts again:
    # the validation set shifts from the second epoch on.
    epochs = fit_and_record(validation_set().cycle(), epochs=3)
    assert epochs[1] != epochs[0]
    assert sorted(epochs[1]) != sorted(EXPECTED)  # some batches twice, some not at all


# -- what the adapters take ----------------------------------------------------------

def example_chain(m=M_BATCHES, n=N_FILES, mode="cycle"):
    return shoal.ChainMux([shoal.Streamer(example_file, f, m) for f in range(n)], mode=mode)


def training_file(index, m):
    """m dict examples whose ids are < ID (the model does not record them)."""
    for i in range(m):
        yield {"x": np.array([100.0 * index + i, 1.0], np.float32), "y": np.zeros(1, np.float32)}


def training_files():
    return shoal.StochasticMux([shoal.Streamer(training_file, f, 50) for f in range(3)], 2, 5,
                               random_state=1)


EXAMPLE_IDS = [ID + 100.0 * f + i for f in range(N_FILES) for i in range(M_BATCHES)]


def test_dict_items_with_batch_size_inputs_and_outputs_validate_by_batches():
    # N files of M examples in batches of B: validation_steps = N*M/B batches.
    seen = []
    model = recording_model(seen, n_inputs=2)
    b = 3
    train = training_files()
    model.fit(training_data(train, batch_size=4, inputs="x", outputs="y"), steps_per_epoch=3,
              epochs=2, verbose=0,
              validation_data=validation_data(example_chain(), batch_size=b, inputs="x",
                                              outputs="y"),
              validation_steps=N_FILES * M_BATCHES // b)
    batches = [EXAMPLE_IDS[k:k + b] for k in range(0, len(EXAMPLE_IDS), b)]
    assert seen == batches * 2


def test_training_data_takes_the_generator_the_maps_return():
    # What the README's snippet makes: a one-shot generator of (x, y) batches.
    # Training reads one iteration, so it trains through it; it cannot restart.
    seen = []
    model = recording_model(seen, n_inputs=2)
    train = training_files()
    batches = shoal.keras_tuples(shoal.buffer_stream(train, 4), inputs="x", outputs="y")
    history = model.fit(training_data(batches), steps_per_epoch=3, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_validation_data_refuses_a_generator_which_cannot_restart():
    batches = shoal.keras_tuples(shoal.buffer_stream(example_chain(), 4), inputs="x", outputs="y")
    with pytest.raises(shoal.ShoalTypeError,
                       match=r"validation_data needs a stream it can start again.*batch_size="):
        validation_data(batches)
    batches.close()


def test_the_adapters_check_their_arguments_and_their_batches():
    for wrap in (training_data, validation_data):
        with pytest.raises(shoal.ShoalTypeError, match=r"stream must be a Streamer or a mux, got \[1\]"):
            wrap([1])
        with pytest.raises(shoal.ShoalValueError, match="batch_size must be >= 1, got 0"):
            wrap(example_chain(), batch_size=0)
        with pytest.raises(shoal.ShoalTypeError, match="inputs must be None, a key or a list"):
            wrap(example_chain(), inputs=3)
    adapter = validation_data(shoal.Streamer([{"x": 1}]))
    assert isinstance(adapter, StreamAdapter)
    with pytest.raises(shoal.ShoalTypeError, match="must yield tuples .* batch_size=, inputs= and outputs="):
        next(iter(adapter.get_numpy_iterator()))


# -- nothing hangs: no validation_steps ---------------------------------------------------

@contextlib.contextmanager
def _keras_warnings():
    """The messages of the warnings raised inside (Keras warns when a run ends)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        messages = []
        yield messages
    messages.extend(str(warning.message) for warning in caught)


def test_without_validation_steps_a_cycling_chain_validates_one_pass_per_epoch():
    seen, reads, epochs, b = [], [], 3, 5
    limit = 10 * N_FILES * M_BATCHES
    model = recording_model(seen, n_inputs=2)
    val = shoal.ChainMux([shoal.Streamer(bounded_file, f, M_BATCHES, reads, limit)
                          for f in range(N_FILES)], mode="cycle")
    train = training_files()
    with no_hang(120):
        # Keras learns the length of a pass at the end of the first run, and says so.
        with _keras_warnings() as caught:
            history = model.fit(training_data(train, batch_size=4, inputs="x", outputs="y"),
                                steps_per_epoch=3, epochs=epochs, verbose=0,
                                validation_data=validation_data(val, batch_size=b, inputs="x",
                                                                outputs="y"))
    assert len(history.history["val_loss"]) == epochs
    assert sum("ran out of data" in message for message in caught) == 1
    # Every example once per epoch, in order; the last batch of a pass is smaller.
    batches = [EXAMPLE_IDS[k:k + b] for k in range(0, len(EXAMPLE_IDS), b)]
    assert [len(batch) for batch in batches] == [5, 5, 2]
    assert seen == batches * epochs


def test_evaluate_without_steps_reads_one_pass_of_a_cycling_chain():
    seen = []
    model = recording_model(seen, n_inputs=2)
    data = validation_data(example_chain(), batch_size=4, inputs="x", outputs="y")
    with no_hang(60):
        with _keras_warnings() as first:
            model.evaluate(data, verbose=0)
        with _keras_warnings() as second:
            model.evaluate(data, verbose=0)
    assert sum("ran out of data" in message for message in first) == 1
    assert not any("ran out of data" in message for message in second)  # the length is known
    assert data.num_batches == 3
    assert seen == [EXAMPLE_IDS[k:k + 4] for k in range(0, 12, 4)] * 2


def counted_chain(reads, limit, mode="cycle"):
    """A chain of the example files whose examples are counted in ``reads`` (bounded_file)."""
    return shoal.ChainMux([shoal.Streamer(bounded_file, f, M_BATCHES, reads, limit)
                           for f in range(N_FILES)], mode=mode)


WRAPS = {
    "Streamer": shoal.Streamer,
    "a map": lambda chain: shoal.Streamer(shoal.cache, shoal.Streamer(chain), 1, prob=1.0),
    # forkserver, not fork: JAX warns at a fork once it runs (docs/parallel.md).
    "ProcessStreamer": lambda chain: shoal.ProcessStreamer(chain, start_method="forkserver"),
    "ProcessStreamer, 2 workers": lambda chain: shoal.ProcessStreamer(
        chain, n_workers=2, start_method="forkserver"),
    "ZMQStreamer": shoal.ZMQStreamer,
}


@pytest.mark.parametrize("wrap", list(WRAPS))
def test_without_validation_steps_a_wrapped_cycling_chain_validates_one_pass(wrap):
    # A cycling ChainMux in a Streamer, a map over one, or worker processes:
    # every validation run reads one pass of it, every example once.
    reads, limit = [], 10 * N_FILES * M_BATCHES  # (per process: the workers count their own)
    stream = WRAPS[wrap](counted_chain(reads, limit))
    seen = []
    model = recording_model(seen, n_inputs=2)
    data = validation_data(stream, batch_size=4, inputs="x", outputs="y")
    with no_hang(120), _keras_warnings() as caught:
        model.evaluate(data, verbose=0)
        model.evaluate(data, verbose=0)
    assert sum("ran out of data" in message for message in caught) == 1  # in the first run
    half = len(seen) // 2
    runs = [[x for batch in seen[:half] for x in batch], [x for batch in seen[half:] for x in batch]]
    assert data.num_batches == 3
    assert runs[0] == runs[1]  # the same examples, in the same order, every run
    assert sorted(runs[0]) == EXAMPLE_IDS  # each example once


def test_without_validation_steps_fit_validates_one_pass_of_a_chain_in_a_streamer():
    seen, reads, epochs, b = [], [], 2, 5
    model = recording_model(seen, n_inputs=2)
    val = shoal.Streamer(counted_chain(reads, 10 * N_FILES * M_BATCHES))
    with no_hang(120), _keras_warnings():
        history = model.fit(training_data(training_files(), batch_size=4, inputs="x",
                                          outputs="y"),
                            steps_per_epoch=3, epochs=epochs, verbose=0,
                            validation_data=validation_data(val, batch_size=b, inputs="x",
                                                            outputs="y"))
    assert len(history.history["val_loss"]) == epochs
    assert seen == [EXAMPLE_IDS[k:k + b] for k in range(0, len(EXAMPLE_IDS), b)] * epochs


def test_a_validation_adapter_made_directly_reads_one_pass_too():
    adapter = StreamAdapter(shoal.Streamer(shoal.keras_tuples, example_chain(), inputs="x",
                                           outputs="y"), restart_each_epoch=True)
    with no_hang(60):
        batches = list(adapter.get_numpy_iterator())
    assert [float(x[0]) for x, _ in batches] == EXAMPLE_IDS


def _endless(reads, limit):
    files = [shoal.Streamer(bounded_file, f, M_BATCHES, reads, limit) for f in range(N_FILES)]
    return {
        "RoundRobinMux cycle": shoal.RoundRobinMux(files, mode="cycle"),
        "RoundRobinMux permuted_cycle": shoal.RoundRobinMux(files, mode="permuted_cycle",
                                                            random_state=0),
        "ShuffledMux": shoal.ShuffledMux(files, random_state=0),
        "StochasticMux with_replacement": shoal.StochasticMux(files, 2, 3, random_state=0),
        "StochasticMux single_active": shoal.StochasticMux(files, 2, 3, mode="single_active",
                                                           random_state=0),
        "a map over a ShuffledMux": shoal.Streamer(shoal.cache, shoal.ShuffledMux(
            files, random_state=0), 2),
        "a Streamer over a StochasticMux": shoal.Streamer(shoal.StochasticMux(files, 2, 3,
                                                                              random_state=0)),
        "a ProcessStreamer over a RoundRobinMux": shoal.ProcessStreamer(
            shoal.RoundRobinMux(files, mode="cycle"), start_method="forkserver"),
    }


@pytest.mark.parametrize("kind", list(_endless([], 0)))
def test_without_validation_steps_a_stream_that_never_ends_is_refused_as_validation_starts(kind):
    reads, limit = [], 10 * N_FILES * M_BATCHES
    data = validation_data(_endless(reads, limit)[kind], batch_size=4, inputs="x", outputs="y")
    seen = []
    model = recording_model(seen, n_inputs=2)
    train = training_data(training_files(), batch_size=4, inputs="x", outputs="y")
    refused = r"(?s)never ends: .* pass validation_steps= to fit"
    with no_hang(120):
        with pytest.raises(shoal.ShoalValueError, match=refused):
            model.fit(train, steps_per_epoch=2, epochs=1, verbose=0, validation_data=data)
        with pytest.raises(shoal.ShoalValueError, match=refused):
            model.evaluate(data, verbose=0)
        assert not reads and not seen  # refused at the start: nothing was read
        # With a number of steps, it validates on that many batches.
        model.fit(train, steps_per_epoch=2, epochs=1, verbose=0, validation_data=data,
                  validation_steps=2)
        model.evaluate(data, steps=3, verbose=0)
    assert [len(batch) for batch in seen] == [4] * 5


def test_the_adapter_iteration_can_be_saved_with_a_checkpoint():
    adapter = training_data(validation_set())
    batches = iter(adapter.get_numpy_iterator())
    for _ in range(5):
        next(batches)
    state = adapter.iterator.state_dict()
    resumed = validation_set().iterator()
    resumed.load_state_dict(state)
    assert float(next(resumed)[0][0, 0]) == EXPECTED[5]


def test_more_validation_steps_than_a_pass_holds_are_cut_to_one_pass():
    seen = []
    model = recording_model(seen, n_inputs=2)
    data = validation_data(example_chain(), batch_size=4, inputs="x", outputs="y")
    with no_hang(60), _keras_warnings() as caught:
        model.fit(training_data(training_files(), batch_size=4, inputs="x", outputs="y"),
                  steps_per_epoch=2, epochs=2, verbose=0, validation_data=data,
                  validation_steps=5)
    assert seen == [EXAMPLE_IDS[k:k + 4] for k in range(0, 12, 4)] * 2
    assert sum("ran out of data" in message for message in caught) == 2


# -- StreamCheckpoint -----------------------------------------------------------------

def test_a_checkpoint_holds_the_last_epoch_model_and_the_stream_state(tmp_path):
    data = training_data(training_files(), batch_size=4, inputs="x", outputs="y")
    checkpoint = shoal.keras.StreamCheckpoint(tmp_path, data)
    model = recording_model([], n_inputs=2)
    assert checkpoint.restore(model) == (model, 0)  # nothing saved yet
    model.fit(data, steps_per_epoch=3, epochs=2, verbose=0, callbacks=[checkpoint])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "epoch-0002.keras"]
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    assert record["epoch"] == 2 and record["model"] == "epoch-0002.keras"
    # The state is the position after the 6 batches trained on (24 examples),
    # although Keras read one more batch to build the model.
    batches = shoal.Streamer(shoal.buffer_stream, training_files(), 4)
    resumed = shoal.Streamer(shoal.keras_tuples, batches, inputs="x", outputs="y").iterator()
    resumed.load_state_dict(record["stream"])
    first_seven = list(shoal.buffer_stream(training_files().iterate(max_iter=28), 4))
    assert next(resumed)[0].tolist() == first_seven[6]["x"].tolist()


def test_stream_checkpoint_checks_its_data():
    with pytest.raises(shoal.ShoalTypeError, match="data must be what shoal.keras.training_data"):
        shoal.keras.StreamCheckpoint("somewhere", training_files())
    with pytest.raises(shoal.ShoalTypeError, match="not validation_data"):
        shoal.keras.StreamCheckpoint("somewhere", validation_data(example_chain()))
    data = training_data(training_files(), batch_size=4, inputs="x", outputs="y")
    with pytest.raises(shoal.ShoalValueError, match="only with a StreamCheckpoint"):
        data.state_dict()
    next(iter(data.get_numpy_iterator()))
    with pytest.raises(shoal.ShoalValueError, match="must be made before the training data is read"):
        shoal.keras.StreamCheckpoint("somewhere", data)
