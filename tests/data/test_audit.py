"""The audit record: counts, imbalance, what was set aside, and the hashes naming the data."""

from __future__ import annotations

import hashlib
import json

from skillmaker.data.audit import build_audit, imbalance_ratio, manifest_hash
from skillmaker.domain.items import DatasetItem
from skillmaker.records import AuditRecord


def _item(key: str, label: str, split: str) -> DatasetItem:
    sha = hashlib.sha256(key.encode()).hexdigest()
    return {"key": key, "sha256": sha, "label": label, "group": key, "split": split, "path": key}


def test_manifest_hash_is_the_sha256_of_the_sorted_pairs() -> None:
    pairs = [("b.png", "22"), ("a.png", "11")]
    expected = hashlib.sha256(b'[["a.png","11"],["b.png","22"]]').hexdigest()
    assert manifest_hash(pairs) == expected
    assert manifest_hash(reversed(pairs)) == expected
    assert manifest_hash([("a.png", "11"), ("b.png", "23")]) != expected


def test_imbalance_ratio_is_largest_over_smallest() -> None:
    assert imbalance_ratio([10, 40, 20]) == 4.0
    assert imbalance_ratio([7, 7]) == 1.0
    assert imbalance_ratio([]) == 1.0


def test_the_audit_counts_each_class_in_each_split() -> None:
    items = [
        *(_item(f"cat/{i}", "cat", "train") for i in range(6)),
        _item("cat/v", "cat", "val"),
        _item("cat/t", "cat", "test"),
        *(_item(f"dog/{i}", "dog", "train") for i in range(2)),
        _item("dog/v", "dog", "val"),
        _item("dog/t", "dog", "test"),
    ]
    audit: AuditRecord = build_audit(
        items,
        ["cat", "dog"],
        excluded=[{"name": "owl", "count": 2, "reason": "too few examples"}],
        quarantined=[
            {"key": "z.png", "reason": "empty"},
            {"key": "a.png", "reason": "not an image"},
        ],
        duplicate_groups=[{"group": "g1", "kind": "near", "members": ["x", "y"]}],
        ledger_hash="ab" * 32,
    )
    assert audit["images"] == 12
    assert audit["classes"] == [
        {"name": "cat", "counts": {"train": 6, "val": 1, "test": 1}},
        {"name": "dog", "counts": {"train": 2, "val": 1, "test": 1}},
    ]
    assert audit["imbalance_ratio"] == 2.0
    assert [q["key"] for q in audit["quarantined"]] == ["a.png", "z.png"]
    assert audit["excluded"] == [{"name": "owl", "count": 2, "reason": "too few examples"}]
    assert audit["duplicate_groups"] == [{"group": "g1", "kind": "near", "members": ["x", "y"]}]
    assert audit["ledger_hash"] == "ab" * 32
    assert audit["manifest_hash"] == manifest_hash((i["key"], i["sha256"]) for i in items)
    assert set(audit) == AuditRecord.__required_keys__
    json.dumps(audit)  # plain JSON, as written to audit.json
