"""The model zoo: every network a config can ask for, built flat so Grad-CAM can reach inside.

Every model has the same outline (the contract serving and evaluation rely on)::

    image (float32 0..255, H x W x C; uint8 batches are cast on the way in)
    -> rescale to 0..1 -> augmentation (training only) -> normalise with the training split's
       per-channel mean and std -> the network -> ``features`` (the last 4-D feature map)
    -> pooling / dropout -> ``logits`` (float32, no softmax)

Backbones come from ``keras.applications`` built on the normalised tensor itself rather than nested
as one layer, so ``model.get_layer("features").output`` is connected to ``model.inputs``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import keras
import numpy as np
from keras import layers

from skillmaker.config import SkillConfig
from skillmaker.errors import UserError
from skillmaker.training.augment import augmentation_layers
from skillmaker.training.settings import TrainSettings

WeightsLoader = Callable[[str], Path]

# ImageNet's per-channel mean and std (RGB, 0..1): what every pretrained backbone was trained on.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ResNet50's "caffe" convention: BGR pixels 0..255 minus this per-channel mean (B, G, R).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Backbone:
    """A ``keras.applications`` network and the pixel convention its own weights expect."""

    constructor: Callable[..., keras.Model]
    convention: str  # "minus_one_to_one", "pixels" (0..255) or "caffe"
    min_side: int = 32
    options: dict[str, Any] = field(default_factory=dict)


BACKBONES: dict[str, Backbone] = {
    # Its built-in rescaling is switched off: the adapter below gives it -1..1 itself.
    "mobilenet_v3_small": Backbone(
        keras.applications.MobileNetV3Small,
        "minus_one_to_one",
        options={"include_preprocessing": False},
    ),
    # Rescales and normalises inside (no switch to turn that off), so it is given 0..255 pixels.
    "efficientnet_b0": Backbone(keras.applications.EfficientNetB0, "pixels"),
    "resnet50": Backbone(keras.applications.ResNet50, "caffe"),
}


@dataclass(frozen=True)
class BuiltModel:
    """A built model, the backbone's layers in order (empty for small_cnn), and build warnings."""

    model: keras.Model
    backbone: tuple[keras.layers.Layer, ...]
    warnings: tuple[str, ...] = ()


@contextlib.contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _check_normalisation(
    normalisation: tuple[Sequence[float], Sequence[float]], channels: int
) -> tuple[list[float], list[float]]:
    mean, std = [float(m) for m in normalisation[0]], [float(s) for s in normalisation[1]]
    if len(mean) != channels or len(std) != channels:
        raise UserError(
            f"normalisation: expected a mean and a std for each of {channels} channels "
            f"(got {len(mean)} means and {len(std)} stds)"
        )
    for index, (m, s) in enumerate(zip(mean, std, strict=True)):
        if not 0.0 <= m <= 255.0 or not np.isfinite(m):
            raise UserError(f"normalisation: channel {index} mean must be in 0..255 (got {m})")
        if not s > 0.0 or not np.isfinite(s):
            raise UserError(
                f"normalisation: channel {index} has standard deviation {s}; every training "
                "image has the same value there, so the channel carries nothing to learn from"
            )
    return mean, std


def backbone_input_affine(convention: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Give the 1x1 kernel and bias that turn normalised images into a backbone's input.

    A normalised pixel ``x`` is re-expressed in ImageNet's statistics (``x * std + mean``, 0..1)
    and then in the backbone's own convention, so pretrained weights see inputs like those they
    were trained on whatever this data's colours are. Greyscale feeds all three channels.
    """
    kernel = np.zeros((1, 1, channels, 3), dtype=np.float32)
    bias = np.zeros((3,), dtype=np.float32)
    for out in range(3):
        # The caffe convention is BGR: output channel 0 takes red's statistics from input 2.
        rgb = 2 - out if convention == "caffe" else out
        source = rgb if channels == 3 else 0
        scale, offset = IMAGENET_STD[rgb], IMAGENET_MEAN[rgb]
        if convention == "minus_one_to_one":
            scale, offset = 2.0 * scale, 2.0 * offset - 1.0
        elif convention == "pixels":
            scale, offset = 255.0 * scale, 255.0 * offset
        elif convention == "caffe":
            scale, offset = 255.0 * scale, 255.0 * offset - CAFFE_MEAN_BGR[out]
        else:
            raise ValueError(f"unknown pixel convention {convention!r}")
        kernel[0, 0, source, out] = scale
        bias[out] = offset
    return kernel, bias


def build_model(
    config: SkillConfig,
    settings: TrainSettings,
    normalisation: tuple[Sequence[float], Sequence[float]],
    num_classes: int,
    *,
    weights_loader: WeightsLoader | None = None,
    pretrained: bool = True,
) -> BuiltModel:
    """Give the model the config describes, with its backbone weights loaded, ready to compile.

    ``normalisation`` is the training split's per-channel (mean, std) in pixel values 0..255.
    ``pretrained=False`` leaves the configured backbone weights out (for a model whose weights
    are set next anyway).
    Under mixed precision the network computes in float16; preprocessing, ``features`` and
    ``logits`` stay float32 so augmentation, Grad-CAM and the loss keep their precision.
    """
    height, width, channels = settings.image_shape
    mean, std = _check_normalisation(normalisation, channels)
    if num_classes < 2:
        raise UserError(f"training needs at least two classes (got {num_classes})")
    network = config.model.network
    backbone_spec = BACKBONES.get(network)
    if backbone_spec is not None and min(height, width) < backbone_spec.min_side:
        raise UserError(
            f"image: {network} needs images of at least {backbone_spec.min_side}x"
            f"{backbone_spec.min_side} pixels (got {height}x{width})"
        )
    policy = "mixed_float16" if settings.mixed_precision else "float32"
    with _dtype_policy(policy):
        inputs = keras.Input((height, width, channels), dtype="float32", name="image")
        augmenters, warnings = augmentation_layers(
            config.augment, channels=channels, fill=[m / 255.0 for m in mean]
        )
        preprocessing = [
            layers.Rescaling(1.0 / 255.0, name="rescale", dtype="float32"),
            *augmenters,
            layers.Normalization(
                mean=[m / 255.0 for m in mean],
                variance=[(s / 255.0) ** 2 for s in std],
                name="normalise",
                dtype="float32",
            ),
        ]
        x = inputs
        for layer in preprocessing:
            x = layer(x)
        if backbone_spec is None:
            logits, backbone = _small_cnn(x, config, num_classes), ()
        else:
            logits, backbone = _backbone_network(
                x,
                backbone_spec,
                config=config,
                shape=(height, width, channels),
                num_classes=num_classes,
                preprocessing=preprocessing,
            )
        model = keras.Model(inputs, logits, name=config.name.replace("-", "_"))
    built = BuiltModel(model=model, backbone=backbone, warnings=tuple(warnings))
    if backbone_spec is not None and pretrained:
        load_backbone_weights(built, config, settings, weights_loader=weights_loader)
    return built


def _small_cnn(x: Any, config: SkillConfig, num_classes: int) -> Any:
    filters = config.model.filters
    for index, count in enumerate(filters, start=1):
        x = layers.Conv2D(count, 3, padding="same", activation="relu", name=f"conv_{index}")(x)
        if index == len(filters):
            x = layers.Activation("linear", name="features", dtype="float32")(x)
        # "same" pooling keeps a 1x1 map 1x1, so many blocks on small images stay valid.
        x = layers.MaxPooling2D(2, padding="same", name=f"pool_{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(config.model.dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(config.model.dropout, name="dropout")(x)
    return layers.Dense(num_classes, name="logits", dtype="float32")(x)


def _backbone_network(
    x: Any,
    spec: Backbone,
    *,
    config: SkillConfig,
    shape: tuple[int, int, int],
    num_classes: int,
    preprocessing: Sequence[keras.layers.Layer],
) -> tuple[Any, tuple[keras.layers.Layer, ...]]:
    height, width, channels = shape
    adapter = layers.Conv2D(3, 1, name="backbone_input", trainable=False, dtype="float32")
    x = adapter(x)
    adapter.set_weights(list(backbone_input_affine(spec.convention, channels)))
    # The application's model starts at our input, so its layers include ours: leave those out.
    made_here = {id(layer) for layer in (*preprocessing, adapter)}
    network = spec.constructor(
        input_tensor=x,
        input_shape=(height, width, 3),
        include_top=False,
        weights=None,
        **spec.options,
    )
    backbone = tuple(
        layer
        for layer in network.layers
        if id(layer) not in made_here and not isinstance(layer, keras.layers.InputLayer)
    )
    features = layers.Activation("linear", name="features", dtype="float32")(network.output)
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dropout(config.model.dropout, name="dropout")(x)
    return layers.Dense(num_classes, name="logits", dtype="float32")(x), backbone


def set_phase(built: BuiltModel, phase: str, top_layers: int = 0) -> int:
    """Give how many backbone layers train after setting which train in ``phase``.

    ``train``: the backbone is frozen (transfer learning trains only the new head). ``fine_tune``:
    the top ``top_layers`` layers of the backbone train as well. BatchNormalization layers stay
    frozen in both: ``trainable = False`` is what keeps them in inference mode during ``fit``
    (``training=False`` on the call does not), so their moving statistics are never updated by
    the small batches of a new skill.
    """
    unfrozen = 0
    cut = len(built.backbone) - top_layers if phase == "fine_tune" else len(built.backbone)
    for position, layer in enumerate(built.backbone):
        trains = position >= cut and not isinstance(layer, layers.BatchNormalization)
        layer.trainable = trains
        unfrozen += int(trains and bool(layer.weights))
    return unfrozen


# -------------------------------------------------------------------------------------------
# Backbone weights


def _weighted(found: Sequence[keras.layers.Layer]) -> list[keras.layers.Layer]:
    return [layer for layer in found if layer.weights]


def _leaf_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Give the layers of a model in order, nested models opened up."""
    leaves: list[keras.layers.Layer] = []
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer))
        else:
            leaves.append(layer)
    return leaves


def _signature(layer: keras.layers.Layer) -> tuple[str, tuple[tuple[int, ...], ...]]:
    return type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights)


def copy_backbone_weights(
    target: Sequence[keras.layers.Layer], source: Sequence[keras.layers.Layer], where: str
) -> None:
    """Copy weights into the backbone's layers from the run of ``source`` layers that matches it.

    Layers are matched by position, type and weight shapes rather than by name: Keras names some
    layers with a process-wide counter, so names differ between two builds of one network. The
    source may hold more (an earlier skill's whole model): the first matching run is used.
    """
    wanted = _weighted(target)
    have = _weighted(source)
    signatures = [_signature(layer) for layer in wanted]
    offered = [_signature(layer) for layer in have]
    best = 0
    for start in range(len(have) - len(wanted) + 1):
        matched = 0
        while matched < len(wanted) and offered[start + matched] == signatures[matched]:
            matched += 1
        if matched == len(wanted):
            for to_layer, from_layer in zip(wanted, have[start:], strict=False):
                to_layer.set_weights(from_layer.get_weights())
            return
        best = max(best, matched)
    raise UserError(
        f"{where}: holds no matching backbone (the best run of layers matched {best} of "
        f"{len(wanted)}); it must come from the same network"
    )


def _weights_file(uri: str, weights_loader: WeightsLoader | None) -> Path:
    if weights_loader is not None:
        return weights_loader(uri)
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise UserError(f"model.weights: {uri}: no loader for this store was given")
    return Path(unquote(parsed.path))


def load_backbone_weights(
    built: BuiltModel,
    config: SkillConfig,
    settings: TrainSettings,
    *,
    weights_loader: WeightsLoader | None = None,
) -> None:
    """Load the configured weights (none, imagenet, or a weights file URI) into the backbone.

    A weights file is either Keras weights of the bare backbone (``.weights.h5``, e.g. saved with
    ``backbone.save_weights``) or a ``.keras`` model that contains the backbone, such as an earlier
    skill's ``model.keras``: transfer from the team's earlier skills.
    """
    weights = config.model.weights
    spec = BACKBONES[config.model.network]
    if weights == "none":
        return
    shape = (settings.height, settings.width, 3)
    if weights == "imagenet":
        try:
            reference = spec.constructor(
                input_shape=shape, include_top=False, weights="imagenet", **spec.options
            )
        except Exception as exc:  # a download that fails raises whatever urllib raised
            raise UserError(
                f"model.weights: could not get imagenet weights of {config.model.network} "
                f"({exc}); put the file under $KERAS_HOME/models or use a weights file URI"
            ) from None
        copy_backbone_weights(built.backbone, _leaf_layers(reference), "model.weights: imagenet")
        return
    path = _weights_file(weights, weights_loader)
    where = f"model.weights: {weights}"
    if not path.is_file():
        raise UserError(f"{where}: no such file ({path})")
    if path.name.endswith(".keras"):
        # Importing zoo imported augment, which registered Cutout for loading.
        try:
            source = keras.models.load_model(path, compile=False)
        except Exception as exc:
            raise UserError(f"{where}: not a loadable Keras model ({exc})") from None
        copy_backbone_weights(built.backbone, _leaf_layers(source), where)
        return
    reference = spec.constructor(input_shape=shape, include_top=False, weights=None, **spec.options)
    try:
        reference.load_weights(path)
    except Exception as exc:
        raise UserError(
            f"{where}: not a weights file of a bare {config.model.network} backbone ({exc})"
        ) from None
    copy_backbone_weights(built.backbone, _leaf_layers(reference), where)
