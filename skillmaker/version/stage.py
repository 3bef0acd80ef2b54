"""The version stage: allocate the run's skill version and record the commit it is built from."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from skillmaker.adapters import git
from skillmaker.context import RunPointer, SkillContext
from skillmaker.domain.versions import Flavor, ImageTag, image_tags
from skillmaker.errors import UserError
from skillmaker.fileio import write_atomic
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


ALLOCATION = "allocation.json"
"""The version request in flight: kept until the run is set, so a retry is recognised."""


def _allocation_id(path: Path, commit: str) -> str:
    """Give the id of this version request: the unfinished one's for this commit, else a new one.

    A version stage that died after the registry took its write (its answer lost) left the file
    behind; the next attempt sends the same id and gets the same version back.
    """
    try:
        pending = json.loads(path.read_text(encoding="utf-8"))
        if pending.get("code_version") == commit and isinstance(pending.get("id"), str):
            return str(pending["id"])
    except (OSError, ValueError, AttributeError):
        pass
    allocation = f"{commit[:12]}-{uuid.uuid4().hex}"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"id": allocation, "code_version": commit}) + "\n")
    return allocation


def version_stage(ctx: SkillContext) -> VersionResult:
    """Give the newly allocated run: next skill version, code version, initial ``run.json``."""
    commit = code_version(ctx.repo)
    warnings: list[str] = []
    if git.is_dirty(ctx.repo):
        warnings.append(
            f"{ctx.repo}: uncommitted changes are not part of code version {commit[:7]}"
        )
    earlier = resume_decision(ctx)
    request = ctx.workspace.root / ALLOCATION
    allocation = _allocation_id(request, commit)
    version = allocate_version(ctx.artifacts(), ctx.name, commit, allocation=allocation)
    pointer = RunPointer(skill_version=version, code_version=commit)
    ctx.set_current_run(pointer)
    request.unlink(missing_ok=True)
    run = new_run_record(ctx, pointer)
    tags = image_tags(version, commit)
    message = f"skill version {version}, code version {commit}"
    if earlier is not None and not earlier.resume:
        message += f" (a new version: {earlier.reason})"
    run["warnings"].extend(warnings)
    save_run_file(ctx, RUN, run)
    for warning in warnings:
        ctx.say(f"warning: {warning}")
    ctx.say(f"{ctx.name}: {message}")
    for flavor, tag in tags.items():
        ctx.say(f"image tag ({flavor}): {tag}")
    return VersionResult(pointer=pointer, tags=tags, warnings=tuple(warnings))
