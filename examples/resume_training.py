"""Resuming training mid-epoch
===========================

Resume training mid-epoch with exactly the data an uninterrupted run would see.

A training loop reads batches from a StochasticMux over several "files" and
saves, with each checkpoint, the model and the state of its data stream. A
second process loads the checkpoint and carries on: it sees exactly the
batches the first process would have seen next.

Run it with ``python examples/resume_training.py``. It trains once without
stopping, then again in two processes (stopping and resuming halfway), and
checks that the two runs saw the same batches and ended with the same model.
Needs only numpy.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import shoal

N_FILES = 6
N_FEATURES = 4
BATCH_SIZE = 16


@shoal.streamable
def examples(file_index, n_rows=500):
    """The rows of one file (made up here, the same every time it is read)."""
    rng = np.random.default_rng(file_index)
    true_w = np.arange(1, N_FEATURES + 1, dtype=float)
    for _ in range(n_rows):
        x = rng.normal(size=N_FEATURES)
        yield {"x": x, "y": x @ true_w + 0.1 * rng.normal()}


def batches():
    """The training stream: files mixed at random, batched. A recipe: iterate it anew."""
    files = [examples(i) for i in range(N_FILES)]
    mux = shoal.StochasticMux(files, n_active=3, rate=32, random_state=2026)
    return shoal.Streamer(shoal.buffer_stream, mux, BATCH_SIZE)


def train(steps, checkpoint=None, resume_from=None):
    """Run ``steps`` SGD steps; return (model, fingerprints of the batches seen)."""
    w = np.zeros(N_FEATURES)
    it = batches().iterator(cycle=True)
    step = 0
    if resume_from is not None:
        saved = json.loads(Path(resume_from).read_text())
        w = np.array(saved["model"])
        step = saved["step"]
        it.load_state_dict(saved["data"])
    seen = []
    for _ in range(step, steps):
        batch = next(it)
        x, y = batch["x"], batch["y"]
        w -= 0.05 * 2 * x.T @ (x @ w - y) / len(y)
        seen.append(hashlib.sha1(x.tobytes()).hexdigest()[:12])
    if checkpoint is not None:
        Path(checkpoint).write_text(json.dumps(
            {"model": w.tolist(), "step": steps, "data": it.state_dict()}))
    it.close()
    return w, seen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--checkpoint", help="save a checkpoint here after --steps steps")
    parser.add_argument("--resume", help="resume from this checkpoint")
    parser.add_argument("--report", help="write the model and batches seen here (JSON)")
    args = parser.parse_args(argv)

    if args.checkpoint or args.resume:  # one process of the interrupted run
        w, seen = train(args.steps, args.checkpoint, args.resume)
        Path(args.report).write_text(json.dumps({"model": w.tolist(), "seen": seen}))
        return

    half = args.steps // 2
    w_straight, seen_straight = train(args.steps)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = str(Path(folder) / "checkpoint.json")
        first, second = str(Path(folder) / "first.json"), str(Path(folder) / "second.json")
        # This script, run again in new processes (found from its own code, so
        # that it works wherever it is run from, a documentation build included).
        script = [sys.executable, main.__code__.co_filename]
        subprocess.run([*script, "--steps", str(half), "--checkpoint", checkpoint,
                        "--report", first], check=True)
        subprocess.run([*script, "--steps", str(args.steps), "--resume", checkpoint,
                        "--report", second], check=True)
        runs = [json.loads(Path(path).read_text()) for path in (first, second)]
        state_size = len(Path(checkpoint).read_text())

    seen_resumed = runs[0]["seen"] + runs[1]["seen"]
    w_resumed = np.array(runs[1]["model"])
    print(f"uninterrupted run: {len(seen_straight)} batches, model {np.round(w_straight, 3)}")
    print(f"stopped after {half} batches and resumed in a new process: "
          f"{len(seen_resumed)} batches, model {np.round(w_resumed, 3)}")
    print(f"checkpoint size (model + stream state): {state_size} bytes")
    assert seen_resumed == seen_straight, "the resumed run saw other batches"
    assert np.array_equal(w_resumed, w_straight), "the resumed run ended with another model"
    print("The resumed run saw exactly the same batches, in the same order, "
          "and ended with exactly the same model.")


if __name__ == "__main__":
    main()
