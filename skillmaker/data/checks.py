"""Decode every image once: keep the usable ones with their perceptual hash, quarantine the rest.

Results are remembered by content hash in the cache folder, so a later pull decodes only images
it has not seen (or all of them again when the pixel limit changes). Many images are checked in
worker processes: hashing holds the interpreter lock, so threads would use one core.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import imagehash
from PIL import ImageOps

from skillmaker.data.cache.format import default_workers
from skillmaker.data.images import UNDECODABLE, BadImage, open_image, to_channels
from skillmaker.data.journal import JournaledIndex

CHECKS = "checks.json"
# Below this many images to check, starting worker processes costs more than it saves.
PROCESS_MIN = 256
CHUNK = 64


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one file's content: usable with its perceptual hash, or why not."""

    reason: str | None
    """The quarantine reason (see ``skillmaker.data.images``), or None for a usable image."""
    detail: str = ""
    phash: int | None = None
    """64-bit perceptual hash (``imagehash.phash``) of a usable image."""
    flipped: int | None = None
    """The perceptual hash of the image mirrored left-right (finds mirrored copies)."""

    @property
    def usable(self) -> bool:
        """Give whether the image can be trained on."""
        return self.reason is None


def check_image(data: bytes, max_pixels: int) -> ImageCheck:
    """Give the verdict on an image file's bytes, decoding them once."""
    try:
        image = open_image(data, max_pixels)
        # Hash what the network will see: alpha flattened, 16-bit scaled, EXIF upright.
        grey = to_channels(image, 1)
        value = int(str(imagehash.phash(grey)), 16)
        flipped = int(str(imagehash.phash(ImageOps.mirror(grey))), 16)
    except BadImage as exc:
        return ImageCheck(exc.reason, exc.detail)
    except (OSError, ValueError) as exc:
        return ImageCheck(UNDECODABLE, str(exc))
    return ImageCheck(None, "", value, flipped)


def _check_file(path: Path, max_pixels: int) -> ImageCheck:
    return check_image(path.read_bytes(), max_pixels)


def _check_chunk(paths: Sequence[Path], max_pixels: int) -> list[ImageCheck]:
    return [_check_file(path, max_pixels) for path in paths]


def _in_threads(paths: Sequence[Path], max_pixels: int, workers: int) -> Iterator[ImageCheck]:
    # Pillow releases the interpreter lock while it decodes: threads overlap big images' decoding.
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="check") as pool:
        yield from pool.map(_check_file, paths, [max_pixels] * len(paths))


def _in_processes(paths: Sequence[Path], max_pixels: int, workers: int) -> Iterator[ImageCheck]:
    """Give the verdicts in order, checked by ``workers`` processes a chunk at a time."""
    # forkserver and spawn start workers from a fresh interpreter (a forked copy of a process
    # with TensorFlow's threads can deadlock); a few chunks per worker in flight bound memory.
    method = "forkserver" if "forkserver" in get_all_start_methods() else "spawn"
    context = get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        running: deque[Future[list[ImageCheck]]] = deque()
        for chunk in chunks:
            running.append(pool.submit(_check_chunk, chunk, max_pixels))
            if len(running) >= workers * 4:
                yield from running.popleft().result()
        while running:
            yield from running.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _verdicts(paths: Sequence[Path], max_pixels: int, workers: int) -> Iterator[ImageCheck]:
    """Give the verdict on each file, in order: in worker processes when there are many."""
    cores = min(workers, default_workers())
    done = 0
    if cores > 1 and len(paths) >= PROCESS_MIN:
        try:
            for verdict in _in_processes(paths, max_pixels, cores):
                done += 1
                yield verdict
        except (BrokenProcessPool, OSError) as exc:
            # No pool here (no shared memory for semaphores, a worker killed): go on in threads.
            warnings.warn(
                f"data checks: checking in threads, the worker pool failed ({exc})",
                RuntimeWarning,
                stacklevel=2,
            )
    yield from _in_threads(paths[done:], max_pixels, workers)


def _to_entry(check: ImageCheck) -> dict[str, object]:
    return {
        "reason": check.reason,
        "detail": check.detail,
        "phash": None if check.phash is None else f"{check.phash:016x}",
        "flipped": None if check.flipped is None else f"{check.flipped:016x}",
    }


def _from_entry(entry: object) -> ImageCheck | None:
    if not isinstance(entry, dict):
        return None
    reason, detail, phash = entry.get("reason"), entry.get("detail"), entry.get("phash")
    flipped = entry.get("flipped")
    if reason is None and isinstance(phash, str) and isinstance(flipped, str):
        return ImageCheck(None, "", int(phash, 16), int(flipped, 16))
    if isinstance(reason, str) and isinstance(detail, str):
        return ImageCheck(reason, detail)
    return None


def check_files(
    files: Mapping[str, Path],
    *,
    max_pixels: int,
    cache_file: Path | None = None,
    workers: int = 4,
) -> dict[str, ImageCheck]:
    """Give the verdict for each content hash in ``files`` (hash -> a file with that content)."""
    index = None
    if cache_file is not None:
        header = {
            "format": 1,
            "max_pixels": max_pixels,
            "hash": "imagehash.phash 8x8, and mirrored",
        }
        index = JournaledIndex(cache_file, header=header)
    results: dict[str, ImageCheck] = {}
    todo: list[str] = []
    for sha in files:
        known = _from_entry(index.get(sha)) if index is not None else None
        if known is None:
            todo.append(sha)
        else:
            results[sha] = known
    try:
        verdicts = _verdicts([files[sha] for sha in todo], max_pixels, workers)
        for sha, verdict in zip(todo, verdicts, strict=True):
            results[sha] = verdict
            if index is not None:
                index.set(sha, _to_entry(verdict))
        if index is not None:
            for sha in [s for s in index if s not in files]:
                index.delete(sha)  # forget contents no longer in the store
            index.compact()
    finally:
        if index is not None:
            index.close()
    return results
