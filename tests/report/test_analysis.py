"""The arithmetic behind the report's tables and figures."""

from __future__ import annotations

from skillmaker.records import ClassMetrics, Failure
from skillmaker.report import analysis

MATRIX = [
    [8, 2, 0, 0],
    [0, 9, 0, 1],
    [0, 5, 5, 0],
    [0, 0, 0, 10],
]


def _metrics(label: str, recall: float) -> ClassMetrics:
    return {"label": label, "precision": 0.5, "recall": recall, "f1": 0.5, "support": 10}


def test_confused_pairs_are_the_largest_mistakes_first() -> None:
    pairs = analysis.confused_pairs(MATRIX, 2)
    assert [(p.true, p.predicted, p.count) for p in pairs] == [(2, 1, 5), (0, 1, 2)]
    assert pairs[0].share == 0.5


def test_most_confused_classes_put_confused_pairs_together_and_keep_the_size() -> None:
    assert analysis.most_confused_classes(MATRIX, 3) == [2, 1, 0]
    # Asking for more classes than have errors pads with the rest.
    assert sorted(analysis.most_confused_classes(MATRIX, 4)) == [0, 1, 2, 3]


def test_rows_are_normalised_by_their_true_class() -> None:
    assert analysis.row_normalised([[1, 3], [0, 0]]) == [[0.25, 0.75], [0.0, 0.0]]


def test_the_csv_has_a_header_and_one_row_per_true_class() -> None:
    rows = analysis.confusion_csv_rows(["a", "b,c"], [[1, 2], [3, 4]])
    assert rows == [["true \\ predicted", "a", "b,c"], ["a", "1", "2"], ["b,c", "3", "4"]]


def test_quarantine_reasons_are_counted_most_frequent_first() -> None:
    items = [
        {"key": str(i), "reason": r} for i, r in enumerate(["empty", "truncated", "truncated"])
    ]
    assert analysis.count_by_reason(items) == [("truncated", 2), ("empty", 1)]  # type: ignore[arg-type]


def test_macro_average() -> None:
    assert analysis.macro_average([_metrics("a", 1.0), _metrics("b", 0.5)]) == (0.5, 0.75, 0.5)


def test_failures_are_ordered_by_confidence_then_key() -> None:
    def failure(key: str, p: float) -> Failure:
        return {
            "key": key,
            "true": "a",
            "predicted": "b",
            "probability": p,
            "image": "",
            "gradcam": "",
        }

    ordered = analysis.failures_by_confidence(
        [failure("z", 0.5), failure("b", 0.9), failure("a", 0.9)], 2
    )
    assert [f["key"] for f in ordered] == ["a", "b"]


def test_durations_read_like_words() -> None:
    assert analysis.duration(4.25) == "4.2 s"
    assert analysis.duration(42) == "42 s"
    assert analysis.duration(185) == "3 min 5 s"
    assert analysis.duration(7620) == "2 h 7 min"
