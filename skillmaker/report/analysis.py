"""Pure arithmetic behind the report: which classes to show, which pairs are confused, summaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from skillmaker.records import ClassMetrics, Failure, Quarantined

__all__ = [
    "ConfusedPair",
    "confused_pairs",
    "confusion_csv_rows",
    "count_by_reason",
    "duration",
    "failures_by_confidence",
    "macro_average",
    "most_confused_classes",
    "row_normalised",
]


@dataclass(frozen=True)
class ConfusedPair:
    """Test images of class ``true`` predicted as ``predicted``: how many, and their share."""

    true: int
    predicted: int
    count: int
    share: float


def confused_pairs(matrix: Sequence[Sequence[int]], limit: int) -> list[ConfusedPair]:
    """Give the ``limit`` largest off-diagonal cells, largest first (ties by row, then column)."""
    cells = [
        (count, i, j)
        for i, row in enumerate(matrix)
        for j, count in enumerate(row)
        if i != j and count > 0
    ]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    pairs = []
    for count, i, j in cells[:limit]:
        total = sum(matrix[i])
        pairs.append(ConfusedPair(i, j, count, count / total if total else 0.0))
    return pairs


def most_confused_classes(matrix: Sequence[Sequence[int]], limit: int) -> list[int]:
    """Give up to ``limit`` class indices with the most errors (missed plus wrongly predicted).

    Classes come in order of their first appearance in the largest confused pairs, so classes that
    are mistaken for each other sit next to each other in the heat map.
    """
    size = len(matrix)
    errors = [0] * size
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if i != j:
                errors[i] += count
                errors[j] += count
    chosen: list[int] = []
    for pair in confused_pairs(matrix, size * size):
        for index in (pair.true, pair.predicted):
            if index not in chosen and len(chosen) < limit:
                chosen.append(index)
        if len(chosen) >= limit:
            break
    if len(chosen) < limit:
        # Pad with the error-free classes of most support so the figure keeps its size.
        rest = sorted(
            (i for i in range(size) if i not in chosen),
            key=lambda i: (-errors[i], -matrix[i][i], i),
        )
        chosen.extend(rest[: limit - len(chosen)])
    return chosen


def row_normalised(matrix: Sequence[Sequence[int]]) -> list[list[float]]:
    """Give each row divided by its sum (the share of a true class given each prediction)."""
    result = []
    for row in matrix:
        total = sum(row)
        result.append([count / total if total else 0.0 for count in row])
    return result


def confusion_csv_rows(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> list[list[str]]:
    """Give the confusion matrix as CSV rows: a header of predictions, then one row per truth."""
    rows = [["true \\ predicted", *labels]]
    rows.extend(
        [label, *(str(count) for count in row)] for label, row in zip(labels, matrix, strict=True)
    )
    return rows


def count_by_reason(quarantined: Sequence[Quarantined]) -> list[tuple[str, int]]:
    """Give each quarantine reason with its number of files, most frequent first."""
    counts = Counter(item["reason"] for item in quarantined)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def macro_average(per_class: Sequence[ClassMetrics]) -> tuple[float, float, float]:
    """Give the unweighted mean precision, recall and F1 over classes."""
    if not per_class:
        return (0.0, 0.0, 0.0)
    n = len(per_class)
    return (
        sum(float(c["precision"]) for c in per_class) / n,
        sum(float(c["recall"]) for c in per_class) / n,
        sum(float(c["f1"]) for c in per_class) / n,
    )


def failures_by_confidence(failures: Sequence[Failure], limit: int) -> list[Failure]:
    """Give up to ``limit`` failures, the most confident mistakes first (ties by key)."""
    return sorted(failures, key=lambda f: (-float(f["probability"]), f["key"]))[:limit]


def duration(seconds: float) -> str:
    """Give a duration in words: ``42 s``, ``3 min 5 s``, ``2 h 7 min``."""
    total = round(float(seconds))
    if total < 60:
        return f"{float(seconds):.1f} s" if seconds < 10 else f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
