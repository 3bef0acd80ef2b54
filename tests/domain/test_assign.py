"""Split planning: known images never move, new groups are stratified, small classes step aside."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from skillmaker.config.model import SplitConfig
from skillmaker.domain.assign import (
    CROSS_SPLIT_DUPLICATE,
    SplitPlan,
    check_split_invariants,
    plan_splits,
    too_few_groups,
)
from skillmaker.domain.duplicates import HashedImage, deduplicate
from skillmaker.domain.items import DatasetItem
from skillmaker.domain.splits import SplitLedger
from skillmaker.errors import ExitCode, ProblemsError

DEFAULT = SplitConfig()


def _images(
    classes: int, groups: int, per_group: int, rng: random.Random, *, prefix: str = "g"
) -> list[HashedImage]:
    return [
        HashedImage(
            f"c{c}/{prefix}{g}/{k}.png",
            f"sha-c{c}-{g}-{k}",
            rng.getrandbits(64),
            f"c{c}-{prefix}{g}",
            f"c{c}",
        )
        for c in range(classes)
        for g in range(groups)
        for k in range(per_group)
    ]


def _plan(
    ledger: SplitLedger, images: list[HashedImage], split: SplitConfig = DEFAULT
) -> SplitPlan:
    return plan_splits(ledger, deduplicate(images, split.near_duplicate_distance), images, split)


def _split_of_images(plan: SplitPlan, images: list[HashedImage]) -> dict[str, str]:
    set_aside = {q["key"] for q in plan.quarantined}
    return {i.sha256: plan.splits[i.group] for i in images if i.key not in set_aside}


def test_new_groups_are_stratified_per_class_towards_the_ratios() -> None:
    images = _images(4, 40, 3, random.Random(0))
    plan = _plan(SplitLedger(), images)
    assert plan.quarantined == [] and plan.excluded == []
    for c in range(4):
        shares = Counter(plan.splits[f"c{c}-g{g}"] for g in range(40))
        # 40 groups at 70/15/15: 28/6/6, give or take one group.
        assert abs(shares["train"] - 28) <= 1
        assert abs(shares["val"] - 6) <= 1
        assert abs(shares["test"] - 6) <= 1
    again = _plan(SplitLedger(), images)
    assert again.splits == plan.splits  # deterministic
    other_seed = _plan(SplitLedger(), images, SplitConfig(seed=7))
    assert other_seed.splits != plan.splits


def test_three_groups_fill_train_val_and_test() -> None:
    images = _images(2, 3, 2, random.Random(1))
    plan = _plan(SplitLedger(), images)
    for c in range(2):
        assert sorted(plan.splits[f"c{c}-g{g}"] for g in range(3)) == ["test", "train", "val"]


def test_a_class_with_too_few_groups_is_excluded_with_the_reason_not_a_failure() -> None:
    images = _images(2, 10, 2, random.Random(2))
    images += [
        HashedImage(f"rare/a{g}/{k}.png", f"rare{g}{k}", g * 1000 + k, f"rare-a{g}", "rare")
        for g in range(2)
        for k in range(5)
    ]
    plan = _plan(SplitLedger(), images)
    assert plan.excluded == [{"name": "rare", "count": 10, "reason": too_few_groups(2, 3)}]
    assert not any(g.startswith("rare") for g in plan.splits)
    assert not any(s.startswith("rare") for s in plan.ledger.images)  # not recorded: can grow
    raised = _plan(SplitLedger(), images, SplitConfig(min_groups_per_class=11))
    assert {e["name"] for e in raised.excluded} == {"c0", "c1", "rare"}


def test_known_images_keep_their_split_when_their_groups_are_renamed() -> None:
    images = _images(3, 20, 2, random.Random(3))
    first = _plan(SplitLedger(), images)
    ledger = SplitLedger.from_bytes(first.ledger.to_bytes(), "store")
    before = _split_of_images(first, images)
    # Every folder renamed, fractions and seed changed: no image moves.
    renamed = [
        HashedImage(i.key.replace("/g", "/renamed"), i.sha256, i.phash, "new-" + i.group, i.label)
        for i in images
    ]
    second = _plan(ledger, renamed, SplitConfig(train=0.3, val=0.4, test=0.3, seed=9))
    assert _split_of_images(second, renamed) == before
    assert second.quarantined == []


def test_more_data_and_new_fractions_keep_old_images_and_stratify_new_groups() -> None:
    rng = random.Random(4)
    old = _images(2, 30, 2, rng)
    ledger = _plan(SplitLedger(), old).ledger
    more = _images(2, 60, 2, rng, prefix="new")
    plan = _plan(ledger, old + more, SplitConfig(train=0.5, val=0.25, test=0.25, seed=3))
    assert all(plan.splits[i.group] == ledger.images[i.sha256].split for i in old)
    assert all(ledger.images[s] == e for s, e in plan.ledger.images.items() if s in ledger.images)
    for c in range(2):
        counts = Counter(
            plan.splits[f"c{c}-{p}{g}"] for p, n in (("g", 30), ("new", 60)) for g in range(n)
        )
        # The whole class approaches 50/25/25 as far as new groups allow.
        assert counts["train"] <= 50 and counts["val"] >= 20 and counts["test"] >= 20


def test_a_group_holding_known_images_follows_them() -> None:
    images = _images(2, 10, 2, random.Random(5))
    first = _plan(SplitLedger(), images)
    known = images[0]
    moved = HashedImage("c0/elsewhere/x.png", known.sha256, known.phash, "c0-elsewhere", "c0")
    fresh = HashedImage("c0/elsewhere/y.png", "fresh", 42, "c0-elsewhere", "c0")
    plan = _plan(first.ledger, [*images[1:], moved, fresh])
    assert plan.splits["c0-elsewhere"] == first.splits[known.group]
    assert plan.ledger.images["fresh"].split == first.splits[known.group]


def test_a_group_whose_known_images_disagree_is_set_aside_with_the_reason() -> None:
    images = _images(1, 12, 1, random.Random(6))
    first = _plan(SplitLedger(), images)
    by_split = {first.splits[i.group]: i for i in images}
    a, b = by_split["train"], by_split["test"]
    mixed = [
        HashedImage("c0/mixed/1.png", a.sha256, a.phash, "c0-mixed", "c0"),
        HashedImage("c0/mixed/2.png", b.sha256, b.phash, "c0-mixed", "c0"),
    ]
    plan = _plan(first.ledger, [*images, *mixed])
    reasons = {q["key"]: q["reason"] for q in plan.quarantined}
    expected = "group whose images the split ledger has in train and test"
    assert reasons == {"c0/mixed/1.png": expected, "c0/mixed/2.png": expected}
    assert "c0-mixed" not in plan.splits
    assert plan.splits[a.group] == "train" and plan.splits[b.group] == "test"


def test_a_newcomer_near_copy_follows_the_known_image_which_is_never_dropped() -> None:
    images = _images(2, 12, 1, random.Random(7))
    first = _plan(SplitLedger(), images)
    tested = [i for i in images if first.splits[i.group] == "test"]
    copies = [
        HashedImage(
            f"{i.label}/late{n}/copy.png",
            f"copy{n}",
            i.phash ^ 0b101,
            f"{i.label}-late{n}",
            i.label,
        )
        for n, i in enumerate(tested)
    ]
    plan = _plan(first.ledger, [*images, *copies], SplitConfig(train=0.9, val=0.05, test=0.05))
    for copy, original in zip(copies, tested, strict=True):
        assert plan.splits[copy.group] == "test"
        assert plan.splits[original.group] == "test"
    assert plan.quarantined == []


def test_a_copy_of_a_training_image_added_to_a_test_group_is_set_aside() -> None:
    images = _images(1, 12, 2, random.Random(8))
    first = _plan(SplitLedger(), images)
    source = next(i for i in images if first.splits[i.group] == "train")
    target = next(i for i in images if first.splits[i.group] == "test")
    leak = HashedImage("c0/leak.png", source.sha256, source.phash, target.group, "c0")
    plan = _plan(first.ledger, [*images, leak])
    assert plan.quarantined == [{"key": "c0/leak.png", "reason": CROSS_SPLIT_DUPLICATE}]
    assert plan.splits[target.group] == "test"
    assert plan.ledger == first.ledger


def _item(key: str, sha: str, label: str, group: str, split: str) -> DatasetItem:
    return {"key": key, "sha256": sha, "label": label, "group": group, "split": split, "path": key}


def _healthy() -> list[DatasetItem]:
    return [
        _item(f"{label}/{split}", f"{label}-{split}", label, f"{label}-{split}", split)
        for label in ("cat", "dog")
        for split in ("train", "val", "test")
    ]


def _problems(items: list[DatasetItem], labels: list[str] | None = None) -> list[str]:
    with pytest.raises(ProblemsError) as caught:
        check_split_invariants(items, labels)
    assert caught.value.exit_code == ExitCode.USER_ERROR
    return [str(p) for p in caught.value.problems]


def test_the_invariants_pass_a_healthy_split_and_name_each_leak() -> None:
    check_split_invariants(_healthy(), ["cat", "dog"])
    items = [*_healthy(), _item("cat/leak", "cat-train", "cat", "cat-x", "test")]
    assert _problems(items) == ["content cat-train: is in train and test: cat/leak, cat/train"]
    items = [*_healthy(), _item("dog/x", "dog-x", "dog", "dog-val", "test")]
    assert _problems(items) == ["group 'dog-val': is in val and test"]
    items = [i for i in _healthy() if i["split"] != "val"]
    assert _problems(items) == ["split val: has no images (add data or change the fractions)"]
