"""Mirror every object of a store into a local cache folder, fetching only what changed.

The cache keeps each object at ``<cache>/objects/<key>`` and an index of what it holds (ETag,
size, SHA-256) in ``<cache>/index.json``; the index is journaled as downloads finish, so an
interrupted pull resumes where it stopped. A key that would not land inside the cache folder is
refused and reported, never written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from skillmaker.adapters.store import ObjectInfo, ObjectNotFound, Store, key_problem
from skillmaker.data.images import UNSAFE_KEY
from skillmaker.data.journal import JournaledIndex
from skillmaker.fileio import sha256_file
from skillmaker.records import Quarantined

OBJECTS = "objects"
INDEX = "index.json"

Progress = Callable[[int, int], None]
"""Called with (objects fetched so far, objects to fetch) after each download."""


@dataclass(frozen=True)
class CachedObject:
    """An object of the store as it sits in the cache."""

    key: str
    size: int
    etag: str
    sha256: str
    path: Path
    """Where the bytes are, inside the cache folder."""

    @property
    def relative_path(self) -> str:
        """Give the file's path relative to the cache folder (``objects/<key>``)."""
        return f"{OBJECTS}/{self.key}"


@dataclass(frozen=True)
class RefusedKey:
    """An object whose key is unsafe, and what is wrong with the key."""

    key: str
    """The key as printable text (bytes that are not UTF-8 are escaped)."""
    problem: str


@dataclass(frozen=True)
class PullResult:
    """What a pull left in the cache and what it did to get there."""

    objects: tuple[CachedObject, ...]
    """Every object now mirrored, in key order."""
    fetched: tuple[str, ...] = ()
    """Keys downloaded by this pull (new or changed)."""
    removed: tuple[str, ...] = ()
    """Keys dropped from the cache because the store no longer has them."""
    refused: tuple[RefusedKey, ...] = field(default=())
    """Objects refused because their keys would not land inside the cache folder, in key order."""

    @property
    def quarantined(self) -> list[Quarantined]:
        """Give the refused objects as audit entries (reason ``unsafe key``)."""
        return [{"key": r.key, "reason": UNSAFE_KEY} for r in self.refused]

    @property
    def reused(self) -> int:
        """Give how many objects were already cached with the same ETag and size."""
        return len(self.objects) - len(self.fetched)


def printable_key(key: str) -> str:
    """Give a key as text that can be written to JSON (bytes that are not UTF-8 escaped)."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return key


def cache_path(cache_dir: Path, key: str) -> Path | str:
    """Give where an object lands in the cache, or why its key is refused."""
    return _Placer(cache_dir).place(key)


OUTSIDE = "leads outside the cache folder"


class _Placer:
    """Where keys land in the cache; each folder is checked once, however many keys it holds."""

    def __init__(self, cache_dir: Path) -> None:
        self.objects = (cache_dir / OBJECTS).resolve()
        self._inside: dict[str, bool] = {"": True}

    def _stays_inside(self, path: Path) -> bool:
        # Belt and braces: a symbolic link planted inside the cache must not lead writes outside.
        return not path.is_symlink() or path.resolve().is_relative_to(self.objects)

    def _folder_inside(self, folder: str) -> bool:
        unknown: list[str] = []
        while folder not in self._inside:
            unknown.append(folder)
            folder = folder.rpartition("/")[0]
        inside = self._inside[folder]
        for sub in reversed(unknown):  # outermost first: one link check per folder
            inside = inside and self._stays_inside(self.objects / sub)
            self._inside[sub] = inside
        return inside

    def place(self, key: str) -> Path | str:
        """Give where ``key`` lands in the cache, or why it is refused."""
        problem = key_problem(key)
        if problem is not None:
            return problem
        path = self.objects / key
        if not self._folder_inside(key.rpartition("/")[0]) or not self._stays_inside(path):
            return OUTSIDE
        return path


def _plan(
    listing: Iterable[ObjectInfo], cache_dir: Path
) -> tuple[dict[str, tuple[ObjectInfo, Path]], list[RefusedKey]]:
    safe: dict[str, tuple[ObjectInfo, Path]] = {}
    refused: list[RefusedKey] = []
    placer = _Placer(cache_dir)
    for info in listing:
        if info.key.endswith("/") and info.size == 0 and key_problem(info.key[:-1]) is None:
            continue  # a "folder" marker made by S3 consoles, not a file
        where = placer.place(info.key)
        if isinstance(where, str):
            refused.append(RefusedKey(printable_key(info.key), where))
        else:
            safe[info.key] = (info, where)
    # A key that is also the folder of other keys cannot be a file in the cache as well.
    folders = {key.rsplit("/", i)[0] for key in safe for i in range(1, key.count("/") + 1)}
    for key in sorted(folders & safe.keys()):
        refused.append(RefusedKey(key, "is also the folder of other keys"))
        del safe[key]
    return safe, refused


def _fetch(store: Store, key: str, path: Path) -> dict[str, object] | None:
    """Give the index entry of a downloaded object, or None when it vanished meanwhile."""
    try:
        info = store.download(key, path)
    except ObjectNotFound:
        return None
    return {"etag": info.etag, "size": info.size, "sha256": sha256_file(path)}


def _is_current(entry: object, info: ObjectInfo, path: Path) -> bool:
    if not isinstance(entry, dict):
        return False
    if entry.get("etag") != info.etag or entry.get("size") != info.size:
        return False
    try:
        return path.stat().st_size == info.size and isinstance(entry.get("sha256"), str)
    except OSError:
        return False


def _prune(objects_dir: Path, keep: set[str]) -> None:
    """Delete files the index does not vouch for (stale objects, half-written downloads).

    ``keep`` holds the paths (as text) of the files to keep; folders left empty are removed.
    """
    if not objects_dir.is_dir():
        return
    emptied: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(objects_dir, topdown=False):
        left = 0
        for name in filenames:
            path = dirpath + os.sep + name
            if path in keep:
                left += 1
            else:
                Path(path).unlink(missing_ok=True)
        for name in dirnames:
            sub = dirpath + os.sep + name
            if Path(sub).is_symlink():
                Path(sub).unlink()
            elif sub not in emptied:
                left += 1
            else:
                try:
                    Path(sub).rmdir()
                except OSError:
                    left += 1  # something appeared in it meanwhile
        if not left:
            emptied.add(dirpath)


def pull(
    store: Store, cache_dir: Path, *, workers: int = 8, on_progress: Progress | None = None
) -> PullResult:
    """Give the mirrored objects after syncing every object of ``store`` into ``cache_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    objects_dir = (cache_dir / OBJECTS).resolve()
    objects_dir.mkdir(exist_ok=True)
    index = JournaledIndex(cache_dir / INDEX, header={"format": 1, "store": store.uri})
    try:
        safe, refused = _plan(store.list(), cache_dir)
        removed = [key for key in index if key not in safe]
        for key in removed:
            index.delete(key)
        _prune(objects_dir, keep={str(path) for key, (_, path) in safe.items() if key in index})
        todo = [
            key for key, (info, path) in safe.items() if not _is_current(index.get(key), info, path)
        ]
        fetched = _download_all(store, safe, todo, index, workers=workers, on_progress=on_progress)
        index.compact()
    finally:
        index.close()
    vanished = set(todo) - set(fetched)
    mirrored = []
    for key in sorted(safe):
        if key in vanished:
            continue
        entry = index.get(key)
        mirrored.append(
            CachedObject(
                key, int(entry["size"]), str(entry["etag"]), str(entry["sha256"]), safe[key][1]
            )
        )
    return PullResult(
        objects=tuple(mirrored),
        fetched=tuple(sorted(fetched)),
        removed=tuple(sorted([*removed, *vanished])),
        refused=tuple(sorted(refused, key=lambda r: r.key)),
    )


def _download_all(
    store: Store,
    safe: dict[str, tuple[ObjectInfo, Path]],
    todo: list[str],
    index: JournaledIndex,
    *,
    workers: int,
    on_progress: Progress | None,
) -> list[str]:
    """Give the keys downloaded, fetching at most ``workers`` objects at a time."""
    fetched: list[str] = []
    if not todo:
        return fetched
    pending = iter(todo)
    running: dict[Future[dict[str, object] | None], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pull") as pool:
        try:
            # Submit lazily so an interruption leaves at most ``workers`` downloads in flight.
            for key in pending:
                running[pool.submit(_fetch, store, key, safe[key][1])] = key
                if len(running) >= max(1, workers):
                    break
            done_count = 0
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    key = running.pop(future)
                    entry = future.result()
                    if entry is not None:
                        index.set(key, entry)
                        fetched.append(key)
                    else:
                        index.delete(key)
                        safe[key][1].unlink(missing_ok=True)
                    done_count += 1
                    if on_progress is not None:
                        on_progress(done_count, len(todo))
                    following = next(pending, None)
                    if following is not None:
                        running[pool.submit(_fetch, store, following, safe[following][1])] = (
                            following
                        )
        finally:
            for future in running:
                future.cancel()
    return fetched
