"""Checks a deploy passes before it touches anything: release branch, built image, template size."""

from __future__ import annotations

import hashlib
from typing import Any

from skillmaker.adapters import git
from skillmaker.adapters.s3 import S3Store
from skillmaker.adapters.store import Store
from skillmaker.build.plan import BUILD
from skillmaker.context import SkillContext
from skillmaker.domain.release import (
    MAX_TEMPLATE_BODY,
    branch_problem,
    built_image_problem,
    stack_template_key,
)
from skillmaker.errors import UserError

BRANCH_VARIABLES = ("BRANCH_NAME", "SKILLMAKER_BRANCH")
"""Where CI names the branch it built (Jenkins multibranch sets ``BRANCH_NAME``); git otherwise."""


def branch_of(ctx: SkillContext) -> str | None:
    """Give the branch the run's commit was built from (None: a detached HEAD)."""
    for name in BRANCH_VARIABLES:
        if ctx.env.get(name):
            return ctx.env[name]
    try:
        return git.current_branch(ctx.repo)
    except git.GitError:
        return None


def deploy_skip_reason(ctx: SkillContext) -> str | None:
    """Give why this repo's runs must not deploy (None: it is on the release branch)."""
    return branch_problem(branch_of(ctx), ctx.config.deploy.branch)


def require_release_branch(ctx: SkillContext) -> None:
    """Refuse (exit 2) a deploy from another branch than ``deploy.branch``."""
    problem = deploy_skip_reason(ctx)
    if problem is not None:
        raise UserError(f"{ctx.repo}: {problem}; nothing deployed")


def built_image_note(ctx: SkillContext, tag: str, flavor: str) -> str | None:
    """Give the note of an opted-out check, or refuse (exit 2) a tag that was not built and pushed."""
    if not ctx.config.deploy.require_built_image:
        return (
            f"image {tag} not checked as built and pushed "
            "(deploy.require_built_image is false in skill.json)"
        )
    path = ctx.run_dir() / BUILD
    try:
        record: Any = ctx.record(BUILD)
    except UserError:
        record = {"images": [], "skipped": None}
    problem = built_image_problem(record.get("images") or [], tag, flavor, record.get("skipped"))
    if problem is not None:
        raise UserError(
            f"{path}: {problem}; deploy ships only images the pipeline built and pushed "
            '(a skill without a Docker engine opts out with "deploy": '
            '{"require_built_image": false})'
        )
    return None


def template_url(store: Store, stack: str, region: str, text: str) -> str | None:
    """Give where a template too big to send inline is uploaded to (None: small enough)."""
    if len(text.encode()) <= MAX_TEMPLATE_BODY:
        return None
    if not isinstance(store, S3Store):
        raise UserError(
            f"the template is {len(text.encode())} bytes, over CloudFormation's inline limit of "
            f"{MAX_TEMPLATE_BODY}; it must go by S3, but deploy.artifacts is {store.uri} "
            "(use an s3:// artifact store)"
        )
    key = stack_template_key(stack, hashlib.sha256(text.encode()).hexdigest()[:16])
    full = f"{store.prefix}/{key}" if store.prefix else key
    return f"https://{store.bucket}.s3.{region}.amazonaws.com/{full}"


def upload_template(store: Store, url: str, text: str) -> None:
    """Upload a template to the artifact store at the key its URL names."""
    assert isinstance(store, S3Store)
    key = url.split(".amazonaws.com/", 1)[1]
    if store.prefix:
        key = key[len(store.prefix) + 1 :]
    store.put_bytes(key, text.encode())
