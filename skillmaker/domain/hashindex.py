"""Every pair of 64-bit hashes within a Hamming distance, without comparing all pairs.

Multi-index hashing by the pigeonhole principle: cut the hash into ``m = d + k`` chunks; two hashes
within distance ``d`` differ in at most ``d`` chunks, so they agree exactly on at least ``k`` of
them, and on one whole ``k``-subset of chunks. For each ``k``-subset (a table) the hashes are
sorted by those chunks; only hashes with equal keys become candidates, and candidates are verified
by popcount. With ``k = 1`` this is the classic ``d + 1`` chunks. Larger ``k`` makes each key
longer (fewer false candidates) at the price of more tables; ``plan`` picks the cheapest ``k``
for the number of hashes. Everything runs as numpy array operations: one sort per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from math import comb
from typing import Any

import numpy as np

HASH_BITS = 64
# Relative costs measured on numpy 2: one element of a table's sort versus one candidate pair.
_SORT_COST = 1.0
_PAIR_COST = 0.4


def chunk_layout(distance: int, *, parts: int | None = None) -> list[tuple[int, int]]:
    """Give (shift, width) of the chunks a hash is cut into (``distance + 1`` by default)."""
    count = min(parts if parts is not None else distance + 1, HASH_BITS)
    base, extra = divmod(HASH_BITS, count)
    layout = []
    shift = 0
    for index in range(count):
        width = base + (1 if index < extra else 0)
        layout.append((shift, width))
        shift += width
    return layout


def plan(count: int, distance: int) -> int:
    """Give ``k``, the chunks that must match, cheapest for ``count`` hashes at ``distance``."""
    best, best_cost = 1, float("inf")
    for k in range(1, 8):
        parts = distance + k
        if parts > HASH_BITS:
            break
        key_bits = sum(w for _, w in chunk_layout(distance, parts=parts)[-k:])
        pairs = count * (count - 1) / 2 / 2.0**key_bits
        passes = -(-key_bits // 16)
        cost = comb(parts, k) * (count * (1 + passes) * _SORT_COST + pairs * _PAIR_COST)
        if cost < best_cost:
            best, best_cost = k, cost
    return best


def popcount(values: np.ndarray) -> np.ndarray:
    """Give the number of set bits of each uint64."""
    if hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(values), dtype=np.int64)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
    as_bytes = values.astype(np.uint64).view(np.uint8).reshape(-1, 8)
    return np.asarray(table[as_bytes].sum(axis=1), dtype=np.int64)


def _order(keys: np.ndarray, bits: int) -> np.ndarray:
    """Give the stable sorting order of keys of ``bits`` bits: a radix sort, 16 bits a pass."""
    order: np.ndarray | None = None
    for shift in range(0, max(bits, 1), 16):
        digit = ((keys >> keys.dtype.type(shift)) & keys.dtype.type(0xFFFF)).astype(np.uint16)
        if order is None:
            order = np.argsort(digit, kind="stable")  # numpy radix-sorts 16-bit integers
        else:
            order = order[np.argsort(digit[order], kind="stable")]
    assert order is not None
    return order


def _table_pairs(values: np.ndarray, keys: np.ndarray, bits: int, distance: int) -> np.ndarray:
    """Give the (i, j) pairs of equal keys within ``distance`` bits, as an (n, 2) int64 array."""
    order = _order(keys, bits)
    ordered = keys[order]
    sorted_values = values[order]  # one gather, then the candidates are read in order
    size = len(keys)
    # Sorted, so a key equal to the one ``step`` places on is equal to every key in between.
    active = np.flatnonzero(ordered[1:] == ordered[:-1])
    found: list[np.ndarray] = []
    step = 1
    while active.size:
        close = active[popcount(sorted_values[active] ^ sorted_values[active + step]) <= distance]
        if close.size:
            found.append(np.stack([order[close], order[close + step]], axis=1))
        step += 1
        active = active[active + step < size]
        active = active[ordered[active + step] == ordered[active]]
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def near_pair_array(
    values: np.ndarray | Sequence[int], distance: int, *, k: int | None = None
) -> np.ndarray:
    """Give every pair ``(i, j)``, ``i < j``, of hashes within ``distance`` bits, sorted, (n, 2).

    ``k`` (the chunks that must match) is chosen by ``plan`` unless given.
    """
    hashes = np.asarray(
        values if isinstance(values, np.ndarray) else [int(v) for v in values], dtype=np.uint64
    )
    count = len(hashes)
    if count < 2:
        return np.empty((0, 2), dtype=np.int64)
    k = plan(count, distance) if k is None else k
    layout = chunk_layout(distance, parts=distance + k)
    widest = sum(sorted(w for _, w in layout)[-k:])
    kind: type[np.unsignedinteger[Any]] = (
        np.uint16 if widest <= 16 else np.uint32 if widest <= 32 else np.uint64
    )
    chunks = [
        ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(kind)
        for shift, width in layout
    ]
    found: list[np.ndarray] = []
    for subset in combinations(range(len(layout)), k):
        key = np.zeros(count, dtype=kind)
        for index in subset:
            key = np.left_shift(key, kind(layout[index][1])) | chunks[index]
        bits = sum(layout[index][1] for index in subset)
        found.append(_table_pairs(hashes, key, bits, distance))
    pairs = np.concatenate(found)
    if not len(pairs):
        return pairs
    low, high = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    codes = np.unique(low.astype(np.int64) * count + high)
    return np.stack([codes // count, codes % count], axis=1)
