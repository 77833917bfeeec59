"""shoal: restartable data streams and the muxes that mix them.

Wrap a generator function (with its arguments) in a :class:`Streamer` to
stream it as many times as you like; combine streamers with a mux
(:class:`ChainMux`, :class:`RoundRobinMux`, :class:`ShuffledMux`,
:class:`StochasticMux`); shape the stream with the maps
(:func:`buffer_stream`, :func:`tuples`, :func:`keras_tuples`, :func:`cache`).

Code written for pescador 3.0 runs with ``import shoal as pescador``.
"""

from . import version, zmq_stream  # noqa: F401 (modules under pescador's names)
from ._version import __version__ as __version__
from .core import Streamer, resume_arg, streamable
from .exceptions import (
    DataError,
    DataKeyError,
    EmptyStreamError,
    PescadorError,
    ShoalError,
    ShoalTypeError,
    ShoalValueError,
    SpentSourceError,
)
from .iterator import StreamIterator
from .maps import buffer_stream, cache, keras_tuples, tuples
from .mux import BaseMux, ChainMux, RoundRobinMux, ShuffledMux, StochasticMux
from .parallel import ProcessStreamer, WorkerError, WorkerStats, ZMQStreamer, worker_info
from .reshard import reshard_states
from .shares import Shares
from .util import batch_length, get_rng

__all__ = [
    "Streamer",
    "streamable",
    "resume_arg",
    "StreamIterator",
    "reshard_states",
    "Shares",
    "BaseMux",
    "ChainMux",
    "RoundRobinMux",
    "ShuffledMux",
    "StochasticMux",
    "buffer_stream",
    "tuples",
    "keras_tuples",
    "cache",
    "batch_length",
    "get_rng",
    "ProcessStreamer",
    "ZMQStreamer",
    "worker_info",
    "WorkerStats",
    "WorkerError",
    "ShoalError",
    "PescadorError",
    "ShoalValueError",
    "ShoalTypeError",
    "DataError",
    "DataKeyError",
    "EmptyStreamError",
    "SpentSourceError",
]

# Submodules kept importable for code written for pescador (pescador.mux, ...).
_PUBLIC_MODULES = ["core", "exceptions", "iterator", "maps", "mux", "parallel", "util", "version",
                   "zmq_stream"]


def __dir__():
    return sorted([*__all__, "__version__", *_PUBLIC_MODULES])
