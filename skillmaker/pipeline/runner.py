"""``skillmaker run``: the stages in order, one log per stage, a summary, resumable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from skillmaker.context import SkillContext
from skillmaker.deploy.checks import deploy_skip_reason
from skillmaker.domain.outcome import FINISHED, Outcome
from skillmaker.domain.redact import redact, secrets_in
from skillmaker.domain.stages import STAGE_NAMES, STAGES, Stage, stages_between
from skillmaker.errors import ExitCode, UserError
from skillmaker.pipeline.execute import LOCK_ENV, OUTCOME_ENV, handed_over, record, skill_lock
from skillmaker.processes import die_with_parent, end_group
from skillmaker.records import RUN, read_record
from skillmaker.runs import resume_decision


@dataclass(frozen=True)
class StageRun:
    """How one stage ended in this invocation."""

    stage: str
    outcome: str
    seconds: float
    exit_code: int


StageCommand = Callable[[Stage, Path], list[str]]


def stage_argv(stage: Stage, repo: Path, profile: str | None = None) -> list[str]:
    """Give the command line that runs a stage of the skill repo in a fresh Python process."""
    argv = [sys.executable, "-m", "skillmaker", *stage.argv, "--repo", str(repo)]
    if stage.name == "train" and profile:
        argv += ["--profile", profile]
    return argv


def _pending_stages(ctx: SkillContext) -> tuple[Stage, ...] | None:
    """Give the stages still to run in the current run, or None when there is nothing to resume."""
    if not ctx.workspace.current.is_file():
        return None
    run_file = ctx.run_dir() / RUN
    if not run_file.is_file():
        return None
    outcomes: Mapping[str, Any] = read_record(run_file)["stages"]
    if any(o.get("outcome") == "rejected" for o in outcomes.values()):
        return None  # a rejected candidate is final: the next run is a new version
    decision = resume_decision(ctx)
    if decision is not None and not decision.resume:
        ctx.say(f"starting a new version: {decision.reason}")
        return None
    main = [s for s in STAGES if not s.always]
    for index, item in enumerate(main):
        if outcomes.get(item.name, {}).get("outcome") not in FINISHED:
            return tuple(main[index:]) + tuple(s for s in STAGES if s.always)
    return None


def _run_stage(
    ctx: SkillContext, stage: Stage, argv: Sequence[str], log: Path, handover: Path
) -> tuple[int, str]:
    log.parent.mkdir(parents=True, exist_ok=True)
    handover.unlink(missing_ok=True)
    last = ""
    with log.open("w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            list(argv),
            cwd=ctx.repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={
                **ctx.env,
                "PYTHONUNBUFFERED": "1",
                LOCK_ENV: str(os.getpid()),
                OUTCOME_ENV: str(handover),
            },
            start_new_session=True,  # its own process group, ended with it
            preexec_fn=die_with_parent,  # noqa: PLW1509 - the child is ours alone, no threads fork it
        )
        try:
            assert process.stdout is not None
            secrets = secrets_in(ctx.env)
            for raw in process.stdout:
                line = redact(raw, secrets)
                handle.write(line)
                handle.flush()
                ctx.say(f"[{stage.name}] {line.rstrip()}")
                if line.strip():
                    last = line.strip()
            code = process.wait()
        finally:
            end_group(process)  # whatever the stage left running, and the stage itself if we stop
    return code, last


def run_pipeline(
    ctx: SkillContext,
    *,
    start: str | None = None,
    until: str | None = None,
    profile: str | None = None,
    wait: bool = False,
    argv_for: Callable[[Stage, Path, str | None], list[str]] = stage_argv,
) -> list[StageRun]:
    """Give how each stage ended after running the pipeline's stages locally, as CI runs them.

    Without ``start`` a run resumes at the first stage of the current run that did not finish,
    or starts a new run at ``version``. A failing stage stops the run (its exit code is kept),
    but the stages that always run (notify, cleanup) still run.
    """
    for name in (start, until):
        if name is not None and name not in STAGE_NAMES:
            raise UserError(
                f"--from/--until: unknown stage {name!r} (stages: {', '.join(STAGE_NAMES)})"
            )
    with skill_lock(ctx, wait=wait):
        if start is None and until is None:
            pending = _pending_stages(ctx)
            plan = pending if pending is not None else STAGES
        else:
            plan = stages_between(start, until)
        if plan and plan[0].name != "version" and not ctx.workspace.current.is_file():
            raise UserError(f"{ctx.workspace.current}: no current run; start with --from version")
        if plan and plan[0].name != "version":
            ctx.say(f"resuming run {ctx.current_run().skill_version} at stage {plan[0].name}")
        return _execute(ctx, plan, profile, argv_for)


def _execute(
    ctx: SkillContext,
    plan: Sequence[Stage],
    profile: str | None,
    argv_for: Callable[[Stage, Path, str | None], list[str]],
) -> list[StageRun]:
    results: list[StageRun] = []
    stopped = False
    for stage in plan:
        if stopped and not stage.always:
            continue
        started = time.monotonic()
        skip = deploy_skip_reason(ctx) if stage.name == "deploy" else None
        if skip is not None:  # other branches run up to the gate and the report, never deploy
            ctx.say(f"== deploy: skipped: {skip}")
            record(ctx, stage.name, Outcome.skipped(skip), 0.0)
            results.append(StageRun(stage.name, "skipped", 0.0, ExitCode.OK))
            continue
        if stage.name == "version" or not ctx.workspace.current.is_file():
            log = ctx.workspace.root / "logs" / f"{stage.name}.log"
        else:
            log = ctx.run_dir() / "logs" / f"{stage.name}.log"
        ctx.say(f"== {stage.name}: {stage.summary}")
        handover = ctx.workspace.root / "logs" / f"{stage.name}.outcome.json"
        argv = argv_for(stage, ctx.repo, profile)
        if stage.name == "notify" and stopped:  # told even when no version was allocated
            failed = any(r.outcome == "failed" for r in results)
            argv = [*argv, "--build-result", "FAILURE" if failed else "UNSTABLE"]
        code, last = _run_stage(ctx, stage, argv, log, handover)
        if stage.name == "version" and code == ExitCode.OK:
            moved = ctx.run_dir() / "logs" / "version.log"
            moved.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(log), moved)
        seconds = time.monotonic() - started
        outcome = handed_over(handover)
        if outcome is None:  # the stage did not record itself (killed, or not a stage command)
            if code < 0:
                last = f"killed by signal {-code}; last output: {last}"
            outcome = Outcome.of_exit_code(code if code >= 0 else ExitCode.INTERNAL_ERROR, last)
            record(ctx, stage.name, outcome, seconds)
        handover.unlink(missing_ok=True)
        results.append(StageRun(stage.name, outcome.kind, seconds, outcome.exit_code))
        if code != ExitCode.OK:
            stopped = True
    return results


def print_summary(results: Sequence[StageRun], out: TextIO) -> None:
    """Print the table of stages, outcomes and seconds that ends a run."""
    width = max((len(r.stage) for r in results), default=5)
    print(f"\n{'stage'.ljust(width)}  outcome   seconds", file=out)
    for r in results:
        print(f"{r.stage.ljust(width)}  {r.outcome.ljust(8)}  {r.seconds:7.1f}", file=out)
    total = sum(r.seconds for r in results)
    print(f"{'total'.ljust(width)}            {total:7.1f}", file=out)


def exit_code_of(results: Sequence[StageRun]) -> int:
    """Give the exit code of a run: that of the first stage that did not pass."""
    for r in results:
        if r.exit_code != ExitCode.OK:
            return r.exit_code
    return ExitCode.OK
