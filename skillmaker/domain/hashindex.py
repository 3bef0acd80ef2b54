"""Every pair of 64-bit hashes within a Hamming distance, without comparing all pairs.

Multi-index hashing by the pigeonhole principle. Cut the hash into ``parts`` chunks; two hashes
within distance ``d`` differ in at most ``d`` chunks, so they agree exactly on at least
``parts - d`` of them. A table keys every hash on ``k`` chunks (``k <= parts - d``); a close pair
shares a key in every table whose chunks are among the ones it agrees on. The tables' chunk sets
form a covering: every ``(parts - d)``-subset of chunks contains the chunks of at least one table,
so every close pair meets in some table and the search is exact, not probabilistic.

Taking every ``k``-subset (``parts = d + k``) is the classic scheme; more, narrower chunks with a
greedy covering reach the same key length with far fewer tables (distance 6, keys of about 16
bits: 27 tables of 3 chunks out of 12 against 28 of 2 out of 8, and 20-bit keys with 48 tables
instead of 84). Longer keys mean fewer false candidates and more tables; ``plan`` picks the
cheapest scheme for the number of hashes, so the work grows little faster than the count.

In each table the hashes are radix-sorted by key (numpy's stable sort of 16-bit integers), and
hashes with equal keys are compared by popcount, step by step along each run of equal keys.
Everything runs as numpy array operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np

HASH_BITS = 64
# Relative costs of the index's work, measured on numpy 2 (2-core machine): one hash through one
# 16-bit radix pass of a table (with the key and the gathers), one candidate pair compared, and
# a table's fixed cost.
_PASS_COST = 1.0
_PAIR_COST = 0.35
_TABLE_COST = 2000.0
# Schemes considered: up to this many extra chunks beyond distance + 1, and coverings small
# enough to compute at once.
_EXTRA_PARTS = 8
_COVERING_WORK = 20_000_000


@dataclass(frozen=True)
class Scheme:
    """How the index cuts hashes: ``parts`` chunks, and the chunk sets its tables are keyed on."""

    parts: int
    tables: tuple[tuple[int, ...], ...]

    @property
    def k(self) -> int:
        """Give the number of chunks each table's key is made of."""
        return len(self.tables[0])


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


@lru_cache(maxsize=64)
def covering(parts: int, distance: int, k: int) -> tuple[tuple[int, ...], ...]:
    """Give ``k``-subsets of ``range(parts)`` such that every ``(parts - distance)``-subset holds one.

    Every ``k``-subset when ``k = parts - distance``; otherwise a greedy covering (deterministic:
    the first subset that covers the most still uncovered sets).
    """
    agree = parts - distance
    if not 1 <= k <= agree:
        raise ValueError(
            f"k must be between 1 and {agree} for {parts} parts at distance {distance}"
        )
    candidates = list(combinations(range(parts), k))
    if k == agree:
        return tuple(candidates)
    masks = np.array([sum(1 << i for i in c) for c in candidates], dtype=np.uint64)
    targets = np.array(
        [sum(1 << i for i in t) for t in combinations(range(parts), agree)], dtype=np.uint64
    )
    inside = (masks[:, None] & targets[None, :]) == masks[:, None]
    gain = inside.sum(axis=1)  # the still uncovered sets each candidate covers
    alive = np.ones(len(targets), dtype=bool)
    chosen: list[tuple[int, ...]] = []
    while alive.any():
        best = int(np.argmax(gain))
        chosen.append(candidates[best])
        newly = alive & inside[best]
        gain -= inside[:, newly].sum(axis=1)
        alive &= ~newly
    return tuple(sorted(chosen))


def _candidates(distance: int) -> list[tuple[int, int]]:
    """Give the (parts, k) schemes ``plan`` weighs for ``distance``."""
    found = []
    for parts in range(distance + 1, min(distance + 1 + _EXTRA_PARTS, HASH_BITS) + 1):
        for k in range(1, parts - distance + 1):
            if k == parts - distance or comb(parts, k) * comb(parts, distance) <= _COVERING_WORK:
                found.append((parts, k))
    return found


def _key_bits(layout: Sequence[tuple[int, int]], table: Sequence[int]) -> int:
    """Give the width of a table's key: the widths of its chunks."""
    return sum(layout[i][1] for i in table)


def _cost(count: int, distance: int, parts: int, tables: Sequence[Sequence[int]]) -> float:
    """Estimate the work of searching ``count`` random hashes with these tables (relative units)."""
    layout = chunk_layout(distance, parts=parts)
    total = 0.0
    for table in tables:
        bits = _key_bits(layout, table)
        passes = 1.0 if bits <= 16 else 1.6 if bits <= 24 else 2.0
        pairs = count * (count - 1) / 2 / 2.0**bits
        total += _TABLE_COST + count * passes * _PASS_COST + pairs * _PAIR_COST
    return total


def _least_tables(parts: int, distance: int, k: int) -> int:
    """Give the least size of a covering: each table lies in C(parts - k, distance) of the sets."""
    return -(-comb(parts, distance) // comb(parts - k, distance))


@lru_cache(maxsize=256)
def _plan(magnitude: int, distance: int) -> Scheme:
    """Give the cheapest scheme for about ``2**magnitude`` hashes.

    Schemes are weighed first by an optimistic estimate (the least number of tables a covering
    can have, each with the scheme's narrowest key); coverings are computed only for schemes
    whose estimate beats the cheapest scheme so far. Any scheme is exact; this picks the speed.
    """
    count = 2**magnitude
    bounds = []
    for parts, k in _candidates(distance):
        if comb(parts, k) > 20_000:  # the classic schemes at large distances grow too fast
            continue
        narrowest = tuple(range(parts - k, parts))  # the last chunks are the narrowest
        bound = _cost(count, distance, parts, [narrowest] * _least_tables(parts, distance, k))
        bounds.append((bound, parts, k))
    best: Scheme | None = None
    best_cost = float("inf")
    for bound, parts, k in sorted(bounds):
        if bound >= best_cost:
            break
        tables = covering(parts, distance, k)
        cost = _cost(count, distance, parts, tables)
        if cost < best_cost:
            best, best_cost = Scheme(parts, tables), cost
    assert best is not None
    return best


def plan(count: int, distance: int) -> Scheme:
    """Give the cheapest scheme for ``count`` hashes at ``distance`` (planned per power of 2)."""
    if not 0 <= distance < HASH_BITS:
        raise ValueError(f"no index for distance {distance}: it is 0 to {HASH_BITS - 1}")
    return _plan(max(1, count).bit_length(), distance)


def scheme(parts: int, distance: int, k: int) -> Scheme:
    """Give the scheme of ``parts`` chunks keyed on ``k`` of them, with its covering."""
    return Scheme(parts, covering(parts, distance, k))


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
        digit = keys >> keys.dtype.type(shift)
        digit = (digit & digit.dtype.type(0xFFFF)).astype(
            np.uint16 if bits - shift > 8 else np.uint8
        )
        if order is None:
            order = np.argsort(digit, kind="stable")  # numpy radix-sorts 8- and 16-bit integers
        else:
            order = order[np.argsort(digit[order], kind="stable")]
    assert order is not None
    return order


def _maybe_shared(keys: np.ndarray, bits: int) -> np.ndarray | None:
    """Give the indices of the keys that may occur more than once, or None for all of them.

    With keys wider than the count, most keys are unique. A count per slot of the key's low bits
    (about eight slots a key; one pass and one gather) drops every key alone in its slot, which
    is certainly unique, so only the rest are sorted and compared.
    """
    count = len(keys)
    if count < 2**10 or count > 2 ** (bits - 1):
        return None
    slots = min(bits, count.bit_length() + 3)
    folded = keys & keys.dtype.type((1 << slots) - 1) if slots < bits else keys
    tally = np.bincount(folded, minlength=1 << slots)
    return np.flatnonzero(tally[folded] > 1)


def _table_pairs(values: np.ndarray, keys: np.ndarray, bits: int, distance: int) -> np.ndarray:
    """Give the (i, j) pairs of equal keys within ``distance`` bits, as an (n, 2) int64 array."""
    shared = _maybe_shared(keys, bits)
    if shared is None:
        return _run_pairs(values, keys, bits, distance)
    return np.asarray(shared[_run_pairs(values[shared], keys[shared], bits, distance)])


def _run_pairs(values: np.ndarray, keys: np.ndarray, bits: int, distance: int) -> np.ndarray:
    """Give the pairs of ``_table_pairs``: sort by key, compare along each run of equal keys."""
    order = _order(keys, bits)
    ordered = keys[order]
    # Positions followed by an equal key; in a run of equal keys of length L they are the first
    # L - 1, and the one L - 1 - r places from the run's end has r + 1 equal keys after it.
    follows = np.flatnonzero(ordered[1:] == ordered[:-1])
    if not follows.size:
        return np.empty((0, 2), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(follows) != 1)
    ends = np.append(follows[breaks], follows[-1])
    lengths = np.diff(np.concatenate(([0], breaks + 1, [follows.size])))
    after = np.repeat(ends, lengths) - follows + 1  # equal keys after each position
    # Longest first: the positions with at least ``step`` equal keys after them are a prefix.
    most = int(after.max())
    if most < 2**16:  # a radix sort; only runs of over 65,536 equal keys need the general one
        by_after = np.argsort((most - after).astype(np.uint16), kind="stable")
    else:
        by_after = np.argsort(-after, kind="stable")
    positions = follows[by_after]
    reach = np.bincount(after)[::-1].cumsum()[::-1]  # reach[s]: positions with >= s after them
    ordered_values = values[order]
    here = ordered_values[positions]
    found: list[np.ndarray] = []
    for step in range(1, most + 1):
        width = int(reach[step])
        ahead = positions[:width] + step
        close = np.flatnonzero(popcount(here[:width] ^ ordered_values[ahead]) <= distance)
        if close.size:
            found.append(np.stack([order[positions[close]], order[ahead[close]]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def near_pair_array(
    values: np.ndarray | Sequence[int], distance: int, *, using: Scheme | None = None
) -> np.ndarray:
    """Give every pair ``(i, j)``, ``i < j``, of hashes within ``distance`` bits, sorted, (n, 2).

    The scheme (chunks and tables) is chosen by ``plan`` unless given.
    """
    hashes = np.asarray(
        values if isinstance(values, np.ndarray) else [int(v) for v in values], dtype=np.uint64
    )
    count = len(hashes)
    if count < 2 or distance < 0:
        return np.empty((0, 2), dtype=np.int64)
    if distance >= HASH_BITS:  # every pair is within the distance
        first, second = np.triu_indices(count, 1)
        return np.stack([first, second], axis=1).astype(np.int64)
    chosen = plan(count, distance) if using is None else using
    layout = chunk_layout(distance, parts=chosen.parts)
    widths = [_key_bits(layout, table) for table in chosen.tables]
    kind = np.uint16 if max(widths) <= 16 else np.uint32 if max(widths) <= 32 else np.uint64
    chunks = [
        ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(kind)
        for shift, width in layout
    ]
    found: list[np.ndarray] = []
    for table, bits in zip(chosen.tables, widths, strict=True):
        key = chunks[table[0]]
        for index in table[1:]:
            key = np.left_shift(key, kind(layout[index][1])) | chunks[index]
        found.append(_table_pairs(hashes, key, bits, distance))
    pairs = np.concatenate(found)
    if not len(pairs):
        return pairs
    low, high = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    codes = np.unique(low.astype(np.int64) * count + high)
    return np.stack([codes // count, codes % count], axis=1)
