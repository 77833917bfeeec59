"""Lightning: shoal streams in Trainer.fit, and a killed run resumed from its checkpoint."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
pytest.importorskip("lightning", reason="Lightning is not installed (pip install lightning)")

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "lightning_child.py"
N_STEPS, BATCHES_PER_EPOCH, CHECKPOINT_EVERY = 30, 10, 3  # as in examples/lightning_fit.py


@pytest.fixture
def children():
    """Start training processes; any still running at the end of the test is killed."""
    started = []

    def start(tmp_path, name, *args):
        log = tmp_path / f"{name}.jsonl"
        process = subprocess.Popen(
            [sys.executable, str(CHILD), str(log), str(tmp_path / f"{name}-checkpoints"), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process, log

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _wait(process):
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def _steps(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_run_killed_mid_epoch_resumes_from_its_checkpoint_with_exactly_the_same_batches(
        tmp_path, children):
    whole, whole_log = children(tmp_path, "whole")
    killed, killed_log = children(tmp_path, "killed", "--kill-at-step", "14")
    code, _, err = _wait(whole)
    assert code == 0, err
    code, _, err = _wait(killed)
    assert code == -signal.SIGKILL, err
    uninterrupted = _steps(whole_log)
    assert [s["step"] for s in uninterrupted] == list(range(N_STEPS))

    # The killed run trained steps 0-13; its last checkpoint is after 12 steps
    # (one every 3), in the middle of the second epoch of 10 steps.
    before_kill = _steps(killed_log)
    assert [s["step"] for s in before_kill] == list(range(14))
    checkpoint = tmp_path / "killed-checkpoints" / "last.ckpt"
    resumed, _ = children(tmp_path, "killed", "--resume", str(checkpoint))
    code, _, err = _wait(resumed)
    assert code == 0, err
    after = _steps(killed_log)[len(before_kill):]
    assert after[0]["step"] == 12 and 12 % BATCHES_PER_EPOCH != 0
    assert [s["step"] for s in after] == list(range(12, N_STEPS))

    # Steps 12 and 13 were trained twice: before the kill and after the resume.
    assert before_kill[12:] == after[:2]
    assert before_kill[:12] + after == uninterrupted
    all_ids = [i for s in uninterrupted for i in s["ids"]]
    assert len(set(map(tuple, (s["ids"] for s in uninterrupted)))) > N_STEPS // 2  # data varies
    assert len(all_ids) == N_STEPS * 4


def test_the_lightning_example_shows_what_it_says():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "lightning_fit.py")],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "Each of the 3 validation runs saw the same 24 examples, in the same order." \
        in result.stdout
    assert "the 30 training batches are exactly those of a run that never stopped" \
        in result.stdout
