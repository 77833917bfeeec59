"""Names the docstring examples may use without importing them."""

import numpy as np
import pytest

import shoal


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace["np"] = np
    doctest_namespace["shoal"] = shoal
    for name in shoal.__all__:
        doctest_namespace[name] = getattr(shoal, name)
