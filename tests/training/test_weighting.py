"""With class weights on, the checkpoint is chosen on a validation loss weighted the same way."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np

from skillmaker.records import read_record
from skillmaker.training.artifacts import load_model
from skillmaker.training.train import train_model
from skillmaker.training.weighting import CLASS_WEIGHTED, UNWEIGHTED
from tests.training.conftest import Digits, digits_config, load_digits_arrays


def _imbalanced() -> Digits:
    """Give the digits with class 0 to 4 cut to a tenth in train and val."""
    digits = load_digits_arrays(16, 1)

    def cut(split: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        images, labels = split
        keep = (labels >= 5) | (np.arange(len(labels)) % 10 == 0)
        return images[keep], labels[keep]

    return Digits(train=cut(digits.train), val=cut(digits.val), test=digits.test)


def _train(digits: Digits, run_dir: Path, weights: str) -> None:
    config = digits_config(train={"epochs": 3, "class_weights": weights, "patience": 3})
    train_model(
        config,
        profile=None,
        train_data=digits.batches("train", 32),
        val_data=digits.batches("val", 64),
        labels=digits.labels,
        normalisation=digits.normalisation(),
        class_counts=digits.class_counts(),
        run_dir=run_dir,
        manifest_hash="m",
        ledger_hash="l",
        out=io.StringIO(),
    )


def _val_losses(digits: Digits, run_dir: Path) -> tuple[float, float]:
    """Give the kept model's validation loss unweighted and weighted by balanced class weights."""
    images, labels = digits.val
    logits = np.asarray(load_model(run_dir / "model.keras").predict(images, verbose=0))
    losses = keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    )
    counts = digits.class_counts()
    total = sum(counts.values())
    weight = np.array([total / (10 * counts[str(d)]) for d in range(10)])[labels]
    return float(losses.mean()), float((losses * weight).mean())


def test_the_monitored_validation_loss_is_weighted_like_the_training_loss(
    tmp_path: Path,
) -> None:
    digits = _imbalanced()
    _train(digits, tmp_path / "weighted", "balanced")
    record = read_record(tmp_path / "weighted" / "train.json")
    assert (record["monitor"], record["monitor_weighting"]) == ("val_loss", CLASS_WEIGHTED)
    history = read_record(tmp_path / "weighted" / "history.json")
    kept = history["epochs"][history["best_epoch"] - 1]["val_loss"]
    plain, weighted = _val_losses(digits, tmp_path / "weighted")
    assert abs(plain - weighted) > 0.01  # the weights matter on this data
    assert abs(kept - weighted) < 2e-3, (kept, weighted, plain)
    assert 0.0 < history["epochs"][-1]["val_accuracy"] <= 1.0  # a weighted metric, still named

    _train(digits, tmp_path / "plain", "none")
    record = read_record(tmp_path / "plain" / "train.json")
    assert record["monitor_weighting"] == UNWEIGHTED
    history = read_record(tmp_path / "plain" / "history.json")
    kept = history["epochs"][history["best_epoch"] - 1]["val_loss"]
    assert abs(kept - _val_losses(digits, tmp_path / "plain")[0]) < 2e-3
