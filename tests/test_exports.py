"""The public surface: exactly these names, and nothing leaked."""

import importlib

import pytest

import shoal

PUBLIC = {
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
}
MODULES = {"core", "exceptions", "iterator", "maps", "mux", "parallel", "util", "version",
           "zmq_stream"}


def test_all_is_exactly_the_public_api():
    assert set(shoal.__all__) == PUBLIC
    assert len(shoal.__all__) == len(PUBLIC)


def test_dir_shows_the_public_api_and_modules_only():
    assert set(dir(shoal)) == PUBLIC | MODULES | {"__version__"}
    for leaked in ("np", "numpy", "copy", "inspect", "decorator", "_checks", "_random"):
        assert leaked not in dir(shoal)


def test_every_exported_name_resolves():
    for name in shoal.__all__:
        assert getattr(shoal, name) is not None


@pytest.mark.parametrize(
    "module", ["shoal.core", "shoal.exceptions", "shoal.iterator", "shoal.maps", "shoal.mux",
               "shoal.util", "shoal.parallel", "shoal.version", "shoal.zmq_stream",
               "shoal._checks", "shoal._counter", "shoal._iterutil", "shoal._random",
               "shoal.mux.chain", "shoal.mux.round_robin", "shoal.mux.shuffled",
               "shoal.mux.stochastic", "shoal.mux._stochastic_node",
               "shoal.mux._stochastic_policy", "shoal.mux._stochastic_counts",
               "shoal.mux._stochastic_slots", "shoal.mux._base"]
)
def test_every_module_declares_all(module):
    mod = importlib.import_module(module)
    assert isinstance(mod.__all__, list)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"


def test_pescador_error_is_the_base_error():
    assert shoal.PescadorError is shoal.ShoalError
    for name in ("DataError", "DataKeyError", "EmptyStreamError", "SpentSourceError",
                 "ShoalValueError", "ShoalTypeError"):
        assert issubclass(getattr(shoal, name), shoal.ShoalError)
    assert issubclass(shoal.ShoalValueError, ValueError)
    assert issubclass(shoal.ShoalTypeError, TypeError)
    assert issubclass(shoal.DataKeyError, KeyError)


def test_version_is_a_string():
    assert isinstance(shoal.__version__, str) and shoal.__version__[0].isdigit()


def test_pescador_module_paths_import():
    from shoal.core import Streamer, streamable  # noqa: F401
    from shoal.exceptions import DataError, PescadorError  # noqa: F401
    from shoal.maps import (  # noqa: F401
        buffer_stream,
        cache,
        get_rng,
        keras_tuples,
        tuples,
    )
    from shoal.mux import (  # noqa: F401
        ChainMux,
        RoundRobinMux,
        ShuffledMux,
        StochasticMux,
        get_rng,
    )
    from shoal.util import (  # noqa: F401
        Deprecated,
        batch_length,
        deprecated,
        get_rng,
        moved,
        rename_kw,
    )
    from shoal.version import short_version, version  # noqa: F401
    from shoal.zmq_stream import ZMQStreamer  # noqa: F401


def test_the_modules_pescador_names_are_attributes_of_the_package():
    # import pescador; pescador.zmq_stream.ZMQStreamer, pescador.version.version, ...
    for module in MODULES:
        assert getattr(shoal, module).__name__ == f"shoal.{module}"
    assert shoal.get_rng is shoal.util.get_rng is shoal.mux.get_rng is shoal.maps.get_rng


def test_importing_shoal_imports_no_framework():
    import subprocess
    import sys

    program = ("import sys, shoal\n"
               "loaded = [m for m in ('torch', 'keras', 'tensorflow', 'jax', 'zmq', 'matplotlib')"
               " if m in sys.modules]\n"
               "print(','.join(loaded))")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""
