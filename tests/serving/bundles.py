"""Tiny models that follow the bundle contract, trained briefly on scikit-learn's digits."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from skillmaker.serving.bundle import write_bundle

DIGIT_LABELS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Digits:
    """scikit-learn's digits as 8x8 uint8 images (the same pixels as the PNGs), split in two."""

    images: np.ndarray  # (n, 8, 8, 1) uint8
    target: np.ndarray  # (n,) int
    train: np.ndarray  # indices
    test: np.ndarray  # indices


@functools.cache
def digits() -> Digits:
    """Give the digits with every sixth image held out for testing."""
    data = load_digits()
    images = (data.images / 16.0 * 255.0).round().astype(np.uint8)[..., None]
    index = np.arange(len(images))
    return Digits(images, data.target.astype(int), index[index % 6 != 0], index[index % 6 == 0])


def build_model(
    classes: int, size: tuple[int, int, int] = (8, 8, 1), filters: int = 8
) -> keras.Model:
    """Give a small CNN that takes raw pixels 0..255 and ends in ``features`` -> ``logits``."""
    inputs = keras.Input(size)
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(filters * 2, 3, padding="same", activation="relu")(x)
    x = keras.layers.Activation("linear", name="features")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs)


def train(
    model: keras.Model, images: np.ndarray, target: np.ndarray, epochs: int, seed: int = 0
) -> keras.Model:
    """Train a model on logits with a from-logits loss and give it back."""
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(images.astype("float32"), target, epochs=epochs, batch_size=64, verbose=0)
    return model


@functools.cache
def trained_digits_model(epochs: int = 6, seed: int = 1) -> keras.Model:
    """Give a 10-class digits CNN trained on the train part (cached: the tests share it)."""
    data = digits()
    return train(build_model(10), data.images[data.train], data.target[data.train], epochs, seed)


def save_bundle(
    folder: Path, model: keras.Model, labels: list[str], skill: str, version: int, code: str
) -> Path:
    """Write a bundle folder (model.keras, labels.json, stamp.json) and give its path."""
    write_bundle(folder, model, labels, skill=skill, skill_version=version, code_version=code)
    return folder


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """Write an (h, w, 1) or (h, w, 3) uint8 array as a PNG and give its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path, format="PNG")
    return path


def png_bytes(pixels: np.ndarray) -> bytes:
    """Give the PNG bytes of an (h, w, 1) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0]).save(buffer, format="PNG")
    return buffer.getvalue()
