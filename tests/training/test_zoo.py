"""The model zoo: the outline every model shares, backbones, freezing, weights files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from skillmaker.config import SkillConfig
from skillmaker.config.model import AugmentConfig
from skillmaker.errors import UserError
from skillmaker.training.settings import resolve_settings
from skillmaker.training.zoo import (
    IMAGENET_MEAN,
    BuiltModel,
    backbone_input_affine,
    build_model,
    set_phase,
)
from tests.training.conftest import digits_config

NORMALISATION_1 = ([60.0], [90.0])
NORMALISATION_3 = ([120.0, 110.0, 100.0], [60.0, 55.0, 50.0])
EVERY_AUGMENTATION: dict[str, Any] = {
    "horizontal_flip": True,
    "rotation": 20.0,
    "zoom": 0.2,
    "brightness": 0.2,
    "contrast": 0.2,
    "hue": 0.05,
    "saturation": 0.2,
    "cutout": 0.3,
}


def _config(
    network: str = "small_cnn", side: int = 16, channels: int = 1, **model: object
) -> SkillConfig:
    return digits_config(
        image={"height": side, "width": side, "channels": channels},
        model={"network": network, **model},
    )


def _build(
    config: SkillConfig, normalisation: tuple[list[float], list[float]] = NORMALISATION_1
) -> BuiltModel:
    return build_model(config, resolve_settings(config, None, gpus=0), normalisation, 10)


def test_small_cnn_follows_the_outline_serving_and_grad_cam_rely_on() -> None:
    built = _build(_config())
    names = [layer.name for layer in built.model.layers]
    assert names[:5] == ["image", "rescale", "augment_rotation", "augment_zoom", "normalise"]
    assert names[-1] == "logits" and built.backbone == ()
    assert built.model.input.dtype == "float32"
    logits = built.model.get_layer("logits")
    assert logits.activation.__name__ == "linear" and logits.units == 10
    features = built.model.get_layer("features").output
    assert len(features.shape) == 4
    grad_cam = keras.Model(built.model.inputs, [features, built.model.output])
    maps, out = grad_cam([np.zeros((2, 16, 16, 1), dtype="float32")])
    assert maps.shape[0] == 2 and out.shape == (2, 10)


def test_uint8_batches_are_cast_and_normalised_inside_the_model() -> None:
    built = _build(_config(), ([100.0], [50.0]))
    normalised = keras.Model(built.model.inputs, built.model.get_layer("normalise").output)
    pixels = np.array([0, 100, 150, 255], dtype=np.uint8)[:, None, None, None]
    images = np.broadcast_to(pixels, (4, 16, 16, 1))
    out = np.asarray(normalised.predict(images, verbose=0))
    np.testing.assert_allclose(out[:, 5, 5, 0], [-2.0, 0.0, 1.0, 3.1], atol=1e-5)


@pytest.mark.parametrize("network", ["mobilenet_v3_small", "efficientnet_b0", "resnet50"])
def test_backbones_are_built_flat_with_the_same_outline(network: str) -> None:
    built = _build(_config(network, side=32, channels=3), NORMALISATION_3)
    model = built.model
    assert built.backbone and all(layer in model.layers for layer in built.backbone)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # nothing nested
    assert model.get_layer("logits").activation.__name__ == "linear"
    grad_cam = keras.Model(model.inputs, [model.get_layer("features").output, model.output])
    maps, out = grad_cam([np.zeros((1, 32, 32, 3), dtype="float32")])
    assert len(maps.shape) == 4 and out.shape == (1, 10)


def test_augmentation_changes_nothing_at_inference() -> None:
    config = _config("mobilenet_v3_small", side=32, channels=3)
    plain = config.model_copy(update={"augment": AugmentConfig()})
    augmented = config.model_copy(update={"augment": AugmentConfig(**EVERY_AUGMENTATION)})
    keras.utils.set_random_seed(4)
    with_augment = _build(augmented, NORMALISATION_3).model
    without = _build(plain, NORMALISATION_3).model
    assert len(with_augment.layers) == len(without.layers) + len(EVERY_AUGMENTATION)
    without.set_weights(with_augment.get_weights())
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    np.testing.assert_array_equal(
        with_augment.predict(images, verbose=0), without.predict(images, verbose=0)
    )


def test_phases_freeze_the_backbone_then_unfreeze_its_top_but_never_batchnorm() -> None:
    built = _build(_config("mobilenet_v3_small", side=32, channels=3), NORMALISATION_3)
    set_phase(built, "train")
    assert not any(layer.trainable for layer in built.backbone)
    assert built.model.get_layer("logits").trainable
    unfrozen = set_phase(built, "fine_tune", top_layers=12)
    trainable = [layer.name for layer in built.backbone if layer.trainable]
    expected = [
        layer.name
        for layer in built.backbone[-12:]
        if not isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert trainable == expected and unfrozen == 4
    assert all(
        not layer.trainable
        for layer in built.backbone
        if isinstance(layer, keras.layers.BatchNormalization)
    )


def test_backbone_input_speaks_each_backbones_pixel_convention() -> None:
    mean_pixel = np.zeros(3, dtype=np.float32)  # a normalised pixel of the data's mean colour
    for convention, expected in (
        ("minus_one_to_one", [2 * m - 1 for m in IMAGENET_MEAN]),
        ("pixels", [255 * m for m in IMAGENET_MEAN]),
        ("caffe", [0.0, 0.0, 0.0]),  # the ImageNet mean after caffe's own mean subtraction
    ):
        kernel, bias = backbone_input_affine(convention, 3)
        np.testing.assert_allclose(mean_pixel @ kernel[0, 0] + bias, expected, atol=0.5)
    # caffe is BGR: one standard deviation more red moves the last channel only.
    kernel, bias = backbone_input_affine("caffe", 3)
    moved = np.array([1.0, 0.0, 0.0], dtype=np.float32) @ kernel[0, 0]
    assert moved[0] == moved[1] == 0.0 and moved[2] == pytest.approx(255 * 0.229)
    grey, _ = backbone_input_affine("pixels", 1)
    assert grey.shape == (1, 1, 1, 3) and (grey > 0).all()


def test_backbones_refuse_images_smaller_than_they_take() -> None:
    with pytest.raises(
        UserError, match=r"image: resnet50 needs images of at least 32x32 pixels \(got 16x16\)"
    ):
        _build(_config("resnet50", side=16))


def test_normalisation_must_fit_the_channels_and_vary() -> None:
    with pytest.raises(UserError, match="expected a mean and a std for each of 1 channels"):
        _build(_config(), NORMALISATION_3)
    with pytest.raises(UserError, match=r"channel 0 has standard deviation 0\.0"):
        _build(_config(), ([10.0], [0.0]))


def test_a_weights_file_of_another_network_is_refused(tmp_path: Path) -> None:
    small = _build(_config("small_cnn", side=32, channels=3), NORMALISATION_3).model
    small.save(tmp_path / "small.keras")
    config = _config(
        "mobilenet_v3_small", side=32, channels=3, weights=(tmp_path / "small.keras").as_uri()
    )
    with pytest.raises(UserError, match=r"small.keras: holds no matching backbone"):
        _build(config, NORMALISATION_3)
    missing = _config(
        "mobilenet_v3_small", side=32, channels=3, weights=(tmp_path / "none.weights.h5").as_uri()
    )
    with pytest.raises(UserError, match=r"none.weights.h5: no such file"):
        _build(missing, NORMALISATION_3)
