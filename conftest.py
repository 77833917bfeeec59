"""Test settings shared by the tests and the docstring examples."""

import importlib.util
import os

import numpy as np
import pytest

import shoal

# Keras 3 runs on the torch backend in the tests unless KERAS_BACKEND says
# otherwise (CI also runs the Keras tests on JAX and TensorFlow).
os.environ.setdefault("KERAS_BACKEND", "torch")

# The framework adapters import their framework: without it, their docstrings
# are not collected (their tests skip, saying why).
# Scripts that tests run in a process of their own, not test modules (the
# Lightning one imports Lightning, which the README's test command does not install).
collect_ignore = ["tests/keras_resume_run.py", "tests/lightning_child.py"]
if (importlib.util.find_spec("keras") is None
        or importlib.util.find_spec(os.environ["KERAS_BACKEND"]) is None):
    collect_ignore.append("src/shoal/keras.py")
if importlib.util.find_spec("torch") is None:
    collect_ignore.append("src/shoal/torch.py")


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace["np"] = np
    doctest_namespace["shoal"] = shoal
    for name in shoal.__all__:
        doctest_namespace[name] = getattr(shoal, name)
