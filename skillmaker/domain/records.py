"""The JSON records a run leaves in its run folder: the contract between stages and the report.

Each record is a ``TypedDict`` so producers and readers agree on keys, and pydantic validates it
(``validate_record``) whenever ``skillmaker.records`` reads or writes one, so a damaged or hand-edited
record is refused with the key path of what is wrong.
"""

from __future__ import annotations

import json
from typing import Any, NotRequired

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

# A record is checked strictly: a hand edit that drops a key or changes a type is refused. Keys a
# newer skillmaker added are ignored, so an older reader still reads a newer record.
STRICT = ConfigDict(extra="ignore", strict=True)


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


@with_config(STRICT)
class SplitCounts(TypedDict):
    """Images of one class in each split."""

    train: int
    val: int
    test: int


@with_config(STRICT)
class ClassAudit(TypedDict):
    """A kept class and its counts."""

    name: str
    counts: SplitCounts


@with_config(STRICT)
class ExcludedClass(TypedDict):
    """A class left out, with its image count and why (``too few examples`` or ``excluded by config``)."""

    name: str
    count: int
    reason: str


@with_config(STRICT)
class Quarantined(TypedDict):
    """A file that was not used: its object key and why (empty, not an image, truncated, ...)."""

    key: str
    reason: str


@with_config(STRICT)
class DuplicateGroup(TypedDict):
    """Images merged into one group because they are the same picture."""

    group: str
    kind: str  # "exact" or "near"
    members: list[str]


@with_config(STRICT)
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


@with_config(STRICT)
class EpochRecord(TypedDict):
    """One epoch of training."""

    epoch: int
    phase: str  # "train" (head or whole model) or "fine_tune"
    loss: float
    val_loss: float
    accuracy: float
    val_accuracy: float
    seconds: float


@with_config(STRICT)
class HistoryRecord(TypedDict):
    """``history.json``: every epoch, and the one whose weights were kept."""

    epochs: list[EpochRecord]
    best_epoch: int
    stopped_early: bool


@with_config(STRICT)
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


@with_config(STRICT)
class ClassMetrics(TypedDict):
    """Per-class precision, recall, F1 and support on the test split."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@with_config(STRICT)
class Latency(TypedDict):
    """Latency in milliseconds over HTTP after warm-up, at a fixed concurrency."""

    p50: float
    p95: float
    p99: float
    mean: float
    concurrency: int
    samples_ms: list[float]


@with_config(STRICT)
class Failure(TypedDict):
    """A misclassified test image with its Grad-CAM overlay (paths relative to the run folder)."""

    key: str
    true: str
    predicted: str
    probability: float
    image: str
    gradcam: str


@with_config(STRICT)
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


@with_config(STRICT)
class MetricsRecord(TypedDict):
    """``metrics.json``: candidate and baseline side by side on the same held-out images."""

    labels: list[str]
    keys: list[str]  # test image keys, in the order of ``truth`` and each model's ``predictions``
    truth: list[int]
    candidate: ModelResult
    baseline: ModelResult | None


@with_config(STRICT)
class GateRule(TypedDict):
    """One rule of the gate with the values it compared."""

    name: str
    passed: bool
    candidate: float | None
    baseline: float | None
    limit: float | None
    reason: str


@with_config(STRICT)
class GateRecord(TypedDict):
    """``gate.json``: the decision and one reason per rule."""

    passed: bool
    rules: list[GateRule]
    baseline_version: int | None
    override: NotRequired[dict[str, str] | None]


@with_config(STRICT)
class StepResult(TypedDict):
    """One step of a cascade in the full-stack test."""

    skill: str
    accuracy: float
    skill_version: int
    code_version: str


@with_config(STRICT)
class StackRecord(TypedDict):
    """``stack.json``: the full-stack test of the cascade."""

    end_to_end_accuracy: float
    steps: list[StepResult]
    latency: Latency
    inputs: int
    previous_end_to_end_accuracy: float | None


@with_config(STRICT)
class StageOutcome(TypedDict):
    """How a stage ended."""

    outcome: str  # "passed", "failed", "skipped", "rejected"
    seconds: float
    message: str


@with_config(STRICT)
class RunPointerRecord(TypedDict):
    """``current.json``: the run the stages of a workspace act on (what Jenkins stashes)."""

    skill_version: int
    code_version: str


@with_config(STRICT)
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


RECORD_TYPES: dict[str, Any] = {
    RUN: RunRecord,
    AUDIT: AuditRecord,
    TRAIN: TrainRecord,
    HISTORY: HistoryRecord,
    METRICS: MetricsRecord,
    GATE: GateRecord,
    STACK: StackRecord,
}
"""The record type of each file name that is validated whenever it is read or written."""

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def key_path(loc: tuple[int | str, ...]) -> str:
    """Give a pydantic error location as a key path: ``stages.train.seconds``, ``rules[2].name``."""
    text = ""
    for item in loc:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text or "(top level)"


_EXPECTED = {
    "float_type": "a number",
    "int_type": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
}


def _problem(error: Any) -> str:
    where = key_path(tuple(error["loc"]))
    if error["type"] == "missing":
        return f"{where}: missing"
    expected = _EXPECTED.get(error["type"])
    if expected is not None:
        return f"{where}: expected {expected} (got {error['input']!r:.60})"
    return f"{where}: {error['msg'][:1].lower()}{error['msg'][1:]}"


def record_problems(kind: Any, data: Any) -> list[str]:
    """Give one line per problem (``key.path: what``) of ``data`` as a record of ``kind``."""
    try:
        _adapter(kind).validate_python(data)
    except ValidationError as exc:
        return [_problem(e) for e in exc.errors()]
    return []


def dumps_record(record: Any) -> str:
    """Give a record as JSON text: sorted keys, indented, UTF-8, one newline at the end.

    The one serialiser of every record, so the same facts always give the same bytes.
    """
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
