"""The harness's numbers, as pure functions of truth and predictions (no I/O, no models).

A prediction of -1 means the server gave no usable answer for that image: it counts as wrong, is
left out of the confusion matrix and counts against the true class's recall (as scikit-learn does
with a label outside ``labels``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skillmaker.domain.records import ClassMetrics, Latency

NO_ANSWER = -1


def _check_lengths(truth: Sequence[int], predictions: Sequence[int]) -> None:
    if len(truth) != len(predictions):
        raise ValueError(f"{len(truth)} true labels but {len(predictions)} predictions")
    if not truth:
        raise ValueError("no test images")


def accuracy(truth: Sequence[int], predictions: Sequence[int]) -> float:
    """Give the share of images whose prediction is the true label."""
    _check_lengths(truth, predictions)
    return sum(t == p for t, p in zip(truth, predictions, strict=True)) / len(truth)


def confusion_matrix(
    truth: Sequence[int], predictions: Sequence[int], classes: int
) -> list[list[int]]:
    """Give counts[true][predicted] over the images with an answer."""
    _check_lengths(truth, predictions)
    matrix = [[0] * classes for _ in range(classes)]
    for true, predicted in zip(truth, predictions, strict=True):
        if 0 <= predicted < classes:
            matrix[true][predicted] += 1
    return matrix


def _ratio(part: int, whole: int) -> float:
    # A class never predicted (or never present) has precision (recall) 0, as scikit-learn's
    # zero_division=0 gives.
    return part / whole if whole else 0.0


def per_class(
    truth: Sequence[int], predictions: Sequence[int], labels: Sequence[str]
) -> list[ClassMetrics]:
    """Give precision, recall, F1 and support of every class, in label order."""
    _check_lengths(truth, predictions)
    results: list[ClassMetrics] = []
    for index, label in enumerate(labels):
        hits = sum(t == index and p == index for t, p in zip(truth, predictions, strict=True))
        predicted = sum(p == index for p in predictions)
        support = sum(t == index for t in truth)
        precision, recall = _ratio(hits, predicted), _ratio(hits, support)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results.append(
            ClassMetrics(label=label, precision=precision, recall=recall, f1=f1, support=support)
        )
    return results


def top_k_accuracy(truth: Sequence[int], ranked: Sequence[Sequence[int]], k: int) -> float:
    """Give the share of images whose true label is among their first ``k`` ranked classes."""
    if k < 1:
        raise ValueError("k must be at least 1")
    _check_lengths(truth, ranked)  # type: ignore[arg-type]
    return sum(t in list(r)[:k] for t, r in zip(truth, ranked, strict=True)) / len(truth)


def latency(samples_ms: Sequence[float], concurrency: int) -> Latency:
    """Give p50, p95, p99 (linear interpolation) and mean of latency samples in milliseconds."""
    if not samples_ms:
        raise ValueError("no latency samples")
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
    return Latency(
        p50=p50,
        p95=p95,
        p99=p99,
        mean=float(values.mean()),
        concurrency=concurrency,
        samples_ms=[float(v) for v in values],
    )
