"""A Lightning training run for tests/test_lightning.py, in its own process.

``python lightning_child.py LOG CHECKPOINTS [--kill-at-step N] [--resume CKPT]``
trains examples/lightning_fit.py's model on its data module, checkpointing
every 3 steps into CHECKPOINTS, and appends one JSON line per training batch
to LOG: the global step and the ids of the examples in the batch. With
``--kill-at-step N`` the process kills itself (SIGKILL: no clean-up, as a
machine that fails) as step N starts; with ``--resume`` it resumes from a
checkpoint.
"""

import argparse
import importlib.util
import json
import os
import signal
from pathlib import Path

import lightning as L

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lightning_fit.py"


class Record(L.Callback):
    def __init__(self, log, kill_at_step):
        self.path, self.kill_at_step = log, kill_at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": trainer.global_step, "ids": batch["id"].tolist()}) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("log")
    parser.add_argument("checkpoints")
    parser.add_argument("--kill-at-step", type=int, default=-1)
    parser.add_argument("--resume")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("lightning_fit", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.quiet()
    example.fit(args.checkpoints, ckpt_path=args.resume,
                callbacks=[Record(args.log, args.kill_at_step)])


if __name__ == "__main__":
    main()
