"""A run's files: kept in the local run folder and mirrored to ``runs/<version>/`` in the store."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any, cast

from skillmaker import __version__
from skillmaker.adapters import git
from skillmaker.adapters.cas import compare_and_swap
from skillmaker.config import config_hash
from skillmaker.context import RunPointer, SkillContext
from skillmaker.domain.layout import run_key
from skillmaker.domain.outcome import Outcome
from skillmaker.domain.records import record_problems
from skillmaker.domain.redact import redact, secrets_in
from skillmaker.domain.resume import ResumeDecision, RunBinding, decide_resume
from skillmaker.errors import ProblemsError, UserError
from skillmaker.locks import exclusive
from skillmaker.records import RUN, RunRecord, StageOutcome, dumps_record, read_record, write_record


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


def _with_outcome(
    run: RunRecord, stage: str, outcome: Outcome, seconds: float, secrets: tuple[str, ...]
) -> RunRecord:
    entry: StageOutcome = {
        "outcome": outcome.kind,
        "seconds": round(seconds, 3),
        "message": redact(outcome.message, secrets),
    }
    run["stages"][stage] = entry
    warnings = [redact(w, secrets) for w in outcome.warnings]
    run["warnings"].extend(w for w in warnings if w not in run["warnings"])
    return run


def record_outcome(ctx: SkillContext, stage: str, outcome: Outcome, *, seconds: float) -> RunRecord:
    """Give ``run.json`` after recording how a stage ended and the warnings it raised.

    Only the stage runner (``skillmaker.pipeline.execute``) calls this. The store's copy is the
    truth, changed by compare-and-swap so that agents recording at the same time lose nothing;
    the local copy is written from it. A run the store has never seen starts from the local copy.
    """
    pointer = ctx.current_run()
    path = ctx.run_dir() / RUN
    key = run_key(ctx.name, pointer.skill_version, RUN)

    def start() -> RunRecord:
        if path.is_file():
            return cast(RunRecord, read_record(path))
        return new_run_record(ctx, pointer)

    def change(current: RunRecord | None) -> RunRecord:
        run = current if current is not None else start()
        return _with_outcome(run, stage, outcome, seconds, secrets_in(ctx.env))

    def decode(data: bytes) -> RunRecord:
        record = json.loads(data)
        problems = record_problems(RunRecord, record)
        if problems:
            raise ProblemsError.from_lines(f"{ctx.artifacts().uri}/{key}", problems)
        return cast(RunRecord, record)

    with exclusive(
        ctx.workspace.root / "locks" / f"run-{pointer.skill_version}.lock",
        what=f"recording run.json of {ctx.name}",
        wait=True,
    ):
        run = compare_and_swap(
            ctx.artifacts(),
            key,
            decode=decode,
            encode=lambda record: dumps_record(record).encode("utf-8"),
            change=change,
        )
        assert run is not None  # change always gives a record
        write_record(path, run)
    return run


def head_binding(ctx: SkillContext) -> RunBinding:
    """Give the commit (HEAD) and config hash a run started now would be bound to."""
    if not git.is_repo(ctx.repo) or not git.has_commit(ctx.repo):
        raise UserError(f"{ctx.repo}: not a git repository with a commit; commit the skill first")
    return RunBinding(git.head_commit(ctx.repo), config_hash(ctx.config))


def resume_decision(ctx: SkillContext) -> ResumeDecision | None:
    """Give whether the current run may go on at HEAD and this config (None: no current run)."""
    if not ctx.workspace.current.is_file():
        return None
    pointer = ctx.current_run()
    path = ctx.workspace.run_dir(pointer.skill_version) / RUN
    recorded = read_record(path).get("config_hash") if path.is_file() else None
    run = RunBinding(pointer.code_version, recorded)
    return decide_resume(pointer.skill_version, run, head_binding(ctx))


def require_own_run(ctx: SkillContext) -> None:
    """Refuse (exit 2) when the current run is of another commit or config than the repo's now."""
    decision = resume_decision(ctx)
    if decision is not None and not decision.resume:
        raise UserError(
            f"{ctx.workspace.current}: {decision.reason}; a stage acts only on a run of its own "
            "commit and config (start one with `skillmaker version`, or check out its commit)"
        )
