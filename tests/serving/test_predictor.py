"""Prediction: softmax once, top-k order, and requests merged into one model call."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from skillmaker.serving.predictor import BatchingPredictor, softmax, top_k


def test_softmax_rows_sum_to_one_even_for_huge_logits() -> None:
    probabilities = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), 0.0]]))
    np.testing.assert_allclose(probabilities, [[0.5, 0.5, 0.0], [0.2, 0.6, 0.2]], atol=1e-12)


def test_top_k_gives_the_best_classes_first_and_caps_k() -> None:
    rows = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert top_k(rows, 2) == [[(1, 0.6), (2, 0.3)], [(0, 0.5), (2, 0.3)]]
    assert [len(r) for r in top_k(rows, 10)] == [3, 3]


def test_requests_that_wait_are_merged_into_one_call_and_each_gets_its_own_rows() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        started.set()
        release.wait(timeout=30)
        return (
            batch.reshape(len(batch), -1)[:, :1] * 2.0
        )  # one "probability" per image: 2x its value

    predictor = BatchingPredictor(predict, max_batch=8)
    try:
        first = predictor.submit(np.full((1, 1, 1, 1), 100.0, dtype=np.float32))
        assert started.wait(timeout=30)  # the model is busy with the first request
        waiting = [predictor.submit(np.full((2, 1, 1, 1), i, dtype=np.float32)) for i in range(5)]
        release.set()
        assert first.result(timeout=30).tolist() == [[200.0]]
        for i, future in enumerate(waiting):
            assert future.result(timeout=30).tolist() == [[2.0 * i], [2.0 * i]]
    finally:
        predictor.close()
    # 10 waiting images with a batch limit of 8: four requests in one call, the last one alone.
    assert calls == [1, 8, 2]


def test_a_failing_model_call_fails_its_requests_not_the_predictor() -> None:
    def predict(batch: np.ndarray) -> np.ndarray:
        if (batch < 0).any():
            raise ValueError("negative pixels")
        return batch.reshape(len(batch), -1)

    predictor = BatchingPredictor(predict, max_batch=4)
    try:
        with pytest.raises(ValueError, match="negative pixels"):
            predictor.submit(np.full((1, 1), -1.0)).result(timeout=30)
        assert predictor.submit(np.full((1, 1), 3.0)).result(timeout=30).tolist() == [[3.0]]
    finally:
        predictor.close()
