"""Split planning (pure rules): which split each group of a pull goes to, and what is set aside.

1. A known image (its content hash is in the ledger) keeps its split; a new image that is a near
   copy of a known one follows that one.
2. A group follows the split most of its known images have; its images recorded elsewhere are set
   aside. A group whose known images are split evenly between splits is set aside whole.
3. Groups merged because they share pictures go where the earliest known of them went.
4. New groups are assigned per class in a seeded order, each to the split furthest below its share
   (a split still empty for the class first), so every split approaches its ratio.
5. A class whose groups cannot fill train, val and test is excluded with the reason, never fatal.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from skillmaker.config.model import SplitConfig
from skillmaker.domain.duplicates import Deduplication, HashedImage
from skillmaker.domain.items import DatasetItem
from skillmaker.domain.records import ExcludedClass, Quarantined
from skillmaker.domain.splits import SPLITS, Split, SplitLedger, rank
from skillmaker.errors import Problem, ProblemsError

CROSS_SPLIT_DUPLICATE = "duplicate of an image in another split"


def group_conflict(splits: Iterable[str]) -> str:
    """Give the reason a group is set aside whose known images sit evenly in several splits."""
    return f"group whose images the split ledger has in {' and '.join(splits)}"


def too_few_groups(found: int, needed: int) -> str:
    """Give the reason a class with too few groups to fill the three splits is excluded."""
    return (
        f"{found} group(s), fewer than split.min_groups_per_class ({needed}): "
        "train, val and test each need one"
    )


def cannot_fill(missing: Iterable[str]) -> str:
    """Give the reason a class whose recorded groups leave a split empty is excluded."""
    return f"no group left for {' or '.join(missing)} (recorded groups never move; add groups)"


@dataclass(frozen=True)
class SplitPlan:
    """The extended ledger, each used group's split, what is set aside, and excluded classes."""

    ledger: SplitLedger
    splits: dict[str, Split]
    """Original group -> split, for every group the run uses."""
    quarantined: list[Quarantined]
    excluded: list[ExcludedClass]


def _majority(labels: Iterable[str]) -> str:
    counts = Counter(labels)
    return min(counts, key=lambda label: (-counts[label], label))


def _recorded(ledger: SplitLedger, dedup: Deduplication, image: HashedImage) -> set[Split]:
    """Give the splits the ledger has for an image: its own, else those of its near copies."""
    own = ledger.split_of_image(image.sha256)
    if own is not None:
        return {own}
    near = dedup.neighbours.get(image.sha256, frozenset())
    return {s for sha in near if (s := ledger.split_of_image(sha)) is not None}


def _pin_groups(
    ledger: SplitLedger, dedup: Deduplication, by_group: Mapping[str, list[HashedImage]]
) -> tuple[dict[str, Split], list[Quarantined]]:
    """Give the split of every group the ledger decides, and the groups set aside whole."""
    pinned: dict[str, Split] = {}
    quarantined: list[Quarantined] = []
    for group, members in by_group.items():
        votes = Counter(s for image in members for s in _recorded(ledger, dedup, image))
        if not votes:
            if (known := ledger.split_of(group)) is not None:
                pinned[group] = known
            continue
        ranked = votes.most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            reason = group_conflict(s for s in SPLITS if s in votes)
            quarantined += [{"key": m.key, "reason": reason} for m in members]
            continue
        pinned[group] = ranked[0][0]
    return pinned, quarantined


def _choose(counts: Mapping[str, int], size: int, share: Mapping[Split, float]) -> Split:
    empty = [s for s in SPLITS if counts[s] == 0]
    if empty:
        return max(empty, key=lambda s: share[s])  # ties go to the first in SPLITS order
    total = sum(counts.values()) + size
    return max(SPLITS, key=lambda s: share[s] * total - counts[s])


def _assign_class(
    placed: Mapping[str, Split],
    units: Sequence[list[str]],
    sizes: Mapping[str, int],
    split: SplitConfig,
) -> tuple[dict[str, Split], str | None]:
    """Give the splits of one class's new groups, or why the class must be excluded."""
    groups = len(sizes)
    if groups < split.min_groups_per_class:
        return {}, too_few_groups(groups, split.min_groups_per_class)
    total = split.train + split.val + split.test
    share: dict[Split, float] = {
        "train": split.train / total,
        "val": split.val / total,
        "test": split.test / total,
    }
    counts: dict[str, int] = dict.fromkeys(SPLITS, 0)
    for group, where in placed.items():
        counts[where] += sizes[group]
    chosen: dict[str, Split] = {}
    for unit in sorted(units, key=lambda u: rank(u[0], split.seed)):
        size = sum(sizes[g] for g in unit)
        target = _choose(counts, size, share)
        counts[target] += size
        chosen.update(dict.fromkeys(unit, target))
    missing = [s for s in SPLITS if counts[s] == 0]
    if missing:
        return {}, cannot_fill(missing)
    return chosen, None


def _emptied(
    used: Sequence[HashedImage],
    set_aside: set[str],
    splits: Mapping[str, Split],
    label_of: Mapping[str, str],
) -> list[ExcludedClass]:
    """Give the classes (count still 0) left without a split once the copies are set aside."""
    present: dict[str, set[str]] = defaultdict(set)
    for image in used:
        if image.key not in set_aside:
            present[label_of[image.group]].add(splits[image.group])
    emptied: list[ExcludedClass] = []
    for label in sorted({label_of[g] for g in splits}):
        missing = [s for s in SPLITS if s not in present[label]]
        if missing:
            emptied.append({"name": label, "count": 0, "reason": cannot_fill(missing)})
    return emptied


def plan_splits(
    ledger: SplitLedger,
    dedup: Deduplication,
    images: Sequence[HashedImage],
    split: SplitConfig,
) -> SplitPlan:
    """Give each group its split and the ledger extended with the new images and groups."""
    by_group: dict[str, list[HashedImage]] = defaultdict(list)
    for image in images:
        by_group[image.group].append(image)
    pinned, quarantined = _pin_groups(ledger, dedup, by_group)
    dropped = {q["key"] for q in quarantined}

    def seniority(group: str) -> tuple[int, str]:
        batches = [e.batch for i in by_group[group] if (e := ledger.images.get(i.sha256))]
        entry = ledger.groups.get(group)
        return (min([*batches, entry.batch if entry else ledger.batches + 1]), group)

    splits: dict[str, Split] = {}
    units: list[list[str]] = []  # new groups that share pictures go together
    for groups in dedup.components().values():
        live = [g for g in groups if g in by_group and by_group[g][0].key not in dropped]
        known = sorted((g for g in live if g in pinned), key=seniority)
        for group in live:
            if known:
                splits[group] = pinned.get(group, pinned[known[0]])
        if live and not known:
            units.append(live)

    label_of = {g: _majority(i.label for i in by_group[g]) for g in by_group}
    units_of: dict[str, list[list[str]]] = defaultdict(list)
    for unit in units:
        units_of[_majority(label_of[g] for g in unit)].append(unit)
    excluded: list[ExcludedClass] = []
    for label in sorted({label_of[g] for g in by_group}):
        placed = [g for g in splits if label_of[g] == label]
        sizes = {g: len(by_group[g]) for g in [*placed, *(g for u in units_of[label] for g in u)]}
        chosen, reason = _assign_class(
            {g: splits[g] for g in placed}, units_of[label], sizes, split
        )
        if reason is None:
            splits.update(chosen)
        else:
            excluded.append({"name": label, "count": sum(sizes.values()), "reason": reason})
            for group in placed:
                del splits[group]

    used = [i for i in images if i.group in splits and i.key not in dropped]
    quarantined += cross_split_copies(ledger, dedup, used, splits)
    set_aside = {q["key"] for q in quarantined}
    # Copies set aside may empty a split of a class: that class steps aside too, never fatal.
    for left_out in _emptied(used, set_aside, splits, label_of):
        members = [g for g in splits if label_of[g] == left_out["name"]]
        left_out["count"] = sum(len(by_group[g]) for g in members)
        excluded.append(left_out)
        for group in members:
            del splits[group]
    used = [i for i in used if i.group in splits]
    new_images = {i.sha256: splits[i.group] for i in used if i.key not in set_aside}
    new_groups = {g: s for g, s in splits.items() if g not in ledger.groups}
    return SplitPlan(
        ledger.with_batch(new_images, new_groups),
        splits,
        sorted(quarantined, key=lambda q: q["key"]),
        excluded,
    )


def cross_split_copies(
    ledger: SplitLedger,
    dedup: Deduplication,
    images: Sequence[HashedImage],
    splits: Mapping[str, Split],
) -> list[Quarantined]:
    """Give the images to set aside so that no two copies of a picture sit in different splits.

    Known images come first (earliest batch first) and are never set aside for a newcomer: an
    image whose content the ledger has in another split than its group's, or whose copies are
    kept in another split, is set aside instead.
    """
    newest = ledger.batches + 1

    def seniority(image: HashedImage) -> tuple[int, str]:
        entry = ledger.images.get(image.sha256)
        return (newest if entry is None else entry.batch, image.key)

    kept: dict[str, set[Split]] = defaultdict(set)
    quarantined: list[Quarantined] = []
    for image in sorted(images, key=seniority):
        own = splits[image.group]
        recorded = ledger.split_of_image(image.sha256)
        related = [image.sha256, *dedup.neighbours.get(image.sha256, ())]
        clash = any(s != own for sha in related for s in kept.get(sha, ()))
        if (recorded is not None and recorded != own) or clash:
            quarantined.append({"key": image.key, "reason": CROSS_SPLIT_DUPLICATE})
        else:
            kept[image.sha256].add(own)
    return quarantined


def check_split_invariants(
    items: Iterable[DatasetItem], labels: Sequence[str] | None = None
) -> None:
    """Check that the split cannot leak; raise a user error naming each broken rule."""
    items = list(items)
    splits_of_content: dict[str, set[str]] = defaultdict(set)
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    present: dict[str, set[str]] = defaultdict(set)
    for item in items:
        splits_of_content[item["sha256"]].add(item["split"])
        splits_of_group[item["group"]].add(item["split"])
        present[item["split"]].add(item["label"])
    problems: list[Problem] = []

    def order(names: Iterable[str]) -> str:
        return " and ".join(s for s in SPLITS if s in set(names))

    for sha, found in sorted(splits_of_content.items()):
        if len(found) > 1:
            keys = sorted(i["key"] for i in items if i["sha256"] == sha)
            problems.append(
                Problem(f"content {sha[:12]}", f"is in {order(found)}: {', '.join(keys)}")
            )
    for group, found in sorted(splits_of_group.items()):
        if len(found) > 1:
            problems.append(Problem(f"group {group!r}", f"is in {order(found)}"))
    for name in SPLITS:
        if not present[name]:
            problems.append(
                Problem(f"split {name}", "has no images (add data or change the fractions)")
            )
    for label in labels if labels is not None else sorted(set().union(*present.values())):
        missing = [s for s in SPLITS if present[s] and label not in present[s]]
        if missing:
            problems.append(
                Problem(
                    f"class {label!r}", f"has no images in {' or '.join(missing)} (add more groups)"
                )
            )
    if problems:
        raise ProblemsError(problems)
