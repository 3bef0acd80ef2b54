"""One run per skill at a time: an exclusive lock on a file in the workspace."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skillmaker.errors import UserError


class RunInProgress(UserError):
    """Another run of the same skill holds the lock."""


@contextmanager
def exclusive(path: Path, *, what: str, wait: bool = False, poll: float = 0.5) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while the block runs; wait for it or refuse at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise RunInProgress(
                        f"{what} is already running (pid {holder}); wait for it or use --wait"
                    ) from None
                time.sleep(poll)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
