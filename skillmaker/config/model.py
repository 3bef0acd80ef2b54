"""The skill config (``skill.json``) as pydantic models: every field documented, unknown keys refused."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

NETWORKS = ("small_cnn", "mobilenet_v3_small", "efficientnet_b0", "resnet50")
Network = Literal["small_cnn", "mobilenet_v3_small", "efficientnet_b0", "resnet50"]
STRATEGIES = ("none", "mirrored")

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STORE_URI = re.compile(r"^(?:s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/.*)?|file:///.*)$")
_WEIGHTS_URI = re.compile(r"^(?:s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+|file:///.+)$")


def _slug(value: str) -> str:
    if len(value) < 2 or len(value) > 40 or not _SLUG.match(value):
        raise ValueError(
            "must be 2 to 40 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("must be an e-mail address")
    return value


def _store_uri(value: str) -> str:
    if not _STORE_URI.match(value):
        raise ValueError("must be a store URI: s3://bucket[/prefix] or file:///absolute/path")
    return value.rstrip("/") if value not in ("file:///",) else value


def _weights(value: str) -> str:
    if value in ("none", "imagenet") or _WEIGHTS_URI.match(value):
        return value
    raise ValueError(
        'must be "none", "imagenet", or the URI of a weights file (s3://… or file:///…)'
    )


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Email = Annotated[str, AfterValidator(_email)]
StoreUri = Annotated[str, AfterValidator(_store_uri)]
WeightsRef = Annotated[str, AfterValidator(_weights)]
Text = Annotated[str, AfterValidator(_nonblank)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Amount = Annotated[float, Field(ge=0.0, le=1.0)]


class Section(BaseModel):
    """Base of every config section: strict types, no unknown keys, documented fields."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


class DataConfig(Section):
    """Where the images are and how they are laid out."""

    source: StoreUri
    """URI of the raw images: ``s3://bucket/prefix`` or ``file:///path``."""
    layout: Literal["folders", "manifest"] = "folders"
    """``folders``: ``<class>/<group>/<file>``; ``manifest``: a CSV of path,label,group."""
    manifest: str | None = None
    """Key of the CSV manifest under ``source`` (required with the ``manifest`` layout)."""
    class_file: str | None = None
    """Class definition file, relative to skill.json: a JSON list of the classes the skill must know."""
    min_examples_per_class: int = Field(default=10, ge=1)
    """Classes with fewer images are excluded and listed in the audit, not trained on."""
    exclude_classes: list[str] = Field(default_factory=list)
    """Classes left out on purpose."""
    max_pixels: int = Field(default=40_000_000, ge=1)
    """Images with more pixels than this are quarantined (decompression bombs)."""


class ImageConfig(Section):
    """The size and colour of the tensors the network sees."""

    height: int = Field(default=128, ge=8, le=4096)
    """Input height in pixels."""
    width: int = Field(default=128, ge=8, le=4096)
    """Input width in pixels."""
    channels: Literal[1, 3] = 3
    """1 for greyscale, 3 for RGB."""


class SplitConfig(Section):
    """How groups of images are assigned to train, val and test (once, in the split ledger)."""

    train: Fraction = 0.7
    """Share of groups assigned to training."""
    val: Fraction = 0.15
    """Share of groups assigned to validation (early stopping, checkpoints)."""
    test: Fraction = 0.15
    """Share of groups held out for the test harness."""
    seed: int = Field(default=0, ge=0)
    """Key of the split hash; changing it never moves groups already in the ledger."""
    near_duplicate_distance: int = Field(default=6, ge=0, le=32)
    """Perceptual-hash Hamming distance at or under which two images are one group."""


class FineTuneConfig(Section):
    """Second phase of transfer learning: unfreeze the top of the backbone."""

    top_layers: int = Field(default=0, ge=0)
    """How many backbone layers to unfreeze after the head is trained (0: no fine-tuning)."""
    epochs: int = Field(default=0, ge=0)
    """Epochs of fine-tuning."""
    learning_rate_factor: float = Field(default=0.1, gt=0.0, le=1.0)
    """Fine-tuning learning rate as a fraction of ``train.learning_rate``."""


class ModelConfig(Section):
    """The network and its weights."""

    network: Network = "small_cnn"
    """One of small_cnn, mobilenet_v3_small, efficientnet_b0, resnet50."""
    weights: WeightsRef = "none"
    """``none``, ``imagenet``, or the URI of a weights file from an earlier skill."""
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Dropout before the classification layer."""
    filters: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [32, 64], min_length=1, max_length=8
    )
    """small_cnn only: filters of each Conv-ReLU-MaxPool block."""
    dense_units: int = Field(default=64, ge=1, le=8192)
    """small_cnn only: units of the dense layer of the head."""
    fine_tune: FineTuneConfig = Field(default_factory=FineTuneConfig)
    """Fine-tuning schedule for backbones."""


class AugmentConfig(Section):
    """Training-time augmentations, each off unless set; they run inside the model."""

    horizontal_flip: bool = False
    """Mirror left-right (cars: yes)."""
    vertical_flip: bool = False
    """Mirror upside down (cars: never)."""
    rotation: float | None = Field(default=None, gt=0.0, le=180.0)
    """Largest rotation in degrees."""
    zoom: Amount | None = None
    """Largest zoom in or out, as a fraction."""
    brightness: Amount | None = None
    """Largest brightness change, as a fraction."""
    contrast: Amount | None = None
    """Largest contrast change, as a fraction."""
    hue: Amount | None = None
    """Largest hue shift, as a fraction of the colour wheel."""
    saturation: Amount | None = None
    """Largest saturation change, as a fraction."""
    cutout: Amount | None = None
    """Side of a random occluding square, as a fraction of the image side."""


class TrainConfig(Section):
    """Optimisation settings."""

    epochs: int = Field(default=20, ge=1, le=10_000)
    """Most epochs to train."""
    batch_size: int = Field(default=32, ge=1, le=65_536)
    """Images per batch (a profile may override it)."""
    learning_rate: float = Field(default=1e-3, gt=0.0, le=10.0)
    """Initial learning rate."""
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    """Optimiser."""
    patience: int = Field(default=5, ge=0)
    """Epochs without improvement of ``monitor`` before training stops."""
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    """Quantity that selects the best checkpoint and stops training."""
    class_weights: Literal["none", "balanced"] | dict[str, Annotated[float, Field(gt=0.0)]] = "none"
    """``none``, ``balanced`` (inverse frequency), or a weight per class name."""


class ProfileImage(Section):
    """Image size of a hardware profile."""

    height: int = Field(ge=8, le=4096)
    """Input height in pixels."""
    width: int = Field(ge=8, le=4096)
    """Input width in pixels."""


class ProfileConfig(Section):
    """A hardware profile (e.g. a laptop or a server) chosen with ``--profile``."""

    batch_size: int | None = Field(default=None, ge=1, le=65_536)
    """Overrides ``train.batch_size``."""
    image: ProfileImage | None = None
    """Overrides ``image.height`` and ``image.width``."""
    mixed_precision: bool = False
    """float16 compute with float32 weights (GPU only)."""
    strategy: str = "none"
    """Distribution strategy: ``none`` or ``mirrored`` (all GPUs of the machine)."""


class GateConfig(Section):
    """Tolerances of the deployment gate."""

    accuracy_tolerance: Amount = 0.0
    """Largest accepted drop of overall accuracy, absolute (0.005 = half a point)."""
    latency_tolerance: float = Field(default=0.05, ge=0.0, le=10.0)
    """Largest accepted p95 latency increase, relative (0.05 = 5% slower)."""
    max_class_drop: Amount = 0.05
    """Largest accepted drop of any one class's recall, absolute."""
    min_accuracy: Amount = 0.5
    """Least accuracy of a first model (no baseline deployed)."""
    significance: float = Field(default=0.05, gt=0.0, lt=1.0)
    """Significance level of the paired accuracy test."""


class DeployConfig(Section):
    """Where artifacts live and how the stack is updated."""

    artifacts: StoreUri
    """URI of the artifact store (registry, split ledger, runs)."""
    infra_repo: Text
    """Infra git repository: a local path or a remote URL."""
    template_path: Text = "skills.yaml"
    """CloudFormation template inside the infra repository."""
    mapping_name: Text = "SkillImages"
    """Name of the Mappings entry that holds the image tag of each skill."""
    stack_name: Text = "skills"
    """CloudFormation stack to update."""
    region: Text = "eu-west-1"
    """AWS region of the stack."""
    branch: Text = "main"
    """Release branch: only a run of a commit on this branch deploys; others stop after the report."""
    require_built_image: bool = True
    """Refuse to deploy a tag whose serving image was not built and pushed (false: opt out, said
    in the deploy's output, deploy.json and the infra commit message)."""
    lease_seconds: int = Field(default=900, ge=10, le=86_400)
    """Expiry of the deploy lease on the stack: a crashed deployer blocks others at most this long."""


class NotifyConfig(Section):
    """Who hears about a run."""

    slack_channel: str | None = None
    """Slack channel for the run summary and the PDF."""
    email: list[Email] = Field(default_factory=list)
    """Reviewers who get the PDF by e-mail."""


class ImagesConfig(Section):
    """Container images of the skill."""

    registry: str | None = None
    """Registry to push to (none: keep images local)."""
    cpu_base: Text = "python:3.11-slim"
    """Base image of the CPU image."""
    gpu_base: Text = "tensorflow/tensorflow:2.16.1-gpu"
    """Base image of the GPU image."""


class SkillConfig(Section):
    """One skill: an image classifier with its data, training, gate, deploy and notify settings."""

    schema_version: Literal[1] = 1
    """Version of this config format."""
    name: Slug
    """Slug of the skill: lowercase letters, digits and hyphens, 2 to 40 characters."""
    title: Text
    """Human title, used in reports and messages."""
    ticket: Text
    """Ticket that asked for the skill (e.g. a JIRA key)."""
    owner: Email
    """E-mail of the person who owns the skill."""
    data: DataConfig
    """Data location and layout."""
    image: ImageConfig = Field(default_factory=ImageConfig)
    """Input image size."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    """Train/val/test split."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """Network."""
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    """Augmentations."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Training."""
    profiles: dict[Slug, ProfileConfig] = Field(default_factory=dict)
    """Named hardware profiles."""
    gate: GateConfig = Field(default_factory=GateConfig)
    """Gate tolerances."""
    deploy: DeployConfig
    """Artifacts and deployment."""
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    """Notifications."""
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    """Container images."""
