"""The tensor cache on disk: every image decoded once into memory-mappable uint8 shards.

Layout under the cache root (``Workspace.tensor_cache``), one folder per input shape::

    <root>/<height>x<width>x<channels>/
        index.json            shards in order, with the content hash of each row (null: a hole)
        shard-000000.npy      uint8 array (rows, height, width, channels), never rewritten
        shard-000001.npy      ... appended by later builds, which decode only new hashes

A global row id is a shard's first row (the rows of the shards before it) plus the row inside it.
Shards are written by worker processes straight into a preallocated file, so decoded pixels never
travel between processes; a row whose image failed to decode stays a hole no hash points to. The
index is replaced atomically after the shards are complete, so a reader never sees a partial shard.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np

from skillmaker.errors import UserError
from skillmaker.fileio import write_atomic
from skillmaker.records import read_record

INDEX = "index.json"
FORMAT = 1

SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".npy"
PART_SUFFIX = ".part"
LOCK = ".lock"


@dataclass(frozen=True)
class Shard:
    """One shard as the index lists it."""

    file: str
    hashes: list[str | None]


def cache_folder(root: Path, height: int, width: int, channels: int) -> Path:
    """Give the folder of the cache for one input shape."""
    return root / f"{height}x{width}x{channels}"


def default_workers() -> int:
    """Give the number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Shard files


def write_header(path: Path, rows: int, shape: tuple[int, int, int]) -> int:
    """Give the data offset of a new ``.npy`` file of ``rows`` zeroed images, created sparse."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (rows, *shape),
    }
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        offset = handle.tell()
        handle.truncate(offset + rows * math.prod(shape))
    return offset


def read_header(path: Path) -> tuple[tuple[int, ...], int]:
    """Give the shape and data offset of a uint8 ``.npy`` file."""
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        if dtype != np.uint8 or fortran:
            raise ValueError(f"not a C-ordered uint8 array ({dtype}, fortran={fortran})")
        return shape, handle.tell()


def shard_intact(path: Path, rows: int, shape: tuple[int, int, int]) -> bool:
    """Say whether a shard file exists with the shape and size the index expects."""
    try:
        found, offset = read_header(path)
        size = path.stat().st_size
    except (OSError, ValueError):
        return False
    return found == (rows, *shape) and size == offset + rows * math.prod(shape)


# The index


def read_index(folder: Path, shape: tuple[int, int, int]) -> list[Shard]:
    """Give the shards listed in a cache folder's index (none when there is no index yet)."""
    path = folder / INDEX
    if not path.exists():
        return []
    data = read_record(path)
    try:
        if data["format"] != FORMAT or tuple(data["shape"]) != shape:
            raise UserError(
                f"{path}: a tensor cache of another format or shape; delete {folder} to rebuild it"
            )
        return [Shard(str(s["file"]), list(s["hashes"])) for s in data["shards"]]
    except (KeyError, TypeError) as exc:
        raise UserError(f"{path}: damaged tensor cache index ({exc}); delete {folder}") from None


def write_index(folder: Path, shape: tuple[int, int, int], shards: Sequence[Shard]) -> None:
    """Replace a cache folder's index atomically."""
    record = {
        "format": FORMAT,
        "shape": list(shape),
        "shards": [{"file": s.file, "hashes": s.hashes} for s in shards],
    }
    # Compact JSON: the index lists every cached hash, which can be millions.
    text = json.dumps(record, separators=(",", ":"))
    write_atomic(folder / INDEX, text)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the cache folder's lock, so two builds never append to one cache at once."""
    with filelock.FileLock(str(folder / LOCK)):
        yield
