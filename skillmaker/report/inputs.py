"""The records a report is built from, read from a run folder and checked against their schema.

Required: ``run.json``, ``train.json``, ``audit.json``, ``metrics.json``. Optional (the report says
so when one is absent): ``history.json``, ``gate.json``, ``stack.json``. A record that is missing,
is not JSON, lacks a key or holds a value of the wrong type is a user error naming the file and the
key path (``skillmaker.records`` validates every record it reads), so a broken stage upstream never
shows up as a traceback of the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skillmaker import records
from skillmaker.errors import UserError
from skillmaker.records import (
    AuditRecord,
    GateRecord,
    HistoryRecord,
    MetricsRecord,
    ModelResult,
    RunRecord,
    StackRecord,
    TrainRecord,
    read_record,
)

__all__ = ["REQUIRED", "ReportInputs", "load_inputs"]

REQUIRED: tuple[str, ...] = (records.RUN, records.TRAIN, records.AUDIT, records.METRICS)


@dataclass(frozen=True)
class ReportInputs:
    """Every record of one run that the report shows; optional ones are None when absent."""

    run_dir: Path
    run: RunRecord
    train: TrainRecord
    audit: AuditRecord
    metrics: MetricsRecord
    history: HistoryRecord | None
    gate: GateRecord | None
    stack: StackRecord | None


def _load(run_dir: Path, name: str, kind: Any, *, required: bool) -> Any:
    path = run_dir / name
    if not path.is_file():
        if required:
            raise UserError(f"{path}: missing (the report needs it; run the stage that writes it)")
        return None
    return read_record(path, kind)


def _check_result(path: Path, result: ModelResult, labels: list[str], which: str) -> None:
    size = len(labels)
    matrix = result["confusion_matrix"]
    if len(matrix) != size or any(len(row) != size for row in matrix):
        raise UserError(
            f"{path}: {which}.confusion_matrix: must be {size} x {size} "
            "(one row and column per label)"
        )
    unknown = sorted({item["label"] for item in result["per_class"]} - set(labels))
    if unknown:
        raise UserError(f"{path}: {which}.per_class: labels not in labels: {unknown[:5]}")
    known = set(labels)
    for index, failure in enumerate(result["failures"]):
        for name in (failure["true"], failure["predicted"]):
            if name not in known:
                raise UserError(f"{path}: {which}.failures[{index}]: label {name!r} not in labels")


def _check_metrics(path: Path, metrics: MetricsRecord) -> None:
    labels = metrics["labels"]
    if not labels:
        raise UserError(f"{path}: labels: empty (no class was tested)")
    if len(set(labels)) != len(labels):
        raise UserError(f"{path}: labels: repeated names")
    _check_result(path, metrics["candidate"], labels, "candidate")
    if metrics["baseline"] is not None:
        _check_result(path, metrics["baseline"], labels, "baseline")


def load_inputs(run_dir: Path) -> ReportInputs:
    """Give the records of the run in ``run_dir``, checked; a user error names a bad one."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    run: RunRecord = _load(run_dir, records.RUN, RunRecord, required=True)
    train: TrainRecord = _load(run_dir, records.TRAIN, TrainRecord, required=True)
    audit: AuditRecord = _load(run_dir, records.AUDIT, AuditRecord, required=True)
    metrics: MetricsRecord = _load(run_dir, records.METRICS, MetricsRecord, required=True)
    _check_metrics(run_dir / records.METRICS, metrics)
    return ReportInputs(
        run_dir=run_dir,
        run=run,
        train=train,
        audit=audit,
        metrics=metrics,
        history=_load(run_dir, records.HISTORY, HistoryRecord, required=False),
        gate=_load(run_dir, records.GATE, GateRecord, required=False),
        stack=_load(run_dir, records.STACK, StackRecord, required=False),
    )
