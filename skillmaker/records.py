"""Reading and writing run records: one serialiser, validated on the way in and out.

The record types live in ``skillmaker.domain.records`` (pure); they are re-exported here so a stage
imports the type and the reader from one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skillmaker.domain.records import (
    AUDIT,
    DEFINITION,
    GATE,
    HISTORY,
    LABELS,
    METRICS,
    MODEL,
    NORMALISATION,
    RECORD_TYPES,
    REPORT,
    RUN,
    STACK,
    STAMP,
    TRAIN,
    AuditRecord,
    ClassAudit,
    ClassMetrics,
    DuplicateGroup,
    EpochRecord,
    ExcludedClass,
    Failure,
    GateRecord,
    GateRule,
    HistoryRecord,
    Latency,
    MetricsRecord,
    ModelResult,
    Quarantined,
    RunRecord,
    SplitCounts,
    StackRecord,
    StageOutcome,
    StepResult,
    TrainRecord,
    dumps_record,
    record_problems,
)
from skillmaker.domain.redact import redact
from skillmaker.errors import ProblemsError, UserError
from skillmaker.fileio import write_atomic

__all__ = [
    "AUDIT",
    "DEFINITION",
    "GATE",
    "HISTORY",
    "LABELS",
    "METRICS",
    "MODEL",
    "NORMALISATION",
    "REPORT",
    "RUN",
    "STACK",
    "STAMP",
    "TRAIN",
    "AuditRecord",
    "ClassAudit",
    "ClassMetrics",
    "DuplicateGroup",
    "EpochRecord",
    "ExcludedClass",
    "Failure",
    "GateRecord",
    "GateRule",
    "HistoryRecord",
    "Latency",
    "MetricsRecord",
    "ModelResult",
    "Quarantined",
    "RunRecord",
    "SplitCounts",
    "StackRecord",
    "StageOutcome",
    "StepResult",
    "TrainRecord",
    "dumps_record",
    "read_record",
    "write_record",
]


def _check(path: Path, record: Any, kind: Any) -> None:
    kind = kind if kind is not None else RECORD_TYPES.get(path.name)
    if kind is None:
        return
    problems = record_problems(kind, record)
    if problems:
        shown = problems[:10]
        if len(problems) > 10:
            shown.append(f"... and {len(problems) - 10} more")
        raise ProblemsError.from_lines(str(path), shown)


def write_record(path: Path, record: Any, kind: Any = None) -> None:
    """Write a record atomically after validating it (by ``kind``, else by its file name)."""
    _check(path, record, kind)
    write_atomic(path, redact(dumps_record(record)))  # no credentials in URLs, ever


def read_record(path: Path, kind: Any = None) -> Any:
    """Give a record's JSON, validated; a user error names the missing, broken or invalid file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (run the stage that writes it first)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    _check(path, record, kind)
    return record
