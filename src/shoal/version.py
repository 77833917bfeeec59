"""The version of shoal, under the names pescador's ``pescador.version`` gives it."""

from ._version import __version__

__all__ = ["version", "short_version"]

#: The full version, as ``shoal.__version__``.
version = __version__
#: The major and minor version.
short_version = ".".join(version.split(".")[:2])
