"""Statistics of two models measured on the same test images: pure maths, no I/O.

``Paired`` counts the 2x2 table of right and wrong answers; ``newcombe_interval`` gives the 95%
confidence interval of the accuracy difference (Newcombe's hybrid score interval for paired
proportions, his method 10, from Wilson score intervals of each accuracy and the phi correlation
of the pair); ``mcnemar_p`` is the exact McNemar test; ``holm`` adjusts p-values for testing many
classes at once; ``p95_ratio_interval`` is a bootstrap over measurement rounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95%
Z_POWER = 1.6448536269514722  # one-sided 95%: the chance that equal models pass
ASSUMED_DISAGREEMENT = 0.05
"""Share of test images two equally good models answer differently, assumed before training."""

ROUNDS = 20
"""Measurement rounds of a latency comparison; the bootstrap resamples whole rounds."""
BOOTSTRAP = 2000
_SEED = 20261129  # the gate is a function of its inputs: the same figures give the same interval


@dataclass(frozen=True)
class Paired:
    """The paired 2x2 table: both right, only the candidate right (b), only the baseline right (c)."""

    n: int
    both: int
    b: int
    c: int

    @classmethod
    def count(cls, truth: Sequence[int], cand: Sequence[int], base: Sequence[int]) -> Paired:
        """Give the table of two models' predictions against the truth."""
        both = b = c = 0
        for t, cp, bp in zip(truth, cand, base, strict=True):
            both += cp == t and bp == t
            b += cp == t and bp != t
            c += cp != t and bp == t
        return cls(len(truth), both, b, c)

    @property
    def delta(self) -> float:
        """Give candidate minus baseline accuracy."""
        return (self.b - self.c) / self.n if self.n else 0.0

    @property
    def disagreement(self) -> float:
        """Give the share of images exactly one model got right."""
        return (self.b + self.c) / self.n if self.n else 0.0


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Give the Wilson score 95% interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(table: Paired) -> tuple[float, float]:
    """Give the 95% interval of candidate minus baseline accuracy (Newcombe's paired hybrid score).

    Newcombe, Statistics in Medicine 17 (1998) 2635-2650, method 10 (Wilson score intervals
    without continuity correction), with phi as in Altman et al., Statistics with Confidence
    (2000), chapter 6: ``AD - BC`` less ``n/2`` when above it, itself when negative, else 0.
    """
    n, e, f, g = table.n, table.both, table.b, table.c
    if n == 0:
        return -1.0, 1.0
    h = n - e - f - g
    p1, p2 = (e + f) / n, (e + g) / n
    l1, u1 = wilson(e + f, n)
    l2, u2 = wilson(e + g, n)
    denominator = (e + f) * (g + h) * (e + g) * (f + h)
    cross = e * h - f * g
    corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corrected / math.sqrt(denominator) if denominator > 0 else 0.0
    delta = p1 - p2
    low = delta - math.sqrt(
        max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    )
    high = delta + math.sqrt(
        max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    )
    return max(-1.0, low), min(1.0, high)


def mcnemar_p(b: int, c: int) -> float:
    """Give the two-sided exact McNemar p-value (1 when no image tells the models apart)."""
    if b + c == 0:
        return 1.0
    # scipy.stats takes seconds to import; only the gate needs it, not every reader of gate.json.
    from scipy.stats import binomtest

    return float(binomtest(b, b + c, 0.5).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Give Holm's step-down adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def demonstrable_tolerance(n: int, disagreement: float = ASSUMED_DISAGREEMENT) -> float:
    """Give the smallest accuracy tolerance ``n`` paired test images can show for equal models.

    Two equally good models that disagree on a share ``q`` of the images pass the accuracy rule at
    least 95% of the time when the tolerance is at least ``(1.96 + 1.645) * sqrt(q / n)``.
    """
    if n <= 0:
        return 1.0
    return min(1.0, (Z95 + Z_POWER) * math.sqrt(max(disagreement, 1.0 / n) / n))


def images_needed(tolerance: float, disagreement: float = ASSUMED_DISAGREEMENT) -> int:
    """Give the test images needed to show ``tolerance`` (inverse of ``demonstrable_tolerance``)."""
    if tolerance <= 0:
        return 0  # no test set can show a zero tolerance
    return math.ceil((Z95 + Z_POWER) ** 2 * disagreement / tolerance**2)


def round_bounds(n: int, rounds: int = ROUNDS) -> list[tuple[int, int]]:
    """Give ``[start, stop)`` of each measurement round over ``n`` images (consecutive blocks)."""
    if n <= 0:
        return []
    count = min(rounds, n)
    edges = [round(i * n / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count)]


def _p95(values: np.ndarray) -> float:
    return float(np.percentile(values, 95))


def p95_ratio_interval(
    candidate: Sequence[float], baseline: Sequence[float]
) -> tuple[float, float, float]:
    """Give the candidate/baseline p95 latency ratio and its 95% bootstrap interval over rounds.

    Samples are in image order and both models answered image ``i`` in the same round, so a
    resample picks whole rounds (with replacement) and keeps each round's two models together.
    """
    cand = np.asarray(candidate, dtype=float)
    base = np.asarray(baseline, dtype=float)
    point = _p95(cand) / _p95(base)
    bounds = round_bounds(len(cand))
    rng = np.random.default_rng(_SEED)
    picks = rng.integers(0, len(bounds), size=(BOOTSTRAP, len(bounds)))
    ratios = np.empty(BOOTSTRAP)
    blocks_c = [cand[a:b] for a, b in bounds]
    blocks_b = [base[a:b] for a, b in bounds]
    for row, chosen in enumerate(picks):
        c = np.concatenate([blocks_c[i] for i in chosen])
        b = np.concatenate([blocks_b[i] for i in chosen])
        ratios[row] = np.percentile(c, 95) / np.percentile(b, 95)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(low), float(high)


def p95_interval(samples: Sequence[float]) -> tuple[float, float, float]:
    """Give the p95 of ``samples`` and its 95% bootstrap interval over rounds."""
    values = np.asarray(samples, dtype=float)
    bounds = round_bounds(len(values))
    rng = np.random.default_rng(_SEED)
    picks = rng.integers(0, len(bounds), size=(BOOTSTRAP, len(bounds)))
    blocks = [values[a:b] for a, b in bounds]
    stats = np.array([np.percentile(np.concatenate([blocks[i] for i in row]), 95) for row in picks])
    low, high = np.percentile(stats, [2.5, 97.5])
    return _p95(values), float(low), float(high)
