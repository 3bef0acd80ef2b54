"""Whether a run may go on: a run is bound to one commit of the skill repo and one config.

A stage that acted on a run of another commit or config would record, in that run's files, a
model that the run's code version and config hash do not describe. So the pipeline resumes a run
only when HEAD and the config hash are the run's own, and starts a new version otherwise; a stage
invoked by hand refuses such a run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunBinding:
    """The commit and config hash a run was started from (``run.json``), or those of now."""

    code_version: str
    config_hash: str | None


@dataclass(frozen=True)
class ResumeDecision:
    """Whether the current run may go on, and why (or why not)."""

    resume: bool
    reason: str


def decide_resume(skill_version: int, run: RunBinding, now: RunBinding) -> ResumeDecision:
    """Give whether run ``skill_version`` (bound to ``run``) may go on at ``now``.

    A run whose record has no config hash (written before runs recorded one) is judged by its
    commit alone.
    """
    if run.code_version != now.code_version:
        return ResumeDecision(
            False,
            f"run {skill_version} is of commit {run.code_version[:7]}, "
            f"but HEAD is {now.code_version[:7]}",
        )
    if run.config_hash is not None and run.config_hash != now.config_hash:
        return ResumeDecision(
            False,
            f"run {skill_version} was started with config {run.config_hash[:12]}, "
            f"but skill.json is now {str(now.config_hash)[:12]} (uncommitted edits?)",
        )
    return ResumeDecision(True, f"run {skill_version} is of HEAD {now.code_version[:7]}")
