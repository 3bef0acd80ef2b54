"""What a training run will use: the profile resolved against the hardware, and the class weights.

Pure functions of the config, the profile name and what the machine has; no Keras, no files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from skillmaker.config import SkillConfig
from skillmaker.config.model import STRATEGIES
from skillmaker.errors import UserError


@dataclass(frozen=True)
class TrainSettings:
    """The batch size, image shape, precision and strategy one run trains with."""

    profile: str | None
    batch_size: int
    height: int
    width: int
    channels: int
    mixed_precision: bool
    strategy: str  # "none" or "mirrored"
    warnings: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Give the (height, width, channels) of the images the model takes."""
        return (self.height, self.width, self.channels)


def resolve_settings(
    config: SkillConfig, profile: str | None, *, gpus: int, mirror_devices: int | None = None
) -> TrainSettings:
    """Give the settings of a run with ``profile`` on a machine with ``gpus`` GPUs.

    Mixed precision needs a GPU and the mirrored strategy devices to spread over (``gpus`` unless
    ``mirror_devices`` says otherwise): without them they are switched off with a warning, so a
    laptop runs the server's profile slowly rather than not at all.
    """
    mirror_devices = gpus if mirror_devices is None else mirror_devices
    height, width = config.image.height, config.image.width
    batch_size = config.train.batch_size
    mixed, strategy = False, "none"
    warnings: list[str] = []
    if profile is not None:
        chosen = config.profiles.get(profile)
        if chosen is None:
            known = ", ".join(sorted(config.profiles)) or "none defined in skill.json"
            raise UserError(f"--profile {profile}: no such profile (known: {known})")
        if chosen.strategy not in STRATEGIES:
            raise UserError(
                f"profiles.{profile}.strategy: must be one of {', '.join(STRATEGIES)} "
                f"(got {chosen.strategy!r})"
            )
        batch_size = chosen.batch_size or batch_size
        if chosen.image is not None:
            height, width = chosen.image.height, chosen.image.width
        mixed, strategy = chosen.mixed_precision, chosen.strategy
        if mixed and gpus == 0:
            warnings.append(
                f"profile {profile}: mixed precision needs a GPU and none was found; "
                "training in float32"
            )
            mixed = False
        if strategy == "mirrored" and mirror_devices == 0:
            warnings.append(
                f"profile {profile}: the mirrored strategy spreads over GPUs and none was found; "
                "training without a distribution strategy"
            )
            strategy = "none"
    return TrainSettings(
        profile=profile,
        batch_size=batch_size,
        height=height,
        width=width,
        channels=config.image.channels,
        mixed_precision=mixed,
        strategy=strategy,
        warnings=tuple(warnings),
    )


def class_weights(
    config: SkillConfig, labels: Sequence[str], class_counts: Mapping[str, int]
) -> dict[int, float] | None:
    """Give the loss weight of each label index, or None when the config asks for none.

    ``balanced`` weighs each class by ``n / (k * n_class)`` (scikit-learn's rule), so every class
    contributes as much to the loss as it would in a balanced training split. A per-class mapping
    weighs the classes it names and leaves the others at 1.
    """
    wanted = config.train.class_weights
    if wanted == "none":
        return None
    if isinstance(wanted, dict):
        unknown = sorted(set(wanted) - set(labels))
        if unknown:
            raise UserError(
                f"train.class_weights.{unknown[0]}: not a class of the training data "
                f"(classes: {', '.join(labels)})"
            )
        return {index: float(wanted.get(name, 1.0)) for index, name in enumerate(labels)}
    missing = [name for name in labels if class_counts.get(name, 0) <= 0]
    if missing:
        raise UserError(
            f"train.class_weights: balanced weights need training images of every class; "
            f"none for {', '.join(missing)}"
        )
    total = sum(class_counts[name] for name in labels)
    return {index: total / (len(labels) * class_counts[name]) for index, name in enumerate(labels)}
