"""Augmentation layers: active while training, identities at inference, saved with the model."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from skillmaker.config.model import AugmentConfig
from skillmaker.training.artifacts import load_model
from skillmaker.training.augment import Cutout, augmentation_layers

EVERYTHING = AugmentConfig(
    horizontal_flip=True,
    vertical_flip=True,
    rotation=30.0,
    zoom=0.2,
    brightness=0.3,
    contrast=0.3,
    hue=0.1,
    saturation=0.3,
    cutout=0.25,
)


def _images(count: int = 4, side: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, size=(count, side, side, 3)).astype("float32")


def test_every_augmentation_is_an_identity_at_inference_and_changes_images_in_training() -> None:
    keras.utils.set_random_seed(0)
    found, warnings = augmentation_layers(EVERYTHING, channels=3, fill=[0.5, 0.5, 0.5])
    assert [layer.name for layer in found] == [
        "augment_flip",
        "augment_rotation",
        "augment_zoom",
        "augment_brightness",
        "augment_contrast",
        "augment_hue",
        "augment_saturation",
        "augment_cutout",
    ]
    assert warnings == []
    images = _images()
    for layer in found:
        np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
        changed = np.asarray(layer(images, training=True))
        assert changed.shape == images.shape
        # A flip may draw "no flip" for one image, never for all four twice in a row.
        again = np.asarray(layer(images, training=True))
        assert not (np.array_equal(changed, images) and np.array_equal(again, images)), layer.name


def test_hue_and_saturation_are_left_out_of_greyscale_models_with_a_warning() -> None:
    found, warnings = augmentation_layers(EVERYTHING, channels=1, fill=[0.5])
    assert "augment_hue" not in [layer.name for layer in found]
    assert warnings == [
        "augment.hue: left out, the images are greyscale",
        "augment.saturation: left out, the images are greyscale",
    ]


def test_cutout_fills_one_rectangle_per_image_with_the_mean_colour() -> None:
    keras.utils.set_random_seed(1)
    layer = Cutout(0.25, fill=[0.0, 0.0, 0.0])
    images = np.ones((64, 32, 32, 3), dtype="float32")
    out = np.asarray(layer(images, training=True))
    filled = (out == 0.0).all(axis=-1)
    assert ((out == 0.0) | (out == 1.0)).all()
    for mask in filled:
        rows, cols = np.nonzero(mask)
        assert len(rows) <= 8 * 8  # a quarter of each side, cut by the border near the edges
        if len(rows):
            # One solid rectangle: the filled pixels are exactly their bounding box.
            box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert box.all()
    assert filled.reshape(64, -1).sum(axis=1).mean() > 0.5 * 8 * 8


def test_a_model_with_cutout_saves_and_loads(tmp_path: Path) -> None:
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Flatten()(
        Cutout(0.5, fill=[0.1, 0.2, 0.3], name="augment_cutout")(inputs)
    )
    model = keras.Model(inputs, keras.layers.Dense(2)(outputs))
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert loaded.get_layer("augment_cutout").fill == [0.1, 0.2, 0.3]
    images = _images(2, 8)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
