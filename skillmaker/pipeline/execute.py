"""The stage runner: runs one stage under the skill's lock and alone records how it ended.

Every stage goes through ``execute_stage``, whether Jenkins runs ``skillmaker train`` directly or
``skillmaker run`` starts it as a child process. The stage gives an ``Outcome`` (or raises); the
outcome, its seconds and its warnings go into ``run.json`` here and nowhere else.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path

from skillmaker.context import SkillContext
from skillmaker.domain.outcome import Outcome
from skillmaker.errors import SkillmakerError, describe, exit_code_of
from skillmaker.fileio import write_atomic
from skillmaker.locks import exclusive, holder_pid
from skillmaker.runs import record_outcome

LOCK_ENV = "SKILLMAKER_RUN_LOCK"
"""Set by ``skillmaker run`` for its stages: the pid of the runner that holds the skill's lock."""

OUTCOME_ENV = "SKILLMAKER_OUTCOME_FILE"
"""Set by ``skillmaker run`` for its stages: where the stage leaves its outcome for the runner."""

StageBody = Callable[[], Outcome | None]


def _lock_held_for_us(ctx: SkillContext) -> bool:
    runner = ctx.env.get(LOCK_ENV, "")
    return (
        runner.isdigit()
        and int(runner) == os.getppid()
        and holder_pid(ctx.workspace.lock) == int(runner)
    )


def skill_lock(ctx: SkillContext, *, wait: bool = False) -> AbstractContextManager[None]:
    """Give the lock that keeps one run (or stage) of a skill at a time in this workspace."""
    if _lock_held_for_us(ctx):
        return nullcontext()
    return exclusive(ctx.workspace.lock, what=f"a run of skill {ctx.name}", wait=wait)


def record(ctx: SkillContext, stage: str, outcome: Outcome, seconds: float) -> None:
    """Record a stage's outcome in the current run, when there is one (else say why not)."""
    handover = ctx.env.get(OUTCOME_ENV)
    if handover:
        write_atomic(Path(handover), json.dumps(asdict(outcome)))
    if stage == "version" and outcome.kind != "passed":
        return  # no run was made: current.json, if any, names an earlier run
    if not ctx.workspace.current.is_file():
        return
    try:
        record_outcome(ctx, stage, outcome, seconds=seconds)
    except SkillmakerError as exc:
        ctx.say(f"warning: run.json not updated with the outcome of {stage}: {exc}")


def handed_over(path: Path) -> Outcome | None:
    """Give the outcome a stage left at ``path`` for its runner, or None when it left none."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Outcome(raw["kind"], raw["message"], int(raw["exit_code"]), tuple(raw["warnings"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def execute_stage(ctx: SkillContext, stage: str, body: StageBody) -> Outcome:
    """Give the outcome of running ``body`` as the stage ``stage``, after recording it.

    An exception is recorded as a failed outcome (with its exit code) and raised again, so that
    the command line, the one place where exceptions become exit codes, still reports it.
    """
    with skill_lock(ctx):
        started = time.monotonic()
        try:
            outcome = body() or Outcome.passed()
        except BaseException as exc:
            failed = Outcome.failed(describe(exc).splitlines()[0], exit_code_of(exc))
            record(ctx, stage, failed, time.monotonic() - started)
            raise
        record(ctx, stage, outcome, time.monotonic() - started)
        return outcome
