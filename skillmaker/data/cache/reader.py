"""Reading the tensor cache: content hash -> row, and rows gathered from memory-mapped shards."""

from __future__ import annotations

import math
import mmap
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from skillmaker.data.cache.format import (
    INDEX,
    Shard,
    cache_folder,
    read_header,
    read_index,
    shard_intact,
)
from skillmaker.errors import UserError

# Mapped pages a reader keeps before handing them back: a few epochs of a small data set stay
# mapped (64 MiB re-faulted them every 40 batches, about 3% of a 2-core machine's CPU), and it is
# still small next to the memory of a training process, whatever the size of the cache.
RESIDENT_BYTES = 256 * 1024 * 1024


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
        shards: Sequence[Shard],
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
        shards = read_index(folder, shape)
        for shard in shards:
            if not shard_intact(folder / shard.file, len(shard.hashes), shape):
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
                    shape, offset = read_header(path)
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
