"""Processes that end with the run.

A DataLoader worker orphaned by a killed main process would be adopted by PID 1 and wait forever,
holding its memory: each worker asks Linux for SIGKILL when its parent dies, and a polling thread
covers systems without that (and the instant before it was set). SIGTERM stops a run the way
Ctrl-C does (`Terminated` is a KeyboardInterrupt), so committed chunks stay and the workers are
shut down by the DataLoader as for an interrupt.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 1.0


class Terminated(KeyboardInterrupt):
    """The run received SIGTERM; handled wherever an interrupt is."""

    signum = signal.SIGTERM


def die_with_parent(parent: int) -> None:
    """In a child process: end it as soon as process `parent` ends."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a failure leaves the polling thread to do it
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)
    # SIGTERM to the whole process group is the parent's to handle: a worker dying of it first
    # would race the parent's clean stop (torch reports the lost worker as a crash); the parent
    # shuts its workers down, and they die with it in any case
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="sysnoise-parent-watch", daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within: SIGTERM raises Terminated in the main thread. Workers that die of the same signal
    (sent to the whole process group) are expected then, so from that moment their exit is not
    reported as a crash (torch's SIGCHLD check) on top of the interrupt. Outside the main thread:
    no change (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced = {}

    def terminate(signum, frame):
        replaced[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _expected_child_exit)
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        for signum, handler in replaced.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _expected_child_exit(signum, frame) -> None:
    pass
