"""The split ledger (pure rules): every image's content goes to train, val or test once, and stays.

The ledger maps each image's content hash (SHA-256) to its split, and each group to its split. A
known image keeps its split whatever its group or file name becomes; a group holding known images
follows them; a new group is assigned per class, so that each split approaches its share
(deterministic, seeded; an assignment never moves). The stored bytes carry a checksum over the
assignments, so a hand edit is refused instead of silently moving an image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from skillmaker.config.model import SplitConfig
from skillmaker.domain.items import DatasetItem
from skillmaker.errors import Problem, ProblemsError, UserError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

LEDGER_FORMAT = 2


def rank(unit: str, seed: int) -> bytes:
    """Give a unit's place in the seeded order new groups are assigned in."""
    return hashlib.sha256(f"{seed}\0{unit}".encode()).digest()


def split_for(group: str, split: SplitConfig) -> Split:
    """Give a keyed hash of a group's id against the fractions (what a lone new group gets)."""
    point = int.from_bytes(rank(group, split.seed)[:8], "big") / 2.0**64  # uniform in [0, 1)
    total = split.train + split.val + split.test
    if point < split.train / total:
        return "train"
    if point < (split.train + split.val) / total:
        return "val"
    return "test"


@dataclass(frozen=True)
class LedgerEntry:
    """Where an image or a group went, and in which batch (1 for the first ledger write, ...)."""

    split: Split
    batch: int


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _entries(raw: object, what: str, batches: int, where: str) -> dict[str, LedgerEntry]:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: the split ledger needs '{what}'")
    entries: dict[str, LedgerEntry] = {}
    for name, written in raw.items():
        # Format 1 wrote {"batch": b, "split": s}; format 2 writes [s, b].
        entry = (
            [written.get("split"), written.get("batch")] if isinstance(written, dict) else written
        )
        ok = isinstance(entry, list) and len(entry) == 2
        split, batch = (entry[0], entry[1]) if ok else (None, None)
        if split not in SPLITS or not isinstance(batch, int) or not 1 <= batch <= batches:
            raise UserError(f"{where}: {what[:-1]} {name!r} has a broken entry {entry!r}")
        entries[name] = LedgerEntry(cast("Split", split), batch)
    return entries


@dataclass(frozen=True)
class SplitLedger:
    """Content hash -> split and group -> split, as stored; entries are only ever added."""

    images: Mapping[str, LedgerEntry] = field(default_factory=dict)
    groups: Mapping[str, LedgerEntry] = field(default_factory=dict)
    batches: int = 0

    def split_of(self, group: str) -> Split | None:
        """Give the split of a known group, or None."""
        entry = self.groups.get(group)
        return None if entry is None else entry.split

    def split_of_image(self, sha256: str) -> Split | None:
        """Give the split of a known image content, or None."""
        entry = self.images.get(sha256)
        return None if entry is None else entry.split

    def ledger_hash(self) -> str:
        """Give the SHA-256 of the assignments, independent of order and batch."""
        return hashlib.sha256(
            _canonical(
                {
                    "groups": {g: e.split for g, e in self.groups.items()},
                    "images": {s: e.split for s, e in self.images.items()},
                }
            )
        ).hexdigest()

    def with_batch(
        self, images: Mapping[str, Split], groups: Mapping[str, Split] | None = None
    ) -> SplitLedger:
        """Give the ledger with new images and groups added as the next batch (none moves)."""
        groups = groups or {}
        new_images = {s: v for s, v in images.items() if s not in self.images}
        new_groups = {g: v for g, v in groups.items() if g not in self.groups}
        moved = sorted(
            [s for s, v in images.items() if s in self.images and self.images[s].split != v]
            + [g for g, v in groups.items() if g in self.groups and self.groups[g].split != v]
        )
        if moved:
            raise ValueError(f"the split ledger never moves an entry (tried: {', '.join(moved)})")
        if not new_images and not new_groups:
            return self
        batch = self.batches + 1
        return SplitLedger(
            {**self.images, **{s: LedgerEntry(v, batch) for s, v in new_images.items()}},
            {**self.groups, **{g: LedgerEntry(v, batch) for g, v in new_groups.items()}},
            batch,
        )

    def _body(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "format": LEDGER_FORMAT,
            "groups": {g: [e.split, e.batch] for g, e in sorted(self.groups.items())},
            "images": {s: [e.split, e.batch] for s, e in sorted(self.images.items())},
        }

    def to_bytes(self) -> bytes:
        """Give the file's bytes: sorted JSON, one entry per line, with a checksum of the body."""
        body = self._body()
        checksum = hashlib.sha256(_canonical(body)).hexdigest()

        def block(name: str) -> str:
            lines = [
                f"  {json.dumps(k, ensure_ascii=False)}: {json.dumps(v)}"
                for k, v in body[name].items()
            ]
            return "{" + ("\n" + ",\n".join(lines) + "\n" if lines else "") + "}"

        text = (
            f'{{"batches": {self.batches}, "checksum": "{checksum}", "format": {LEDGER_FORMAT},\n'
            f'"groups": {block("groups")},\n"images": {block("images")}}}\n'
        )
        return text.encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> SplitLedger:
        """Give the ledger in a file's bytes, or a user error saying what is wrong with it."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{where}: the split ledger is not valid JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") not in (1, LEDGER_FORMAT):
            raise UserError(f"{where}: not a split ledger of format {LEDGER_FORMAT}")
        batches = document.get("batches")
        if not isinstance(batches, int):
            raise UserError(f"{where}: the split ledger needs 'batches'")
        groups = _entries(document.get("groups"), "groups", batches, where)
        if document["format"] == 1:  # written before images were recorded: read, then upgraded
            return cls({}, groups, batches)
        images = _entries(document.get("images"), "images", batches, where)
        ledger = cls(images, groups, batches)
        expected = hashlib.sha256(_canonical(ledger._body())).hexdigest()
        if document.get("checksum") != expected:
            raise UserError(
                f"{where}: the split ledger does not match its checksum (edited by hand?); "
                "restore the stored version, or delete it to rebuild it from the runs' dataset.json"
            )
        return ledger

    def absorb(self, items: Iterable[DatasetItem]) -> SplitLedger:
        """Give the ledger with a stored run's images and groups added where still unknown."""
        images: dict[str, Split] = {}
        groups: dict[str, Split] = {}
        for item in items:
            split = cast("Split", item["split"])
            if item["sha256"] not in self.images:
                images.setdefault(item["sha256"], split)
            if item["group"] not in self.groups:
                groups.setdefault(item["group"], split)
        return self.with_batch(images, groups)


def fingerprint(pairs: Iterable[tuple[str, str]]) -> str:
    """Give the SHA-256 of the sorted distinct (content hash, split) pairs of a data set."""
    return hashlib.sha256(
        _canonical({"members": sorted({f"{s}:{v}" for s, v in pairs})})
    ).hexdigest()


def check_membership(items: Iterable[DatasetItem], ledger: SplitLedger, where: str) -> str:
    """Give the fingerprint of the items' membership after checking each split against the ledger.

    An image the ledger does not know, or knows in another split, is a problem naming it: training
    or evaluating on such a data set would leak test images or hide them.
    """
    items = list(items)
    problems: list[Problem] = []
    for item in items:
        # A ledger from before images were recorded knows groups only.
        recorded = (
            ledger.split_of_image(item["sha256"])
            if ledger.images
            else ledger.split_of(item["group"])
        )
        if recorded is None:
            problems.append(Problem(f"{where}: {item['key']}", "is not in the split ledger"))
        elif recorded != item["split"]:
            problems.append(
                Problem(
                    f"{where}: {item['key']}",
                    f"is listed in {item['split']}, the split ledger has it in {recorded}",
                )
            )
    if problems:
        shown = problems[:20]
        if len(problems) > 20:
            shown.append(Problem(where, f"and {len(problems) - 20} more images"))
        raise ProblemsError(shown)
    return fingerprint((i["sha256"], i["split"]) for i in items)
