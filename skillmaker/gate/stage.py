"""The gate stage: judge the current run's measured results and write ``gate.json``."""

from __future__ import annotations

from datetime import UTC
from typing import cast

from skillmaker.adapters import git
from skillmaker.context import SkillContext
from skillmaker.domain.gate import GateDecision, decide, format_table
from skillmaker.errors import UserError
from skillmaker.records import GATE, METRICS, MetricsRecord
from skillmaker.registry import Clock, utc_now
from skillmaker.runs import save_run_file


def who(ctx: SkillContext) -> str:
    """Give who is acting: ``$USER``, else the git identity of the skill repo, else "unknown"."""
    user = ctx.env.get("USER", "").strip()
    if user:
        return user
    return git.identity(ctx.repo) or "unknown"


def gate_stage(
    ctx: SkillContext,
    *,
    accept_regression: bool = False,
    reason: str | None = None,
    clock: Clock = utc_now,
) -> GateDecision:
    """Give the gate's decision on the current run, written to ``gate.json`` and printed.

    A rejection is returned, not raised; the caller decides the exit code. Nothing outside the
    run's own files changes here: the registry learns about a run only when it is deployed.
    """
    if accept_regression and not (reason and reason.strip()):
        raise UserError('--accept-regression needs --reason "why the regression is acceptable"')
    if reason and not accept_regression:
        raise UserError("--reason goes with --accept-regression")
    pointer = ctx.current_run()
    metrics = cast(MetricsRecord, ctx.record(METRICS))
    measured = int(metrics["candidate"]["skill_version"])
    if measured != pointer.skill_version:
        raise UserError(
            f"{ctx.run_dir() / METRICS}: measures skill version {measured}, but the current run is "
            f"{pointer.skill_version}; run `skillmaker evaluate` again"
        )
    decision = decide(metrics, ctx.config.gate)
    if accept_regression and reason:
        if decision.rules_passed:
            ctx.say("every rule passed; --accept-regression has nothing to override")
        else:
            at = clock().astimezone(UTC).isoformat(timespec="seconds")
            decision = decision.accepted_by(who(ctx), reason.strip(), at)
    save_run_file(ctx, GATE, decision.to_record())
    ctx.say(format_table(decision))
    return decision
