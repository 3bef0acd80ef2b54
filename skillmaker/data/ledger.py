"""The split ledger in the artifact store: read it, and extend it with conditional writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from skillmaker.adapters.store import ObjectNotFound, PreconditionFailed, Store, StoreError
from skillmaker.domain.splits import SplitLedger

T = TypeVar("T")


def read_ledger(store: Store, key: str) -> tuple[SplitLedger, str | None]:
    """Give the ledger stored at ``key`` and its entity tag (an empty ledger and None if absent)."""
    try:
        data, etag = store.get_with_etag(key)
    except ObjectNotFound:
        return SplitLedger(), None
    return SplitLedger.from_bytes(data, f"{store.uri}/{key}"), etag


def update_ledger(
    store: Store,
    key: str,
    extend: Callable[[SplitLedger], tuple[SplitLedger, T]],
    *,
    attempts: int = 20,
) -> tuple[SplitLedger, T]:
    """Give the stored ledger and ``extend``'s result, after a conditional write of new groups.

    ``extend`` gets the ledger as stored now and gives it back with new groups; when another
    pipeline wrote in between, the write loses, and ``extend`` runs again on the fresh ledger, so
    its groups are merged and none moves.
    """
    for _ in range(attempts):
        ledger, etag = read_ledger(store, key)
        extended, result = extend(ledger)
        if extended == ledger:
            return ledger, result
        try:
            store.put_bytes(key, extended.to_bytes(), if_none_match=etag is None, if_match=etag)
        except PreconditionFailed:
            continue
        return extended, result
    raise StoreError(
        f"{store.uri}/{key}: the split ledger kept changing; gave up after {attempts} tries"
    )
