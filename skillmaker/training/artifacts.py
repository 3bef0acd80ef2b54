"""What training leaves in the run folder, and how to load the model back.

``model.keras`` (best validation checkpoint), ``labels.json`` (class names in logit order),
``normalisation.json`` (the training split's per-channel mean and std, pixel values 0..255),
``history.json`` and ``train.json`` (``skillmaker.records``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from skillmaker.fileio import atomic_path
from skillmaker.records import (
    HISTORY,
    LABELS,
    MODEL,
    NORMALISATION,
    TRAIN,
    HistoryRecord,
    TrainRecord,
    write_record,
)
from skillmaker.training import augment
from skillmaker.training.state import TrainState


def save_model(model: keras.Model, path: Path) -> None:
    """Write a ``.keras`` file atomically (a reader never sees half a model)."""
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp, overwrite=True)


def load_model(path: Path) -> keras.Model:
    """Give a trained model loaded for inference (``compile=False``: it loads under any backend).

    skillmaker's own layers (cutout) are registered by importing ``augment``, which a model
    trained with them needs to load.
    """
    return keras.models.load_model(path, compile=False, custom_objects={"Cutout": augment.Cutout})


def write_labels(run_dir: Path, labels: Sequence[str]) -> Path:
    """Give the path of ``labels.json`` after writing the class names in logit order."""
    path = run_dir / LABELS
    write_record(path, list(labels))
    return path


def write_normalisation(run_dir: Path, mean: Sequence[float], std: Sequence[float]) -> Path:
    """Give the path of ``normalisation.json`` (``{"mean": [...], "std": [...]}``) once written."""
    path = run_dir / NORMALISATION
    write_record(path, {"mean": [float(m) for m in mean], "std": [float(s) for s in std]})
    return path


def history_record(state: TrainState) -> HistoryRecord:
    """Give ``history.json``: every epoch of every phase and the one whose weights were kept."""
    return HistoryRecord(
        epochs=list(state.history),
        best_epoch=state.best_epoch,
        stopped_early=state.stopped_early,
    )


def write_history(run_dir: Path, record: HistoryRecord) -> Path:
    """Give the path of ``history.json`` after writing it."""
    path = run_dir / HISTORY
    write_record(path, record)
    return path


def write_train(run_dir: Path, record: TrainRecord) -> Path:
    """Give the path of ``train.json`` after writing it."""
    path = run_dir / TRAIN
    write_record(path, record)
    return path


def model_path(run_dir: Path) -> Path:
    """Give where the best model of a run is kept."""
    return run_dir / MODEL
