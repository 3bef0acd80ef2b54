"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this (child) process when its parent dies (Linux only).

    Meant as a ``preexec_fn``: a runner killed with SIGKILL then leaves no stage running.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def end_group(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Kill a child started in its own session and every process it started in turn."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
