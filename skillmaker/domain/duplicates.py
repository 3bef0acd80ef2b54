"""Merge groups that share a picture: exact copies (same content hash) and near copies (perceptual
hashes within a Hamming distance), so a picture can never sit in two splits.

Near copies are found with a multi-index hash (``skillmaker.domain.hashindex``), not by comparing
all pairs. A chain of near copies is capped: a component of more than ``cap`` pictures is split
around centres (each picture joins the first centre within the distance), so one chain cannot
force a third of the data into one split. Near copies under different classes are label conflicts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from skillmaker.domain.hashindex import near_pair_array
from skillmaker.domain.records import DuplicateGroup

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


def near_pairs(values: Sequence[int], distance: int) -> list[tuple[int, int]]:
    """Give every pair ``(i, j)``, ``i < j``, of values within ``distance`` bits."""
    return [(int(i), int(j)) for i, j in near_pair_array(values, distance)]


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


LABEL_CONFLICT = "label conflict"


@dataclass(frozen=True)
class Component:
    """A set of copies: its merged group, how many pictures, and whether it was capped."""

    group: str
    size: int
    capped: bool


@dataclass(frozen=True)
class Deduplication:
    """Groups merged because they share pictures, and which contents are near copies."""

    merged: dict[str, str]
    """Original group -> merged group (the smallest original group id of the merged set)."""
    neighbours: dict[str, frozenset[str]]
    """Content hash -> content hashes of its near copies (other contents within the distance)."""
    duplicate_groups: list[DuplicateGroup]
    """Sets of copies that span several original groups (what the audit lists)."""
    largest: list[Component] = field(default_factory=list)
    """The largest sets of copies, largest first (at most ``LARGEST``)."""
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    """(key, key) of copies filed under different classes, sorted."""

    def components(self) -> dict[str, list[str]]:
        """Give merged group -> its original groups, sorted."""
        members: dict[str, list[str]] = defaultdict(list)
        for group, merged in self.merged.items():
            members[merged].append(group)
        return {merged: sorted(groups) for merged, groups in sorted(members.items())}


LARGEST = 5


def _content_pairs(
    contents: Sequence[str], first: Mapping[str, HashedImage], distance: int
) -> set[tuple[int, int]]:
    """Give the pairs of contents within ``distance``, mirrored copies too when hashes are given."""
    values = [first[sha].phash for sha in contents]
    flipped = [(n, first[sha].flipped) for n, sha in enumerate(contents)]
    mirrored = [(n, f) for n, f in flipped if f is not None]
    combined = values + [f for _, f in mirrored]
    owner = list(range(len(values))) + [n for n, _ in mirrored]
    pairs: set[tuple[int, int]] = set()
    for i, j in near_pair_array(combined, distance):
        a, b = owner[int(i)], owner[int(j)]
        if a != b:
            pairs.add((min(a, b), max(a, b)))
    return pairs


def _capped(members: list[int], adjacency: Mapping[int, set[int]], cap: int) -> list[list[int]]:
    """Give a component as it is, or split around centres when it holds more than ``cap``."""
    if len(members) <= cap:
        return [members]
    centres: dict[int, list[int]] = {}
    for node in sorted(members, key=lambda n: (-len(adjacency[n]), n)):
        home = next((c for c in centres if c in adjacency[node]), None)
        if home is None:
            centres[node] = [node]
        else:
            centres[home].append(node)
    return list(centres.values())


def _summarise(
    kept_sets: Sequence[tuple[list[int], bool]],
    contents: Sequence[str],
    by_content: Mapping[str, list[HashedImage]],
    merged: Mapping[str, str],
) -> tuple[list[DuplicateGroup], list[Component], set[tuple[str, str]]]:
    """Give the audit's duplicate groups, every set of copies, and the label conflicts."""
    duplicate_groups: list[DuplicateGroup] = []
    components: list[Component] = []
    conflicts: set[tuple[str, str]] = set()
    for part, capped in kept_sets:
        members = sorted((i for n in part for i in by_content[contents[n]]), key=lambda i: i.key)
        components.append(Component(merged[members[0].group], len(members), capped))
        by_label: dict[str, str] = {}
        for member in members:
            by_label.setdefault(member.label, member.key)
        if len(by_label) > 1:
            keys = sorted(by_label.values())
            conflicts |= {(keys[0], other) for other in keys[1:]}
        if len({m.group for m in members}) < 2:
            continue  # copies inside one group merge nothing
        duplicate_groups.append(
            {
                "group": merged[members[0].group],
                "kind": "exact" if len(part) == 1 else "near",
                "members": [m.key for m in members],
            }
        )
    return duplicate_groups, components, conflicts


def deduplicate(
    images: Sequence[HashedImage], distance: int, *, cap: int | None = None
) -> Deduplication:
    """Give the merged groups of images that are exact or near copies of each other."""
    by_content: dict[str, list[HashedImage]] = defaultdict(list)
    for image in images:
        by_content[image.sha256].append(image)
    contents = sorted(by_content)
    first = {sha: by_content[sha][0] for sha in contents}
    pairs = _content_pairs(contents, first, distance)
    adjacency: dict[int, set[int]] = defaultdict(set)
    chains: UnionFind[int] = UnionFind()
    for n in range(len(contents)):
        chains.add(n)
    for i, j in pairs:
        adjacency[i].add(j)
        adjacency[j].add(i)
        chains.union(i, j)
    kept_sets: list[tuple[list[int], bool]] = []
    for chain in chains.sets():
        parts = _capped(chain, adjacency, cap if cap is not None else len(chain))
        kept_sets += [(part, len(parts) > 1) for part in parts]

    groups: UnionFind[str] = UnionFind()
    for sha in contents:
        for image in by_content[sha]:
            groups.union(first[sha].group, image.group)
    neighbours: dict[str, set[str]] = defaultdict(set)
    for part, _ in kept_sets:
        inside = set(part)
        for i in part:
            for j in adjacency[i] & inside:
                neighbours[contents[i]].add(contents[j])
                groups.union(first[contents[i]].group, first[contents[j]].group)

    merged = {group: min(members) for members in groups.sets() for group in members}
    duplicate_groups, components, conflicts = _summarise(kept_sets, contents, by_content, merged)
    duplicate_groups.sort(key=lambda d: (d["group"], d["members"]))
    components.sort(key=lambda c: (-c.size, c.group))
    return Deduplication(
        merged=dict(sorted(merged.items())),
        neighbours={sha: frozenset(near) for sha, near in sorted(neighbours.items())},
        duplicate_groups=duplicate_groups,
        largest=[c for c in components if c.size > 1][:LARGEST],
        conflicts=sorted(conflicts),
    )
