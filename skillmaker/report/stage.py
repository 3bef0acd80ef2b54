"""The report stage: build the current run's PDF and store it beside the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skillmaker import records
from skillmaker.context import SkillContext
from skillmaker.domain.layout import run_key
from skillmaker.errors import UserError
from skillmaker.report.build import CONFUSION_CSV, build_report
from skillmaker.report.inputs import REQUIRED, load_inputs

__all__ = ["StoredReport", "report_stage"]


@dataclass(frozen=True)
class StoredReport:
    """The report of a run: its local files and the store keys they were uploaded to."""

    pdf: Path
    csv: Path
    pdf_key: str
    csv_key: str


def _fetch_inputs(context: SkillContext) -> None:
    """Fetch from the store the records this agent lacks (CI runs each stage on a fresh one)."""
    for name in REQUIRED:
        context.record(name)  # a user error names a record missing here and in the store
    for name in (records.HISTORY, records.GATE, records.STACK):
        try:
            context.record(name)
        except UserError:
            continue  # optional: the report says it is absent


def report_stage(context: SkillContext) -> StoredReport:
    """Give the stored report of the current run, built from its run folder and uploaded."""
    pointer = context.current_run()
    run_dir = context.run_dir()
    _fetch_inputs(context)
    run = load_inputs(run_dir).run
    if run["skill"] != context.name or int(run["skill_version"]) != pointer.skill_version:
        raise UserError(
            f"{run_dir / records.RUN}: records skill {run['skill']!r} "
            f"version {run['skill_version']}, "
            f"but the current run is {context.name!r} version {pointer.skill_version}"
        )
    pdf = build_report(run_dir, run_dir / records.REPORT, config=context.config)
    csv = pdf.with_name(CONFUSION_CSV)
    store = context.artifacts()
    pdf_key = run_key(context.name, pointer.skill_version, records.REPORT)
    csv_key = run_key(context.name, pointer.skill_version, CONFUSION_CSV)
    store.upload(csv, csv_key)
    store.upload(pdf, pdf_key)
    return StoredReport(pdf=pdf, csv=csv, pdf_key=pdf_key, csv_key=csv_key)
