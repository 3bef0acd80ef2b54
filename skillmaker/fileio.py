"""Writing files so that readers never see half of one, even after a crash or a power cut."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the folder's entry, not only the file's bytes)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path, *, suffix: str = "", mode: int = 0o644) -> Iterator[Path]:
    """Give a temporary sibling of ``path`` to write; on success it replaces ``path`` durably.

    The file is fsynced, renamed over ``path`` and the folder fsynced; on any error the
    temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(mode)  # mkstemp makes 0600; our files are read by CI, reviewers, containers
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
        _fsync_folder(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """Write a file through a temporary sibling and a rename, so it is whole or absent."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def sha256_file(path: Path) -> str:
    """Give the hex SHA-256 of a file's bytes, read in blocks so large files stay out of memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
