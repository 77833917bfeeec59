"""A guard for tests of things that must never hang."""

import signal
from contextlib import contextmanager

__all__ = ["no_hang"]


@contextmanager
def no_hang(seconds=60):
    """Fail, rather than hang, if the block takes longer than ``seconds`` (main thread only)."""
    def alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
