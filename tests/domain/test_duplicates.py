"""Exact and near copies merge their groups; the hash index finds exactly the near pairs."""

from __future__ import annotations

import hashlib
import io
import random
from itertools import combinations
from math import comb

import numpy as np
import pytest
from PIL import Image

from skillmaker.data.checks import check_image
from skillmaker.domain.duplicates import (
    HashedImage,
    UnionFind,
    deduplicate,
    hamming,
    near_pairs,
)
from skillmaker.domain.hashindex import (
    chunk_layout,
    covering,
    near_pair_array,
    plan,
    popcount,
    scheme,
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


@pytest.mark.parametrize(
    ("parts", "distance", "k"),
    [(12, 6, 3), (10, 6, 2), (13, 6, 4), (9, 6, 2), (15, 10, 3), (16, 10, 4), (5, 2, 2)],
)
def test_a_covering_holds_a_table_inside_every_set_of_agreeing_chunks(
    parts: int, distance: int, k: int
) -> None:
    tables = covering(parts, distance, k)
    assert all(len(table) == k for table in tables)
    for agreeing in combinations(range(parts), parts - distance):
        assert any(set(table) <= set(agreeing) for table in tables), agreeing
    # Far fewer tables than every k-subset, where k is below the chunks that must agree.
    if k < parts - distance:
        assert len(tables) < comb(parts, k)


@pytest.mark.parametrize("distance", [0, 3, 6, 12])
@pytest.mark.parametrize("extra", [None, (1, 1), (4, 2), (3, 3), (6, 3)])
def test_the_hash_index_finds_exactly_the_pairs_within_the_distance(
    distance: int, extra: tuple[int, int] | None
) -> None:
    rng = random.Random(distance)
    values = [rng.getrandbits(64) for _ in range(300)]
    # Plant neighbours at every distance up to twice the threshold.
    for flips in range(2 * distance + 2):
        base = rng.choice(values)
        for bit in rng.sample(range(64), flips):
            base ^= 1 << bit
        values.append(base)
    values += values[:5] + [0] * 30  # exact repeats, and a run of one key longer than the rest
    expected = [
        (i, j)
        for i in range(len(values))
        for j in range(i + 1, len(values))
        if hamming(values[i], values[j]) <= distance
    ]
    using = None if extra is None else scheme(distance + extra[0], distance, extra[1])
    found = near_pair_array(values, distance, using=using)
    assert [(int(i), int(j)) for i, j in found] == expected
    assert len(expected) >= distance + 1  # the planted ones are there to be found
    if extra is None:
        assert sorted(near_pairs(values, distance)) == expected


def test_wide_keys_drop_unique_keys_before_sorting_and_still_find_every_pair() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2**64, 2_000, dtype=np.uint64, endpoint=False)
    values[1_500:] = values[:500] ^ (np.uint64(1) << rng.integers(0, 64, 500).astype(np.uint64))
    wide = scheme(6, 1, 4)  # 4 of 6 chunks: keys of about 43 bits, far more than the count
    found = {tuple(map(int, pair)) for pair in near_pair_array(values, 1, using=wide)}
    close = popcount(values[:, None] ^ values[None, :]).reshape(len(values), -1) <= 1
    expected = {(int(i), int(j)) for i, j in zip(*np.nonzero(close), strict=True) if i < j}
    assert found == expected and len(expected) >= 500


def test_the_plan_uses_longer_keys_for_more_hashes() -> None:
    def key_bits(count: int, distance: int) -> float:
        chosen = plan(count, distance)
        layout = chunk_layout(distance, parts=chosen.parts)
        return sum(layout[i][1] for i in chosen.tables[0])

    assert key_bits(1_000, 6) < key_bits(10**6, 6) <= key_bits(10**9, 6)
    assert plan(10**6, 6) == plan(10**6 + 1, 6)  # planned per size class, then cached
    with pytest.raises(ValueError, match="distance 64"):
        plan(100, 64)


@pytest.mark.parametrize("distance", [-1, 60, 63, 64, 70])
def test_distances_at_the_ends_of_the_range_give_exactly_the_pairs_within(distance: int) -> None:
    rng = random.Random(distance)
    values = [rng.getrandbits(64) for _ in range(120)] + [0, 2**64 - 1]
    expected = [
        (i, j)
        for i in range(len(values))
        for j in range(i + 1, len(values))
        if hamming(values[i], values[j]) <= distance
    ]
    assert [(int(i), int(j)) for i, j in near_pair_array(values, distance)] == expected


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


def test_a_long_chain_of_near_copies_is_split_around_centres() -> None:
    # 60 hashes, each 1 bit from the next (k bits from the k-th next): at distance 2 one long
    # chain whose ends are 59 bits apart, far longer than the cap.
    values, value = [], 0
    for n in range(60):
        value ^= 1 << n
        values.append(value)
    images = [
        HashedImage(f"k{n}", f"s{n:02d}", v, f"g{n:02d}", "cat") for n, v in enumerate(values)
    ]
    whole = deduplicate(images, distance=2)
    assert len(whole.components()) == 1
    assert whole.largest[0].size == 60 and not whole.largest[0].capped
    capped = deduplicate(images, distance=2, cap=10)
    sizes = [len(groups) for groups in capped.components().values()]
    assert max(sizes) <= 10 and sum(sizes) == 60
    assert capped.largest[0].capped
    assert all(c.size <= 10 for c in capped.largest)
    # Neighbours only link pictures of one part, so no part is forced to follow another.
    part_of = {g: m for m, groups in capped.components().items() for g in groups}
    for sha, near in capped.neighbours.items():
        assert all(part_of[f"g{sha[1:]}"] == part_of[f"g{o[1:]}"] for o in near)


def test_near_copies_under_different_classes_are_label_conflicts_naming_both() -> None:
    original = encode(picture(5, 96))
    resized = encode(picture(5, 96).resize((80, 80)))
    a = _hashed("cat/ad1/a.png", original, "ad1")
    b = _hashed("dog/ad2/b.png", resized, "ad2")
    labelled = [
        HashedImage(a.key, a.sha256, a.phash, a.group, "cat"),
        HashedImage(b.key, b.sha256, b.phash, b.group, "dog"),
        HashedImage("cat/ad3/c.png", "c", a.phash ^ (2**63), "ad3", "cat"),
    ]
    result = deduplicate(labelled, distance=6)
    assert result.conflicts == [("cat/ad1/a.png", "dog/ad2/b.png")]


def test_mirrored_copies_merge_only_when_the_mirrored_hash_is_given() -> None:
    original = picture(9, 96)
    mirrored = original.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a = check_image(encode(original), 10**8)
    b = check_image(encode(mirrored), 10**8)
    assert a.phash is not None and b.phash is not None
    assert hamming(a.phash, b.phash) > 6  # a mirrored copy is not a near copy by itself
    plain = [
        HashedImage("x/a.png", "sa", a.phash, "ga", "cat"),
        HashedImage("x/b.png", "sb", b.phash, "gb", "cat"),
    ]
    assert len(deduplicate(plain, distance=6).components()) == 2
    flips = [
        HashedImage("x/a.png", "sa", a.phash, "ga", "cat", a.flipped),
        HashedImage("x/b.png", "sb", b.phash, "gb", "cat", b.flipped),
    ]
    assert deduplicate(flips, distance=6).components() == {"ga": ["ga", "gb"]}
