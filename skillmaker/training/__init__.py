"""Training: config-driven Keras models, transfer learning, checkpoints, resume, reproducibility."""

from skillmaker.training.artifacts import load_model
from skillmaker.training.settings import TrainSettings, class_weights, resolve_settings
from skillmaker.training.train import ResumableBatches, TrainResult, train_model
from skillmaker.training.zoo import BuiltModel, build_model

__all__ = [
    "BuiltModel",
    "ResumableBatches",
    "TrainResult",
    "TrainSettings",
    "build_model",
    "class_weights",
    "load_model",
    "resolve_settings",
    "train_model",
]
