"""Real data for training tests: the digits as uint8 images, batched as the pipeline does."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from skillmaker.config import SkillConfig, load_config

REPO = Path(__file__).resolve().parents[2]


class ArrayBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """(uint8 NHWC images, int32 labels) batches from arrays, reshuffled per epoch from a seed.

    Like the real pipeline, the epoch of a request is counted per batch index (Keras prefetches the
    next epoch before its epoch hooks run) and ``start_at`` says where a resumed ``fit`` starts.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, *, batch_size: int, seed: int, shuffle: bool
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.images = images
        self.labels = labels.astype(np.int32)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self._lock = threading.Lock()
        self._start = 0
        self._training = False
        self._served = np.zeros(len(self), dtype=np.int64)

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def start_at(self, epoch: int) -> None:
        with self._lock:
            self._start, self._training = epoch, False
            self._served[:] = 0

    def on_epoch_begin(self) -> None:
        self._training = True

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            epoch = self._start
            # Keras reads a batch or two to learn the shapes before training: not an epoch's.
            if self._training:
                epoch += int(self._served[index])
                self._served[index] += 1
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
            if self.shuffle
            else np.arange(len(self.images))
        )
        picks = order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.images[picks], self.labels[picks]


@dataclass(frozen=True)
class Digits:
    """The digits split into train, val and test arrays (uint8 images, int labels)."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]

    @property
    def labels(self) -> list[str]:
        return [str(d) for d in range(10)]

    def normalisation(self) -> tuple[list[float], list[float]]:
        pixels = self.train[0].reshape(-1, self.train[0].shape[-1]).astype(np.float64)
        return pixels.mean(axis=0).tolist(), pixels.std(axis=0).tolist()

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.train[1], minlength=10)
        return {str(d): int(c) for d, c in enumerate(counts)}

    def batches(self, split: str, batch_size: int, seed: int = 7) -> ArrayBatches:
        images, labels = getattr(self, split)
        return ArrayBatches(
            images, labels, batch_size=batch_size, seed=seed, shuffle=split == "train"
        )


def load_digits_arrays(side: int = 16, channels: int = 1, limit: int | None = None) -> Digits:
    """Give the digits upsampled to ``side`` pixels, split 70/15/15 by a fixed permutation."""
    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    factor = side // 8
    images = np.kron(images, np.ones((1, factor, factor), dtype=np.uint8))
    images = np.repeat(images[..., None], channels, axis=-1)
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(images))
    if limit is not None:
        order = order[:limit]
    images, labels = images[order], labels[order]
    a, b = int(0.7 * len(images)), int(0.85 * len(images))
    return Digits(
        train=(images[:a], labels[:a]),
        val=(images[a:b], labels[a:b]),
        test=(images[b:], labels[b:]),
    )


def digits_config(**sections: dict[str, Any]) -> SkillConfig:
    """Give ``examples/digits.json`` with some sections' fields replaced."""
    config = load_config(REPO / "examples" / "digits.json").config
    updates = {
        name: getattr(config, name).model_copy(update=fields) for name, fields in sections.items()
    }
    return config.model_copy(update=updates)


@pytest.fixture(scope="session")
def digits16() -> Digits:
    """Give the digits at 16x16 greyscale (what ``examples/digits.json`` trains on)."""
    return load_digits_arrays(16, 1)


# A small, quickly overfitting digits run whose early stopping triggers after a few epochs: the
# resume test kills it after epoch 2 and needs the patience counter and best epoch to carry over.
RESUME_LIMIT = 500
RESUME_SECTIONS: dict[str, dict[str, Any]] = {
    "train": {"epochs": 12, "early_stopping_patience": 2, "learning_rate": 0.01},
}
