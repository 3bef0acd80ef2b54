"""Split planning: each group goes to train, val or test once, and stays there (pure rules).

A group's split is a keyed hash of its id against the configured fractions (a pure function), but
the ledger has the last word: a group it knows never moves, whatever the data, fractions or seed
become. More data only adds groups. Groups merged because they share a picture go where the
earliest of them went.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from skillmaker.config.model import SplitConfig
from skillmaker.domain.duplicates import Deduplication, HashedImage
from skillmaker.domain.items import DatasetItem
from skillmaker.domain.records import Quarantined
from skillmaker.errors import Problem, ProblemsError, UserError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

CROSS_SPLIT_DUPLICATE = "duplicate of an image in another split"

LEDGER_FORMAT = 1


def split_for(group: str, split: SplitConfig) -> Split:
    """Give the split a new group goes to: a keyed hash of its id against the fractions."""
    digest = hashlib.sha256(f"{split.seed}\0{group}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
    total = split.train + split.val + split.test
    if point < split.train / total:
        return "train"
    if point < (split.train + split.val) / total:
        return "val"
    return "test"


@dataclass(frozen=True)
class LedgerEntry:
    """Where a group went, and in which batch (1 for the first ledger write, then 2, ...)."""

    split: Split
    batch: int


@dataclass(frozen=True)
class SplitLedger:
    """Group -> split, as stored in the artifact store; entries are only ever added."""

    groups: Mapping[str, LedgerEntry] = field(default_factory=dict)
    batches: int = 0

    def split_of(self, group: str) -> Split | None:
        """Give the split of a known group, or None."""
        entry = self.groups.get(group)
        return None if entry is None else entry.split

    def ledger_hash(self) -> str:
        """Give the SHA-256 of the assignments (group -> split), independent of order and batch."""
        canonical = json.dumps(
            {g: e.split for g, e in self.groups.items()}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def with_batch(self, new: Mapping[str, Split]) -> SplitLedger:
        """Give the ledger with new groups added as the next batch (known groups never move)."""
        if not new:
            return self
        moved = sorted(g for g, s in new.items() if g in self.groups and self.groups[g].split != s)
        if moved:
            raise ValueError(f"the split ledger never moves a group (tried: {', '.join(moved)})")
        batch = self.batches + 1
        groups = dict(self.groups)
        groups.update({g: LedgerEntry(s, batch) for g, s in new.items() if g not in groups})
        return SplitLedger(groups, batch)

    def to_bytes(self) -> bytes:
        """Give the file's bytes: sorted JSON, one group per line (equal ledgers, equal bytes)."""
        lines = [
            f"  {json.dumps(g, ensure_ascii=False)}: "
            + json.dumps({"batch": e.batch, "split": e.split}, sort_keys=True)
            for g, e in sorted(self.groups.items())
        ]
        body = ",\n".join(lines)
        head = f'{{"batches": {self.batches}, "format": {LEDGER_FORMAT}, "groups": {{'
        return (head + ("\n" + body + "\n" if lines else "") + "}}\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> SplitLedger:
        """Give the ledger in a file's bytes, or a user error saying what is wrong with it."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{where}: the split ledger is not valid JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != LEDGER_FORMAT:
            raise UserError(f"{where}: not a split ledger of format {LEDGER_FORMAT}")
        batches, raw = document.get("batches"), document.get("groups")
        if not isinstance(batches, int) or not isinstance(raw, dict):
            raise UserError(f"{where}: the split ledger needs 'batches' and 'groups'")
        groups: dict[str, LedgerEntry] = {}
        for group, entry in raw.items():
            split = entry.get("split") if isinstance(entry, dict) else None
            batch = entry.get("batch") if isinstance(entry, dict) else None
            if split not in SPLITS or not isinstance(batch, int) or not 1 <= batch <= batches:
                raise UserError(f"{where}: group {group!r} has a broken entry {entry!r}")
            groups[group] = LedgerEntry(cast("Split", split), batch)
        return cls(groups, batches)


@dataclass(frozen=True)
class SplitPlan:
    """The ledger after adding the new groups, every group's split, and what must be set aside."""

    ledger: SplitLedger
    splits: dict[str, Split]
    """Original group -> split, for every group of the data."""
    quarantined: list[Quarantined]
    """Images that are copies of an image in another split (only possible across batches)."""


def plan_splits(
    ledger: SplitLedger,
    dedup: Deduplication,
    images: Sequence[HashedImage],
    split: SplitConfig,
) -> SplitPlan:
    """Give each group its split: the ledger's, a merged partner's, or a new keyed-hash one."""
    splits: dict[str, Split] = {}
    new: dict[str, Split] = {}
    for merged, groups in dedup.components().items():
        known = sorted((ledger.groups[g].batch, g) for g in groups if g in ledger.groups)
        # Merged groups follow the earliest of them the ledger knows; new ones share one hash.
        target = ledger.groups[known[0][1]].split if known else split_for(merged, split)
        for group in groups:
            if group in ledger.groups:
                splits[group] = ledger.groups[group].split
            else:
                splits[group] = new[group] = target
    quarantined = _cross_split_copies(ledger, dedup, images, splits)
    return SplitPlan(ledger.with_batch(new), splits, quarantined)


def _cross_split_copies(
    ledger: SplitLedger,
    dedup: Deduplication,
    images: Sequence[HashedImage],
    splits: Mapping[str, Split],
) -> list[Quarantined]:
    """Give the images to set aside so that no two copies of a picture sit in different splits.

    Groups already in the ledger cannot move, so when a picture turns up in two of them that went
    to different splits (new data linked them, or the distance was raised), the copies in the
    later-assigned groups are set aside, and the earliest keeps the picture.
    """
    newest = ledger.batches + 1

    def seniority(image: HashedImage) -> tuple[int, str, str]:
        entry = ledger.groups.get(image.group)
        return (newest if entry is None else entry.batch, image.group, image.key)

    kept: dict[str, set[Split]] = defaultdict(set)
    quarantined: list[Quarantined] = []
    for image in sorted(images, key=seniority):
        own = splits[image.group]
        related = [image.sha256, *dedup.neighbours.get(image.sha256, ())]
        if any(s != own for sha in related for s in kept.get(sha, ())):
            quarantined.append({"key": image.key, "reason": CROSS_SPLIT_DUPLICATE})
        else:
            kept[image.sha256].add(own)
    return sorted(quarantined, key=lambda q: q["key"])


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
