"""The split ledger's rules: content-addressed entries that never move, checksummed bytes."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from skillmaker.config.model import SplitConfig
from skillmaker.domain.items import DatasetItem
from skillmaker.domain.splits import (
    LedgerEntry,
    SplitLedger,
    check_membership,
    fingerprint,
    split_for,
)
from skillmaker.errors import ExitCode, ProblemsError, UserError

DEFAULT = SplitConfig()


def test_split_for_is_a_pure_function_of_seed_and_group() -> None:
    assert split_for("advert-17", DEFAULT) == split_for("advert-17", SplitConfig())
    seeds = {split_for("advert-17", SplitConfig(seed=s)) for s in range(40)}
    assert seeds == {"train", "val", "test"}


def test_split_for_follows_the_fractions() -> None:
    config = SplitConfig(train=0.6, val=0.3, test=0.1, seed=3)
    shares = Counter(split_for(f"g{i}", config) for i in range(20_000))
    assert abs(shares["train"] / 20_000 - 0.6) < 0.02
    assert abs(shares["test"] / 20_000 - 0.1) < 0.02


def test_ledger_hash_is_stable_and_ignores_order_and_batches() -> None:
    one = SplitLedger().with_batch({"s2": "test", "s1": "train"}, {"g": "train"})
    other = SplitLedger().with_batch({"s1": "train"}, {"g": "train"}).with_batch({"s2": "test"})
    assert one.ledger_hash() == other.ledger_hash()
    assert SplitLedger.from_bytes(one.to_bytes(), "x").ledger_hash() == one.ledger_hash()
    assert one.with_batch({"s3": "val"}).ledger_hash() != one.ledger_hash()


def test_ledger_bytes_round_trip_and_are_valid_json() -> None:
    ledger = SplitLedger().with_batch({"aa": "val"}, {"ad/1": "val", "é": "train"})
    ledger = ledger.with_batch({"bb": "test"}, {"z": "test"})
    data = ledger.to_bytes()
    document = json.loads(data)
    assert document["images"]["bb"] == ["test", 2]
    assert len(document["checksum"]) == 64
    assert SplitLedger.from_bytes(data, "x") == ledger
    assert ledger.groups["é"] == LedgerEntry("train", 1)


def test_a_hand_edited_ledger_is_refused_naming_the_file() -> None:
    ledger = SplitLedger().with_batch({"aa": "test", "bb": "train"}, {"g": "test"})
    edited = ledger.to_bytes().replace(b'"aa": ["test", 1]', b'"aa": ["train", 1]')
    assert edited != ledger.to_bytes()
    with pytest.raises(UserError) as caught:
        SplitLedger.from_bytes(edited, "s3://b/skills/x/splits.json")
    assert caught.value.exit_code == ExitCode.USER_ERROR
    assert str(caught.value).startswith("s3://b/skills/x/splits.json: ")
    assert "checksum" in str(caught.value)


def test_a_ledger_of_format_1_is_read_as_groups_only() -> None:
    data = b'{"format": 1, "batches": 1, "groups": {"g": {"split": "val", "batch": 1}}}'
    ledger = SplitLedger.from_bytes(data, "x")
    assert ledger.groups == {"g": LedgerEntry("val", 1)}
    assert ledger.images == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "not a split ledger of format 2"),
        (b'{"format": 2, "groups": {}}', "needs 'batches'"),
        (b'{"format": 2, "batches": 1, "groups": {"g": ["dev", 1]}, "images": {}}', "'g'"),
        (b'{"format": 2, "batches": 1, "groups": {}, "images": {"s": ["val", 2]}}', "'s'"),
    ],
)
def test_a_broken_ledger_is_a_user_error_naming_it(data: bytes, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        SplitLedger.from_bytes(data, "s3://b/skills/x/splits.json")
    assert str(caught.value).startswith("s3://b/skills/x/splits.json: ")


def test_the_ledger_refuses_to_move_an_image_or_a_group() -> None:
    ledger = SplitLedger().with_batch({"s": "train"}, {"g": "train"})
    assert ledger.with_batch({"s": "train", "t": "val"}).images["s"] == LedgerEntry("train", 1)
    with pytest.raises(ValueError, match="never moves"):
        ledger.with_batch({"s": "test"})
    with pytest.raises(ValueError, match="never moves"):
        ledger.with_batch({}, {"g": "val"})


def _item(key: str, sha: str, split: str) -> DatasetItem:
    return {"key": key, "sha256": sha, "label": "cat", "group": key, "split": split, "path": key}


def _items() -> list[DatasetItem]:
    return [_item("a", "sa", "train"), _item("b", "sb", "val"), _item("c", "sc", "test")]


def test_membership_that_matches_the_ledger_gives_its_fingerprint() -> None:
    ledger = SplitLedger().with_batch({"sa": "train", "sb": "val", "sc": "test"})
    found = check_membership(_items(), ledger, "run/dataset.json")
    assert found == fingerprint([("sa", "train"), ("sb", "val"), ("sc", "test")])
    assert found != fingerprint([("sa", "train"), ("sb", "test"), ("sc", "test")])


def test_validation_items_replaced_by_test_items_are_refused() -> None:
    ledger = SplitLedger().with_batch({"sa": "train", "sb": "val", "sc": "test"})
    tampered = [*_items()[:1], _item("b", "sc", "val"), _items()[2]]
    with pytest.raises(ProblemsError) as caught:
        check_membership(tampered, ledger, "run/dataset.json")
    assert [str(p) for p in caught.value.problems] == [
        "run/dataset.json: b: is listed in val, the split ledger has it in test"
    ]


def test_test_items_moved_to_train_and_unknown_images_are_refused() -> None:
    ledger = SplitLedger().with_batch({"sa": "train", "sb": "val", "sc": "test"})
    tampered = [*_items()[:2], _item("c", "sc", "train"), _item("d", "sd", "train")]
    with pytest.raises(ProblemsError) as caught:
        check_membership(tampered, ledger, "run/dataset.json")
    assert [str(p) for p in caught.value.problems] == [
        "run/dataset.json: c: is listed in train, the split ledger has it in test",
        "run/dataset.json: d: is not in the split ledger",
    ]
