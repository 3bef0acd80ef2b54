"""A run's files: kept in the local run folder and mirrored to ``runs/<version>/`` in the store."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any, cast

from skillmaker import __version__
from skillmaker.config import config_hash
from skillmaker.context import RunPointer, SkillContext
from skillmaker.domain.layout import run_key
from skillmaker.errors import UserError
from skillmaker.records import RUN, RunRecord, StageOutcome, write_record


def hardware() -> dict[str, Any]:
    """Give the machine a stage runs on, as recorded in ``run.json``."""
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count() or 0,
    }


def new_run_record(ctx: SkillContext, pointer: RunPointer) -> RunRecord:
    """Give the ``run.json`` of a run that has only just been given its version."""
    return {
        "skill": ctx.name,
        "skill_version": pointer.skill_version,
        "code_version": pointer.code_version,
        "config_hash": config_hash(ctx.config),
        "manifest_hash": None,
        "skillmaker_version": __version__,
        "hardware": hardware(),
        "stages": {},
        "warnings": [],
    }


def save_run_file(ctx: SkillContext, name: str, record: Any) -> None:
    """Write a record into the current run folder and mirror it to the store."""
    pointer = ctx.current_run()
    path = ctx.run_dir() / name
    write_record(path, record)
    ctx.artifacts().upload(path, run_key(ctx.name, pointer.skill_version, name))


def record_stage(
    ctx: SkillContext,
    stage: str,
    outcome: str,
    *,
    seconds: float,
    message: str,
    warnings: list[str] | None = None,
) -> RunRecord:
    """Give ``run.json`` after recording how a stage ended (and any warnings it raised)."""
    try:
        run = cast(RunRecord, ctx.record(RUN))
    except UserError:
        run = new_run_record(ctx, ctx.current_run())
    entry: StageOutcome = {"outcome": outcome, "seconds": round(seconds, 3), "message": message}
    run["stages"][stage] = entry
    run["warnings"].extend(warnings or [])
    save_run_file(ctx, RUN, run)
    return run
