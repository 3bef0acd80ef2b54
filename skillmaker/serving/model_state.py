"""The served model's life: loaded and warmed up on a background thread, or failed to load."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skillmaker.serving.bundle import BundleInfo, input_size, load_model
from skillmaker.serving.limits import ServingLimits
from skillmaker.serving.predictor import BatchingPredictor, PredictFn

LOADING, READY, FAILED = "loading", "ready", "failed"


@dataclass
class ModelState:
    """Where the model is in its life: loading, ready (with its predictor) or failed."""

    status: str = LOADING
    error: str | None = None
    predictor: BatchingPredictor | None = None
    size: tuple[int, int, int] | None = None
    max_pixels: int | None = None
    load_seconds: float | None = None
    warmup_ms: float | None = None

    @property
    def ready(self) -> bool:
        """Say whether the model can answer predictions now."""
        return self.status == READY and self.predictor is not None and self.size is not None


def load_into(
    state: ModelState,
    info: BundleInfo,
    limits: ServingLimits,
    on_loaded: Callable[[], None] | None,
    predict_fn: Callable[[object], PredictFn],
) -> None:
    """Load the model, warm it up at each batch shape it will see, then mark the state ready."""
    try:
        started = time.perf_counter()
        model = load_model(info)
        size = input_size(model)
        state.load_seconds = time.perf_counter() - started
        if on_loaded is not None:
            on_loaded()
        predictor = BatchingPredictor(predict_fn(model), limits.max_batch)
        started = time.perf_counter()
        # The first calls trace the model; after a few batch sizes Keras keeps one trace for any
        # size. Pay for that here rather than in the first users' requests.
        for count in sorted({1, 2, min(8, limits.max_batch), limits.max_batch}):
            for _ in range(2):
                predictor.submit(np.zeros((count, *size), dtype=np.float32)).result()
        state.warmup_ms = (time.perf_counter() - started) * 1000.0
        state.size, state.predictor = size, predictor
        state.max_pixels = limits.pixels_for(size)
        state.status = READY
    except Exception as exc:  # reported by /health; the server keeps answering
        state.error = str(exc)
        state.status = FAILED
        print(f"skillmaker serve: model failed to load: {exc}", file=sys.stderr, flush=True)
