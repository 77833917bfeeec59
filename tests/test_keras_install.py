"""``import shoal.keras`` says what is missing: Keras's backend, and how to choose one.

Keras 3 loads its backend when it is imported: the one named by KERAS_BACKEND,
else the one in its keras.json, else TensorFlow. After ``pip install torch
keras`` the default (TensorFlow) is missing, and the error must say so.
Each case runs in a fresh interpreter, since Keras picks its backend once.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None,
                                reason="Keras is not installed (pip install '.[keras]')")

MISSING = [name for name in ("torch", "jax", "tensorflow") if importlib.util.find_spec(name) is None]
FIX = "KERAS_BACKEND=torch|jax|tensorflow"


def import_shoal_keras(keras_home, backend=None):
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(keras_home)  # no keras.json of the machine's chooses for us
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    return subprocess.run([sys.executable, "-c", "import shoal.keras"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("backend", MISSING or [pytest.param(
    None, marks=pytest.mark.skip(reason="torch, jax and tensorflow are all installed"))])
def test_a_backend_that_is_not_installed_is_named_with_the_fix(tmp_path, backend):
    result = import_shoal_keras(tmp_path, backend)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: shoal.keras: Keras is installed, but its backend "
                              f"{backend!r} is not (No module named {backend!r})"), message
    assert FIX in message


def test_without_keras_backend_keras_wants_tensorflow(tmp_path):
    if "tensorflow" not in MISSING:
        pytest.skip("TensorFlow is installed: Keras's default backend loads")
    result = import_shoal_keras(tmp_path)
    message = result.stderr.strip().splitlines()[-1]
    assert "its backend 'tensorflow' is not (No module named 'tensorflow')" in message, message
    assert FIX in message


def test_the_backend_of_keras_json_is_the_one_named(tmp_path):
    missing = [name for name in MISSING if name != "tensorflow"]
    if not missing:
        pytest.skip("torch and jax are both installed")
    (tmp_path / "keras.json").write_text(json.dumps({"backend": missing[0]}))
    result = import_shoal_keras(tmp_path)
    message = result.stderr.strip().splitlines()[-1]
    assert f"its backend {missing[0]!r} is not" in message, message


def test_an_unknown_backend_is_named_with_the_fix(tmp_path):
    result = import_shoal_keras(tmp_path, "theano")
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: shoal.keras: Keras cannot load its backend 'theano'")
    assert FIX in message


def test_an_installed_backend_imports(tmp_path):
    installed = [name for name in ("torch", "jax", "tensorflow") if name not in MISSING]
    if not installed:
        pytest.skip("no Keras backend is installed")
    result = import_shoal_keras(tmp_path, installed[0])
    assert result.returncode == 0, result.stderr
