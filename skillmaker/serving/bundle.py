"""A model bundle on disk: the Keras model, its labels and the stamp every answer carries.

A bundle is a folder holding ``model.keras`` (Keras 3; raw float32 pixels 0..255 in, logits out of a
final layer named ``logits``), ``labels.json`` (class names, index = output index) and
``stamp.json`` (``{"skill", "skill_version", "code_version"}``). The model hash is the SHA-256 of
``model.keras``. ``SKILL_NAME``, ``SKILL_VERSION`` and ``CODE_VERSION`` in the environment override
the stamp, as the Docker images set them.

Reading the stamp and labels never imports Keras, so the harness can check a bundle cheaply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skillmaker import records
from skillmaker.errors import UserError
from skillmaker.fileio import sha256_file

if TYPE_CHECKING:
    import keras

MODEL_FILE = records.MODEL
LABELS_FILE = records.LABELS
STAMP_FILE = records.STAMP
LOGITS_LAYER = "logits"
FEATURES_LAYER = "features"

# Environment variables that override the stamp (set in the Docker images).
ENV_SKILL_NAME = "SKILL_NAME"
ENV_SKILL_VERSION = "SKILL_VERSION"
ENV_CODE_VERSION = "CODE_VERSION"


@dataclass(frozen=True)
class Stamp:
    """What every inference carries: skill name, skill version, code version and model hash."""

    skill: str
    skill_version: int
    code_version: str
    model_hash: str

    def headers(self) -> dict[str, str]:
        """Give the HTTP response headers that carry the stamp."""
        return {
            "X-Skill-Name": self.skill,
            "X-Skill-Version": str(self.skill_version),
            "X-Code-Version": self.code_version,
            "X-Model-Hash": self.model_hash,
        }

    def as_json(self) -> dict[str, Any]:
        """Give the stamp as the JSON fields of a response body."""
        return {
            "skill": self.skill,
            "skill_version": self.skill_version,
            "code_version": self.code_version,
            "model_hash": self.model_hash,
        }


@dataclass(frozen=True)
class StampDefaults:
    """Skill name and versions to use when a folder has no ``stamp.json`` (a run folder)."""

    skill: str
    skill_version: int
    code_version: str


@dataclass(frozen=True)
class BundleInfo:
    """A bundle's folder, class names and stamp, read without loading the model."""

    path: Path
    labels: tuple[str, ...]
    stamp: Stamp

    @property
    def model_path(self) -> Path:
        """Give the path of ``model.keras``."""
        return self.path / MODEL_FILE


def model_hash(path: Path) -> str:
    """Give the SHA-256 (hex) of a model file's bytes."""
    return sha256_file(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (a model bundle needs {path.name})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def read_labels(path: Path) -> tuple[str, ...]:
    """Give the class names of ``labels.json``, or a user error saying what is wrong with it."""
    raw = _read_json(path)
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{path}: must be a non-empty JSON list of class names")
    for index, name in enumerate(raw):
        if not isinstance(name, str) or not name:
            raise UserError(f"{path}: [{index}]: must be a class name (got {name!r})")
    if len(set(raw)) != len(raw):
        raise UserError(f"{path}: lists a class twice")
    return tuple(raw)


def _stamp_fields(path: Path, defaults: StampDefaults | None) -> tuple[str, int, str]:
    if not path.is_file() and defaults is not None:
        return defaults.skill, defaults.skill_version, defaults.code_version
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a JSON object with skill, skill_version, code_version")
    skill, version, code = raw.get("skill"), raw.get("skill_version"), raw.get("code_version")
    if not isinstance(skill, str) or not skill:
        raise UserError(f"{path}: skill: must be the skill's name (got {skill!r})")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise UserError(f"{path}: skill_version: must be a whole number >= 0 (got {version!r})")
    if not isinstance(code, str) or not code:
        raise UserError(f"{path}: code_version: must be the code version (got {code!r})")
    return skill, version, code


def _env_version(env: Mapping[str, str], fallback: int) -> int:
    text = env.get(ENV_SKILL_VERSION, "").strip()
    if not text:
        return fallback
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{ENV_SKILL_VERSION}={text!r}: must be a whole number") from None
    if value < 0:
        raise UserError(f"{ENV_SKILL_VERSION}={text!r}: must be a whole number >= 0")
    return value


def read_bundle(
    path: Path, env: Mapping[str, str] | None = None, defaults: StampDefaults | None = None
) -> BundleInfo:
    """Give a bundle's labels and stamp (environment overrides applied), or a user error."""
    env = env or {}
    if not path.is_dir():
        raise UserError(f"{path}: not a model bundle folder")
    model_path = path / MODEL_FILE
    if not model_path.is_file():
        raise UserError(f"{model_path}: missing (a model bundle needs {MODEL_FILE})")
    labels = read_labels(path / LABELS_FILE)
    skill, version, code = _stamp_fields(path / STAMP_FILE, defaults)
    stamp = Stamp(
        skill=_header_safe(env.get(ENV_SKILL_NAME, "").strip() or skill, "skill name"),
        skill_version=_env_version(env, version),
        code_version=_header_safe(env.get(ENV_CODE_VERSION, "").strip() or code, "code version"),
        model_hash=model_hash(model_path),
    )
    return BundleInfo(path=path, labels=labels, stamp=stamp)


def _header_safe(value: str, what: str) -> str:
    """Give the value when it can travel in an HTTP header (printable ASCII), else a user error."""
    if not value.isascii() or not value.isprintable():
        raise UserError(f"{what} {value!r}: must be printable ASCII (it is sent in HTTP headers)")
    return value


def write_stamp(path: Path, *, skill: str, skill_version: int, code_version: str) -> None:
    """Write the ``stamp.json`` of a bundle folder: the versions its answers must carry."""
    stamp = {"skill": skill, "skill_version": skill_version, "code_version": code_version}
    (path / STAMP_FILE).write_text(json.dumps(stamp, sort_keys=True) + "\n", encoding="utf-8")


def write_bundle(
    path: Path,
    model: keras.Model,
    labels: list[str],
    *,
    skill: str,
    skill_version: int,
    code_version: str,
) -> BundleInfo:
    """Save a model, its labels and its stamp as a bundle folder and give what was written."""
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / MODEL_FILE)
    (path / LABELS_FILE).write_text(json.dumps(labels) + "\n", encoding="utf-8")
    write_stamp(path, skill=skill, skill_version=skill_version, code_version=code_version)
    return read_bundle(path)


def load_model(info: BundleInfo) -> keras.Model:
    """Give the bundle's Keras model, checked against the contract, or a user error."""
    import keras

    try:
        model = keras.saving.load_model(info.model_path, compile=False)
    except Exception as exc:  # Keras raises many kinds for a broken or foreign file
        raise UserError(f"{info.model_path}: cannot be loaded as a Keras model ({exc})") from None
    check_model(model, info)
    return model


def check_model(model: keras.Model, info: BundleInfo) -> None:
    """Raise a user error when the model breaks the bundle contract (input, logits, labels)."""
    where = str(info.model_path)
    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else ()
    if len(shape) != 4 or any(size is None for size in shape[1:]):
        raise UserError(
            f"{where}: must take one (height, width, channels) image input (got {shape})"
        )
    try:
        model.get_layer(LOGITS_LAYER)
    except ValueError:
        raise UserError(f"{where}: has no layer named {LOGITS_LAYER!r} (the final layer)") from None
    outputs = int(model.outputs[0].shape[-1])
    if outputs > 1 and outputs_probabilities(model):
        # Serving applies softmax itself; a second one would flatten the probabilities.
        raise UserError(
            f"{where}: applies softmax (the outputs of a probe batch already sum to 1); "
            "it must output logits"
        )
    if outputs != len(info.labels):
        raise UserError(
            f"{where}: gives {outputs} outputs but {info.path / LABELS_FILE} names "
            f"{len(info.labels)} classes"
        )


PROBE_IMAGES = 8


def outputs_probabilities(model: keras.Model) -> bool:
    """Say whether the model's outputs on a probe batch look like probabilities.

    The probe is a fixed batch of random images over the whole pixel range; logits of a trained or
    untrained network are not all non-negative with rows summing to 1, softmax outputs always are,
    whatever the layer that applies it is called.
    """
    import numpy as np

    height, width, channels = input_size(model)
    rng = np.random.default_rng(0)
    probe = rng.uniform(0.0, 255.0, (PROBE_IMAGES, height, width, channels)).astype("float32")
    outputs = np.asarray(model(probe, training=False), dtype=np.float64)
    rows = outputs.reshape(PROBE_IMAGES, -1)
    return bool(np.all(rows >= 0.0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-4))


def input_size(model: keras.Model) -> tuple[int, int, int]:
    """Give the (height, width, channels) a model takes."""
    _, height, width, channels = model.inputs[0].shape
    return int(height), int(width), int(channels)
