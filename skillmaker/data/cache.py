"""The tensor cache: every image decoded once into memory-mappable uint8 shards, keyed by content.

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
import ctypes
import fcntl
import json
import math
import mmap
import os
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np

from skillmaker.data.images import UNDECODABLE, BadImage, decode
from skillmaker.errors import UserError
from skillmaker.records import read_record, write_record

INDEX = "index.json"
FORMAT = 1
# A shard of 128x128x3 images holds about 5,400 rows: few files, each small enough to copy around.
SHARD_BYTES = 256 * 1024 * 1024
# Mapped pages a reader keeps before handing them back: a few epochs of a small data set stay
# mapped (64 MiB re-faulted them every 40 batches, about 3% of a 2-core machine's CPU), and it is
# still small next to the memory of a training process, whatever the size of the cache.
RESIDENT_BYTES = 256 * 1024 * 1024
# Reason recorded when the local file itself cannot be read (not the image's fault).
UNREADABLE = "unreadable file"

# mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_SHARD_PREFIX = "shard-"
_SHARD_SUFFIX = ".npy"
_PART_SUFFIX = ".part"
_LOCK = ".lock"


@dataclass(frozen=True)
class CacheBuild:
    """What one build did: the hashes it decoded, how many it found cached, and what failed."""

    folder: Path
    decoded: list[str]
    reused: int
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Shard:
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


# ---------------------------------------------------------------------------------------------
# Shard files


def _write_header(path: Path, rows: int, shape: tuple[int, int, int]) -> int:
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


def _read_header(path: Path) -> tuple[tuple[int, ...], int]:
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


def _shard_intact(path: Path, rows: int, shape: tuple[int, int, int]) -> bool:
    """Say whether a shard file exists with the shape and size the index expects."""
    try:
        found, offset = _read_header(path)
        size = path.stat().st_size
    except (OSError, ValueError):
        return False
    return found == (rows, *shape) and size == offset + rows * math.prod(shape)


# ---------------------------------------------------------------------------------------------
# The index


def _read_index(folder: Path, shape: tuple[int, int, int]) -> list[_Shard]:
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
        return [_Shard(str(s["file"]), list(s["hashes"])) for s in data["shards"]]
    except (KeyError, TypeError) as exc:
        raise UserError(f"{path}: damaged tensor cache index ({exc}); delete {folder}") from None


def _write_index(folder: Path, shape: tuple[int, int, int], shards: Sequence[_Shard]) -> None:
    """Replace a cache folder's index atomically."""
    record = {
        "format": FORMAT,
        "shape": list(shape),
        "shards": [{"file": s.file, "hashes": s.hashes} for s in shards],
    }
    # Compact JSON: the index lists every cached hash, which can be millions.
    text = json.dumps(record, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(prefix=f".{INDEX}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(folder / INDEX)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the cache folder's lock, so two builds never append to one cache at once."""
    with (folder / _LOCK).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
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
    return int(name[len(_SHARD_PREFIX) : -len(_SHARD_SUFFIX)])


def _tidy(folder: Path, keep: set[str]) -> None:
    """Delete shard files no index lists (left by a build that was interrupted)."""
    for path in folder.glob(f"{_SHARD_PREFIX}*"):
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
    with _locked(folder):
        shards = [
            s
            for s in _read_index(folder, shape)
            if _shard_intact(folder / s.file, len(s.hashes), shape)
        ]
        _tidy(folder, {s.file for s in shards})
        cached = {h for s in shards for h in s.hashes if h is not None}
        pending, reused = _new_items(items, cached)
        failed: dict[str, str] = {}
        new_shards: list[_Shard] = []
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
        _write_index(folder, shape, [*shards, *new_shards])
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
) -> tuple[list[_Shard], dict[str, str]]:
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
            part = folder / f"{_SHARD_PREFIX}{number:06d}{_SHARD_SUFFIX}{_PART_SUFFIX}"
            hashes[str(part)] = [sha for sha, _ in members]
            offset = _write_header(part, len(members), shape)
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
        shards: list[_Shard] = []
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
            final = part.with_name(part.name.removesuffix(_PART_SUFFIX))
            part.replace(final)
            shards.append(_Shard(final.name, row_hashes))
    except BaseException:
        for part_name in hashes:
            Path(part_name).unlink(missing_ok=True)
        raise
    return shards, failed


# ---------------------------------------------------------------------------------------------
# Reading


class TensorCache:
    """A read-only view of a built cache: content hash -> row, and rows gathered from memmaps.

    Shards are memory-mapped, never loaded whole. Pages a memmap has touched count in this
    process's resident memory, so once reads have touched ``resident_bytes`` the mappings are
    handed back to the kernel (its page cache still holds them for the next epoch): memory stays
    bounded however large the cache grows. Safe to read from several threads at once.
    """

    def __init__(
        self,
        folder: Path,
        shape: tuple[int, int, int],
        shards: Sequence[_Shard],
        *,
        resident_bytes: int = RESIDENT_BYTES,
    ) -> None:
        self.folder = folder
        self.shape = shape
        self.resident_bytes = resident_bytes
        self._files = [folder / s.file for s in shards]
        sizes = [len(s.hashes) for s in shards]
        self._starts = np.cumsum([0, *sizes]).astype(np.int64)
        self._row_of: dict[str, int] = {}
        for start, shard in zip(self._starts, shards, strict=False):
            for position, sha in enumerate(shard.hashes):
                if sha is not None:
                    self._row_of[sha] = int(start) + position
        self._maps: list[tuple[mmap.mmap, np.ndarray] | None] = [None] * len(shards)
        self._lock = threading.Lock()
        self._touched = 0

    @classmethod
    def open(
        cls,
        root: Path,
        height: int,
        width: int,
        channels: int,
        *,
        resident_bytes: int = RESIDENT_BYTES,
    ) -> TensorCache:
        """Give the cache of one input shape under ``root``; a user error if none was built."""
        shape = (height, width, channels)
        folder = cache_folder(root, height, width, channels)
        if not (folder / INDEX).exists():
            raise UserError(f"{folder}: no tensor cache (the data stage builds it)")
        shards = _read_index(folder, shape)
        for shard in shards:
            if not _shard_intact(folder / shard.file, len(shard.hashes), shape):
                raise UserError(
                    f"{folder / shard.file}: tensor cache shard is missing or damaged; "
                    "run the data stage again to rebuild it"
                )
        return cls(folder, shape, shards, resident_bytes=resident_bytes)

    def __len__(self) -> int:
        """Give the number of cached images."""
        return len(self._row_of)

    def __contains__(self, sha: object) -> bool:
        """Say whether an image with this content hash is cached."""
        return sha in self._row_of

    @property
    def hashes(self) -> list[str]:
        """Give the content hashes of every cached image, in row order."""
        return sorted(self._row_of, key=self._row_of.__getitem__)

    def rows(self, hashes: Iterable[str]) -> np.ndarray:
        """Give the global row ids (int64) of images by content hash; a KeyError names a missing."""
        try:
            return np.fromiter((self._row_of[h] for h in hashes), dtype=np.int64)
        except KeyError as exc:
            raise KeyError(
                f"image {exc.args[0]} is not in the tensor cache {self.folder}"
            ) from None

    def _shard(self, index: int) -> np.ndarray:
        """Give a shard's rows as an array over its memory mapping, mapping it on first use."""
        opened = self._maps[index]
        if opened is None:
            with self._lock:
                opened = self._maps[index]
                if opened is None:
                    path = self._files[index]
                    shape, offset = _read_header(path)
                    with path.open("rb") as handle:
                        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                    count = math.prod(shape)
                    array = np.frombuffer(mapping, dtype=np.uint8, count=count, offset=offset)
                    opened = (mapping, array.reshape(shape))
                    self._maps[index] = opened
        return opened[1]

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Give the images of global rows as a ``(n, height, width, channels)`` uint8 array."""
        wanted = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(wanted), *self.shape), dtype=np.uint8)
        if len(wanted) == 0:
            return out
        if wanted.min() < 0 or wanted.max() >= self._starts[-1]:
            raise IndexError(f"row out of range 0..{int(self._starts[-1]) - 1} of {self.folder}")
        # Gather in file order: neighbouring rows share pages and reads run forwards. Rows that
        # come sorted (as the pipeline asks) are copied once, straight into the result.
        ascending = bool(np.all(wanted[1:] >= wanted[:-1]))
        order = None if ascending else np.argsort(wanted, kind="stable")
        ordered = wanted if order is None else wanted[order]
        target = out if order is None else np.empty_like(out)
        bounds = np.searchsorted(ordered, self._starts, side="left")
        for index in range(len(self._files)):
            low, high = int(bounds[index]), int(bounds[index + 1])
            if low < high:
                local = ordered[low:high] - self._starts[index]
                # mode="clip" writes into ``out`` unbuffered; the rows were checked above.
                np.take(self._shard(index), local, axis=0, out=target[low:high], mode="clip")
        if order is not None:
            out[order] = target
        self._release_if_over(out.nbytes)
        return out

    def _release_if_over(self, nbytes: int) -> None:
        """Hand the mapped pages back to the kernel once reads have touched the budget."""
        with self._lock:
            self._touched += nbytes
            if self._touched < self.resident_bytes or _DONTNEED is None:
                return
            self._touched = 0
            maps = [m for m in self._maps if m is not None]
        for mapping, _ in maps:
            mapping.madvise(_DONTNEED)

    def close(self) -> None:
        """Unmap every shard (arrays handed out by ``read`` are copies and stay valid)."""
        with self._lock:
            maps, self._maps = self._maps, [None] * len(self._files)
        for opened in maps:
            if opened is not None:
                mapping, array = opened
                del array, opened
                mapping.close()


_DONTNEED: int | None = getattr(mmap, "MADV_DONTNEED", None)


# ---------------------------------------------------------------------------------------------
# Normalisation statistics


def normalisation(
    cache: TensorCache, rows: Sequence[int] | np.ndarray, *, batch: int = 1024
) -> tuple[list[float], list[float]]:
    """Give the per-channel mean and standard deviation (pixel values 0..255) of cached rows.

    Streamed in batches of ``batch`` images; sums are kept as exact integers, so the result does
    not depend on the batch size and equals the statistics of the whole array.
    """
    wanted = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(wanted) == 0:
        raise UserError("normalisation needs at least one image (the training split is empty)")
    channels = cache.shape[2]
    total = [0] * channels
    squares = [0] * channels
    for low in range(0, len(wanted), max(1, batch)):
        images = cache.read(wanted[low : low + batch]).reshape(-1, channels)
        wide = images.astype(np.uint64)
        for c in range(channels):
            total[c] += int(wide[:, c].sum())
            squares[c] += int(np.dot(wide[:, c], wide[:, c]))
    count = len(wanted) * cache.shape[0] * cache.shape[1]
    means = [t / count for t in total]
    # Exact integer variance: n * sum(x^2) - sum(x)^2 never cancels catastrophically.
    stds = [
        math.sqrt((count * q - t * t) / (count * count))
        for t, q in zip(total, squares, strict=True)
    ]
    return means, stds


def save_normalisation(path: Path, mean: Sequence[float], std: Sequence[float]) -> None:
    """Write ``normalisation.json`` (``{"mean": [...], "std": [...]}``) atomically."""
    write_record(path, {"mean": [float(m) for m in mean], "std": [float(s) for s in std]})


def load_normalisation(path: Path) -> tuple[list[float], list[float]]:
    """Give the mean and std saved in ``normalisation.json``, or a user error naming the file."""
    data: Any = read_record(path)
    try:
        mean = [float(m) for m in data["mean"]]
        std = [float(s) for s in data["std"]]
    except (KeyError, TypeError, ValueError):
        raise UserError(f'{path}: expected {{"mean": [...], "std": [...]}} of numbers') from None
    if len(mean) != len(std) or not mean:
        raise UserError(f"{path}: mean and std must list the same number of channels")
    return mean, std
