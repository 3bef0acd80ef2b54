"""The audit of a run's data (``audit.json``): what was used, what was set aside, and why."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence

from skillmaker.domain.items import DatasetItem
from skillmaker.domain.records import (
    AuditRecord,
    DuplicateComponent,
    DuplicateGroup,
    ExcludedClass,
    Quarantined,
)


def manifest_hash(pairs: Iterable[tuple[str, str]]) -> str:
    """Give the SHA-256 of the sorted (key, content sha256) pairs: the identity of a data set."""
    canonical = json.dumps(sorted([key, sha] for key, sha in pairs), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def imbalance_ratio(counts: Iterable[int]) -> float:
    """Give the largest class count over the smallest (1.0 for balanced or empty data)."""
    values = [c for c in counts if c > 0]
    return max(values) / min(values) if values else 1.0


def build_audit(
    items: Sequence[DatasetItem],
    labels: Sequence[str],
    *,
    excluded: Iterable[ExcludedClass],
    quarantined: Iterable[Quarantined],
    duplicate_groups: Iterable[DuplicateGroup],
    ledger_hash: str,
    largest: Iterable[DuplicateComponent] = (),
) -> AuditRecord:
    """Give ``audit.json`` for the items a run uses."""
    counts = Counter((item["label"], item["split"]) for item in items)
    totals = Counter(item["label"] for item in items)
    return {
        "images": len(items),
        "classes": [
            {
                "name": label,
                "counts": {
                    "train": counts[label, "train"],
                    "val": counts[label, "val"],
                    "test": counts[label, "test"],
                },
            }
            for label in labels
        ],
        "imbalance_ratio": round(imbalance_ratio(totals[label] for label in labels), 6),
        "excluded": sorted(excluded, key=lambda e: e["name"]),
        "quarantined": sorted(quarantined, key=lambda q: (q["key"], q["reason"])),
        "duplicate_groups": sorted(duplicate_groups, key=lambda d: (d["group"], d["members"])),
        "ledger_hash": ledger_hash,
        "manifest_hash": manifest_hash((item["key"], item["sha256"]) for item in items),
        "largest_duplicates": list(largest),
    }
