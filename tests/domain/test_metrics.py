"""The metric functions against scikit-learn and numpy, including images with no answer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from skillmaker.domain import metrics

TRUTH = [0, 0, 1, 1, 1, 2, 2, 2, 2, 3]
PREDICTED = [
    0,
    1,
    1,
    1,
    -1,
    2,
    0,
    2,
    1,
    0,
]  # -1: the server gave no answer; class 3 never predicted
LABELS = ["a", "b", "c", "d"]


def test_accuracy_counts_no_answer_as_wrong() -> None:
    assert metrics.accuracy(TRUTH, PREDICTED) == skm.accuracy_score(TRUTH, PREDICTED) == 0.5


def test_per_class_metrics_match_sklearn_with_zero_division_zero() -> None:
    rows = metrics.per_class(TRUTH, PREDICTED, LABELS)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        TRUTH, PREDICTED, labels=[0, 1, 2, 3], zero_division=0
    )
    assert [r["label"] for r in rows] == LABELS
    np.testing.assert_allclose([r["precision"] for r in rows], precision)
    np.testing.assert_allclose([r["recall"] for r in rows], recall)
    np.testing.assert_allclose([r["f1"] for r in rows], f1)
    assert [r["support"] for r in rows] == support.tolist()
    assert rows[3] == {"label": "d", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_confusion_matrix_matches_sklearn_and_leaves_out_no_answer() -> None:
    expected = skm.confusion_matrix(TRUTH, PREDICTED, labels=[0, 1, 2, 3]).tolist()
    assert metrics.confusion_matrix(TRUTH, PREDICTED, 4) == expected
    assert sum(map(sum, expected)) == len(TRUTH) - 1


def test_top_k_accuracy_matches_sklearn() -> None:
    scores = np.random.default_rng(3).random((len(TRUTH), 4))
    ranked = np.argsort(-scores, axis=1).tolist()
    for k in (1, 2, 3):
        expected = skm.top_k_accuracy_score(TRUTH, scores, k=k, labels=[0, 1, 2, 3])
        assert metrics.top_k_accuracy(TRUTH, ranked, k) == pytest.approx(expected)


def test_latency_percentiles_are_numpy_linear_percentiles() -> None:
    samples = [float(x) for x in np.random.default_rng(1).gamma(2.0, 3.0, 101)]
    result = metrics.latency(samples, concurrency=4)
    assert [result["p50"], result["p95"], result["p99"]] == pytest.approx(
        np.percentile(samples, [50, 95, 99]).tolist()
    )
    assert result["mean"] == pytest.approx(np.mean(samples))
    assert result["concurrency"] == 4
    assert result["samples_ms"] == samples


def test_mismatched_or_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        metrics.accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="no test images"):
        metrics.accuracy([], [])
    with pytest.raises(ValueError, match="no latency samples"):
        metrics.latency([], 1)
