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
N_STEPS, BATCHES_PER_EPOCH = 30, 10  # as in examples/lightning_fit.py


@pytest.fixture
def processes():
    """Start processes; any still running at the end of the test is killed."""
    started = []

    def start(*args):
        process = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

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
        tmp_path, processes):
    # The example trains without stopping (and checks its own claims) while
    # another run of the same training is killed (SIGKILL) as step 14 starts.
    log, checkpoints, reference = tmp_path / "log.jsonl", tmp_path / "ckpt", tmp_path / "ref"
    example = processes(ROOT / "examples" / "lightning_fit.py", "--record", reference)
    killed = processes(CHILD, log, checkpoints, "--kill-at-step", 14)
    code, out, err = _wait(example)
    assert code == 0, err
    assert "Each of the 3 validation runs saw the same 24 examples, in the same order." in out
    assert "the 30 training batches are exactly those of a run that never stopped" in out
    uninterrupted = [{"step": step, "ids": ids} for step, ids in json.loads(reference.read_text())]
    assert [s["step"] for s in uninterrupted] == list(range(N_STEPS))
    code, _, err = _wait(killed)
    assert code == -signal.SIGKILL, err

    # The killed run trained steps 0-13; its last checkpoint is after 12 steps
    # (one every 3), in the middle of the second epoch of 10 steps.
    before_kill = _steps(log)
    assert [s["step"] for s in before_kill] == list(range(14))
    resumed = processes(CHILD, log, checkpoints, "--resume", checkpoints / "last.ckpt")
    code, _, err = _wait(resumed)
    assert code == 0, err
    after = _steps(log)[len(before_kill):]
    assert after[0]["step"] == 12 and 12 % BATCHES_PER_EPOCH != 0
    assert [s["step"] for s in after] == list(range(12, N_STEPS))

    # Steps 12 and 13 were trained twice: before the kill and after the resume.
    assert before_kill[12:] == after[:2]
    assert before_kill[:12] + after == uninterrupted
    assert len({tuple(s["ids"]) for s in uninterrupted}) > N_STEPS // 2  # the batches differ
