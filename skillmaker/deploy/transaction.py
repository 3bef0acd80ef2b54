"""A deploy as a transaction on its stack: push, stack update, verify, or revert.

It runs while the deployer holds the stack's lease, so the only unverified tag in the template is
its own: the stack update either takes it, or the commit is reverted and the run is recorded
"deploy failed" with the real cause. The registry learns of a deploy only after the stack took it.
The deployer renews the lease by compare-and-swap (noting the commit) before each push, before the
stack update, every third of the lease while the update runs, and before it records success; a
deployer that finds its lease taken over pushes nothing more and records no success, and the one
that took over undoes the push it was told of. Each push is cut off before the lease could expire
under it (a tenth of the lease early); a push cut off may have landed, so it is reverted like any
other failed deploy and stays noted in the released lease for the next holder to check again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NotRequired, TypedDict

from skillmaker.adapters.cloudformation import (
    Heartbeat,
    StackDeployer,
    StackFailedError,
    StackResult,
)
from skillmaker.adapters.git import GitError
from skillmaker.adapters.infra_repo import InfraCheckout
from skillmaker.adapters.store import Store
from skillmaker.context import RunPointer
from skillmaker.deploy.checks import template_url, upload_template
from skillmaker.domain.cfn_template import check_find_in_maps
from skillmaker.domain.gate import GateDecision
from skillmaker.domain.redact import redact
from skillmaker.domain.versions import ImageTag
from skillmaker.errors import UserError

Say = Callable[[str], None]


class StackSummary(TypedDict):
    """The stack a deploy updated and how it ended."""

    name: str
    action: str  # "created", "updated", "unchanged" or "failed"
    status: str
    outputs: dict[str, str]


class DeployRecord(TypedDict):
    """``deploy.json``: what the deploy stage changed (or tried to)."""

    skill: str
    skill_version: int
    code_version: str
    image_tag: str
    previous_tag: str | None
    gate: str
    infra_repo: str
    template_path: str
    infra_commit: str | None
    stack: StackSummary | None
    outcome: str  # "deployed" or "failed"
    message: str
    image_check: NotRequired[str]
    """How the image was checked: "built and pushed", or the opt-out note."""
    template_url: NotRequired[str | None]


class DeployFailedError(UserError):
    """The stack did not take the new template; the commit is reverted, the registry unchanged."""


def commit_message(
    skill: str,
    pointer: RunPointer,
    tag: ImageTag,
    previous: str | None,
    gate: GateDecision,
    *,
    image_check: str,
) -> str:
    """Give the infra commit message: skill, versions, tags, image check, the gate's verdicts."""
    lines = [
        f"Deploy {skill} skill version {pointer.skill_version} ({tag})",
        "",
        f"skill: {skill}",
        f"skill version: {pointer.skill_version}",
        f"code version: {pointer.code_version}",
        f"image tag: {tag} (was {previous or 'none'})",
        f"image: {image_check}",
        f"gate: {gate.summary()}",
    ]
    lines.extend(f"  {r.verdict} {r.name}: {r.reason}" for r in gate.rules)
    return "\n".join(lines) + "\n"


def update_stack(
    checkout: InfraCheckout,
    deployer: StackDeployer,
    store: Store,
    *,
    stack_name: str,
    template_path: str,
    region: str,
    say: Say,
    heartbeat: Heartbeat | None = None,
) -> tuple[StackResult, str | None]:
    """Give the stack's result once it runs the infra repo's template as pushed, and its URL.

    ``heartbeat`` renews the deploy lease while the update waits (see ``StackDeployer.deploy``).
    """
    sha, text = checkout.remote_text(template_path)
    check_find_in_maps(text, f"{redact(checkout.source)}@{sha[:7]}:{template_path}")
    url = template_url(store, stack_name, region, text)
    if url is not None:
        upload_template(store, url, text)
        say(f"template is {len(text.encode())} bytes: sent to CloudFormation as {url}")
    say(f"updating stack {stack_name!r} to infra commit {sha[:7]}")
    return deployer.deploy(stack_name, text, url, heartbeat=heartbeat), url


def revert_push(checkout: InfraCheckout, commit: str, message: str, say: Say) -> str | None:
    """Give the head after reverting ``commit`` in the infra repo (None: it could not be)."""
    try:
        reverted = checkout.revert(commit, message)
    except GitError as exc:
        say(f"warning: could not revert infra commit {commit[:7]}: {exc}")
        return None
    if reverted.commit is None:
        say(f"infra commit {commit[:7]} never landed or is reverted already: nothing to revert")
    else:
        say(f"reverted the template commit {commit[:7]} ({reverted.head[:7]})")
    return reverted.head


def failed(
    record: DeployRecord,
    stack_name: str,
    checkout: InfraCheckout,
    *,
    commit: str | None,
    exc: BaseException,
    say: Say,
) -> DeployRecord:
    """Give the record of a deploy that failed after its push, once its commit is reverted."""
    message = str(exc) or type(exc).__name__
    if commit is not None:
        head = revert_push(
            checkout,
            commit,
            f"Revert {record['skill']} to {record['previous_tag'] or 'its previous state'}: "
            f"deploy failed\n\n{message}\n",
            say,
        )
        record["infra_commit"] = head
    record["outcome"] = "failed"
    record["message"] = f"deploy failed: {message}"
    action: Literal["failed"] = "failed"
    status = exc.status if isinstance(exc, StackFailedError) else "UNKNOWN"
    record["stack"] = {"name": stack_name, "action": action, "status": status, "outputs": {}}
    return record
