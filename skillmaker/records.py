"""The JSON records a run leaves in its run folder: the contract between stages and the report.

Each record is a ``TypedDict`` so producers and readers agree on keys; files are written with
``write_record`` (sorted keys, atomic) so the same facts give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from skillmaker.errors import UserError
from skillmaker.fileio import write_atomic

# File names inside runs/<version>/ (locally and in the store).
RUN = "run.json"
AUDIT = "audit.json"
DEFINITION = "definition.json"
TRAIN = "train.json"
HISTORY = "history.json"
LABELS = "labels.json"
NORMALISATION = "normalisation.json"
MODEL = "model.keras"
STAMP = "stamp.json"  # skill, skill_version, code_version of a model bundle
METRICS = "metrics.json"
GATE = "gate.json"
STACK = "stack.json"
REPORT = "report.pdf"


class SplitCounts(TypedDict):
    """Images of one class in each split."""

    train: int
    val: int
    test: int


class ClassAudit(TypedDict):
    """A kept class and its counts."""

    name: str
    counts: SplitCounts


class ExcludedClass(TypedDict):
    """A class left out, with its image count and why (``too few examples`` or ``excluded by config``)."""

    name: str
    count: int
    reason: str


class Quarantined(TypedDict):
    """A file that was not used: its object key and why (empty, not an image, truncated, ...)."""

    key: str
    reason: str


class DuplicateGroup(TypedDict):
    """Images merged into one group because they are the same picture."""

    group: str
    kind: str  # "exact" or "near"
    members: list[str]


class AuditRecord(TypedDict):
    """``audit.json``: what data the run used and what it set aside."""

    images: int
    classes: list[ClassAudit]
    imbalance_ratio: float
    excluded: list[ExcludedClass]
    quarantined: list[Quarantined]
    duplicate_groups: list[DuplicateGroup]
    ledger_hash: str
    manifest_hash: str


class EpochRecord(TypedDict):
    """One epoch of training."""

    epoch: int
    phase: str  # "train" (head or whole model) or "fine_tune"
    loss: float
    val_loss: float
    accuracy: float
    val_accuracy: float
    seconds: float


class HistoryRecord(TypedDict):
    """``history.json``: every epoch, and the one whose weights were kept."""

    epochs: list[EpochRecord]
    best_epoch: int
    stopped_early: bool


class TrainRecord(TypedDict):
    """``train.json``: how the model was trained."""

    config_hash: str
    manifest_hash: str
    ledger_hash: str
    profile: str | None
    network: str
    batch_size: int
    image_size: list[int]  # [height, width, channels]
    mixed_precision: bool
    strategy: str
    epochs_run: int
    best_epoch: int
    seconds: float
    hardware: dict[str, Any]
    libraries: dict[str, str]


class ClassMetrics(TypedDict):
    """Per-class precision, recall, F1 and support on the test split."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


class Latency(TypedDict):
    """Latency in milliseconds over HTTP after warm-up, at a fixed concurrency."""

    p50: float
    p95: float
    p99: float
    mean: float
    concurrency: int
    samples_ms: list[float]


class Failure(TypedDict):
    """A misclassified test image with its Grad-CAM overlay (paths relative to the run folder)."""

    key: str
    true: str
    predicted: str
    probability: float
    image: str
    gradcam: str


class ModelResult(TypedDict):
    """One model's results on the test split, measured through the serving path."""

    skill_version: int
    code_version: str
    model_hash: str
    accuracy: float
    top_k: int
    top_k_accuracy: float
    per_class: list[ClassMetrics]
    confusion_matrix: list[list[int]]
    latency: Latency
    predictions: list[int]  # predicted label index per test image, in ``MetricsRecord.keys`` order
    failures: list[Failure]
    errors: int


class MetricsRecord(TypedDict):
    """``metrics.json``: candidate and baseline side by side on the same held-out images."""

    labels: list[str]
    keys: list[str]  # test image keys, in the order of ``truth`` and each model's ``predictions``
    truth: list[int]
    candidate: ModelResult
    baseline: ModelResult | None


class GateRule(TypedDict):
    """One rule of the gate with the values it compared."""

    name: str
    passed: bool
    candidate: float | None
    baseline: float | None
    limit: float | None
    reason: str


class GateRecord(TypedDict):
    """``gate.json``: the decision and one reason per rule."""

    passed: bool
    rules: list[GateRule]
    baseline_version: int | None
    override: NotRequired[dict[str, str] | None]


class StepResult(TypedDict):
    """One step of a cascade in the full-stack test."""

    skill: str
    accuracy: float
    skill_version: int
    code_version: str


class StackRecord(TypedDict):
    """``stack.json``: the full-stack test of the cascade."""

    end_to_end_accuracy: float
    steps: list[StepResult]
    latency: Latency
    inputs: int
    previous_end_to_end_accuracy: float | None


class StageOutcome(TypedDict):
    """How a stage ended."""

    outcome: str  # "passed", "failed", "skipped", "rejected"
    seconds: float
    message: str


class RunRecord(TypedDict):
    """``run.json``: everything needed to reproduce or investigate a model from its two numbers."""

    skill: str
    skill_version: int
    code_version: str
    config_hash: str
    manifest_hash: str | None
    skillmaker_version: str
    hardware: dict[str, Any]
    stages: dict[str, StageOutcome]
    warnings: list[str]


def write_record(path: Path, record: Any) -> None:
    """Write a record as sorted, indented JSON, atomically."""
    text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(path, text)


def read_record(path: Path) -> Any:
    """Give a record's JSON, or a user error naming the missing or broken file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (run the stage that writes it first)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON") from None
