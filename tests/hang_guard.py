"""A guard for tests of things that must never hang, and a look at where a thread is."""

import signal
import sys
from contextlib import contextmanager

__all__ = ["no_hang", "in_function"]


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


def in_function(thread, name):
    """Whether ``thread`` is running the function called ``name`` now."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == name:
            return True
        frame = frame.f_back
    return False
