"""Code written for pescador 3.0 runs unchanged with ``import shoal as pescador``.

What a pescador user counts on from one module is tested in that module's
file: Streamer.active and iterators as sources in test_core.py, get_rng and
the deprecation helpers in test_util.py.
"""

import numpy as np
import pytest

import shoal as pescador


@pescador.streamable
def data_gen(seed, n, dim=4):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield {"X": rng.normal(size=dim).astype(np.float32), "y": np.int64(seed)}


def test_training_pipeline_as_written_for_pescador():
    streams = [data_gen(i, 20) for i in range(6)]
    mux = pescador.StochasticMux(streams, n_active=3, rate=8, random_state=42)
    batches = pescador.buffer_stream(mux, 16)
    for step, (X, y) in enumerate(pescador.tuples(batches, "X", "y")):
        assert X.shape == (16, 4) and X.dtype == np.float32
        assert y.shape == (16,)
        if step == 10:
            break


def test_keras_style_generators_as_written_for_pescador():
    streams = [data_gen(i, 5) for i in range(3)]
    train = pescador.ShuffledMux(streams, weights=[0.5, 0.25, 0.25], random_state=0)
    batches = pescador.maps.keras_tuples(pescador.maps.buffer_stream(train, 8), inputs="X", outputs="y")
    x, y = next(batches)
    assert x.shape == (8, 4) and y.shape == (8,)
    validation = pescador.ChainMux([data_gen(i, 5) for i in range(3)], mode="cycle")
    labels = [int(item["y"]) for item in validation(max_iter=30)]
    assert labels == ([0] * 5 + [1] * 5 + [2] * 5) * 2


def test_module_paths_and_classic_calls():
    streamer = pescador.core.Streamer(data_gen, 1, 3)
    assert len(list(streamer.iterate())) == 3
    assert len(list(streamer.cycle(max_iter=7))) == 7
    assert len(list(streamer(max_iter=2))) == 2
    assert len(list(streamer(cycle=True, max_iter=5))) == 5
    assert isinstance(pescador.mux.RoundRobinMux([streamer]), pescador.Streamer)
    assert pescador.util.batch_length({"a": [1, 2]}) == 2
    assert "".join(pescador.RoundRobinMux(["ab", "cd"], mode="cycle")(max_iter=6)) == "acbdac"


def test_pescador_docstring_streamer_examples():
    def my_generator(n):
        for i in range(n):
            yield i

    stream = pescador.Streamer(my_generator, 5)
    assert list(stream) == [0, 1, 2, 3, 4]
    assert list(stream(max_iter=3)) == [0, 1, 2]
    assert list(stream.cycle(max_iter=7)) == [0, 1, 2, 3, 4, 0, 1]


def test_pescador_error_names_catch_shoal_errors():
    with pytest.raises(pescador.PescadorError):
        pescador.StochasticMux([], 1, 2)
    with pytest.raises(pescador.exceptions.PescadorError):
        pescador.ChainMux(["a"], mode="bogus")
    with pytest.raises(pescador.DataError):
        list(pescador.buffer_stream([{"a": np.zeros(2)}, {"a": np.zeros(3)}], 2))


def test_keyword_arguments_by_pescador_names():
    streams = [pescador.Streamer("ab"), pescador.Streamer("cd")]
    mux = pescador.StochasticMux(
        streamers=streams, n_active=2, rate=None, weights=[1, 1], mode="exhaustive",
        prune_empty_streams=True, dist="poisson", random_state=3,
    )
    assert sorted(mux) == ["a", "b", "c", "d"]
    assert len(list(pescador.cache(stream=pescador.Streamer("abcdef"), n_cache=2, prob=0.5, random_state=1))) >= 6
    assert next(pescador.buffer_stream(stream=streams[0], buffer_size=2, partial=False, axis=None)).tolist() == ["a", "b"]


# -- pescador's modules and names -----------------------------------------------


def test_pescador_modules_and_names():
    from shoal.zmq_stream import ZMQStreamer

    assert ZMQStreamer is pescador.ZMQStreamer is pescador.zmq_stream.ZMQStreamer
    assert pescador.version.version == pescador.__version__
    assert pescador.__version__.startswith(pescador.version.short_version + ".")
    assert pescador.version.short_version.count(".") == 1
    assert pescador.get_rng is pescador.util.get_rng
    assert pescador.mux.get_rng is pescador.maps.get_rng is pescador.get_rng
