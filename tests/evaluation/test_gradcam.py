"""Grad-CAM maps and overlays of a trained digits model."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from PIL import Image

from skillmaker.evaluation.gradcam import heatmap_fn, jet, overlay, save_failure
from tests.serving import bundles


def test_heat_map_is_the_feature_map_size_scaled_to_one(two_bundles: tuple[Path, Path]) -> None:
    model = keras.saving.load_model(two_bundles[0] / "model.keras", compile=False)
    data = bundles.digits()
    image = data.images[data.test[0]].astype("float32")
    heat = heatmap_fn(model)(image, int(data.target[data.test[0]]))
    assert heat.shape == (8, 8)
    assert heat.min() >= 0.0
    assert heat.max() == 1.0


def test_jet_runs_from_blue_to_red() -> None:
    colours = jet(np.array([0.0, 0.5, 1.0]))
    assert colours[0].tolist() == [0, 0, 128]
    assert colours[1].tolist() == [128, 255, 128]
    assert colours[2].tolist() == [128, 0, 0]


def test_overlay_is_reddest_where_the_model_looked(tmp_path: Path) -> None:
    pixels = np.full((8, 8, 1), 128, dtype=np.uint8)
    heat = np.zeros((8, 8), dtype=np.float32)
    heat[:2, :2] = 1.0  # the model looked at the top-left corner
    save_failure(pixels, heat, tmp_path / "a.png", tmp_path / "a-gradcam.png")
    drawn = np.asarray(Image.open(tmp_path / "a-gradcam.png"), dtype=np.int32)
    assert drawn.shape == (128, 128, 3)
    top_left, bottom_right = drawn[4, 4], drawn[120, 120]
    assert top_left[0] > bottom_right[0]  # more red
    assert top_left[2] < bottom_right[2]  # less blue
    assert overlay(Image.new("RGB", (10, 10)), np.ones((2, 2))).size == (10, 10)
