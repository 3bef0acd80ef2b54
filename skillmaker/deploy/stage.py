"""The deploy stage: set the run's image tag in the infra template, push it, update the stack.

Order matters: the gate and the registry are checked before anything is touched, the template is
validated before it is pushed, and the registry learns of the deploy only after the stack took it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict, cast

from skillmaker.adapters.cloudformation import (
    CloudFormationStack,
    StackDeployer,
    StackFailedError,
    StackResult,
    cloudformation_configured,
)
from skillmaker.adapters.infra_repo import InfraCheckout, init_infra_repo, is_url, resolve_location
from skillmaker.context import RunPointer, SkillContext
from skillmaker.deploy.lint import validate_template
from skillmaker.domain.cfn_template import add_skill, check_find_in_maps, set_tag, skill_entry
from skillmaker.domain.gate import GateDecision
from skillmaker.domain.versions import Flavor, ImageTag
from skillmaker.errors import UserError
from skillmaker.records import GATE, GateRecord
from skillmaker.registry import (
    Clock,
    mark_deployed,
    read_registry,
    record_deploy_failure,
    utc_now,
)
from skillmaker.runs import save_run_file

DEPLOY = "deploy.json"
"""The deploy stage's record in the run folder (``DeployRecord``)."""

StackChoice = Literal["auto", "on", "off"]


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


class DeployFailedError(UserError):
    """The stack did not take the new template; the run is marked failed, nothing else changed."""


def passed_gate(ctx: SkillContext, pointer: RunPointer) -> GateDecision:
    """Give the run's gate decision, or a user error when there is none or it rejected the run."""
    path = ctx.run_dir() / GATE
    try:
        record = cast(GateRecord, ctx.record(GATE))
    except UserError:
        raise UserError(
            f"{path}: no gate decision for skill version {pointer.skill_version}; "
            "run `skillmaker gate` first (deploy ships only a candidate the gate passed)"
        ) from None
    decision = GateDecision.from_record(record)
    if not decision.passed:
        failed = "; ".join(rule.reason for rule in decision.failed_rules)
        raise UserError(
            f"{path}: the gate's verdict on skill version {pointer.skill_version} is "
            f"{decision.verdict} ({failed}); "
            "nothing deployed (to accept it knowingly: "
            'skillmaker gate --accept-regression --reason "...")'
        )
    return decision


def _check_baseline(ctx: SkillContext, pointer: RunPointer, decision: GateDecision) -> int | None:
    """Give the deployed version, refusing when it is not the baseline the gate compared with."""
    deployed = read_registry(ctx.artifacts(), ctx.name)["deployed"]
    version = deployed["skill_version"] if deployed else None
    if version not in (decision.baseline_version, pointer.skill_version):
        raise UserError(
            f"{ctx.name}: the gate compared with deployed version {decision.baseline_version}, "
            f"but version {version} is deployed now; run evaluate and gate again"
        )
    return version


def stack_deployer(ctx: SkillContext, stack: StackChoice | StackDeployer) -> StackDeployer | None:
    """Give what updates the stack, or None when the stack step is off or nothing is configured."""
    if not isinstance(stack, str):
        return stack
    if stack == "off" or (stack == "auto" and not cloudformation_configured(ctx.env)):
        return None
    return CloudFormationStack.from_env(ctx.config.deploy.region, ctx.env)


def commit_message(
    skill: str, pointer: RunPointer, tag: ImageTag, previous: str | None, gate: GateDecision
) -> str:
    """Give the infra commit message: skill, versions, tags and the gate's verdict per rule."""
    lines = [
        f"Deploy {skill} skill version {pointer.skill_version} ({tag})",
        "",
        f"skill: {skill}",
        f"skill version: {pointer.skill_version}",
        f"code version: {pointer.code_version}",
        f"image tag: {tag} (was {previous or 'none'})",
        f"gate: {gate.summary()}",
    ]
    lines.extend(f"  {r.verdict} {r.name}: {r.reason}" for r in gate.rules)
    return "\n".join(lines) + "\n"


def converge(
    checkout: InfraCheckout,
    deployer: StackDeployer,
    *,
    stack_name: str,
    template_path: str,
    say: Callable[[str], None],
    rounds: int = 5,
) -> StackResult:
    """Give the stack's result once it runs the infra repo's newest template.

    Other skills' deploys push to the same template; deploying what the remote holds, and again
    when it moved on meanwhile, means the last deploy to finish leaves every pushed tag running.
    """
    deployed: str | None = None
    result: StackResult | None = None
    for _ in range(rounds):
        sha, text = checkout.remote_text(template_path)
        if result is not None and text == deployed:
            return result
        check_find_in_maps(text, f"{checkout.source}@{sha[:7]}:{template_path}")
        say(f"updating stack {stack_name!r} to infra commit {sha[:7]}")
        result = deployer.deploy(stack_name, text)
        deployed = text
    assert result is not None
    return result


@dataclass
class _Plan:
    """What this deploy will write: where, which tag, replacing which."""

    source: str
    where: str
    tag: ImageTag
    flavor: Flavor
    previous: str | None
    is_new: bool


def _open_infra(ctx: SkillContext) -> tuple[str, InfraCheckout]:
    settings = ctx.config.deploy
    source = resolve_location(settings.infra_repo, ctx.repo)
    if not is_url(source) and not Path(source).exists():
        init_infra_repo(Path(source), template_path=settings.template_path)
        ctx.say(f"created the local infra repo {source} from skillmaker's skill stack template")
    return source, InfraCheckout.clone(source, ctx.workspace.root / "infra")


def _plan(
    ctx: SkillContext,
    checkout: InfraCheckout,
    source: str,
    pointer: RunPointer,
    flavor: Flavor | None,
) -> _Plan:
    settings = ctx.config.deploy
    where = f"{source}:{settings.template_path}"
    text = checkout.read(settings.template_path)
    entry = skill_entry(text, where, settings.mapping_name, ctx.name)
    if entry is not None and flavor is not None and flavor != entry.flavor:
        raise UserError(
            f"{where}: {ctx.name} runs on {entry.flavor} capacity there; --flavor {flavor} "
            "applies only to a skill the template does not have yet"
        )
    chosen: Flavor = entry.flavor if entry is not None else (flavor or "cpu")
    return _Plan(
        source=source,
        where=where,
        tag=ImageTag.of(pointer.skill_version, pointer.code_version, chosen),
        flavor=chosen,
        previous=entry.tag if entry is not None else None,
        is_new=entry is None,
    )


def deploy_stage(
    ctx: SkillContext,
    *,
    stack: StackChoice | StackDeployer = "auto",
    flavor: Flavor | None = None,
    clock: Clock = utc_now,
) -> DeployRecord:
    """Give the record of shipping the current run: infra template, stack, then registry.

    Refuses (exit 2, nothing changed) unless the run's ``gate.json`` passed and the gate's
    baseline is still the deployed version. A stack that fails or rolls back leaves the deployed
    version as it was, reverts the template commit and marks the run failed.
    """
    started = time.monotonic()
    pointer = ctx.current_run()
    decision = passed_gate(ctx, pointer)
    deployed_version = _check_baseline(ctx, pointer, decision)
    settings = ctx.config.deploy
    source, checkout = _open_infra(ctx)
    plan = _plan(ctx, checkout, source, pointer, flavor)

    def edit(text: str) -> str:
        if skill_entry(text, plan.where, settings.mapping_name, ctx.name) is None:
            return add_skill(
                text,
                plan.where,
                settings.mapping_name,
                ctx.name,
                tag=str(plan.tag),
                flavor=plan.flavor,
            )
        return set_tag(text, plan.where, settings.mapping_name, ctx.name, str(plan.tag))

    def validate(text: str) -> None:
        for warning in validate_template(text, plan.where, settings.region):
            ctx.say(f"cfn-lint warning: {plan.where}: {warning}")

    if plan.is_new:
        ctx.say(f"{plan.where}: adding {ctx.name} ({plan.flavor} capacity) to the template")
    message = commit_message(ctx.name, pointer, plan.tag, plan.previous, decision)
    published = checkout.publish(settings.template_path, edit, validate, message, on_retry=ctx.say)
    if published.commit is None:
        ctx.say(f"{plan.where}: {ctx.name} is already at {plan.tag}; nothing to commit")
    else:
        ctx.say(f"{plan.where}: {ctx.name} -> {plan.tag}, pushed {published.commit[:7]}")
    record: DeployRecord = {
        "skill": ctx.name,
        "skill_version": pointer.skill_version,
        "code_version": pointer.code_version,
        "image_tag": str(plan.tag),
        "previous_tag": plan.previous,
        "gate": decision.summary(),
        "infra_repo": source,
        "template_path": settings.template_path,
        "infra_commit": published.head,
        "stack": None,
        "outcome": "deployed",
        "message": "infra repo updated; stack update skipped (no CloudFormation configured)",
    }
    deployer = stack_deployer(ctx, stack)
    if deployer is None:
        ctx.say(
            "no CloudFormation endpoint or AWS credentials configured: stack update skipped "
            "(the infra repo holds the new tag; use --stack to update the stack anyway)"
        )
    else:
        try:
            result = converge(
                checkout,
                deployer,
                stack_name=settings.stack_name,
                template_path=settings.template_path,
                say=ctx.say,
            )
        except StackFailedError as exc:
            _fail(ctx, checkout, record, commit=published.commit, exc=exc, started=started)
            raise DeployFailedError(
                f"{exc}; skill version {pointer.skill_version} not deployed, "
                f"{ctx.name} stays at version {deployed_version or 'none'}"
            ) from None
        record["stack"] = {
            "name": result.stack,
            "action": result.action,
            "status": result.status,
            "outputs": dict(result.outputs),
        }
        record["message"] = f"stack {result.stack} {result.action} ({result.status})"
        ctx.say(f"stack {result.stack!r}: {result.action} ({result.status})")
    mark_deployed(
        ctx.artifacts(),
        ctx.name,
        skill_version=pointer.skill_version,
        code_version=pointer.code_version,
        image_tag=str(plan.tag),
        gate=decision.summary(),
        infra_commit=published.head,
        clock=clock,
    )
    save_run_file(ctx, DEPLOY, record)
    ctx.say(f"{ctx.name}: skill version {pointer.skill_version} deployed as {plan.tag}")
    return record


def _fail(
    ctx: SkillContext,
    checkout: InfraCheckout,
    record: DeployRecord,
    *,
    commit: str | None,
    exc: StackFailedError,
    started: float,
) -> None:
    """Undo the template commit and mark the run failed; the deployed version stays."""
    message = str(exc)
    if commit is not None:
        reverted = checkout.revert(
            commit,
            f"Revert {ctx.name} to {record['previous_tag'] or 'its previous state'}: "
            f"stack update failed\n\n{message}\n",
        )
        record["infra_commit"] = reverted.head
        ctx.say(f"reverted the template commit {commit[:7]} ({reverted.head[:7]})")
    record["outcome"] = "failed"
    record["message"] = message
    record["stack"] = {"name": exc.stack, "action": "failed", "status": exc.status, "outputs": {}}
    record_deploy_failure(
        ctx.artifacts(),
        ctx.name,
        skill_version=record["skill_version"],
        image_tag=record["image_tag"],
        message=message,
    )
    save_run_file(ctx, DEPLOY, record)
