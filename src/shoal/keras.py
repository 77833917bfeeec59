"""Hand a shoal stream to Keras 3's ``model.fit``, ``evaluate`` and ``predict``.

Keras 3 reads a Python generator by peeking at its first batches and then,
at the start of every epoch, replaying those peeked batches before going on
with the generator: a validation stream shifts by the peeked batches each
epoch. :func:`training_data` and :func:`validation_data` give Keras a data
adapter instead, which reads a fresh or continuing iteration of the stream
and never replays anything; to learn the shapes (for the TensorFlow backend)
it reads a separate iteration.

This module imports Keras; ``import shoal`` does not import it.
"""

from itertools import islice

from ._checks import short_repr
from .core import Streamer
from .exceptions import ShoalTypeError

try:
    from keras.src.trainers.data_adapters import data_adapter_utils
    from keras.src.trainers.data_adapters.data_adapter import DataAdapter
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "shoal.keras needs Keras 3 (pip install keras; from a clone of shoal: pip install '.[keras]'), "
        "with a backend"
    ) from exc

__all__ = ["training_data", "validation_data", "StreamAdapter"]


def training_data(stream):
    """Wrap a stream of batches for ``model.fit(x=...)``: one iteration across all epochs.

    Parameters
    ----------
    stream : Streamer
        A stream of batches, each a tuple ``(x, y)`` or ``(x, y,
        sample_weight)`` (see :func:`shoal.keras_tuples`).

    Returns
    -------
    StreamAdapter
        Give Keras ``steps_per_epoch``: the stream has no length. When Keras
        first builds the model it reads one batch to learn the shapes; that
        batch is not trained on.
    """
    return StreamAdapter(_check_stream(stream), restart_each_epoch=False)


def validation_data(stream):
    """Wrap a stream of batches for ``validation_data=`` (or ``evaluate``, ``predict``).

    Every validation run starts a new iteration of the stream, so with
    ``validation_steps`` batches per run every epoch validates on the same
    batches in the same order, whatever Keras reads to learn the shapes.

    Parameters
    ----------
    stream : Streamer
        A stream of batches, each a tuple ``(x, y)`` or ``(x, y,
        sample_weight)``: for the repeatable validation set, N files of M
        batches chained in cycle mode, validated on ``N*M`` steps.

    Returns
    -------
    StreamAdapter

    Examples
    --------
    ::

        val = shoal.ChainMux(val_streams, mode="cycle")      # repeats every N*M batches
        model.fit(shoal.keras.training_data(train), steps_per_epoch=100, epochs=10,
                  validation_data=shoal.keras.validation_data(val),
                  validation_steps=n_files * m_batches)
    """
    return StreamAdapter(_check_stream(stream), restart_each_epoch=True)


def _check_stream(stream):
    if not isinstance(stream, Streamer):
        raise ShoalTypeError(
            f"stream must be a Streamer or a mux, got {short_repr(stream)} "
            f"({type(stream).__name__})"
        )
    return stream


class StreamAdapter(DataAdapter):
    """A Keras data adapter over a shoal stream.

    Made by :func:`training_data` and :func:`validation_data`. It reads a
    new iteration of the stream at every run (``restart_each_epoch``) or one
    iteration across runs, and never replays a batch. ``iterator`` is the
    :class:`~shoal.StreamIterator` in use, whose state can be saved with a
    checkpoint.
    """

    def __init__(self, stream, restart_each_epoch=False):
        self.stream = stream
        self.restart_each_epoch = restart_each_epoch
        self.iterator = None
        self._signature = None

    def _batches(self):
        """The batches of this epoch: a new iteration, or the one going on."""
        if self.iterator is None or self.restart_each_epoch:
            if self.iterator is not None:
                self.iterator.close()
            self.iterator = self.stream.iterator(cycle=False)
        return _checked(self.iterator)

    def get_numpy_iterator(self):
        return data_adapter_utils.get_numpy_iterator(self._batches())

    def get_jax_iterator(self):
        return data_adapter_utils.get_jax_iterator(self._batches())

    def get_torch_dataloader(self):
        return data_adapter_utils.get_torch_dataloader(self._batches())

    def get_tf_dataset(self):
        from keras.src.utils.module_utils import tensorflow as tf

        if self._signature is None:
            # Shapes from a separate iteration: the one Keras reads stays untouched.
            first = list(islice(self.stream, data_adapter_utils.NUM_BATCHES_FOR_TENSOR_SPEC))
            self._signature = data_adapter_utils.get_tensor_spec(first)
        return tf.data.Dataset.from_generator(self._batches, output_signature=self._signature)

    @property
    def num_batches(self):
        return None

    @property
    def batch_size(self):
        return None

    @property
    def has_partial_batch(self):
        return None

    @property
    def partial_batch_size(self):
        return None

    def on_epoch_end(self):
        pass


def _checked(batches):
    """Yield ``batches``, checking the first is a tuple as Keras needs."""
    for batch in batches:
        if not isinstance(batch, tuple):
            raise ShoalTypeError(
                "a stream for Keras must yield tuples (x, y) or (x, y, sample_weight), "
                f"got {short_repr(batch)} ({type(batch).__name__}); shape dict items "
                "with shoal.keras_tuples"
            )
        yield batch
        yield from batches
        return
