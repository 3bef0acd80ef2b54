"""The records a report is built from, read from a run folder and checked against their schema.

Required: ``run.json``, ``train.json``, ``audit.json``, ``metrics.json``. Optional (the report says
so when one is absent): ``history.json``, ``gate.json``, ``stack.json``. A record that is missing,
is not JSON, lacks a key or holds a value of the wrong type is a user error naming the file and the
key path, so a broken stage upstream never shows up as a traceback of the report.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired, Union

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

__all__ = ["REQUIRED", "ReportInputs", "check_record", "load_inputs"]

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


def _type_name(kind: Any) -> str:
    if isinstance(kind, type):
        return {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
        }.get(kind.__name__, f"an object ({kind.__name__})")
    return str(kind)


def _check_not_required(value: Any, kind: Any, where: str, problems: list[str]) -> None:
    _check(value, typing.get_args(kind)[0], where, problems)


def _check_union(value: Any, kind: Any, where: str, problems: list[str]) -> None:
    options = typing.get_args(kind)
    if value is None and type(None) in options:
        return
    rest = [option for option in options if option is not type(None)]
    if len(rest) == 1:
        _check(value, rest[0], where, problems)
        return
    for option in rest:
        trial: list[str] = []
        _check(value, option, where, trial)
        if not trial:
            return
    problems.append(f"{where}: expected one of {', '.join(map(_type_name, rest))}")


def _check_literal(value: Any, kind: Any, where: str, problems: list[str]) -> None:
    if value not in typing.get_args(kind):
        problems.append(f"{where}: must be one of {typing.get_args(kind)} (got {value!r:.60})")


def _check_list(value: Any, kind: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list (got {type(value).__name__})")
        return
    (item,) = typing.get_args(kind)
    for index, element in enumerate(value):
        _check(element, item, f"{where}[{index}]", problems)


def _check_dict(value: Any, kind: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{where}: expected an object (got {type(value).__name__})")
        return
    _, item = typing.get_args(kind)
    for key, element in value.items():
        _check(element, item, f"{where}.{key}", problems)


def _check_scalar(value: Any, kind: Any, where: str, problems: list[str]) -> None:
    # JSON has one number type: an integral float field may hold an int, never a bool.
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        problems.append(f"{where}: expected {_type_name(kind)} (got {value!r:.60})")


_Checker = Callable[[Any, Any, str, list[str]], None]


def _check(value: Any, kind: Any, where: str, problems: list[str]) -> None:
    if kind is Any:
        return
    checkers: dict[Any, _Checker] = {
        NotRequired: _check_not_required,
        Union: _check_union,
        types.UnionType: _check_union,
        Literal: _check_literal,
        list: _check_list,
        dict: _check_dict,
    }
    if typing.is_typeddict(kind):
        _check_typeddict(value, kind, where, problems)
    else:
        checkers.get(typing.get_origin(kind), _check_scalar)(value, kind, where, problems)


def _check_typeddict(value: Any, kind: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{where or 'the record'}: expected an object (got {type(value).__name__})")
        return
    hints = typing.get_type_hints(kind, include_extras=True)
    for key, hint in hints.items():
        path = f"{where}.{key}" if where else key
        if key not in value:
            if typing.get_origin(hint) is not NotRequired:
                problems.append(f"{path}: missing")
            continue
        _check(value[key], hint, path, problems)


def check_record(path: Path, value: Any, kind: Any) -> None:
    """Check a record against its TypedDict; a user error lists each wrong key path."""
    problems: list[str] = []
    _check_typeddict(value, kind, "", problems)
    if problems:
        shown = problems[:10]
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise UserError("\n".join(f"{path}: {problem}" for problem in shown) + more)


def _load(run_dir: Path, name: str, kind: Any, *, required: bool) -> Any:
    path = run_dir / name
    if not path.is_file():
        if required:
            raise UserError(f"{path}: missing (the report needs it; run the stage that writes it)")
        return None
    value = read_record(path)
    check_record(path, value, kind)
    return value


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
