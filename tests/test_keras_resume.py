"""A Keras run killed mid-epoch and resumed from its StreamCheckpoint trains on
exactly the batches of an uninterrupted run (and ends with the same weights).

Each run is a fresh process (tests/keras_resume_run.py); the killed one is
killed with SIGKILL, so nothing is saved on the way out.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BACKEND = os.environ.get("KERAS_BACKEND", "torch")
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None or importlib.util.find_spec(BACKEND) is None,
    reason=f"needs Keras 3 and its {BACKEND} backend (pip install '.[keras]' {BACKEND})")

RUNNER = Path(__file__).resolve().parent / "keras_resume_run.py"
EPOCHS, STEPS = 4, 6


def run(directory, log, *kill):
    return subprocess.run(
        [sys.executable, str(RUNNER), str(directory), str(log), str(EPOCHS), *map(str, kill)],
        capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, KERAS_BACKEND=BACKEND))


def by_epoch(log):
    epochs = {}
    for line in log.read_text().splitlines():
        epoch, ids = json.loads(line)
        epochs.setdefault(epoch, []).append(ids)
    return epochs


def test_a_run_killed_in_epoch_3_resumes_with_exactly_the_batches_of_an_uninterrupted_run(
        tmp_path):
    full_dir, resumed_dir = tmp_path / "full", tmp_path / "resumed"
    full_log, killed_log, resumed_log = (tmp_path / name for name in ("full", "killed", "resumed"))
    full_log, killed_log, resumed_log = (p.with_suffix(".jsonl")
                                         for p in (full_log, killed_log, resumed_log))
    result = run(full_dir, full_log)
    assert result.returncode == 0, result.stderr
    full = by_epoch(full_log)
    assert sorted(full) == list(range(EPOCHS)) and all(len(full[e]) == STEPS for e in full)

    killed = run(resumed_dir, killed_log, 2, 3)  # after batch 3 of epoch 2 (the third)
    assert killed.returncode == -9, killed.stderr
    killed_epochs = by_epoch(killed_log)
    assert [killed_epochs[0], killed_epochs[1]] == [full[0], full[1]]
    assert killed_epochs[2] == full[2][:4]
    checkpoint = json.loads((resumed_dir / "checkpoint.json").read_text())
    assert checkpoint["epoch"] == 2

    resumed = run(resumed_dir, resumed_log)
    assert resumed.returncode == 0, resumed.stderr
    resumed_epochs = by_epoch(resumed_log)
    assert sorted(resumed_epochs) == [2, 3]
    assert [resumed_epochs[2], resumed_epochs[3]] == [full[2], full[3]]
    # The optimizer state came back too: the same weights at the end.
    with np.load(full_dir / "final.npz") as a, np.load(resumed_dir / "final.npz") as b:
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7)
