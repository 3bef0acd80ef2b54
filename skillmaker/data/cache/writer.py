"""Building the tensor cache: decode the images not cached yet into new shards, in worker processes.

Shards are written by worker processes straight into a preallocated file, so decoded pixels never
travel between processes; a row whose image failed to decode stays a hole no hash points to. The
index is replaced atomically after the shards are complete, so a reader never sees a partial shard.
"""

from __future__ import annotations

import ctypes
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from skillmaker.data.cache.format import (
    PART_SUFFIX,
    SHARD_PREFIX,
    SHARD_SUFFIX,
    Shard,
    cache_folder,
    default_workers,
    locked,
    read_index,
    shard_intact,
    write_header,
    write_index,
)
from skillmaker.data.images import UNDECODABLE, BadImage, decode

# A shard of 128x128x3 images holds about 5,400 rows: few files, each small enough to copy around.
SHARD_BYTES = 256 * 1024 * 1024
# Reason recorded when the local file itself cannot be read (not the image's fault).
UNREADABLE = "unreadable file"

# mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@dataclass(frozen=True)
class CacheBuild:
    """What one build did: the hashes it decoded, how many it found cached, and what failed."""

    folder: Path
    decoded: list[str]
    reused: int
    failed: dict[str, str] = field(default_factory=dict)


# Decoding (runs in worker processes)


@dataclass(frozen=True)
class _Chunk:
    """Images a worker decodes into rows of one preallocated shard file."""

    shard: str
    offset: int
    rows: tuple[tuple[int, str], ...]  # (row in the shard, local image file)
    height: int
    width: int
    channels: int
    max_pixels: int


def _decode_chunk(chunk: _Chunk) -> list[tuple[int, str]]:
    """Give the (row, reason) of each image of a chunk that failed; write the others in place."""
    failed: list[tuple[int, str]] = []
    size = chunk.height * chunk.width * chunk.channels
    fd = os.open(chunk.shard, os.O_WRONLY)
    try:
        for row, path in chunk.rows:
            try:
                data = Path(path).read_bytes()
            except OSError:
                failed.append((row, UNREADABLE))
                continue
            try:
                array = decode(data, chunk.height, chunk.width, chunk.channels, chunk.max_pixels)
            except BadImage as exc:
                failed.append((row, exc.reason))
                continue
            except Exception:  # a hostile file can trip any decoder bug; never stop the build
                failed.append((row, UNDECODABLE))
                continue
            os.pwrite(fd, np.ascontiguousarray(array).data, chunk.offset + row * size)
    finally:
        os.close(fd)
    return failed


def _chunk_size(pending: int, workers: int) -> int:
    """Give images per task: small enough to balance the pool, large enough to amortise a call."""
    return max(1, min(32, math.ceil(pending / (workers * 16))))


def _tune_worker_allocator() -> None:
    """Make glibc keep a decoding worker's freed buffers for reuse instead of unmapping them."""
    # Each decode allocates and frees buffers of hundreds of KiB. By default glibc gives those
    # back to the kernel and faults fresh pages in for the next image, which costs about a
    # quarter of the decode time on a VM. A worker is short-lived, so holding on is harmless.
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: its allocator has its own habits
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024 * 1024)


def _pool(workers: int) -> ProcessPoolExecutor:
    """Give a process pool whose workers start clean (no inherited threads or locks)."""
    # A forked copy of a process running TensorFlow's threads can deadlock; forkserver and
    # spawn start workers from a fresh interpreter that imports only this module.
    method = "forkserver" if "forkserver" in get_all_start_methods() else "spawn"
    context = get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_tune_worker_allocator
    )


def _pooled(chunks: Sequence[_Chunk], workers: int) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """Give (position, failures) of each chunk as a pool of ``workers`` processes decodes it."""
    # Keep a few tasks per worker in flight: the pool stays busy without queueing every path.
    window = workers * 4
    with _pool(workers) as pool:
        running: dict[Future[list[tuple[int, str]]], int] = {}
        for position, chunk in enumerate(chunks):
            running[pool.submit(_decode_chunk, chunk)] = position
            if len(running) >= window:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), future.result()
        for future, position in running.items():
            yield position, future.result()


def _run_chunks(
    chunks: Sequence[_Chunk], workers: int
) -> Iterator[tuple[_Chunk, list[tuple[int, str]]]]:
    """Give each chunk with its failures, decoding in a pool of workers or in this process."""
    finished: set[int] = set()
    if workers > 1 and len(chunks) > 1:
        try:
            for position, failures in _pooled(chunks, workers):
                finished.add(position)
                yield chunks[position], failures
        except (BrokenProcessPool, OSError) as exc:
            # No pool here (a main module that cannot be re-imported, no shared memory for
            # semaphores, a worker killed): slower in one process beats no cache at all.
            warnings.warn(
                f"tensor cache: decoding in one process, the worker pool failed ({exc})",
                RuntimeWarning,
                stacklevel=2,
            )
    for position, chunk in enumerate(chunks):
        if position not in finished:
            yield chunk, _decode_chunk(chunk)


# Building


def _new_items(
    items: Iterable[tuple[str, Path]], cached: set[str]
) -> tuple[list[tuple[str, Path]], int]:
    """Give the (hash, file) pairs still to decode, first file per hash, and how many are cached."""
    seen: set[str] = set()
    pending: list[tuple[str, Path]] = []
    reused = 0
    for sha, path in items:
        if sha in seen:
            continue
        seen.add(sha)
        if sha in cached:
            reused += 1
        else:
            pending.append((sha, path))
    return pending, reused


def _shard_number(name: str) -> int:
    """Give the number in a shard's file name."""
    return int(name[len(SHARD_PREFIX) : -len(SHARD_SUFFIX)])


def _tidy(folder: Path, keep: set[str]) -> None:
    """Delete shard files no index lists (left by a build that was interrupted)."""
    for path in folder.glob(f"{SHARD_PREFIX}*"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def build_cache(
    items: Sequence[tuple[str, Path]],
    root: Path,
    *,
    height: int,
    width: int,
    channels: int,
    max_pixels: int,
    workers: int | None = None,
    shard_bytes: int = SHARD_BYTES,
) -> CacheBuild:
    """Give what a build did after decoding every (content hash, file) not cached yet into shards.

    Images are decoded by ``workers`` processes (default: the cores this process may use; 1 decodes
    in this process). A file that cannot be decoded is reported in ``failed`` with its quarantine
    reason and is not cached, so a later build tries it again.
    """
    shape = (height, width, channels)
    folder = cache_folder(root, height, width, channels)
    folder.mkdir(parents=True, exist_ok=True)
    workers = default_workers() if workers is None else max(1, workers)
    with locked(folder):
        shards = [
            s
            for s in read_index(folder, shape)
            if shard_intact(folder / s.file, len(s.hashes), shape)
        ]
        _tidy(folder, {s.file for s in shards})
        cached = {h for s in shards for h in s.hashes if h is not None}
        pending, reused = _new_items(items, cached)
        failed: dict[str, str] = {}
        new_shards: list[Shard] = []
        if pending:
            first = max((_shard_number(s.file) for s in shards), default=-1) + 1
            new_shards, failed = _decode_into_shards(
                folder,
                first=first,
                pending=pending,
                shape=shape,
                max_pixels=max_pixels,
                workers=workers,
                shard_bytes=shard_bytes,
            )
        # Written even when nothing was new, so shards found damaged leave the index.
        write_index(folder, shape, [*shards, *new_shards])
    decoded = [sha for sha, _ in pending if sha not in failed]
    return CacheBuild(folder=folder, decoded=decoded, reused=reused, failed=failed)


def _decode_into_shards(
    folder: Path,
    *,
    first: int,
    pending: Sequence[tuple[str, Path]],
    shape: tuple[int, int, int],
    max_pixels: int,
    workers: int,
    shard_bytes: int,
) -> tuple[list[Shard], dict[str, str]]:
    """Give the new shards (numbered from ``first``) holding ``pending`` images, and failures."""
    height, width, channels = shape
    per_shard = max(1, shard_bytes // (height * width * channels))
    step = _chunk_size(len(pending), workers)
    hashes: dict[str, list[str | None]] = {}  # part file -> hash of each row
    chunks: list[_Chunk] = []
    failed: dict[str, str] = {}
    try:
        for number, start in enumerate(range(0, len(pending), per_shard), start=first):
            members = pending[start : start + per_shard]
            part = folder / f"{SHARD_PREFIX}{number:06d}{SHARD_SUFFIX}{PART_SUFFIX}"
            hashes[str(part)] = [sha for sha, _ in members]
            offset = write_header(part, len(members), shape)
            for low in range(0, len(members), step):
                rows = tuple(
                    (row, str(path))
                    for row, (_, path) in enumerate(members[low : low + step], start=low)
                )
                chunks.append(_Chunk(str(part), offset, rows, height, width, channels, max_pixels))
        for chunk, failures in _run_chunks(chunks, workers):
            for row, reason in failures:
                sha = hashes[chunk.shard][row]
                assert sha is not None
                failed[sha] = reason
                hashes[chunk.shard][row] = None  # a hole: no hash points at a zeroed row
        shards: list[Shard] = []
        for part_name, row_hashes in hashes.items():
            part = Path(part_name)
            if all(sha is None for sha in row_hashes):
                part.unlink()
                continue
            # On disk before the index names it: after a crash the index never points at rows
            # the kernel had not written yet.
            fd = os.open(part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            final = part.with_name(part.name.removesuffix(PART_SUFFIX))
            part.replace(final)
            shards.append(Shard(final.name, row_hashes))
    except BaseException:
        for part_name in hashes:
            Path(part_name).unlink(missing_ok=True)
        raise
    return shards, failed
