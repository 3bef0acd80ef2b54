"""Merge groups that share a picture: exact copies (same content hash) and near copies (perceptual
hashes within a Hamming distance), so a picture can never sit in two splits.

Near copies are found with a multi-index hash: the 64-bit hash is cut into ``d + 1`` chunks, and
by the pigeonhole principle two hashes within distance ``d`` agree exactly on at least one chunk.
Only hashes that share a chunk are compared, instead of all pairs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from skillmaker.domain.records import DuplicateGroup

HASH_BITS = 64

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class HashedImage:
    """A usable image with its content hash, perceptual hash and original group."""

    key: str
    sha256: str
    phash: int
    group: str
    label: str = ""
    flipped: int | None = None
    """Perceptual hash of the mirrored image, when horizontal flips make mirrored copies alike."""


def hamming(a: int, b: int) -> int:
    """Give the number of bits in which two hashes differ."""
    return (a ^ b).bit_count()


def chunk_layout(distance: int, bits: int = HASH_BITS) -> list[tuple[int, int]]:
    """Give (shift, width) of the ``distance + 1`` chunks a hash is cut into."""
    count = min(distance + 1, bits)
    base, extra = divmod(bits, count)
    layout = []
    shift = 0
    for index in range(count):
        width = base + (1 if index < extra else 0)
        layout.append((shift, width))
        shift += width
    return layout


class HashIndex:
    """A multi-index hash of 64-bit values: finds every stored value within ``distance`` bits."""

    def __init__(self, distance: int) -> None:
        self.distance = distance
        self.layout = chunk_layout(distance)
        self._tables: list[dict[int, list[int]]] = [defaultdict(list) for _ in self.layout]
        self._values: list[int] = []

    def _chunks(self, value: int) -> Iterable[tuple[int, int]]:
        for table, (shift, width) in enumerate(self.layout):
            yield table, (value >> shift) & ((1 << width) - 1)

    def add(self, value: int) -> int:
        """Store a value; give its number (the order it was added in)."""
        number = len(self._values)
        self._values.append(value)
        for table, chunk in self._chunks(value):
            self._tables[table][chunk].append(number)
        return number

    def near(self, value: int) -> list[int]:
        """Give the numbers of stored values within ``distance`` bits of ``value``, ascending."""
        candidates: set[int] = set()
        for table, chunk in self._chunks(value):
            candidates.update(self._tables[table].get(chunk, ()))
        return sorted(n for n in candidates if hamming(self._values[n], value) <= self.distance)


def near_pairs(values: Sequence[int], distance: int) -> list[tuple[int, int]]:
    """Give every pair ``(i, j)``, ``i < j``, of values within ``distance`` bits."""
    index = HashIndex(distance)
    pairs: list[tuple[int, int]] = []
    for j, value in enumerate(values):
        pairs.extend((i, j) for i in index.near(value))
        index.add(value)
    return pairs


class UnionFind(Generic[K]):
    """Disjoint sets with path halving and union by size."""

    def __init__(self) -> None:
        self._parent: dict[K, K] = {}
        self._size: dict[K, int] = {}

    def add(self, item: K) -> None:
        """Make a set of one item, unless the item is known."""
        if item not in self._parent:
            self._parent[item] = item
            self._size[item] = 1

    def find(self, item: K) -> K:
        """Give the representative of an item's set."""
        self.add(item)
        while self._parent[item] != item:
            self._parent[item] = self._parent[self._parent[item]]
            item = self._parent[item]
        return item

    def union(self, a: K, b: K) -> None:
        """Merge the sets of two items."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]

    def sets(self) -> list[list[K]]:
        """Give every set's members, in insertion order."""
        members: dict[K, list[K]] = defaultdict(list)
        for item in self._parent:
            members[self.find(item)].append(item)
        return list(members.values())


@dataclass(frozen=True)
class Deduplication:
    """Groups merged because they share pictures, and which contents are near copies."""

    merged: dict[str, str]
    """Original group -> merged group (the smallest original group id of the merged set)."""
    neighbours: dict[str, frozenset[str]]
    """Content hash -> content hashes of its near copies (other contents within the distance)."""
    duplicate_groups: list[DuplicateGroup]
    """Sets of copies that span several original groups (what the audit lists)."""

    def components(self) -> dict[str, list[str]]:
        """Give merged group -> its original groups, sorted."""
        members: dict[str, list[str]] = defaultdict(list)
        for group, merged in self.merged.items():
            members[merged].append(group)
        return {merged: sorted(groups) for merged, groups in sorted(members.items())}


def deduplicate(images: Sequence[HashedImage], distance: int) -> Deduplication:
    """Give the merged groups of images that are exact or near copies of each other."""
    by_content: dict[str, list[HashedImage]] = defaultdict(list)
    for image in images:
        by_content[image.sha256].append(image)
    contents = sorted(by_content)
    pairs = near_pairs([by_content[sha][0].phash for sha in contents], distance)

    groups: UnionFind[str] = UnionFind()
    copies: UnionFind[str] = UnionFind()  # contents that are copies of each other
    for sha in contents:
        copies.add(sha)
        first = by_content[sha][0].group
        for image in by_content[sha]:
            groups.union(first, image.group)
    neighbours: dict[str, set[str]] = defaultdict(set)
    for i, j in pairs:
        a, b = contents[i], contents[j]
        neighbours[a].add(b)
        neighbours[b].add(a)
        copies.union(a, b)
        groups.union(by_content[a][0].group, by_content[b][0].group)

    merged_sets = groups.sets()
    merged = {group: min(members) for members in merged_sets for group in members}
    duplicate_groups: list[DuplicateGroup] = []
    for shas in copies.sets():
        members = sorted((i for sha in shas for i in by_content[sha]), key=lambda i: i.key)
        if len({m.group for m in members}) < 2:
            continue  # copies inside one group merge nothing
        duplicate_groups.append(
            {
                "group": merged[members[0].group],
                "kind": "exact" if len(shas) == 1 else "near",
                "members": [m.key for m in members],
            }
        )
    duplicate_groups.sort(key=lambda d: (d["group"], d["members"]))
    return Deduplication(
        merged=dict(sorted(merged.items())),
        neighbours={sha: frozenset(near) for sha, near in sorted(neighbours.items())},
        duplicate_groups=duplicate_groups,
    )
