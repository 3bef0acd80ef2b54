"""The version stage: allocate the run's skill version and record the commit it is built from."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from skillmaker.adapters import git
from skillmaker.context import RunPointer, SkillContext
from skillmaker.domain.versions import Flavor, ImageTag, image_tags
from skillmaker.errors import UserError
from skillmaker.records import RUN
from skillmaker.registry import allocate_version
from skillmaker.runs import new_run_record, resume_decision, save_run_file


@dataclass(frozen=True)
class VersionResult:
    """The run the version stage allocated and the image tags it will be built under."""

    pointer: RunPointer
    tags: dict[Flavor, ImageTag]
    warnings: tuple[str, ...]


def code_version(repo: Path) -> str:
    """Give the commit of the skill repo, or a user error when there is none to give."""
    if not git.is_repo(repo):
        raise UserError(
            f"{repo}: not a git repository; the code version of a run is the skill repo's commit "
            "(git init, then commit)"
        )
    if not git.has_commit(repo):
        raise UserError(f"{repo}: the git repository has no commit yet; commit the skill first")
    return git.head_commit(repo)


def version_stage(ctx: SkillContext) -> VersionResult:
    """Give the newly allocated run: next skill version, code version, initial ``run.json``."""
    started = time.monotonic()
    commit = code_version(ctx.repo)
    warnings: list[str] = []
    if git.is_dirty(ctx.repo):
        warnings.append(
            f"{ctx.repo}: uncommitted changes are not part of code version {commit[:7]}"
        )
    earlier = resume_decision(ctx)
    version = allocate_version(ctx.artifacts(), ctx.name, commit)
    pointer = RunPointer(skill_version=version, code_version=commit)
    ctx.set_current_run(pointer)
    run = new_run_record(ctx, pointer)
    tags = image_tags(version, commit)
    message = f"skill version {version}, code version {commit}"
    if earlier is not None and not earlier.resume:
        message += f" (a new version: {earlier.reason})"
    run["stages"]["version"] = {
        "outcome": "passed",
        "seconds": round(time.monotonic() - started, 3),
        "message": message,
    }
    run["warnings"].extend(warnings)
    save_run_file(ctx, RUN, run)
    for warning in warnings:
        ctx.say(f"warning: {warning}")
    ctx.say(f"{ctx.name}: {message}")
    for flavor, tag in tags.items():
        ctx.say(f"image tag ({flavor}): {tag}")
    return VersionResult(pointer=pointer, tags=tags, warnings=tuple(warnings))
