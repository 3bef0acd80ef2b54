"""Model selection that honours class balance: validation batches weighted like the training loss.

With class weights on, the training loss counts a rare class as much as a common one; a checkpoint
picked (and early stopping decided) on an unweighted ``val_loss`` would still favour the common
classes. The validation batches therefore carry the same per-class weights as sample weights, so
``val_loss`` and ``val_accuracy`` (a weighted metric) are class-weighted too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

CLASS_WEIGHTED = "class-weighted"
UNWEIGHTED = "unweighted"


class WeightedBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """(images, labels, sample weights) batches of another dataset of (images, labels)."""

    def __init__(self, batches: keras.utils.PyDataset, weights: Mapping[int, float]) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.batches = batches
        top = max(weights) + 1
        self.table = np.ones(top, dtype=np.float32)
        for index, weight in weights.items():
            self.table[index] = weight

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[Any, Any, np.ndarray]:
        images, labels = self.batches[index]
        return images, labels, self.table[np.asarray(labels, dtype=np.int64)]

    def on_epoch_begin(self) -> None:
        """Pass the epoch hook on."""
        self.batches.on_epoch_begin()

    def on_epoch_end(self) -> None:
        """Pass the epoch hook on."""
        self.batches.on_epoch_end()


def validation_data(
    batches: keras.utils.PyDataset, weights: Mapping[int, float] | None
) -> keras.utils.PyDataset:
    """Give the validation batches, weighted by class when the training loss is."""
    return batches if weights is None else WeightedBatches(batches, weights)


def metrics(weighted: bool) -> dict[str, Any]:
    """Give ``compile``'s metric arguments: accuracy, weighted by the sample weights if asked."""
    accuracy = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return {"weighted_metrics": accuracy} if weighted else {"metrics": accuracy}
