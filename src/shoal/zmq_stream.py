"""``ZMQStreamer`` under the module path pescador gives it (``pescador.zmq_stream``).

shoal's :class:`~shoal.ZMQStreamer` runs a stream in a worker process
without pyzmq: see :mod:`shoal.parallel`.
"""

from .parallel import ZMQStreamer

__all__ = ["ZMQStreamer"]
