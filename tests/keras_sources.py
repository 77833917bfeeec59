"""Generator functions of the Keras tests, in a module that does not import Keras.

Worker processes started by forkserver (or spawn) import the module of the
functions they run: from here, that is numpy and shoal, not Keras and its
backend, which take seconds to import in every worker.
"""

import numpy as np

#: Validation inputs are >= ID: what Keras feeds when it builds the model is not.
ID = 1000.0


def example_file(index, m):
    """m dict examples; x[0] is the example's id, >= ID."""
    for i in range(m):
        yield {"x": np.array([ID + 100.0 * index + i, 1.0], np.float32),
               "y": np.zeros(1, np.float32)}


def bounded_file(index, m, reads, limit):
    """example_file, counting the examples read; raises past `limit` (so a test
    of a hang fails there instead of hanging)."""
    for item in example_file(index, m):
        reads.append(1)
        if len(reads) > limit:
            raise RuntimeError(f"read more than {limit} validation examples: it would hang")
        yield item
