"""Compare-and-swap of one object in a store: the one retry loop behind every shared record.

The registry, the split ledger and run.json are read, changed and written back by pipelines that
may run at the same time. Each write is conditional (``If-None-Match: *`` for a new object,
``If-Match: <etag>`` otherwise), so a writer that lost the race re-reads and tries again, with
jittered exponential backoff so that writers spread out instead of colliding in step.
"""

from __future__ import annotations

import copy
import random
import time
import uuid
import weakref
from collections.abc import Callable
from typing import TypeVar

from skillmaker.adapters.store import ObjectNotFound, PreconditionFailed, Store
from skillmaker.errors import UserError

T = TypeVar("T")

ATTEMPTS = 100


class StoreBusyError(UserError):
    """Too many writers changed one object at once; the change was not made."""


class UnsafeStoreError(UserError):
    """The store accepts conditional writes but does not honour them: no shared record is safe."""


PROBE_KEY = "skillmaker-probe/conditional-writes"
# Stores found honest, by object: the same URI through another endpoint is another server.
_probed: weakref.WeakSet[Store] = weakref.WeakSet()


def require_conditional_writes(store: Store) -> None:
    """Refuse (exit 2) a store that ignores ``If-None-Match``/``If-Match`` (probed once per store).

    Some S3-compatible servers accept the headers and write anyway; on such a store two pipelines
    would get the same version number with no error. Two writes that must be refused tell.
    """
    if store in _probed:
        return
    key = f"{PROBE_KEY}-{uuid.uuid4().hex}"
    etag = store.put_bytes(key, b"1", if_none_match=True)
    ignored: list[str] = []
    try:
        store.put_bytes(key, b"2", if_none_match=True)
        ignored.append("If-None-Match")
    except PreconditionFailed:
        pass
    try:
        store.put_bytes(key, b"3", if_match=etag + "0")
        ignored.append("If-Match")
    except PreconditionFailed:
        pass
    finally:
        store.delete(key)
    if ignored:
        raise UnsafeStoreError(
            f"{store.uri}: the store ignores conditional writes ({' and '.join(ignored)}): it "
            "wrote over an object it was told to keep, so pipelines could be handed the same "
            "version. Use a store that honours them (AWS S3, MinIO, or file://)"
        )
    _probed.add(store)


def backoff(attempt: int) -> float:
    """Give the seconds to wait before retry ``attempt``: jittered, doubling, at most 0.25 s."""
    return random.uniform(0.0, min(0.25, 0.005 * 2 ** min(attempt, 8)))  # noqa: S311


def compare_and_swap(
    store: Store,
    key: str,
    *,
    decode: Callable[[bytes], T],
    encode: Callable[[T], bytes],
    change: Callable[[T | None], T | None],
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> T | None:
    """Give the object after applying ``change`` to it atomically (retried while others write).

    ``change`` gets a private copy of the current value (None when the object does not exist)
    and gives the new one; it may run several times, so it must have no side effects. When it
    gives back the current value (or None), nothing is written and the current value is given.
    A store that does not honour conditional writes is refused (``UnsafeStoreError``).
    """
    require_conditional_writes(store)
    for attempt in range(attempts):
        etag: str | None
        try:
            data, etag = store.get_with_etag(key)
            current: T | None = decode(data)
        except ObjectNotFound:
            current, etag = None, None
        updated = change(copy.deepcopy(current))
        if updated is None or updated == current:
            return current
        try:
            if etag is None:
                store.put_bytes(key, encode(updated), if_none_match=True)
            else:
                store.put_bytes(key, encode(updated), if_match=etag)
        except PreconditionFailed:
            sleep(backoff(attempt))
            continue
        return updated
    raise StoreBusyError(
        f"{store.uri}/{key}: gave up after {attempts} attempts; other pipelines kept writing it"
    )
