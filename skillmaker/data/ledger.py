"""The split ledger in the artifact store: read it, rebuild it, extend it by compare-and-swap."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from skillmaker.adapters.cas import compare_and_swap
from skillmaker.adapters.store import ObjectNotFound, Store
from skillmaker.domain.items import DatasetItem
from skillmaker.domain.layout import join_key, skill_prefix
from skillmaker.domain.splits import SplitLedger
from skillmaker.errors import UserError

T = TypeVar("T")

DATASET = "dataset.json"


def read_ledger(store: Store, key: str) -> tuple[SplitLedger, str | None]:
    """Give the ledger stored at ``key`` and its entity tag (an empty ledger and None if absent)."""
    try:
        data, etag = store.get_with_etag(key)
    except ObjectNotFound:
        return SplitLedger(), None
    return SplitLedger.from_bytes(data, f"{store.uri}/{key}"), etag


def _run_items(store: Store, key: str) -> list[DatasetItem]:
    where = f"{store.uri}/{key}"
    try:
        document: Any = json.loads(store.get_bytes(key))
        items = document["items"]
        for item in items:
            for field in ("key", "sha256", "group", "split"):
                if not isinstance(item[field], str):
                    raise TypeError(field)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{where}: not a readable dataset.json ({exc!r})") from None
    return list(items)


def rebuild_ledger(store: Store, skill: str) -> SplitLedger:
    """Give a ledger rebuilt from the stored runs' ``dataset.json``, earliest run first.

    Used when the ledger is lost: every image and group an earlier run used keeps its split
    before anything new is assigned.
    """
    runs = join_key(skill_prefix(skill), "runs") + "/"
    found: list[tuple[int, str]] = []
    for info in store.list(runs):
        version, _, name = info.key[len(runs) :].partition("/")
        if name == DATASET and version.isdigit():
            found.append((int(version), info.key))
    ledger = SplitLedger()
    for _, key in sorted(found):
        ledger = ledger.absorb(_run_items(store, key))
    return ledger


def update_ledger(
    store: Store,
    key: str,
    extend: Callable[[SplitLedger], tuple[SplitLedger, T]],
    *,
    rebuild: Callable[[], SplitLedger] | None = None,
) -> tuple[SplitLedger, T]:
    """Give the stored ledger and ``extend``'s result, after a conditional write of new entries.

    ``extend`` gets the ledger as stored now and gives it back with new entries; when another
    pipeline wrote in between, the write loses, and ``extend`` runs again on the fresh ledger, so
    its entries are merged and none moves. Without a stored ledger, ``rebuild`` gives the one
    to start from (the stored runs' assignments).
    """
    results: list[T] = []
    where = f"{store.uri}/{key}"
    start: list[SplitLedger] = []

    def change(current: SplitLedger | None) -> SplitLedger:
        if current is None:
            if not start:
                start.append(rebuild() if rebuild is not None else SplitLedger())
            current = start[0]
        extended, result = extend(current)
        results.append(result)
        return extended

    final = compare_and_swap(
        store,
        key,
        decode=lambda data: SplitLedger.from_bytes(data, where),
        encode=lambda ledger: ledger.to_bytes(),
        change=change,
    )
    return final or SplitLedger(), results[-1]
