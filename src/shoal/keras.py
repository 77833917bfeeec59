"""Hand a shoal stream to Keras 3's ``model.fit``, ``evaluate`` and ``predict``.

Keras 3 reads a Python generator by peeking at its first batches and then,
at the start of every epoch, replaying those peeked batches before going on
with the generator: a validation stream shifts by the peeked batches each
epoch. :func:`training_data` and :func:`validation_data` give Keras a data
adapter instead, which reads a fresh or continuing iteration of the stream
and never replays anything.

Both take a stream of ``(x, y)`` batches, or a stream of dict items with
``batch_size=`` and the keys of ``inputs=`` and ``outputs=``.
:class:`StreamCheckpoint` saves the model and the training stream's position
together at the end of every epoch, and resumes both.

This module imports Keras, whose backend must be installed (choose it with
the environment variable ``KERAS_BACKEND=torch|jax|tensorflow``);
``import shoal`` does not import Keras.
"""

import collections
import collections.abc
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from ._checks import check_int, short_repr
from ._contract import StateDict, check_stream
from ._iterutil import END
from .core import Streamer
from .exceptions import ShoalError, ShoalTypeError, ShoalValueError
from .iterator import StreamIterator
from .maps import buffer_stream, cache, keras_tuples, tuples
from .maps._recipe import MapStreamer
from .mux import ChainMux, RoundRobinMux, ShuffledMux, StochasticMux
from .parallel import ProcessStreamer, ZMQStreamer

_BACKEND_MODULES = {"tensorflow": "tensorflow-cpu (or tensorflow)", "jax": "jax",
                    "torch": "torch"}


def _chosen_backend():
    """The backend Keras will load: KERAS_BACKEND, else its keras.json, else TensorFlow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _import_error(exc):
    """The ImportError to raise when Keras's data adapters cannot be imported."""
    if importlib.util.find_spec("keras") is None:
        return ImportError(
            "shoal.keras needs Keras 3, which is not installed: pip install keras "
            "(from a clone of shoal: pip install '.[keras]'), and a backend: torch, "
            "jax or tensorflow, chosen with KERAS_BACKEND=torch|jax|tensorflow"
        )
    backend = _chosen_backend()
    missing = getattr(exc, "name", None) or ""
    if isinstance(exc, ImportError) and missing.split(".")[0] in _BACKEND_MODULES:
        root = missing.split(".")[0]
        return ImportError(
            f"shoal.keras: Keras is installed, but its backend {backend!r} is not "
            f"(No module named {root!r}). Install it (pip install "
            f"{_BACKEND_MODULES[root]}) or choose a backend that is installed with the "
            "environment variable KERAS_BACKEND=torch|jax|tensorflow, set before Keras "
            "is imported"
        )
    if isinstance(exc, ValueError):
        return ImportError(
            f"shoal.keras: Keras cannot load its backend {backend!r} ({exc}); choose one "
            "with the environment variable KERAS_BACKEND=torch|jax|tensorflow"
        )
    return ImportError(
        f"shoal.keras needs Keras 3 with a backend (KERAS_BACKEND=torch|jax|tensorflow); "
        f"importing it failed: {exc}"
    )


try:
    import keras
    from keras.src import tree
    from keras.src.trainers.data_adapters import data_adapter_utils
    from keras.src.trainers.data_adapters.data_adapter import DataAdapter
    from keras.src.trainers.epoch_iterator import EpochIterator
except (ImportError, ValueError) as exc:  # pragma: no cover - depends on what is installed
    raise _import_error(exc) from exc

__all__ = ["training_data", "validation_data", "StreamAdapter", "StreamCheckpoint"]

# The maps whose pass is one pass of their input stream (their first argument).
_MAPS = (buffer_stream, tuples, keras_tuples, cache)


def training_data(stream: Streamer | Iterator[Any], batch_size: int | None = None, *,
                  inputs: str | Iterable[str] | None = None,
                  outputs: str | Iterable[str] | None = None) -> "StreamAdapter":
    """Wrap a stream for ``model.fit(x=...)``: one iteration across all epochs.

    Parameters
    ----------
    stream : Streamer, mux or iterator
        Batches ``(x, y)`` or ``(x, y, sample_weight)``, or, with
        ``batch_size``, ``inputs`` and ``outputs``, dict items. A one-shot
        iterator (say the generator ``shoal.keras_tuples(...)`` returns) is
        accepted: training reads a single iteration anyway, but it cannot be
        restarted or resumed past its first batch.
    batch_size : int >= 1, optional
        Collect this many items into each batch (:func:`shoal.buffer_stream`).
    inputs, outputs : str or list of str, optional
        The keys of ``x`` and ``y`` in dict items (:func:`shoal.keras_tuples`).

    Returns
    -------
    StreamAdapter
        Give Keras ``steps_per_epoch``: the stream has no length. When Keras
        first builds the model it reads one batch to learn the shapes; that
        batch is trained on first only with a :class:`StreamCheckpoint`
        (which knows what Keras trained on); without one it is skipped.
    """
    if isinstance(stream, collections.abc.Iterator) and not isinstance(stream, Streamer):
        stream = Streamer(stream)
    stream = _shaped(_check_stream(stream, "training_data"), batch_size, inputs, outputs,
                     partial=False)
    return StreamAdapter(stream, restart_each_epoch=False)


def validation_data(stream: Streamer, batch_size: int | None = None, *,
                    inputs: str | Iterable[str] | None = None,
                    outputs: str | Iterable[str] | None = None) -> "StreamAdapter":
    """Wrap a stream for ``validation_data=`` (or ``evaluate``, ``predict``).

    Every validation run starts a new iteration of the stream, so every
    epoch validates on the same batches in the same order, whatever Keras
    reads to learn the shapes.

    How much a run reads: ``validation_steps`` batches when ``fit`` is given
    them (``steps`` for ``evaluate`` and ``predict``; Keras counts batches,
    not examples). Without them, one pass of the stream: a
    :class:`~shoal.ChainMux` in ``"cycle"`` mode is read once through, each
    of its streamers once, also under shoal's maps, in a :class:`Streamer`
    or in worker processes (:class:`~shoal.ProcessStreamer`,
    :class:`~shoal.ZMQStreamer`); a stream that ends is read to its end.
    From the second run on, Keras is told the number of batches of a pass.
    A stream with no pass, one that never ends (a RoundRobinMux in a
    cycling mode, a ShuffledMux, a StochasticMux in ``"with_replacement"``
    or ``"single_active"`` mode, and maps or workers over them), needs
    ``validation_steps``: without them, validation raises as it starts.

    Parameters
    ----------
    stream : Streamer or mux
        Batches ``(x, y)`` or ``(x, y, sample_weight)``, or, with
        ``batch_size``, ``inputs`` and ``outputs``, dict items. It must be
        restartable: a generator or other iterator runs only once, so it is
        refused.
    batch_size : int >= 1, optional
        Collect this many items into each batch; the last batch of a pass
        may be smaller, so that a pass validates on every example once.
    inputs, outputs : str or list of str, optional
        The keys of ``x`` and ``y`` in dict items.

    Returns
    -------
    StreamAdapter

    Examples
    --------
    ::

        val = shoal.ChainMux(val_streams, mode="cycle")  # N files of M examples
        model.fit(shoal.keras.training_data(train, 32, inputs="X", outputs="y"),
                  steps_per_epoch=100, epochs=10,
                  validation_data=shoal.keras.validation_data(val, 32, inputs="X", outputs="y"))
    """
    if isinstance(stream, collections.abc.Iterator) and not isinstance(stream, Streamer):
        raise ShoalTypeError(
            "validation_data needs a stream it can start again for every validation run, "
            f"got {short_repr(stream)} ({type(stream).__name__}), which runs once. Give the "
            "Streamer or mux itself, with batch_size=, inputs= and outputs= to batch and "
            "shape dict items (or wrap a map in a Streamer: "
            "shoal.Streamer(shoal.keras_tuples, ...))"
        )
    stream = _check_stream(stream, "validation_data")
    stream = _shaped(_one_pass(stream), batch_size, inputs, outputs, partial=True)
    return StreamAdapter(stream, restart_each_epoch=True)


def _check_stream(stream, function):
    try:
        return check_stream(stream)
    except ShoalTypeError as exc:
        raise ShoalTypeError(f"{function}: {exc}") from None


def _shaped(stream: Streamer, batch_size: int | None, inputs: str | Iterable[str] | None,
            outputs: str | Iterable[str] | None, partial: bool) -> Streamer:
    """``stream`` batched by ``batch_size`` and shaped by ``inputs``/``outputs``."""
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        stream = Streamer(buffer_stream, stream, batch_size, partial=partial)
    if inputs is not None or outputs is not None:
        keras_tuples((), inputs=inputs, outputs=outputs).close()  # checks the keys now
        stream = Streamer(keras_tuples, stream, inputs=inputs, outputs=outputs)
    return stream


def _one_pass(stream):
    """``stream`` with a cycling ChainMux made to stop after one pass (see :func:`_pass_of`)."""
    return _pass_of(stream)[0]


def _pass_of(stream):
    """``(stream read for one pass, why it never ends)``.

    The first is ``stream`` with a cycling ChainMux made to stop after one
    pass: at the top, or under shoal's maps, a Streamer, a ProcessStreamer
    or a ZMQStreamer. The second is ``None`` when a pass of it ends (or may:
    a generator function is not looked into), else why it never ends: an
    endless mux at the top or under those wrappers.
    """
    if isinstance(stream, ChainMux):
        if stream.mode == "cycle":
            return stream._in_mode("exhaustive"), None  # a source or an iterator of streamers too
        return stream, None
    if isinstance(stream, RoundRobinMux) and stream.mode != "exhaustive":
        return stream, (f"a RoundRobinMux in mode={stream.mode!r} starts each streamer again "
                        "when it ends")
    if isinstance(stream, ShuffledMux):
        return stream, "a ShuffledMux starts each streamer again when it ends"
    if isinstance(stream, StochasticMux) and stream.mode != "exhaustive":
        return stream, (f"a StochasticMux in mode={stream.mode!r} activates its streamers "
                        "again and again")
    if type(stream) in (ProcessStreamer, ZMQStreamer):
        inner, why = _pass_of(stream.stream)
        if inner is stream.stream:
            return stream, why
        if type(stream) is ZMQStreamer:
            return ZMQStreamer(inner, stream.min_port, stream.max_port, stream.max_tries,
                               stream.copy, stream.timeout), why
        return ProcessStreamer(
            inner, n_workers=stream.n_workers, prefetch=stream.prefetch, ordered=stream.ordered,
            start_method=stream.start_method, timeout=stream.timeout,
            shared_memory_bytes=stream.shared_memory_bytes,
            item_timeout=stream.item_timeout), why
    if type(stream) is Streamer or isinstance(stream, MapStreamer):  # not a mux, not a worker
        if isinstance(stream.source, Streamer):  # Streamer(mux)
            inner, why = _pass_of(stream.source)
            return (stream if inner is stream.source else Streamer(inner)), why
        if stream.source in _MAPS and stream.args and isinstance(stream.args[0], Streamer):
            inner, why = _pass_of(stream.args[0])
            if inner is not stream.args[0]:
                stream = Streamer(stream.source, inner, *stream.args[1:], **stream.kwargs)
            return stream, why
    return stream, None


def _steps_asked():
    """``(found, steps)``: the number of batches the Keras loop calling the adapter reads.

    Keras does not tell a data adapter how many batches a run takes: its
    ``EpochIterator`` holds that (``steps_per_epoch``, which is
    ``validation_steps`` for validation, ``steps`` for ``evaluate`` and
    ``predict``, ``None`` for "until the data ends") and calls the adapter's
    ``get_*_iterator`` (or ``get_tf_dataset``) from its own methods when a
    run starts. This finds it among the callers of those methods. ``found``
    is false when the adapter is read by anything else.
    """
    frame = sys._getframe(2)  # the caller of the adapter's get_* method
    for _ in range(4):
        if frame is None:
            break
        caller = frame.f_locals.get("self")
        if isinstance(caller, EpochIterator):
            return True, caller.steps_per_epoch
        frame = frame.f_back
    return False, None


class StreamAdapter(DataAdapter):
    """A Keras data adapter over a shoal stream.

    Made by :func:`training_data` and :func:`validation_data`. It reads a
    new iteration of the stream at every run (``restart_each_epoch``) or one
    iteration across runs, and never replays a batch. ``iterator`` is the
    :class:`~shoal.StreamIterator` in use.

    For training, batches read from the iteration but not yet trained on
    (Keras reads one to build the model, and some backends read ahead) are
    kept when a :class:`StreamCheckpoint` tracks what Keras trains on: they
    come first in the next run, and :meth:`state_dict` is the position
    after the last batch trained on.

    For validation, a run of a stream that never ends (see
    :func:`validation_data`) raises a ShoalValueError as it starts when
    Keras was given no number of steps for it.
    """

    def __init__(self, stream: Streamer, restart_each_epoch: bool = False) -> None:
        self.stream = stream
        self.restart_each_epoch = restart_each_epoch
        # Validation: why a run of the stream would never end (None: it ends).
        self._never_ends = None
        if restart_each_epoch:
            self.stream, self._never_ends = _pass_of(stream)
        self.iterator: StreamIterator | None = None
        self._signature = None
        # Training: batches read from `iterator` that Keras has not trained on, each
        # with the iteration's state after it (when tracked).
        self._pending: collections.deque[tuple[Any, StateDict | None]] = collections.deque()
        self._tracked = False
        self._trained_state: StateDict | None = None
        # Validation: the number of batches of a run that ended, once one has.
        self._n_pass_batches = None

    # -- what Keras calls ----------------------------------------------------------

    def get_numpy_iterator(self) -> Any:
        self._check_run_ends()
        return data_adapter_utils.get_numpy_iterator(self._batches())

    def get_jax_iterator(self) -> Any:
        self._check_run_ends()
        return data_adapter_utils.get_jax_iterator(self._batches())

    def get_torch_dataloader(self) -> Any:
        self._check_run_ends()
        return data_adapter_utils.get_torch_dataloader(self._batches())

    def get_tf_dataset(self) -> Any:
        from keras.src.utils.module_utils import tensorflow as tf

        self._check_run_ends()

        if self._signature is None:
            n = data_adapter_utils.NUM_BATCHES_FOR_TENSOR_SPEC
            if self.restart_each_epoch:
                # Shapes from a separate iteration: the runs start from the first batch.
                with self.stream.iterator() as it:
                    first = list(islice(it, n))
            else:
                # Shapes from the training iteration itself; the batches read stay pending.
                first = self._peek(n)
            # tf.data takes tuples, not lists (as inputs=["a", "b"] gives).
            self._signature = tree.lists_to_tuples(data_adapter_utils.get_tensor_spec(
                [_checked_batch(batch) for batch in first]))

        def batches():
            for batch in self._batches():
                yield tree.map_structure(_for_tf, tree.lists_to_tuples(batch), self._signature,
                                         none_is_leaf=True)

        return tf.data.Dataset.from_generator(batches, output_signature=self._signature)

    @property
    def num_batches(self) -> int | None:
        return self._n_pass_batches if self.restart_each_epoch else None

    @property
    def batch_size(self) -> None:
        return None

    @property
    def has_partial_batch(self) -> None:
        return None

    @property
    def partial_batch_size(self) -> None:
        return None

    def on_epoch_end(self) -> None:
        pass

    def _check_run_ends(self):
        """Refuse, as a run starts, to validate for ever on a stream that never ends."""
        if self._never_ends is None:
            return
        found, steps = _steps_asked()
        if found and not steps:
            raise ShoalValueError(
                f"validation_data: {self.stream!r} never ends: {self._never_ends}, and Keras "
                "was given no number of batches to validate on: pass validation_steps= to fit "
                "(steps= to evaluate or predict)"
            )

    # -- the batches -----------------------------------------------------------------

    def _batches(self):
        if self.restart_each_epoch:
            return self._validation_batches()
        return self._training_batches()

    def _validation_batches(self):
        if self.iterator is not None:
            self.iterator.close()
        self.iterator = it = self.stream.iterator(cycle=False)
        n = 0
        for batch in it:
            yield _checked_batch(batch) if n == 0 else batch
            n += 1
        self._n_pass_batches = n

    def _open(self):
        if self.iterator is None:
            self.iterator = self.stream.iterator(cycle=False)
            if self._tracked:
                self._trained_state = self.iterator.state_dict()
        return self.iterator

    def _peek(self, n):
        it = self._open()
        while len(self._pending) < n:
            batch = next(it, END)
            if batch is END:
                break
            self._pending.append((batch, it.state_dict() if self._tracked else None))
        return [batch for batch, _ in islice(self._pending, n)]

    def _training_batches(self):
        it = self._open()
        replay = [batch for batch, _ in self._pending]
        if not self._tracked:
            self._pending.clear()  # read only to learn the shapes: handed out once, now
        checked = False
        for batch in replay:
            yield batch if checked else _checked_batch(batch)
            checked = True
        for batch in it:
            if self._tracked:
                self._pending.append((batch, it.state_dict()))
            yield batch if checked else _checked_batch(batch)
            checked = True

    # -- what a checkpoint saves ------------------------------------------------

    def _track(self):
        """Keep what is read until Keras reports it trained on it (see StreamCheckpoint)."""
        if self.restart_each_epoch:
            raise ShoalTypeError(
                "StreamCheckpoint saves the position of the training data: give it "
                "shoal.keras.training_data(...), not validation_data(...)"
            )
        if self.iterator is not None and not self._tracked:
            raise ShoalValueError(
                "StreamCheckpoint must be made before the training data is read: "
                "this adapter has already handed batches to Keras"
            )
        self._tracked = True

    def _trained_on(self, n_batches):
        """Keras trained on the next ``n_batches`` pending batches."""
        if n_batches > len(self._pending):
            raise ShoalError(
                f"Keras reports {n_batches} more batches trained on, but only "
                f"{len(self._pending)} were read from this training_data: was the model "
                "fitted on other data with this StreamCheckpoint?"
            )
        for _ in range(n_batches):
            _, self._trained_state = self._pending.popleft()

    def state_dict(self) -> StateDict | None:
        """The training iteration's state after the last batch trained on.

        Only with a :class:`StreamCheckpoint`, which tracks what Keras
        trains on. ``None`` before the iteration started.
        """
        if not self._tracked:
            raise ShoalValueError(
                "the adapter knows what Keras trained on only with a StreamCheckpoint; "
                "make one for this training_data before fit"
            )
        if self.iterator is None:
            return None
        return self._trained_state

    def load_state_dict(self, state: StateDict | None) -> None:
        """Resume the training iteration at ``state`` (from :meth:`state_dict`)."""
        if self.restart_each_epoch:
            raise ShoalTypeError("only training_data(...) resumes: validation restarts every run")
        if self.iterator is not None:
            self.iterator.close()
        self.iterator = None
        self._pending.clear()
        if state is not None:
            self.iterator = self.stream.iterator(cycle=False)
            self.iterator.load_state_dict(state)
            self._trained_state = state




def _for_tf(value, spec):
    if value is None:  # as Keras's own adapter does
        from keras.src.utils.module_utils import tensorflow as tf

        return tf.experimental.Optional.empty(None)
    return value


def _checked_batch(batch):
    """``batch``, checked to be a tuple as Keras needs."""
    if not isinstance(batch, tuple):
        hint = ("give training_data/validation_data batch_size=, inputs= and outputs= to "
                "batch and shape dict items" if isinstance(batch, collections.abc.Mapping)
                else "shape dict items with inputs= and outputs=")
        raise ShoalTypeError(
            "a stream for Keras must yield tuples (x, y) or (x, y, sample_weight), "
            f"got {short_repr(batch)} ({type(batch).__name__}); {hint}"
        )
    return batch


class StreamCheckpoint(keras.callbacks.Callback):
    """Save the model and the training stream's position together; resume both.

    At the end of every epoch it saves the model (with its optimizer) in
    ``directory`` and, with it, the state of the training stream after the
    last batch Keras trained on. :meth:`restore` loads both, so that a run
    stopped at any point and restarted from its last checkpoint trains on
    exactly the batches an uninterrupted run trains on.

    Parameters
    ----------
    directory : str or path
        Where the checkpoints go: ``epoch-NNNN.keras`` (the model) and
        ``checkpoint.json`` (the epoch, the model's file name and the stream
        state), written after the model so that the two always match.
    data : StreamAdapter
        What :func:`training_data` returned, given to ``fit`` as ``x``. Make
        the callback before ``fit`` reads it.

    Examples
    --------
    ::

        train_data = shoal.keras.training_data(train, 32, inputs="X", outputs="y")
        checkpoint = shoal.keras.StreamCheckpoint("checkpoints", train_data)
        model, initial_epoch = checkpoint.restore(model)   # as given, 0: no checkpoint yet
        model.fit(train_data, steps_per_epoch=100, epochs=10, initial_epoch=initial_epoch,
                  callbacks=[checkpoint])
    """

    def __init__(self, directory: str | os.PathLike[str], data: StreamAdapter) -> None:
        super().__init__()
        if not isinstance(data, StreamAdapter):
            raise ShoalTypeError(
                "data must be what shoal.keras.training_data returned, got "
                f"{short_repr(data)} ({type(data).__name__})"
            )
        data._track()
        self.directory = Path(directory)
        self.data = data
        self._n_this_epoch = 0

    @property
    def _index(self):
        return self.directory / "checkpoint.json"

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Start counting the batches of the epoch."""
        self._n_this_epoch = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Tell the training data which batches Keras trained on."""
        # `batch` is the index in the epoch of the last step run (with
        # steps_per_execution > 1 Keras reports every few steps).
        self.data._trained_on(batch + 1 - self._n_this_epoch)
        self._n_this_epoch = batch + 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Save the checkpoint after ``epoch + 1`` epochs."""
        self.save(epoch + 1)

    def save(self, epoch: int) -> None:
        """Save the model and the stream state as the checkpoint after ``epoch`` epochs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch:04d}.keras"
        self.model.save(self.directory / name)
        record = {"format": 1, "epoch": epoch, "model": name, "stream": self.data.state_dict()}
        partial = self._index.with_suffix(".json.partial")
        partial.write_text(json.dumps(record))
        previous = self._read()
        os.replace(partial, self._index)  # the checkpoint is now this one, all at once
        if previous is not None and previous["model"] != name:
            (self.directory / previous["model"]).unlink(missing_ok=True)

    def _read(self):
        try:
            text = self._index.read_text()
        except FileNotFoundError:
            return None
        record = json.loads(text)
        if not isinstance(record, dict) or record.get("format") != 1:
            raise ShoalValueError(f"{self._index} is not a checkpoint of this version")
        return record

    def restore(self, model: keras.Model, **load_options: Any) -> tuple[keras.Model, int]:
        """Load the last checkpoint, if there is one: the model and the stream.

        Parameters
        ----------
        model : keras.Model
            Returned as it is when there is no checkpoint yet.
        **load_options
            Passed to ``keras.saving.load_model`` (say ``custom_objects``).

        Returns
        -------
        (model, initial_epoch)
            The saved model, with its optimizer, and the number of epochs
            done: give it to ``fit`` as ``initial_epoch``. The training data
            carries on after the last batch the saved model trained on.
        """
        record = self._read()
        if record is None:
            return model, 0
        restored = keras.saving.load_model(self.directory / record["model"], **load_options)
        self.data.load_state_dict(record["stream"])
        return restored, record["epoch"]
