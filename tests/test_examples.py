"""The examples run, and show what they claim."""

import runpy
import subprocess
import sys
from pathlib import Path

import shoal

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_repeatable_validation_runs_and_repeats_every_n_times_m_items():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "repeatable_validation.py")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    epochs = [line.split(": ", 1)[1] for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 3 and len(set(epochs)) == 1
    assert "repeats every N*M = 4*5 = 20 items" in result.stdout


def test_repeatable_validation_data_gen_is_a_streamable(tmp_path):
    example = runpy.run_path(str(EXAMPLES / "repeatable_validation.py"))
    paths = example["write_files"](tmp_path, 2)
    stream = example["data_gen"](paths[1], 3)
    assert isinstance(stream, shoal.Streamer)
    labels = [int(item["y"]) for item in stream]
    assert labels == [100, 101, 102]
    mux = shoal.ChainMux([example["data_gen"](p, 3) for p in paths], mode="cycle")
    assert [int(item["y"]) for item in mux(max_iter=12)] == [0, 1, 2, 100, 101, 102] * 2


def test_resume_training_resumes_with_identical_data_in_a_new_process():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "resume_training.py"), "--steps", "80"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "stopped after 40 batches and resumed in a new process: 80 batches" in result.stdout
    assert "saw exactly the same batches" in result.stdout


def _needs(*modules):
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        import pytest

        pytest.skip(f"needs {', '.join(missing)} (pip install '.[keras,torch]')")


def test_keras_fit_validates_on_the_same_batches_every_epoch():
    _needs("keras", "torch")
    import os

    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "keras_fit.py")], capture_output=True, text=True,
        timeout=600, check=False, env=dict(os.environ, KERAS_BACKEND="torch"),
    )
    assert result.returncode == 0, result.stderr
    assert ("Every validation run saw the same 4*6 = 24 examples, in the same order, "
            "in 3 batches of 8") in result.stdout


def test_torch_dataloader_gives_every_example_once():
    _needs("torch")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "torch_dataloader.py")], capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "gave all 200 examples of 8 files, each once" in result.stdout


def test_shares_resume_goes_on_with_other_worker_counts_with_the_same_batches():
    _needs("torch", "torchdata")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "shares_resume.py")], capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    for num_workers in (4, 0):
        assert (f"stopped after 10 of 24 batches with 2 workers, resumed with {num_workers}: the "
                "14 batches after the resume hold the same 32 rows as those of a run that never "
                "stopped.") in result.stdout
    assert "24 different batches; the model ends where the uninterrupted one does." in (
        result.stdout)
