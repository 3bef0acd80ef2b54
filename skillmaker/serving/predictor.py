"""Turn decoded images into class probabilities: one model call per batch, softmax applied once."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Give the probabilities of each row of logits (numerically stable; rows sum to 1)."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities


def top_k(probabilities: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Give, per row, the k most probable class indices with their probabilities, best first."""
    k = max(1, min(k, probabilities.shape[-1]))
    # A stable sort on the negated row keeps the lower index first among equal probabilities.
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return [
        [(int(index), float(row[index])) for index in indices]
        for row, indices in zip(probabilities, order, strict=True)
    ]


def model_predict_fn(model: object) -> PredictFn:
    """Give a function from a float32 batch of raw pixels to probabilities, for a Keras model."""
    predict_on_batch = model.predict_on_batch  # type: ignore[attr-defined]

    def predict(batch: np.ndarray) -> np.ndarray:
        # predict_on_batch runs the compiled predict step without model.predict's per-call setup.
        return softmax(np.asarray(predict_on_batch(batch)))

    return predict


@dataclass
class _Job:
    images: np.ndarray
    future: Future[np.ndarray]


class BatchingPredictor:
    """Runs every prediction on one thread, merging requests that wait into one model call.

    Nothing waits for a batch to fill: a lone request runs at once, and requests that arrive
    while the model is busy are merged into the next call (up to ``max_batch`` images), so
    throughput grows with load without adding latency to a single request.
    """

    def __init__(self, predict: PredictFn, max_batch: int) -> None:
        self._predict = predict
        self._max_batch = max(1, max_batch)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="skillmaker-predict", daemon=True)
        self._thread.start()

    def submit(self, images: np.ndarray) -> Future[np.ndarray]:
        """Give a future of the probabilities of a (n, height, width, channels) float32 batch."""
        future: Future[np.ndarray] = Future()
        self._queue.put(_Job(images, future))
        return future

    def close(self) -> None:
        """Stop the prediction thread once the jobs already queued are done."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _take(self) -> tuple[list[_Job], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        jobs, count = [first], len(first.images)
        while count < self._max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            jobs.append(job)
            count += len(job.images)
        return jobs, False

    def _run(self) -> None:
        while True:
            jobs, stop = self._take()
            if stop:
                return
            try:
                batch = (
                    jobs[0].images if len(jobs) == 1 else np.concatenate([j.images for j in jobs])
                )
                probabilities = self._predict(batch)
            except Exception as exc:  # the error belongs to the requests, not to this thread
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                end = start + len(job.images)
                job.future.set_result(probabilities[start:end])
                start = end
