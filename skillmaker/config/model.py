"""The skill config (``skill.json``) as pydantic models: every field documented, unknown keys refused."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from skillmaker.config.types import (
    Amount,
    Email,
    Fraction,
    ImageRef,
    Label,
    Line,
    Registry,
    Slug,
    StoreUri,
    Text,
    WeightsRef,
)

SCHEMA_VERSION = 2

NETWORKS = ("small_cnn", "mobilenet_v3_small", "efficientnet_b0", "resnet50")
Network = Literal["small_cnn", "mobilenet_v3_small", "efficientnet_b0", "resnet50"]
STRATEGIES = ("none", "mirrored")


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
    manifest: Line | None = None
    """Key of the CSV manifest under ``source`` (required with the ``manifest`` layout)."""
    class_file: Line | None = None
    """Class definition file, relative to skill.json: a JSON list of the classes the skill must know."""
    min_examples_per_class: int = Field(default=10, ge=1)
    """Classes with fewer images are excluded and listed in the audit, not trained on."""
    exclude_classes: list[Line] = Field(default_factory=list)
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
    min_groups_per_class: int = Field(default=3, ge=3)
    """Groups a class needs to be kept: fewer cannot fill train, val and test (excluded, noted)."""
    max_duplicate_component: int = Field(default=50, ge=2)
    """Most pictures one chain of near copies may merge; a larger one is split around its centres."""


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
    early_stopping_patience: int = Field(default=5, ge=0)
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

    accuracy_tolerance: Amount = 0.01
    """Largest accepted drop of overall accuracy, absolute (0.005 = half a point). The candidate
    passes only when the 95% interval of its accuracy difference lies above minus this."""
    latency_tolerance: float = Field(default=0.05, ge=0.0, le=10.0)
    """Largest accepted p95 latency increase, relative (0.05 = 5% slower). The candidate fails
    only when the 95% interval of its p95 ratio to the baseline lies wholly above 1 + this."""
    latency_p95_slo_ms: float | None = Field(default=None, gt=0.0)
    """Optional service-level objective: the candidate fails when the 95% interval of its p95
    latency (ms) lies wholly above it. None: no absolute limit."""
    max_class_drop: Amount = 0.05
    """Largest accepted drop of any one class's recall, absolute. A class fails when its drop is
    larger and significant after Holm's correction over the classes."""
    min_accuracy: Amount = 0.5
    """Least accuracy of a first model (no baseline deployed)."""
    significance: float = Field(default=0.05, gt=0.0, lt=1.0)
    """Significance level of the paired tests (exact McNemar; per class, Holm-adjusted)."""


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

    slack_channel: Line | None = None
    """Slack channel for the run summary and the PDF."""
    email: list[Email] = Field(default_factory=list)
    """Reviewers who get the PDF by e-mail."""


class ImagesConfig(Section):
    """Container images of the skill."""

    registry: Registry | None = None
    """Registry to push to, ``host[:port][/path]`` (none: keep images local)."""
    cpu_base: ImageRef = "python:3.11-slim"
    """Base image of the CPU image (an OCI image reference)."""
    gpu_base: ImageRef = "tensorflow/tensorflow:2.16.1-gpu"
    """Base image of the GPU image (an OCI image reference)."""
    extra_run: list[Text] = Field(default_factory=list, max_length=20)
    """Shell commands run as root in the runtime image, one ``RUN`` layer each (e.g. packages)."""


CiStageName = Literal[
    "version",
    "build",
    "data",
    "train",
    "evaluate",
    "stack-test",
    "report",
    "gate",
    "override",
    "deploy",
    "notify",
    "cleanup",
]
CredentialVariable = Literal[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "SLACK_BOT_TOKEN",
    "SMTP_USER",
    "SMTP_PASSWORD",
]
_CREDENTIAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _credential_id(value: str) -> str:
    if not _CREDENTIAL_ID.match(value):
        raise ValueError("must be a Jenkins credentials ID: letters, digits, '.', '_' and '-'")
    return value


CredentialId = Annotated[str, AfterValidator(_credential_id)]
_AGENT_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")


def _agent_path(value: str) -> str:
    if not _AGENT_PATH.match(value) or "/../" in f"{value}/":
        raise ValueError("must be an absolute folder of letters, digits, '.', '_', '-' and '/'")
    return value.rstrip("/") or "/"


AgentPath = Annotated[str, AfterValidator(_agent_path)]


class CiConfig(Section):
    """How the skill's Jenkinsfile runs its stages on the CI agents."""

    agent_cache: AgentPath = "/var/cache/skillmaker"
    """Folder on each agent that keeps pulled images and tensors across builds (mounted into stages)."""
    profiles: dict[Literal["cpu", "gpu"], Slug] = Field(default_factory=dict)
    """Hardware profile that ``train`` uses on an agent of each label (e.g. ``{"gpu": "server"}``)."""
    timeouts: dict[CiStageName, Annotated[int, Field(ge=1, le=10_080)]] = Field(
        default_factory=dict
    )
    """Minutes each stage may take, overriding the defaults (e.g. ``{"train": 600}``)."""
    credentials: dict[CredentialVariable, CredentialId] = Field(default_factory=dict)
    """Jenkins credentials ID of each secret variable; unset ones come from the agent's environment."""
    agents: dict[CiStageName, Label] = Field(default_factory=dict)
    """Agent label expression per stage, replacing its default label (``cpu`` or ``gpu``)."""
    timeout_hours: int = Field(default=12, ge=1, le=168)
    """Longest a whole build may take before Jenkins stops it."""


class SkillConfig(Section):
    """One skill: an image classifier with its data, training, gate, deploy and notify settings."""

    schema_version: Literal[2] = 2
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
    ci: CiConfig = Field(default_factory=CiConfig)
    """CI agents: labels, data cache, training profile per label, timeouts, credentials."""
