"""Utilities for batches."""

import collections.abc

from ._checks import short_repr
from .exceptions import DataError, ShoalTypeError

__all__ = ["batch_length"]


def batch_length(batch):
    """The number of examples in a batch.

    Parameters
    ----------
    batch : dict, tuple or list of arrays
        Every value must have a length, and all lengths must be equal.

    Returns
    -------
    n : int or None
        The common length; ``None`` for a batch with no fields.

    Raises
    ------
    DataError
        If two fields have different lengths.

    Examples
    --------
    >>> import numpy as np
    >>> batch_length({"x": np.zeros((8, 3)), "y": np.zeros(8)})
    8
    >>> batch_length({}) is None
    True
    """
    if isinstance(batch, collections.abc.Mapping):
        fields = batch.items()
    elif isinstance(batch, (tuple, list)):
        fields = enumerate(batch)
    else:
        raise ShoalTypeError(
            f"batch must be a dict, tuple or list of arrays, got {short_repr(batch)} "
            f"({type(batch).__name__})"
        )
    n = None
    first = None
    for key, value in fields:
        try:
            length = len(value)
        except TypeError:
            raise DataError(
                f"batch field {key!r} has no length: {short_repr(value)}"
            ) from None
        if n is None:
            n, first = length, key
        elif length != n:
            raise DataError(
                f"batch fields have unequal lengths: {first!r} has {n}, {key!r} has {length}"
            )
    return n
