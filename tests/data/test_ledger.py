"""The split ledger: groups never move, copies never straddle splits, leaks are refused."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping

import pytest

from skillmaker.adapters.store import Store
from skillmaker.config.model import SplitConfig
from skillmaker.data.ledger import read_ledger, update_ledger
from skillmaker.domain.duplicates import HashedImage, deduplicate
from skillmaker.domain.items import DatasetItem
from skillmaker.domain.splits import (
    CROSS_SPLIT_DUPLICATE,
    LedgerEntry,
    Split,
    SplitLedger,
    SplitPlan,
    check_split_invariants,
    plan_splits,
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
    assert abs(shares["val"] / 20_000 - 0.3) < 0.02
    assert abs(shares["test"] / 20_000 - 0.1) < 0.02


def test_ledger_hash_is_stable_and_ignores_order_and_batches() -> None:
    one = SplitLedger().with_batch({"b": "test", "a": "train"})
    other = SplitLedger().with_batch({"a": "train"}).with_batch({"b": "test"})
    expected = hashlib.sha256(b'{"a":"train","b":"test"}').hexdigest()
    assert one.ledger_hash() == other.ledger_hash() == expected
    assert SplitLedger.from_bytes(one.to_bytes(), "x").ledger_hash() == expected
    assert one.with_batch({"c": "val"}).ledger_hash() != expected


def test_ledger_bytes_round_trip_and_are_valid_json() -> None:
    ledger = SplitLedger().with_batch({"ad/1": "val", "é": "train"}).with_batch({"z": "test"})
    data = ledger.to_bytes()
    assert json.loads(data)["groups"]["z"] == {"batch": 2, "split": "test"}
    assert SplitLedger.from_bytes(data, "x") == ledger
    assert ledger.groups["é"] == LedgerEntry("train", 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "not a split ledger of format 1"),
        (b'{"format": 1, "groups": {}}', "needs 'batches' and 'groups'"),
        (b'{"format": 1, "batches": 1, "groups": {"g": {"split": "dev", "batch": 1}}}', "'g'"),
        (b'{"format": 1, "batches": 1, "groups": {"g": {"split": "val", "batch": 2}}}', "'g'"),
    ],
)
def test_a_broken_ledger_is_a_user_error_naming_it(data: bytes, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        SplitLedger.from_bytes(data, "s3://b/skills/x/splits.json")
    assert str(caught.value).startswith("s3://b/skills/x/splits.json: ")


def test_the_ledger_refuses_to_move_a_group() -> None:
    ledger = SplitLedger().with_batch({"g": "train"})
    assert ledger.with_batch({"g": "train", "h": "val"}).groups["g"] == LedgerEntry("train", 1)
    with pytest.raises(ValueError, match="never moves a group"):
        ledger.with_batch({"g": "test"})


def _images(count: int, rng: random.Random, start: int = 0, groups: int = 0) -> list[HashedImage]:
    """Give images with random perceptual hashes, about 2.5 per group."""
    made = []
    for n in range(start, start + count):
        group = f"g{n * 2 // 5}" if not groups else f"g{rng.randrange(groups)}"
        made.append(HashedImage(f"img{n}", f"sha{n}", rng.getrandbits(64), group))
    return made


def _plan(ledger: SplitLedger, images: list[HashedImage], split: SplitConfig) -> SplitPlan:
    return plan_splits(ledger, deduplicate(images, split.near_duplicate_distance), images, split)


def test_stickiness_original_groups_keep_their_split_with_more_data_and_new_fractions() -> None:
    rng = random.Random(0)
    first = _images(1_000, rng)
    plan1 = _plan(SplitLedger(), first, DEFAULT)
    ledger = SplitLedger.from_bytes(plan1.ledger.to_bytes(), "store")  # kept in the store
    assert ledger.batches == 1
    original = {g: e.split for g, e in ledger.groups.items()}
    assert len(original) == 400
    assert plan1.quarantined == []

    # 500 more: new photos of old adverts and new adverts; fractions and seed change.
    more = _images(100, rng, start=1_000, groups=400) + _images(400, rng, start=1_100)
    changed = SplitConfig(train=0.4, val=0.3, test=0.3, seed=99)
    plan2 = _plan(ledger, first + more, changed)

    assert {g: plan2.splits[g] for g in original} == original
    assert {g: plan2.ledger.groups[g].split for g in original} == original
    assert all(plan2.ledger.groups[g].batch == 1 for g in original)
    new_groups = [g for g, e in plan2.ledger.groups.items() if e.batch == 2]
    assert len(new_groups) == 160
    # New groups follow the new fractions (about 40% train rather than 70%).
    train_share = sum(plan2.splits[g] == "train" for g in new_groups) / len(new_groups)
    assert 0.25 < train_share < 0.55
    assert plan2.quarantined == []


def _flip(value: int, bits: list[int]) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


def test_near_copies_planted_in_new_groups_follow_the_original_split() -> None:
    rng = random.Random(1)
    first = _images(300, rng)
    ledger = _plan(SplitLedger(), first, DEFAULT).ledger
    copies = [
        HashedImage(
            f"copy{n}", f"copy-sha{n}", _flip(image.phash, rng.sample(range(64), n % 7)), f"new{n}"
        )
        for n, image in enumerate(first[::3])
    ]
    plan = _plan(ledger, first + copies, SplitConfig(train=0.2, val=0.4, test=0.4, seed=5))
    for copy, image in zip(copies, first[::3], strict=True):
        assert plan.splits[copy.group] == ledger.groups[image.group].split
    assert plan.quarantined == []


def test_copies_merged_in_one_batch_share_a_split() -> None:
    rng = random.Random(2)
    images = _images(200, rng)
    images += [
        HashedImage(f"dup{n}", image.sha256, image.phash, f"other{n}")
        for n, image in enumerate(images[::4])
    ]
    plan = _plan(SplitLedger(), images, DEFAULT)
    by_content: dict[str, set[str]] = {}
    for image in images:
        by_content.setdefault(image.sha256, set()).add(plan.splits[image.group])
    assert all(len(splits) == 1 for splits in by_content.values())


def _two_groups_in_different_splits() -> tuple[str, str]:
    names = [f"grp{i}" for i in range(100)]
    first = names[0]
    second = next(n for n in names if split_for(n, DEFAULT) != split_for(first, DEFAULT))
    return first, second


def test_a_picture_turning_up_in_two_old_groups_of_different_splits_is_set_aside() -> None:
    early, late = _two_groups_in_different_splits()
    picture = HashedImage("early/pic.png", "same", 12345, early)
    batch1 = [picture]
    ledger = _plan(SplitLedger(), batch1, DEFAULT).ledger
    other = HashedImage("late/other.png", "other", 2**63 + 777, late)
    ledger = _plan(ledger, [*batch1, other], DEFAULT).ledger
    assert ledger.split_of(early) != ledger.split_of(late)

    # The same picture now turns up in the later group: it must not leak into another split.
    leak = HashedImage("late/copy-of-pic.png", "same", 12345, late)
    plan = _plan(ledger, [picture, other, leak], DEFAULT)
    assert plan.quarantined == [{"key": "late/copy-of-pic.png", "reason": CROSS_SPLIT_DUPLICATE}]
    assert plan.splits[early] == ledger.split_of(early)
    assert plan.splits[late] == ledger.split_of(late)
    assert plan.ledger == ledger


def _item(key: str, sha: str, label: str, group: str, split: str) -> DatasetItem:
    return {"key": key, "sha256": sha, "label": label, "group": group, "split": split, "path": key}


def _healthy() -> list[DatasetItem]:
    return [
        _item(f"{label}/{split}", f"{label}-{split}", label, f"{label}-{split}", split)
        for label in ("cat", "dog")
        for split in ("train", "val", "test")
    ]


def test_a_healthy_split_passes_the_invariants() -> None:
    check_split_invariants(_healthy(), ["cat", "dog"])


def _problems(items: list[DatasetItem], labels: list[str] | None = None) -> list[str]:
    with pytest.raises(ProblemsError) as caught:
        check_split_invariants(items, labels)
    assert caught.value.exit_code == ExitCode.USER_ERROR
    return [str(p) for p in caught.value.problems]


def test_a_content_hash_in_two_splits_is_refused() -> None:
    items = [*_healthy(), _item("cat/leak", "cat-train", "cat", "cat-x", "test")]
    assert _problems(items) == ["content cat-train: is in train and test: cat/leak, cat/train"]


def test_val_and_test_sharing_a_group_is_refused() -> None:
    items = [*_healthy(), _item("dog/x", "dog-x", "dog", "dog-val", "test")]
    assert _problems(items) == ["group 'dog-val': is in val and test"]


def test_an_empty_val_or_test_split_is_refused() -> None:
    items = [i for i in _healthy() if i["split"] != "val"]
    assert _problems(items) == ["split val: has no images (add data or change the fractions)"]


def test_a_kept_class_missing_from_a_split_is_named() -> None:
    items = [i for i in _healthy() if i["key"] != "dog/test"]
    assert _problems(items) == ["class 'dog': has no images in test (add more groups)"]
    assert _problems(_healthy(), ["cat", "dog", "fox"]) == [
        "class 'fox': has no images in train or val or test (add more groups)"
    ]


def _adding(groups: Mapping[str, Split]) -> Callable[[SplitLedger], tuple[SplitLedger, int]]:
    """Give a ledger extension that adds the groups it does not know yet (and reports the batch)."""

    def extend(current: SplitLedger) -> tuple[SplitLedger, int]:
        new = {g: s for g, s in groups.items() if g not in current.groups}
        return current.with_batch(new), current.batches

    return extend


def test_update_ledger_creates_then_extends_with_conditional_writes(store: Store) -> None:
    key = "skills/demo/splits.json"
    ledger, seen = update_ledger(store, key, _adding({"a": "train"}))
    assert (seen, ledger.batches) == (0, 1)
    ledger, seen = update_ledger(store, key, _adding({"a": "test", "b": "val"}))
    assert (seen, ledger.groups["a"].split, ledger.groups["b"].split) == (1, "train", "val")
    stored, etag = read_ledger(store, key)
    assert stored == ledger
    assert etag is not None
    unchanged, _ = update_ledger(store, key, _adding({"b": "test"}))
    assert read_ledger(store, key)[1] == etag  # nothing new: nothing written
    assert unchanged == ledger


def test_racing_pipelines_merge_their_groups_and_never_move_one(store: Store) -> None:
    key = "skills/demo/splits.json"
    results: dict[int, SplitLedger] = {}
    barrier = threading.Barrier(6)
    splits: list[Split] = ["train", "val", "test"]

    def pipeline(index: int) -> None:
        barrier.wait()
        extend = _adding({f"own-{index}": "train", "shared": splits[index % 3]})
        results[index] = update_ledger(store, key, extend)[0]

    threads = [threading.Thread(target=pipeline, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final, _ = read_ledger(store, key)
    assert sorted(final.groups) == sorted([*(f"own-{i}" for i in range(6)), "shared"])
    assert final.batches == 6
    assert len(results) == 6
    for ledger in results.values():
        assert ledger.groups["shared"] == final.groups["shared"]
