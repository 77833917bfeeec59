"""Maps: functions that transform a stream of items into another stream.

Each map checks its arguments when it is called and returns a generator.
The generator closes what it opened when it is closed, or when it ends.

``Streamer(buffer_stream, stream, 32)``, pescador's way to make a map
restartable, is a recipe of its own kind in shoal (see ``_recipe``): it
resumes, shards and reshards through its stream.

One module per map: ``_batch`` (:func:`buffer_stream`), ``_tuples``
(:func:`tuples`, :func:`keras_tuples`), ``_cache`` (:func:`cache`), each with
its recipe class; ``_recipe`` holds what the recipes share.
"""

from ..util import get_rng  # noqa: F401 - pescador's maps module holds it too
from ._batch import buffer_stream
from ._cache import cache
from ._tuples import keras_tuples, tuples

__all__ = ["buffer_stream", "tuples", "keras_tuples", "cache"]
