"""Profiles resolved against the hardware, and class weights."""

from __future__ import annotations

import pytest

from skillmaker.config.model import ProfileConfig, ProfileImage
from skillmaker.errors import UserError
from skillmaker.training.settings import class_weights, resolve_settings
from tests.training.conftest import digits_config


def test_without_a_profile_the_config_decides() -> None:
    settings = resolve_settings(digits_config(), None, gpus=0)
    assert (settings.batch_size, settings.image_shape) == (32, (16, 16, 1))
    assert (settings.mixed_precision, settings.strategy, settings.warnings) == (False, "none", ())


def test_a_gpu_profile_on_a_cpu_machine_warns_and_trains_in_float32() -> None:
    settings = resolve_settings(digits_config(), "server", gpus=0)
    assert settings.batch_size == 128
    assert (settings.mixed_precision, settings.strategy) == (False, "none")
    assert settings.warnings == (
        "profile server: mixed precision needs a GPU and none was found; training in float32",
        "profile server: the mirrored strategy spreads over GPUs and none was found; "
        "training without a distribution strategy",
    )


def test_a_gpu_profile_on_a_gpu_machine_keeps_mixed_precision_and_mirroring() -> None:
    settings = resolve_settings(digits_config(), "server", gpus=4)
    assert (settings.mixed_precision, settings.strategy, settings.warnings) == (
        True,
        "mirrored",
        (),
    )


def test_a_profile_may_change_the_image_size() -> None:
    laptop = ProfileConfig(batch_size=8, image=ProfileImage(height=24, width=20))
    config = digits_config().model_copy(update={"profiles": {"laptop": laptop}})
    assert resolve_settings(config, "laptop", gpus=0).batch_size == 8
    assert resolve_settings(config, "laptop", gpus=0).image_shape == (24, 20, 1)


def test_an_unknown_profile_is_named_with_the_known_ones() -> None:
    with pytest.raises(
        UserError, match=r"--profile gpu: no such profile \(known: laptop, server\)"
    ):
        resolve_settings(digits_config(), "gpu", gpus=0)


def test_balanced_class_weights_follow_inverse_frequency() -> None:
    config = digits_config(train={"class_weights": "balanced"})
    weights = class_weights(config, ["a", "b", "c"], {"a": 10, "b": 30, "c": 20})
    assert weights == pytest.approx({0: 2.0, 1: 2 / 3, 2: 1.0})


def test_named_class_weights_leave_other_classes_at_one() -> None:
    config = digits_config(train={"class_weights": {"b": 3.0}})
    assert class_weights(config, ["a", "b"], {"a": 5, "b": 5}) == {0: 1.0, 1: 3.0}
    assert class_weights(digits_config(), ["a", "b"], {"a": 5, "b": 5}) is None


def test_class_weights_for_an_unknown_class_are_refused() -> None:
    config = digits_config(train={"class_weights": {"z": 3.0}})
    with pytest.raises(UserError, match=r"train.class_weights.z: not a class of the training data"):
        class_weights(config, ["a", "b"], {"a": 5, "b": 5})
    balanced = digits_config(train={"class_weights": "balanced"})
    with pytest.raises(UserError, match="none for b"):
        class_weights(balanced, ["a", "b"], {"a": 5})
