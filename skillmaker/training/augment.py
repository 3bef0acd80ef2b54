"""Augmentation layers from the config: inside the model, active only while training.

They run after the pixels are scaled to 0..1 and before normalisation, so every range below is
(0, 1). Keras's own layers cover flips, rotation, zoom, brightness, contrast, hue and saturation;
cutout is written here with ``keras.ops`` so it runs under any backend. Every layer is an identity
at inference (``training`` false), which is what serving and evaluation call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

from skillmaker.config.model import AugmentConfig

# Layer names start with this, so reports and tests can find the augmentation part of a model.
PREFIX = "augment_"


@keras.saving.register_keras_serializable(package="skillmaker")
class Cutout(keras.layers.Layer):  # type: ignore[misc]
    """Occlude one random rectangle per image: ``size`` of the height by ``size`` of the width.

    The rectangle's centre is uniform over the image, so it is cut by the border near the edges
    (DeVries and Taylor's cutout). It is filled with ``fill``, the training split's mean colour,
    which normalisation turns into zeros: the occluder carries no signal of its own.
    """

    def __init__(
        self, size: float, fill: Sequence[float], seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 < size <= 1.0:
            raise ValueError(f"cutout size must be in (0, 1] (got {size})")
        self.size = float(size)
        self.fill = [float(v) for v in fill]
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: Any, training: bool | None = None) -> Any:
        """Give the images with one rectangle each filled, or unchanged outside training."""
        if not training:
            return images
        shape = ops.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        dtype = images.dtype
        centre_y = keras.random.uniform((batch, 1, 1), seed=self.seed_generator, dtype=dtype)
        centre_x = keras.random.uniform((batch, 1, 1), seed=self.seed_generator, dtype=dtype)
        # Pixel centres as fractions of the side, compared with the rectangle's half sides.
        rows = (ops.cast(ops.arange(height), dtype) + 0.5) / ops.cast(height, dtype)
        cols = (ops.cast(ops.arange(width), dtype) + 0.5) / ops.cast(width, dtype)
        inside_rows = ops.abs(ops.reshape(rows, (1, -1, 1)) - centre_y) < self.size / 2
        inside_cols = ops.abs(ops.reshape(cols, (1, 1, -1)) - centre_x) < self.size / 2
        mask = ops.expand_dims(ops.logical_and(inside_rows, inside_cols), -1)
        fill = ops.reshape(ops.convert_to_tensor(self.fill, dtype=dtype), (1, 1, 1, -1))
        return ops.where(mask, fill, images)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Give the input shape: cutout never resizes."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Give the arguments that rebuild this layer when a saved model is loaded."""
        config: dict[str, Any] = super().get_config()
        config.update({"size": self.size, "fill": self.fill, "seed": self.seed})
        return config


def augmentation_layers(
    augment: AugmentConfig, *, channels: int, fill: Sequence[float]
) -> tuple[list[keras.layers.Layer], list[str]]:
    """Give the configured augmentation layers, in order, and warnings about settings left out.

    Geometry first (flips, rotation, zoom), then colour, then cutout, so the occluder stays a
    clean rectangle. Hue and saturation need colour: on greyscale images they are left out with
    a warning. ``fill`` is the cutout colour in the 0..1 range, one value per channel.
    """
    found: list[keras.layers.Layer] = []
    warnings: list[str] = []

    def add(layer_type: Any, name: str, **kwargs: Any) -> None:
        found.append(layer_type(name=PREFIX + name, dtype="float32", **kwargs))

    if augment.horizontal_flip and augment.vertical_flip:
        add(layers.RandomFlip, "flip", mode="horizontal_and_vertical")
    elif augment.horizontal_flip:
        add(layers.RandomFlip, "flip", mode="horizontal")
    elif augment.vertical_flip:
        add(layers.RandomFlip, "flip", mode="vertical")
    if augment.rotation is not None:
        add(layers.RandomRotation, "rotation", factor=augment.rotation / 360.0)
    if augment.zoom is not None:
        add(layers.RandomZoom, "zoom", height_factor=(-augment.zoom, augment.zoom))
    if augment.brightness is not None:
        add(layers.RandomBrightness, "brightness", factor=augment.brightness, value_range=(0, 1))
    if augment.contrast is not None:
        add(layers.RandomContrast, "contrast", factor=augment.contrast, value_range=(0, 1))
    for name, value in (("hue", augment.hue), ("saturation", augment.saturation)):
        if value is not None and channels != 3:
            warnings.append(f"augment.{name}: left out, the images are greyscale")
    if augment.hue is not None and channels == 3:
        # RandomHue shifts by up to factor/2 of the colour wheel.
        add(layers.RandomHue, "hue", factor=min(1.0, 2.0 * augment.hue), value_range=(0, 1))
    if augment.saturation is not None and channels == 3:
        # RandomSaturation multiplies saturation by f / (1 - f); this range gives 1 -/+ s.
        s = augment.saturation
        add(
            layers.RandomSaturation,
            "saturation",
            factor=((1.0 - s) / (2.0 - s), (1.0 + s) / (2.0 + s)),
            value_range=(0, 1),
        )
    if augment.cutout is not None:
        add(Cutout, "cutout", size=augment.cutout, fill=list(fill))
    return found, warnings
