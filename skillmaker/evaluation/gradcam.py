"""Grad-CAM: where a model looked when it chose a class, drawn over the image as a heat map.

Positions are weighted by their own gradients (HiResCAM, Draelos and Carin 2020), which gives
Grad-CAM's map for a pooled head and stays faithful for a flattened one. The bundle contract names
the last 4-D feature map ``features`` and the output ``logits``, so the map and the score come from
one flat model (a nested backbone would not be connected to the inputs). The gradient needs the
backend's autodiff; only TensorFlow, the backend CI installs, is supported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from skillmaker.errors import UserError
from skillmaker.serving.bundle import FEATURES_LAYER

DISPLAY_MIN = 128  # small inputs (digits are 8x8) are scaled up so a reviewer can see them
DISPLAY_MAX = 256

HeatFn = Callable[[np.ndarray, int], np.ndarray]


def heatmap_fn(model: Any) -> HeatFn:
    """Give a function from (one float32 image, class index) to its Grad-CAM map in [0, 1]."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"Grad-CAM needs the TensorFlow backend (KERAS_BACKEND is {keras.backend.backend()})"
        )
    import tensorflow as tf

    try:
        features = model.get_layer(FEATURES_LAYER).output
    except ValueError:
        raise UserError(f"the model has no layer named {FEATURES_LAYER!r} for Grad-CAM") from None
    if len(features.shape) != 4:
        raise UserError(
            f"layer {FEATURES_LAYER!r} must give a 4-D feature map (got {features.shape})"
        )
    both = keras.Model(model.inputs, [features, model.outputs[0]])

    def heat(image: np.ndarray, class_index: int) -> np.ndarray:
        batch = tf.convert_to_tensor(image[None].astype(np.float32))
        with tf.GradientTape() as tape:
            maps, logits = both(batch, training=False)
            score = logits[:, class_index]
        grads = tape.gradient(score, maps)
        # Each position weighted by its own gradient (HiResCAM): the same map as Grad-CAM's
        # channel-mean weights when the head pools, and still faithful when it flattens.
        cam = np.asarray(tf.nn.relu(tf.reduce_sum(maps * grads, axis=-1))[0], dtype=np.float32)
        top = float(cam.max())
        scaled: np.ndarray = cam / top if top > 0 else np.zeros_like(cam)
        return scaled

    return heat


def jet(values: np.ndarray) -> np.ndarray:
    """Give the RGB uint8 colours of values in [0, 1] on a blue-to-red (jet-like) scale."""
    x = np.clip(values, 0.0, 1.0)[..., None]
    rgb = np.clip(1.5 - np.abs(4.0 * x - np.array([3.0, 2.0, 1.0])), 0.0, 1.0)
    colours: np.ndarray = (rgb * 255.0).round().astype(np.uint8)
    return colours


def display_image(pixels: np.ndarray) -> Image.Image:
    """Give an RGB picture of an (h, w, c) uint8 image, scaled so a reviewer can see it."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
    side = max(image.size)
    if side < DISPLAY_MIN:
        factor = -(-DISPLAY_MIN // side)
        image = image.resize(
            (image.width * factor, image.height * factor), Image.Resampling.NEAREST
        )
    elif side > DISPLAY_MAX:
        image.thumbnail((DISPLAY_MAX, DISPLAY_MAX))
    return image


def overlay(picture: Image.Image, heat: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """Give the picture with the heat map blended over it (red where the model looked most)."""
    resized = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(
        picture.size, Image.Resampling.BILINEAR
    )
    colours = Image.fromarray(jet(np.asarray(resized, dtype=np.float32) / 255.0))
    return Image.blend(picture.convert("RGB"), colours, alpha)


def save_failure(
    pixels: np.ndarray, heat: np.ndarray, image_path: Path, gradcam_path: Path
) -> None:
    """Write a misclassified image and its Grad-CAM overlay as PNG files."""
    picture = display_image(pixels)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(image_path, format="PNG")
    overlay(picture, heat).save(gradcam_path, format="PNG")
