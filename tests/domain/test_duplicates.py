"""Exact and near copies merge their groups; the hash index finds exactly the near pairs."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from PIL import Image

from skillmaker.data.checks import check_image
from skillmaker.domain.duplicates import (
    HashedImage,
    HashIndex,
    UnionFind,
    chunk_layout,
    deduplicate,
    hamming,
    near_pairs,
)
from tests.data.pictures import encode, picture


@pytest.mark.parametrize("distance", [0, 1, 6, 10, 32])
def test_chunks_cover_the_64_bits_once(distance: int) -> None:
    layout = chunk_layout(distance)
    assert len(layout) == distance + 1
    assert sum(width for _, width in layout) == 64
    assert [shift for shift, _ in layout] == [
        sum(w for _, w in layout[:i]) for i in range(len(layout))
    ]


@pytest.mark.parametrize("distance", [0, 3, 6, 12])
def test_the_hash_index_finds_exactly_the_pairs_within_the_distance(distance: int) -> None:
    rng = random.Random(distance)
    values = [rng.getrandbits(64) for _ in range(300)]
    # Plant neighbours at every distance up to twice the threshold.
    for flips in range(2 * distance + 2):
        base = rng.choice(values)
        for bit in rng.sample(range(64), flips):
            base ^= 1 << bit
        values.append(base)
    expected = [
        (i, j)
        for i in range(len(values))
        for j in range(i + 1, len(values))
        if hamming(values[i], values[j]) <= distance
    ]
    assert sorted(near_pairs(values, distance)) == expected
    assert len(expected) >= distance + 1  # the planted ones are there to be found


def test_the_index_compares_only_candidates_sharing_a_chunk() -> None:
    index = HashIndex(6)
    far = [random.Random(i).getrandbits(64) for i in range(50)]
    for value in far:
        index.add(value)
    assert index.near(far[7]) == [7]


def test_union_find_merges_sets() -> None:
    sets: UnionFind[str] = UnionFind()
    for a, b in [("a", "b"), ("c", "d"), ("b", "d"), ("e", "e")]:
        sets.union(a, b)
    sets.add("f")
    assert sorted(sorted(s) for s in sets.sets()) == [["a", "b", "c", "d"], ["e"], ["f"]]


def _hashed(key: str, data: bytes, group: str) -> HashedImage:
    verdict = check_image(data, 10**8)
    assert verdict.phash is not None, key
    return HashedImage(key, hashlib.sha256(data).hexdigest(), verdict.phash, group)


def _copies(seed: int) -> dict[str, bytes]:
    """Give altered copies of a picture, the way the same photo turns up in another advert."""
    original = picture(seed, 96)
    jpeg = encode(original, "JPEG", quality=90)
    with Image.open(io.BytesIO(jpeg)) as decoded:
        recompressed = encode(decoded.convert("RGB"), "JPEG", quality=55)
    return {
        "reencoded": encode(original, "JPEG", quality=35),
        "smaller": encode(original.resize((64, 64), Image.Resampling.LANCZOS)),
        "larger": encode(original.resize((160, 160), Image.Resampling.BICUBIC), "JPEG", quality=80),
        "recompressed": recompressed,
        "webp": encode(original, "WEBP", quality=60),
    }


def test_reencoded_resized_and_recompressed_copies_merge_with_the_original() -> None:
    images = [
        _hashed(f"cat/ad{s}/original.png", encode(picture(s, 96)), f"ad{s}") for s in range(40)
    ]
    for seed in (3, 17):
        for name, data in _copies(seed).items():
            images.append(_hashed(f"cat/copy-{seed}-{name}/x", data, f"copy-{seed}-{name}"))
    result = deduplicate(images, distance=6)
    for seed in (3, 17):
        for name in _copies(seed):
            assert result.merged[f"copy-{seed}-{name}"] == result.merged[f"ad{seed}"], name
    # Distinct pictures stay apart: 40 originals give 40 merged groups.
    assert len(result.components()) == 40
    near = [d for d in result.duplicate_groups if d["kind"] == "near"]
    assert sorted(d["group"] for d in near) == ["ad17", "ad3"]
    assert len(near[0]["members"]) == 6


def test_exact_copies_merge_and_copies_inside_one_group_are_not_reported() -> None:
    same = encode(picture(1, 48))
    images = [
        _hashed("a/g1/x.png", same, "g1"),
        _hashed("a/g1/y.png", same, "g1"),
        _hashed("a/g2/z.png", encode(picture(2, 48)), "g2"),
        _hashed("a/g2/w.png", encode(picture(2, 48)), "g2"),
        _hashed("b/g3/v.png", same, "g3"),
    ]
    result = deduplicate(images, distance=0)
    assert result.merged == {"g1": "g1", "g2": "g2", "g3": "g1"}
    assert result.duplicate_groups == [
        {"group": "g1", "kind": "exact", "members": ["a/g1/x.png", "a/g1/y.png", "b/g3/v.png"]}
    ]
    assert result.components() == {"g1": ["g1", "g3"], "g2": ["g2"]}


def test_near_copies_chain_groups_together() -> None:
    # a ~ b and b ~ c merge a, b and c, even when a and c are further apart than the distance.
    images = [
        HashedImage("k1", "s1", 0b0000, "ga"),
        HashedImage("k2", "s2", 0b0011, "gb"),
        HashedImage("k3", "s3", 0b1111, "gc"),
        HashedImage("k4", "s4", 2**64 - 1, "gd"),
    ]
    result = deduplicate(images, distance=2)
    assert result.components() == {"ga": ["ga", "gb", "gc"], "gd": ["gd"]}
    assert result.neighbours == {
        "s1": frozenset({"s2"}),
        "s2": frozenset({"s1", "s3"}),
        "s3": frozenset({"s2"}),
    }
