"""Exclusive locks on files (through ``filelock``) whose refusals name the holder."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import filelock

from skillmaker.errors import UserError


class LockHeld(UserError):
    """Someone else holds the lock; the message says who."""


def holder_file(path: Path) -> Path:
    """Give the file beside a lock that says who holds it."""
    return path.with_name(path.name + ".holder")


def describe_holder(path: Path) -> str:
    """Give who holds the lock at ``path`` as words (pid, host, what, since), or "unknown"."""
    try:
        info = json.loads(holder_file(path).read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}, {info['what']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def holder_pid(path: Path) -> int | None:
    """Give the pid recorded as holding the lock at ``path``, if any."""
    try:
        return int(json.loads(holder_file(path).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def exclusive(path: Path, *, what: str, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while the block runs; wait for it or refuse at once.

    The lock is the operating system's (``flock``), so it is released when its holder dies,
    even by SIGKILL; the holder file only says who held it last.
    """
    made_folder = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path), timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockHeld(
            f"{what} is already running ({describe_holder(path)}); wait for it or use --wait"
        ) from None
    try:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": since}
        holder_file(path).write_text(json.dumps(info) + "\n", encoding="utf-8")
        yield
    finally:
        holder_file(path).unlink(missing_ok=True)
        lock.release()
        if made_folder and [p.name for p in path.parent.iterdir()] == [path.name]:
            # The lock made its folder and nothing else was written there: leave no trace.
            path.unlink(missing_ok=True)
            path.parent.rmdir()
